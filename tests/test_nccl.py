"""NCCL collectives, peer copies and the nccl.* rules on real multi-GPU exports."""

from __future__ import annotations

import csv

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import traceview
from paths import H200, ORACLE, PUBLIC
from traceview.analyses import nccl, tp_cost
from traceview.api import AnalyzeOptions

TP_SERIAL = H200 / "h200x2_tp_serial.sqlite"
NCCL_TP = H200 / "h200x2_nccl_tp_serial.sqlite"
JACOBI = PUBLIC / "openhackathons-org__gpubootcamp__jacobi_memcpy_nvlink_report.CONVERTED.sqlite"
GINDA = PUBLIC / "GindaChen__nsys-ai__h100_2gpu_1s.sqlite"


@pytest.fixture(scope="module")
def tp_serial():
    return traceview.analyze(traceview.load(TP_SERIAL))


@pytest.fixture(scope="module")
def nccl_tp():
    return traceview.analyze(traceview.load(NCCL_TP))


def findings(result, rule_id):
    return [f for f in result.findings if f["rule_id"] == rule_id]


def not_applicable(result, rule_id):
    return [s["reason"] for s in result.extra["rules_not_applicable"] if s["rule_id"] == rule_id]


def oracle_kernel_total(trace_stem: str, name_prefix: str) -> int:
    with open(ORACLE / f"{trace_stem}_gpukernsum.csv", newline="") as fh:
        return sum(int(r["Total Time (ns)"]) for r in csv.DictReader(fh) if r["Name"].startswith(name_prefix))


@pytest.mark.parametrize(("name", "expected"), [
    ("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm *, unsigned long, ncclWork *)",
     ("AllReduce", "RING", "LL", "Sum", "f32")),
    ("ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t", ("SendRecv", "RING", "SIMPLE", "Sum", "i8")),
    ("ncclDevKernel_SendRecv", ("SendRecv", None, None, None, None)),
    ("ncclDevKernel_AllGather_RING_LL", ("AllGather", "RING", "LL", None, None)),
    ("ncclAllReduceRingLLKernel_sum_f32(CollectiveArgs)", ("AllReduce", "RING", "LL", "Sum", "f32")),
    ("ncclDevKernel_AllReduce_Sum_bf16_NVLS_TREE_SIMPLE", ("AllReduce", "NVLS_TREE", "SIMPLE", "Sum", "bf16")),
    ("gemv_bf16_decode", (None, None, None, None, None)),
])
def test_parse_kernel_names(name, expected):
    p = nccl.parse_nccl_kernel(name)
    assert (p.operation, p.algorithm, p.protocol, p.reduction, p.dtype) == expected


@given(op=st.sampled_from(["AllReduce", "ReduceScatter", "Reduce", "AllGather", "Broadcast", "SendRecv"]),
       algo=st.sampled_from(nccl.ALGORITHMS), proto=st.sampled_from(nccl.PROTOCOLS),
       red=st.sampled_from(["Sum", "Prod", "Min", "Max", "PreMulSum", "SumPostDiv"]),
       dtype=st.sampled_from(sorted(nccl.DTYPE_ALIASES)), modern=st.booleans(), args=st.booleans())
def test_parse_round_trip(op, algo, proto, red, dtype, modern, args):
    """Names built the way NCCL 2.19+ (op_red_type_algo_proto) and older NCCL (op_algo_proto_red_type) do."""
    name = (f"ncclDevKernel_{op}_{red}_{dtype}_{algo}_{proto}" if modern
            else f"ncclKernel_{op}_{algo}_{proto}_{red}_{dtype}") + ("(ncclDevComm *, ncclWork *)" if args else "")
    p = nccl.parse_nccl_kernel(name)
    assert (p.operation, p.algorithm, p.protocol, p.reduction, p.dtype) == (
        op, algo, proto, red, nccl.DTYPE_ALIASES[dtype])


def device(comm, dev):
    return next(d for d in comm["devices"] if d["device_id"] == dev)


def test_tp_serial_all_reduce_time_per_device(tp_serial):
    comm = tp_serial.extra["communication"]
    per_device = {d["device_id"]: sum(c["total_ns"] for c in d["collectives"] if c["operation"] == "AllReduce")
                  for d in comm["devices"]}
    assert set(per_device) == {0, 1} and all(v > 0 for v in per_device.values())
    assert sum(per_device.values()) == oracle_kernel_total("h200x2_tp_serial", "ncclDevKernel_AllReduce")
    for dev in (0, 1):
        d = device(comm, dev)
        assert d["exposed_pct"] > 99.5  # collectives run on the compute stream: all of it is exposed
        assert d["exposed_ns"] + d["overlapped_ns"] == d["comm_ns"]
        assert d["peer_copies"]["count"] == 192 and d["peer_copies"]["bytes"] == 192 * 32768


def test_tp_serial_eight_all_reduces_per_decode_step(tp_serial):
    steps = tp_serial.extra["communication"]["steps"]
    assert steps["name"] == "decode_step" and steps["count"] == 24
    assert len(steps["per_step"]) == 48
    assert {s["allreduce_count"] for s in steps["per_step"]} == {8}
    assert all(s["exposed_pct"] > 90 for s in steps["per_step"])
    for row in steps["per_device"]:
        assert row["overlapped_step_ns"] == row["step_ns"] - row["exposed_ns"]
        assert row["step_ns_on_roce200"] > row["step_ns_on_nvlink4"] == row["step_ns"]


def test_tp_serial_all_gather_phase_on_its_own_stream(tp_serial):
    comm = tp_serial.extra["communication"]
    for dev, compute_stream in ((0, 14), (1, 24)):
        d = device(comm, dev)
        gather = [c for c in d["collectives"] if c["operation"] == "AllGather"]
        assert len(gather) == 1 and gather[0]["stream_id"] != compute_stream
        assert gather[0]["stream_id"] in d["comm_streams"] and gather[0]["stream_id"] not in d["compute_streams"]
        assert d["shared_streams"] == [compute_stream]
    phase = [p for p in comm["phases"] if p["name"] == "weight_sync_allgather"]
    assert len(phase) == 2 and all(p["exposed_pct"] == 100.0 and p["compute_only_ns"] == 0 for p in phase)


def test_serialized_on_compute_stream_fires(tp_serial, nccl_tp):
    for result, streams in ((tp_serial, {(0, 14), (1, 24)}), (nccl_tp, {(0, 14), (1, 24)})):
        found = findings(result, "nccl.serialized-on-compute-stream")
        assert {(f["subject"]["device_id"], f["subject"]["stream_id"]) for f in found} == streams


def test_serialized_rule_not_applicable_without_collectives():
    result = traceview.analyze(traceview.load(JACOBI))
    assert not_applicable(result, "nccl.serialized-on-compute-stream") == ["no NCCL collective kernels"]


def test_exposed_fires_on_tp_serial_not_on_jacobi(tp_serial):
    found = findings(tp_serial, "nccl.exposed")
    assert {f["subject"]["device_id"] for f in found} == {0, 1}
    assert all(f["estimated_gain_ns"] == device(tp_serial.extra["communication"], f["subject"]["device_id"])
               ["exposed_ns"] for f in found)
    jacobi = traceview.analyze(traceview.load(JACOBI))
    assert findings(jacobi, "nccl.exposed") == [] and not not_applicable(jacobi, "nccl.exposed")


def test_single_gpu_baseline_has_no_communication(baseline_result):
    assert "communication" not in baseline_result.extra
    for rule_id in ("nccl.exposed", "nccl.low-bus-bandwidth", "nccl.rank-skew", "nccl.serialized-on-compute-stream"):
        assert not_applicable(baseline_result, rule_id), rule_id


def test_real_nccl_calls_join_kernels(nccl_tp):
    trace = nccl_tp.trace
    joined = nccl.nccl_calls(trace, nccl.collectives(trace.kernels))
    assert joined.height == 398 and joined.get_column("nccl_call").null_count() == 0
    mapped = joined.get_column("nccl_call").replace_strict(nccl.NCCL_CALLS)
    assert (mapped == joined.get_column("operation")).all()
    # NCCL 2.21 under nsys 2022.4 records no payloads: sizes stay unknown, never guessed.
    assert joined.get_column("message_bytes").null_count() == 398
    assert not_applicable(nccl_tp, "nccl.low-bus-bandwidth")


def test_nccl_decode_steps_and_grad_sync(nccl_tp):
    comm = nccl_tp.extra["communication"]
    assert {s["allreduce_count"] for s in comm["steps"]["per_step"]} == {8}
    grad = [p for p in comm["phases"] if p["name"] == "grad_sync"]
    assert len(grad) == 2 and all(p["overlapped_ns"] == 0 for p in grad)
    second = {c["operation"] for d in comm["devices"] for c in d["collectives"] if c["stream_id"] in (15, 25)}
    assert second == {"AllGather", "ReduceScatter", "Broadcast"}
    ar = {d["device_id"]: sum(c["total_ns"] for c in d["collectives"] if c["operation"] == "AllReduce")
          for d in comm["devices"]}
    assert 2.5 < ar[1] / ar[0] < 3.0  # GPU 1 waits for its peer inside the all-reduces
    assert sum(ar.values()) == oracle_kernel_total("h200x2_nccl_tp_serial", "ncclDevKernel_AllReduce")


def test_public_two_gpu_export_loads_with_per_device_figures():
    result = traceview.analyze(traceview.load(GINDA))
    comm = result.extra["communication"]
    kernels = result.trace.kernels
    from traceview.analyses.timeline import merge_intervals
    busy = merge_intervals(kernels).group_by("device_id").agg((pl.col("end") - pl.col("start")).sum())
    for dev, kernel_ns in busy.iter_rows():
        d = device(comm, dev)
        assert d["comm_ns"] == 0 and d["compute_only_ns"] == kernel_ns
    assert not_applicable(result, "nccl.exposed") == ["no communication on any device"]


def test_jacobi_peer_copies_and_low_bus_bandwidth():
    result = traceview.analyze(traceview.load(JACOBI))
    comm = result.extra["communication"]
    with open(ORACLE / f"{JACOBI.stem}_gpumemsizesum.csv", newline="") as fh:
        ptop = next(r for r in csv.DictReader(fh) if r["Operation"] == "[CUDA memcpy PtoP]")
    copies = [device(comm, d)["peer_copies"] for d in (0, 3)]
    assert sum(c["count"] for c in copies) == int(ptop["Count"])
    assert sum(c["bytes"] for c in copies) / 1e6 == pytest.approx(float(ptop["Total (MB)"]), abs=1e-3)
    assert comm["link"]["key"] == "nvlink2"
    found = findings(result, "nccl.low-bus-bandwidth")
    assert {f["subject"]["device_id"] for f in found} == {0, 3}
    bw = {r["device_id"]: r for r in comm["bandwidth"]}
    assert bw[0]["busbw"] == pytest.approx(copies[0]["bytes"] * 1e9 / copies[0]["total_ns"], rel=1e-9)


def test_low_bus_bandwidth_threshold_override(tp_serial):
    assert {f["subject"]["device_id"] for f in findings(tp_serial, "nccl.low-bus-bandwidth")} == {0, 1}
    strict = traceview.analyze(tp_serial.trace, options=AnalyzeOptions(
        select=["nccl.low-bus-bandwidth"], thresholds={"nccl.low-bus-bandwidth": {"max_link_pct": 1.0}}))
    assert findings(strict, "nccl.low-bus-bandwidth") == []


@given(n=st.integers(min_value=2, max_value=1024))
def test_bus_bandwidth_factors_follow_nccl_tests(n):
    ops = pl.DataFrame({"operation": ["AllReduce", "AllGather", "ReduceScatter", "Broadcast", "PeerCopy"]})
    got = ops.select(tp_cost.bus_factor(pl.col("operation"), n)).to_series().to_list()
    assert got == pytest.approx([2 * (n - 1) / n, (n - 1) / n, (n - 1) / n, 1.0, 1.0])


def test_link_table():
    assert tp_cost.link_for_gpu("NVIDIA H200").bytes_per_s == 450e9  # 900 GB/s bidirectional
    assert tp_cost.LINKS["roce200"].bytes_per_s == 25e9
    assert tp_cost.link_for_gpu("NVIDIA H100 PCIe").key == "pcie5"
    assert tp_cost.link_for_gpu(None) is None and tp_cost.link_for_gpu("Some GPU") is None


def test_html_report_has_a_communication_section(tp_serial, baseline_result):
    from traceview.report.html import render_html

    page = render_html(tp_serial)
    assert 'id="tv-comm-devices"' in page and 'id="tv-fig-comm"' in page and 'id="tv-comm-steps"' in page
    assert 'id="tv-comm-devices"' not in render_html(baseline_result)


def test_nvtx_payload_sizes_reach_bus_bandwidth(tmp_path):
    """Newer NCCL/nsys put the message size in the NCCL range's payload: write one into a copy."""
    import shutil
    import sqlite3

    path = tmp_path / "payload.sqlite"
    shutil.copyfile(NCCL_TP, path)
    con = sqlite3.connect(path)
    ids = "SELECT id FROM StringIds WHERE value = ?"
    con.execute(f"UPDATE NVTX_EVENTS SET int64Value = 32768 WHERE textId IN ({ids})", ("ncclAllReduce",))
    con.execute(f"UPDATE NVTX_EVENTS SET jsonText = ? WHERE textId IN ({ids})",
                ('{"Message size [bytes]": 268435456, "Root": 0}', "ncclBroadcast"))
    con.commit()
    con.close()
    result = traceview.analyze(traceview.load(path))
    bw = {(r["device_id"], r["operation"]): r for r in result.extra["communication"]["bandwidth"]}
    assert bw[(0, "AllReduce")]["count"] == 196 and bw[(0, "AllReduce")]["bytes"] == 196 * 32768
    ar = nccl.collectives(result.trace.kernels).filter((pl.col("device_id") == 0) & (pl.col("operation") == "AllReduce"))
    algbw = 196 * 32768 * 1e9 / ar.get_column("duration").sum()
    assert bw[(0, "AllReduce")]["busbw"] == pytest.approx(algbw * 2 * (2 - 1) / 2)  # n = 2: factor 1
    assert bw[(1, "Broadcast")]["med_bytes"] == 268435456
    assert {f["subject"]["operation"] for f in findings(result, "nccl.low-bus-bandwidth")} >= {"AllReduce"}
