"""Timeline rules on real traces: each fires where the trace has the problem and stays quiet where
it does not. Expected values are cross-checked against the SQLite tables directly."""

from __future__ import annotations

import sqlite3
from functools import cache
from pathlib import Path

import pytest
from paths import H200, PUBLIC

import traceview
from traceview.api import AnalyzeOptions
from traceview.rules import RuleContext, run_rules

BASELINE = H200 / "h200_baseline.sqlite"
TP2 = H200 / "h200x2_tp_serial.sqlite"
JACOBI = PUBLIC / "openhackathons-org__gpubootcamp__jacobi_memcpy_nvlink_report.CONVERTED.sqlite"
MNIST = PUBLIC / "openhackathons-org__AI-Profiler__baseline_nvtx.CONVERTED.sqlite"
FUSER = PUBLIC / "NVIDIA__Fuser__f6ab0c3_report1.sqlite"
H100X2 = PUBLIC / "GindaChen__nsys-ai__h100_2gpu_1s.sqlite"


@cache
def analyzed(path: Path, device: int | None = None):
    """The trace analyzed once (pipeline steps included); rules then run on it directly."""
    return traceview.analyze(traceview.load(path), device=device, options=AnalyzeOptions(select=["memset.sync"]))


def run(path: Path, rule: str, overrides: tuple[tuple[str, object], ...] = (), device: int | None = None):
    """(findings as JSON dicts, not-applicable reasons) of one rule, as the engine produces them."""
    result = analyzed(path, device)
    options = AnalyzeOptions(select=[rule], thresholds={rule: dict(overrides)} if overrides else {})
    findings, skipped = run_rules(RuleContext(trace=result.trace, result=result, options=options), select=[rule],
                                  thresholds=options.thresholds)
    return [f.to_dict() for f in findings], skipped


def sql(path: Path, query: str) -> list[tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(query).fetchall()


def ev(finding: dict, name: str):
    return next(e["value"] for e in finding["evidence"] if e["name"] == name)


def test_pageable_copies_in_load_weights_and_extras():
    found, _ = run(BASELINE, "memcpy.pageable")
    by_range = {f["subject"]["nvtx_range"]: f for f in found}
    assert set(by_range) == {"load_weights", "extras"}
    # srcKind 0 = pageable host memory (ENUM_CUDA_MEM_KIND); copies of at least 1 MiB
    truth = dict(sql(BASELINE, "SELECT bytes, end - start FROM CUPTI_ACTIVITY_KIND_MEMCPY WHERE srcKind = 0 AND bytes >= 1048576"))
    pinned = sql(BASELINE, "SELECT bytes * 1.0 / (end - start) FROM CUPTI_ACTIVITY_KIND_MEMCPY WHERE srcKind = 1 AND copyKind = 1")
    for f, api in ((by_range["load_weights"], "cuMemcpyHtoD_v2"), (by_range["extras"], "cuMemcpyHtoDAsync_v2")):
        assert f["subject"]["api"] == api  # driver API: nsys's own rule only checks cudaMemcpy*Async
        assert ev(f, "copy time") == truth[ev(f, "bytes")]
        assert ev(f, "pinned throughput") == pytest.approx(pinned[0][0], abs=1e-3)
        assert f["estimated_gain_ns"] == pytest.approx(ev(f, "copy time") - ev(f, "bytes") / pinned[0][0], rel=1e-6)
    assert ev(by_range["load_weights"], "bytes") == 64 << 20 and ev(by_range["extras"], "bytes") == 16 << 20
    assert "asynchronous in name only" in by_range["extras"]["message"]


def test_pageable_quiet_without_large_pageable_copies():
    assert run(TP2, "memcpy.pageable")[0] == []  # only peer-to-peer copies
    assert run(H100X2, "memcpy.pageable")[0] == []  # 4 pageable copies of 3136 B in all: below min_bytes
    tiny, _ = run(H100X2, "memcpy.pageable", (("min_bytes", 0),))
    assert sum(ev(f, "bytes") for f in tiny) == 3136


def test_sync_copy_each_decode_step():
    found, _ = run(BASELINE, "memcpy.sync")
    assert len(found) == 1
    f = found[0]
    steps = sql(BASELINE, "SELECT count(*) FROM NVTX_EVENTS WHERE text = 'decode_step'")[0][0]
    d2h = sql(BASELINE, "SELECT count(*), max(bytes) FROM CUPTI_ACTIVITY_KIND_MEMCPY WHERE copyKind = 2 AND bytes < 4096")[0]
    assert (f["subject"]["nvtx_range"], f["subject"]["api"], f["subject"]["name"]) == (
        "decode_step", "cuMemcpyDtoH_v2", "[CUDA memcpy DtoH]")
    assert ev(f, "copies") == d2h[0] == steps == 24 and ev(f, "median bytes per copy") == d2h[1] == 256
    assert "1.0 per 'decode_step' range" in f["message"]


def test_sync_copy_patterns_and_quiet_trace():
    assert run(TP2, "memcpy.sync")[0] == []
    jacobi = {f["subject"]["name"]: f for f in run(JACOBI, "memcpy.sync")[0]}
    assert "cudaDeviceSynchronize" in jacobi["[CUDA memcpy PtoP]"]["message"]  # async + synchronize
    mnist = [f for f in run(MNIST, "memcpy.sync")[0] if f["subject"]["nvtx_range"] == "aten::copy_"]
    assert mnist and "pageable memory" in mnist[0]["message"]  # PyTorch .to(device) from pageable memory


def test_sync_memset_in_a_loop():
    found, _ = run(JACOBI, "memset.sync")
    loop = next(f for f in found if f["subject"]["nvtx_range"] == "Jacobi Solve")
    assert loop["subject"]["name"] == "cudaMemset"
    truth = sql(JACOBI, "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId "
                        "WHERE s.value LIKE 'cudaMemset_v%' OR s.value = 'cudaMemset'")[0][0]
    assert ev(loop, "calls") == 1000 and truth >= 1000


def test_sync_memset_quiet_on_baseline_unless_thresholds_drop():
    assert run(BASELINE, "memset.sync")[0] == []  # 2 x cuMemsetD8_v2, 116 us blocked: below both thresholds
    once, _ = run(BASELINE, "memset.sync", (("min_repeats", 1),))
    assert {(f["subject"]["name"], f["subject"]["nvtx_range"]) for f in once} == {
        ("cuMemsetD8_v2", "load_weights"), ("cuMemsetD8_v2", "extras")}  # never the Async one


def test_sync_calls_per_decode_step_on_two_gpus():
    found, _ = run(TP2, "api.sync")
    assert [(f["subject"]["name"], f["subject"]["nvtx_range"]) for f in found] == [("cuCtxSynchronize", "decode_step")]
    assert ev(found[0], "calls") == 48 and "2.0 per 'decode_step' range" in found[0]["message"]
    assert 0 < found[0]["estimated_gain_ns"] <= 48 * 1_000_000


def test_sync_calls_quiet_on_baseline():
    assert run(BASELINE, "api.sync")[0] == []  # its 5 synchronizes leave at most 55 us of GPU idle each


def test_gpu_idle_gap_on_two_gpus_and_device_filter():
    found, _ = run(TP2, "timeline.gpu-idle")
    by_dev = {f["subject"]["device_id"]: f for f in found}
    assert set(by_dev) == {0, 1}
    assert ev(by_dev[0], "largest gap") == 180_685_777
    devices = {d["id"]: d for d in analyzed(TP2).to_dict()["devices"]}
    assert ev(by_dev[0], "idle time in gaps") <= devices[0]["idle_ns"]
    only1, _ = run(TP2, "timeline.gpu-idle", device=1)
    assert [f["subject"]["device_id"] for f in only1] == [1]


def test_gpu_idle_quiet_on_baseline_until_microsecond_threshold():
    assert run(BASELINE, "timeline.gpu-idle")[0] == []  # largest gap 55 us < 100 us
    fine, _ = run(BASELINE, "timeline.gpu-idle", (("min_gap_ns", 50_000),))
    assert ev(fine[0], "gaps") == 2 and ev(fine[0], "largest gap") == 55_199


def test_low_utilization_on_fragmented_training_loop():
    found, _ = run(MNIST, "timeline.low-utilization")
    assert len(found) == 1 and ev(found[0], "low windows") >= 3
    assert 0 < ev(found[0], "mean utilization of low windows") < 50
    assert run(BASELINE, "timeline.low-utilization")[0] == []  # busy 98% of its window


def test_launch_bound_gelu_runs():
    found, _ = run(BASELINE, "timeline.launch-bound")
    assert [f["subject"]["name"] for f in found] == ["gelu_inplace"]  # not layernorm_rows (gaps 24% of run time)
    f = found[0]
    assert ev(f, "launches") == 96 and ev(f, "gap time") >= 0.5 * ev(f, "run time")
    assert "layernorm_rows runs before it 96/96 times" in f["message"]
    doubled, _ = run(H200 / "h200_regressed.sqlite", "timeline.launch-bound")
    assert ev(doubled[0], "launches") == 192  # the unfused second gelu pass


def test_launch_bound_quiet_on_long_kernels():
    assert run(FUSER, "timeline.launch-bound")[0] == []
