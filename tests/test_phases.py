"""NVTX phases: GPU work projected onto the ranges that launched it (real H200 traces)."""

from __future__ import annotations

import sqlite3

import pytest

import traceview
from paths import H200, NCU, PUBLIC
from traceview.api import AnalyzeOptions


@pytest.fixture(scope="module")
def phases(baseline_trace):
    result = traceview.analyze(baseline_trace, options=AnalyzeOptions(ncu=[NCU / "ncu_baseline_raw.csv"]))
    return {p["name"]: p for p in result.extra["phases"]}, result


def _launches_in(range_name: str) -> int:
    """Kernel launch calls whose start lies inside a range of that name on the same thread (plain SQL)."""
    with sqlite3.connect(f"file:{H200 / 'h200_baseline.sqlite'}?mode=ro", uri=True) as conn:
        n, = conn.execute(
            "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN CUPTI_ACTIVITY_KIND_RUNTIME r "
            "ON r.correlationId = k.correlationId JOIN NVTX_EVENTS n ON n.text = ? AND n.eventType = 59 "
            "AND r.globalTid = n.globalTid AND r.start BETWEEN n.start AND n.[end]", (range_name,)).fetchone()
    return n


def test_kernels_are_projected_onto_their_launch_ranges(phases):
    by, _ = phases
    assert by["decode_step"]["instances"] == 24
    for name in ("decode_step", "prefill", "extras", "stencil"):
        assert by[name]["kernel_launches"] == _launches_in(name), name
    assert set(by["prefill"]["top_kernels"]) == {"sgemm_tile64x64", "stream_triad"}
    assert "load_weights" not in by  # only copies and memsets, no kernels


def test_gpu_time_exceeds_host_range_time_for_async_decode(phases):
    """The decode ranges end before their kernels run (non-blocking stream): GPU time is what counts."""
    decode = phases[0]["decode_step"]
    assert decode["gpu_ns_per_instance"] > 5 * decode["avg_wall_ns"]


def test_decode_weight_streaming_floor(phases):
    by, result = phases
    decode = by["decode_step"]
    floor = decode["weight_streaming_floor"]
    peak = result.trace.gpus.get_column("memory_bandwidth_bytes_per_s")[0]
    assert decode["is_decode"] and decode["bytes_coverage_pct"] == pytest.approx(100)
    assert floor["peak_bytes_per_s"] == peak
    assert floor["floor_ns"] == pytest.approx(floor["bytes_per_instance"] / peak * 1e9)
    # 4 GEMVs (~128 MiB each) + one 64 MiB reduction per step, by Nsight Compute's DRAM bytes
    assert floor["bytes_per_instance"] == pytest.approx(4 * 128 * 2**20 + 64 * 2**20, rel=0.1)
    # reduce_small_grid (~70 GB/s) dominates the step: far from the floor
    assert floor["floor_pct_of_measured"] < 20
    assert decode["class_share_pct"]["latency"] > 80


def test_class_shares_sum_to_100(phases):
    for p in phases[0].values():
        assert sum(p["class_share_pct"].values()) == pytest.approx(100), p["name"]


def test_library_ranges_are_not_phases():
    result = traceview.analyze(traceview.load(H200 / "h200x2_nccl_tp_serial.sqlite"))
    names = {p["name"] for p in result.extra["phases"]}
    assert {"decode_step", "grad_sync"} <= names
    assert not any(n.startswith("NCCL:") for n in names)


def test_trace_without_nvtx_has_no_phases():
    result = traceview.analyze(traceview.load(PUBLIC / "trixi-gpu__TrixiCUDA.jl__profile_report1.sqlite"))
    assert result.extra["phases"] == []
