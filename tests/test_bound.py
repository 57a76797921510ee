"""Bound classification per evidence tier on the real H200 traces (see ../shared/traces/README.md)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import polars as pl
import pytest

import traceview
from paths import H200, NCU, REPO
from traceview.analyses.families import family_of
from traceview.api import AnalyzeOptions
from traceview.ingest.ncu import read_ncu_csv

RAW = NCU / "ncu_baseline_raw.csv"
SIDECAR = REPO / "examples" / "h200_kernel_work.toml"
H200_PEAK = 4814304000000.0  # TARGET_INFO_GPU.memoryBandwidth of h200_baseline.sqlite


def _bounds(result) -> dict[str, dict]:
    return {k["name"]: k["bound"] for k in result.to_dict()["kernels"]}


@pytest.fixture(scope="module")
def with_ncu(baseline_trace):
    return traceview.analyze(baseline_trace, options=AnalyzeOptions(ncu=[RAW]))


@pytest.fixture(scope="module")
def with_work(baseline_trace):
    return traceview.analyze(baseline_trace, options=AnalyzeOptions(work=SIDECAR))


def test_measured_tier_from_nsight_compute(with_ncu):
    b = _bounds(with_ncu)
    for name in ("gemv_bf16_decode", "stream_triad"):
        assert (b[name]["class"], b[name]["tier"]) == ("memory", "measured"), name
    for name in ("reduce_small_grid", "layernorm_rows"):
        assert (b[name]["class"], b[name]["tier"]) == ("latency", "measured"), name
        assert "neither pipe busy" in b[name]["reason"] and "blocks for 132 SMs" in b[name]["reason"]
    used = b["gemv_bf16_decode"]["metrics_used"]
    assert "sm__throughput.avg.pct_of_peak_sustained_elapsed" in used
    assert "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed" in used
    assert all(e["source"].startswith(("ncu: ", "peak FLOP/s")) for e in b["gemv_bf16_decode"]["evidence"])
    assert with_ncu.extra["ncu"]["matched_launches"] == 34


def test_ncu_values_are_the_exported_ones(with_ncu):
    launches = read_ncu_csv(RAW).launches.filter(pl.col("kernel_name") == "gemv_bf16_decode")
    w = launches.get_column("duration_ns")
    expected = float((launches.get_column("mem_pct") * w).sum() / w.sum())
    ev = {e["name"]: e["value"] for e in _bounds(with_ncu)["gemv_bf16_decode"]["evidence"]}
    assert ev["memory throughput"] == pytest.approx(expected, abs=0.01)


def test_roofline_places_sgemm_right_of_the_ridge(with_ncu):
    points = {p["name"]: p for p in with_ncu.extra["roofline"]["points"]}
    assert points["sgemm_tile64x64"]["arithmetic_intensity"] > points["sgemm_tile64x64"]["ridge_point"]
    assert points["gemv_bf16_decode"]["arithmetic_intensity"] < points["gemv_bf16_decode"]["ridge_point"]
    assert points["sgemm_tile64x64"]["achieved_flops_per_s"] == pytest.approx(25e12, rel=0.1)  # README: ~25 TFLOP/s


def test_without_ncu_every_kernel_has_an_analytic_or_heuristic_class(baseline_result):
    b = _bounds(baseline_result)
    assert set(b) == set(baseline_result.kernels.get_column("name").to_list())
    for name, entry in b.items():
        assert entry["tier"] in ("analytic", "heuristic"), name
        assert entry["class"] in ("compute", "memory", "latency", "communication", "unknown")
        assert 0 <= entry["confidence"] <= 1
    assert b["reduce_small_grid"]["tier"] == "analytic" and b["reduce_small_grid"]["class"] == "latency"
    assert b["gemv_bf16_decode"]["tier"] == "heuristic" and "guess" in b["gemv_bf16_decode"]["reason"]


def test_gemv_bandwidth_against_the_h200_peak(with_work):
    b = _bounds(with_work)["gemv_bf16_decode"]
    avg_ns = with_work.kernels.filter(pl.col("name") == "gemv_bf16_decode").get_column("avg_ns")[0]
    assert (b["class"], b["tier"]) == ("memory", "analytic")
    assert b["achieved_bandwidth_bytes_per_s"] == pytest.approx(128 * 2**20 / (avg_ns * 1e-9))
    assert 3.5e12 < b["achieved_bandwidth_bytes_per_s"] < 4.1e12  # README: ~3.8 TB/s
    assert b["peak_bandwidth_bytes_per_s"] == H200_PEAK
    assert "TARGET_INFO_GPU.memoryBandwidth" in b["peak_bandwidth_source"]
    assert b["bandwidth_pct_of_peak"] == pytest.approx(100 * b["achieved_bandwidth_bytes_per_s"] / H200_PEAK)


def test_sidecar_agrees_with_measured_dram_bytes():
    """The example sidecar is checked against what Nsight Compute measured on the same program."""
    kernels = tomllib.loads(SIDECAR.read_text())["kernels"]
    measured = read_ncu_csv(RAW).launches.group_by("kernel_name").agg(pl.col("dram_bytes").mean(),
                                                                      pl.col("fp32_flops").mean())
    got = {r["kernel_name"]: r for r in measured.iter_rows(named=True)}
    for name in ("gemv_bf16_decode", "stream_triad", "reduce_small_grid"):
        assert kernels[name]["bytes"] == pytest.approx(got[name]["dram_bytes"], rel=0.10), name
    assert kernels["sgemm_tile64x64"]["flops"] == pytest.approx(got["sgemm_tile64x64"]["fp32_flops"], rel=0.01)


def test_analytic_and_heuristic_tiers(with_work):
    b = _bounds(with_work)
    assert (b["stream_triad"]["class"], b["stream_triad"]["tier"]) == ("memory", "analytic")
    assert b["stream_triad"]["bandwidth_pct_of_peak"] < 60  # README: ~1.7 TB/s, far below peak
    assert (b["sgemm_tile64x64"]["class"], b["sgemm_tile64x64"]["roofline_side"]) == ("compute", "compute")
    assert b["gelu_inplace"]["class"] == "latency"  # ~2 us launches (README: launch-bound)
    assert b["tail_heavy_iter"]["tier"] == "heuristic"
    assert [t["tier"] for t in b["gemv_bf16_decode"]["other_tiers"]] == ["heuristic"]


def test_low_bandwidth_rule(baseline_trace, with_ncu):
    fired = {f["subject"]["name"] for f in with_ncu.findings if f["rule_id"] == "memory.low-bandwidth"}
    assert fired == {"stream_triad"}  # gemv reaches ~80% of peak; L1-bound sgemm is not DRAM-limited
    strict = traceview.analyze(baseline_trace, options=AnalyzeOptions(
        ncu=[RAW], select=["memory.*"], thresholds={"memory.low-bandwidth": {"min_share_of_peak": 0.9}}))
    assert {f["subject"]["name"] for f in strict.findings} == {"stream_triad", "gemv_bf16_decode"}
    finding = next(f for f in strict.findings if f["subject"]["name"] == "gemv_bf16_decode")
    assert all(e["source"] for e in finding["evidence"])


def test_memcpy_bandwidth_pageable_vs_pinned(baseline_result):
    mb = baseline_result.extra["memory_bandwidth"]
    htod = mb["pageable_vs_pinned"]["HtoD"]
    assert htod["pageable_bytes_per_s"] == pytest.approx(6e9, rel=0.2)   # README: ~6 GB/s pageable
    assert htod["pinned_bytes_per_s"] == pytest.approx(55e9, rel=0.1)    # README: ~55 GB/s pinned
    memcpy = baseline_result.trace.memcpy
    pinned = memcpy.filter((pl.col("operation") == "[CUDA memcpy HtoD]") & (pl.col("src_kind") == "Pinned"))
    assert htod["pinned_bytes_per_s"] == pytest.approx(pinned["bytes"].sum() * 1e9 / pinned["duration"].sum())
    assert mb["link"]["host"]["name"] == "PCIe Gen5 x16"


def test_families():
    assert family_of("ncclDevKernel_AllReduce_Sum_f32_RING_LL").usual_class == "communication"
    assert family_of("void flash_fwd_kernel<Flash_fwd_kernel_traits<128>>").name == "attention"
    assert family_of("gemv_bf16_decode").name == "gemv" and family_of("sgemm_tile64x64").name == "gemm"
    assert family_of("layernorm_rows").name == "normalization" and family_of("mystery").name == "unknown"


def test_nccl_kernels_are_communication():
    result = traceview.analyze(traceview.load(H200 / "h200x2_nccl_tp_serial.sqlite"))
    for name, entry in _bounds(result).items():
        if "nccl" in name.lower():
            assert entry["class"] == "communication", name


def test_text_and_markdown_show_bound(tmp_path, with_work):
    from traceview.report.markdown import to_markdown
    from traceview.report.terminal import to_text

    data = with_work.to_dict()
    for text in (to_text(data), to_markdown(data)):
        bw = _bounds(with_work)["gemv_bf16_decode"]["achieved_bandwidth_bytes_per_s"]
        assert "Bottlenecks" in text and "Kernel time by bound" in text and f"{bw / 1e9:,.0f} GB/s" in text
    bad = tmp_path / "work.toml"
    bad.write_text("[kernels.x]\nbytes = 'many'\n")
    proc = subprocess.run([sys.executable, "-m", "traceview", "analyze", str(H200 / "h200_baseline.sqlite"),
                           "--work", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "bytes" in proc.stderr


def test_sidecar_path_exists():
    assert Path(SIDECAR).is_file()
