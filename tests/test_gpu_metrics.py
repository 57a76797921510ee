"""GPU metrics samples (nsys 2022.x GENERIC_EVENTS JSON) and their attribution to kernels."""

from __future__ import annotations

import sqlite3

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import traceview
from paths import H200
from traceview.analyses.sampling import _overlap_counts, attribute_samples, kernel_metric_averages
from traceview.ingest.gpu_metrics import read_gpu_metrics

GPUMETRICS = H200 / "h200_gpumetrics.sqlite"


@pytest.fixture(scope="module")
def trace():
    return traceview.load(GPUMETRICS)


@pytest.fixture(scope="module")
def found(trace):
    return read_gpu_metrics(trace.connection, trace.info)


@pytest.fixture(scope="module")
def others(trace):
    return pl.concat([trace.memcpy.select("start", "end", "device_id"), trace.memset.select("start", "end", "device_id")])


@pytest.fixture(scope="module")
def averages(trace, found, others):
    rows = kernel_metric_averages(found.samples, trace.kernels, others, found.period_ns)
    return {r["name"]: r for r in rows.iter_rows(named=True)}


def test_every_json_sample_is_read(found):
    with sqlite3.connect(f"file:{GPUMETRICS}?mode=ro", uri=True) as conn:
        count, = conn.execute("SELECT count(*) FROM GENERIC_EVENTS").fetchone()
        sm_sum, = conn.execute("SELECT sum(CAST(json_extract(data, '$.\"SM Active\"') AS REAL)) "
                               "FROM GENERIC_EVENTS").fetchone()
    assert found.table == "GENERIC_EVENTS"
    assert found.samples.height == count
    assert found.samples.get_column("sm_active").sum() == pytest.approx(sm_sum)
    assert found.sources["dram_read"] == "DRAM Read Throughput" and found.sources["sm_issue"] == "SM Issue"
    assert found.period_ns == pytest.approx(50_000, rel=0.01)  # captured at 20 kHz (traces README)


def test_no_gpu_metrics_in_baseline(baseline_trace):
    assert read_gpu_metrics(baseline_trace.connection, baseline_trace.info) is None


def test_long_kernel_gets_averages_matching_its_grid(trace, averages):
    reduce = averages["reduce_small_grid"]
    assert reduce["launches_sampled"] == reduce["launches"] == trace.kernels.filter(
        pl.col("name") == "reduce_small_grid").height
    assert reduce["samples"] >= 3 * reduce["launches"]
    # 16 blocks of one SM each on 132 SMs: about 12% of the SMs are active
    assert reduce["sm_active"] == pytest.approx(100 * 16 / trace.gpus.get_column("sm_count")[0], abs=1.5)
    assert reduce["dram_read"] < 5 and reduce["reason"] is None


def test_every_kernel_long_enough_is_sampled(trace, averages, found):
    """Kernels longer than three sample periods running alone have averages; short ones say why."""
    for name, row in averages.items():
        if row["avg_ns"] < 2 * found.period_ns:
            assert row["sm_active"] is None and "too short" in row["reason"], name
    assert {n for n, r in averages.items() if r["sm_active"] is not None} >= {
        "reduce_small_grid", "sgemm_tile64x64", "tail_heavy_iter", "smem_hog_stencil"}


def test_overlapped_kernel_is_not_attributed(trace, averages):
    """stream_triad runs on another stream entirely under sgemm launches: no sample is its own."""
    k = trace.kernels
    triad = k.filter(pl.col("name") == "stream_triad").row(0, named=True)
    overlap = k.filter((pl.col("name") != "stream_triad") & (pl.col("start") < triad["end"])
                       & (pl.col("end") > triad["start"]))
    assert overlap.height > 0
    assert averages["stream_triad"]["samples"] == 0 and "overlap" in averages["stream_triad"]["reason"]


def test_attributed_samples_lie_inside_their_kernel(trace, found, others):
    own = attribute_samples(found.samples, trace.kernels, others)
    assert own.height > 0
    assert (own.get_column("start") >= own.get_column("k_start")).all()
    assert (own.get_column("end") <= own.get_column("k_end")).all()


def test_bound_tier_from_gpu_metrics(trace):
    result = traceview.analyze(trace)
    data = result.to_dict()
    by = {k["name"]: k["bound"] for k in data["kernels"]}
    assert by["reduce_small_grid"]["tier"] == "measured" and by["reduce_small_grid"]["class"] == "latency"
    assert any(e["source"].startswith("gpu metrics: SM Active (GENERIC_EVENTS") for e in by["reduce_small_grid"]["evidence"])
    assert by["gemv_bf16_decode"]["gpu_metrics"]["samples"] == 0  # says why there is no average
    assert "too short" in by["gemv_bf16_decode"]["gpu_metrics"]["reason"]
    assert data["gpu_metrics"]["kernels"]["sgemm_tile64x64"]["sm_active"] > 90


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 200)), min_size=1, max_size=30),
       st.lists(st.tuples(st.integers(0, 1200), st.integers(1, 100)), min_size=1, max_size=30))
def test_overlap_counts_equal_brute_force(intervals, windows):
    activity = pl.DataFrame({"start": [s for s, _ in intervals], "end": [s + d for s, d in intervals]})
    samples = pl.DataFrame({"start": [s for s, _ in windows], "end": [s + d for s, d in windows]})
    brute = [sum(1 for a, d in intervals if a < s1 and a + d > s0) for s0, s1 in
             zip(samples["start"], samples["end"], strict=True)]
    assert np.array_equal(_overlap_counts(samples, activity), np.array(brute))
