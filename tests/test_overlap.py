"""Communication/compute overlap: interval arithmetic checked against brute force and real traces."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import traceview
from paths import H200
from traceview.analyses import nccl, overlap

intervals = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 60), st.integers(0, 15)), max_size=12)


def frame(rows):
    return pl.DataFrame([(d, s, s + n) for d, s, n in rows], schema={"device_id": pl.Int64, "start": pl.Int64,
                                                                     "end": pl.Int64}, orient="row")


def brute(comm_rows, comp_rows, lo=0, hi=200):
    """Per device and state, count the unit time slots [t, t+1) inside [lo, hi)."""
    out = {}
    for dev in (0, 1):
        for t in range(lo, hi):
            c = any(d == dev and s <= t < s + n for d, s, n in comm_rows)
            k = any(d == dev and s <= t < s + n for d, s, n in comp_rows)
            state = "overlapped" if c and k else "exposed" if c else "compute_only" if k else None
            if state:
                out[(dev, state)] = out.get((dev, state), 0) + 1
    return out


@settings(max_examples=60, deadline=None)
@given(comm=intervals, comp=intervals)
def test_totals_match_brute_force(comm, comp):
    totals = overlap.totals(overlap.segments(frame(comm), frame(comp)))
    expected = brute(comm, comp)
    for row in totals.iter_rows(named=True):
        for state in ("exposed", "overlapped", "compute_only"):
            assert row[f"{state}_ns"] == expected.get((row["device_id"], state), 0)


@settings(max_examples=60, deadline=None)
@given(comm=intervals, comp=intervals, cut=st.integers(0, 80), width=st.integers(0, 40))
def test_windows_match_brute_force(comm, comp, cut, width):
    segs = overlap.segments(frame(comm), frame(comp))
    windows = pl.DataFrame({"device_id": [0, 1], "start": [cut, cut], "end": [cut + width] * 2})
    got = overlap.in_windows(segs, windows)
    expected = brute(comm, comp, cut, cut + width)
    for row in got.iter_rows(named=True):
        for state in ("exposed", "overlapped", "compute_only"):
            assert row[f"{state}_ns"] == expected.get((row["device_id"], state), 0)


@pytest.fixture(scope="module")
def tp_trace():
    return traceview.load(H200 / "h200x2_tp_serial.sqlite")


def test_real_trace_windows_add_up(tp_trace):
    comm = nccl.communication(tp_trace.kernels, tp_trace.memcpy)
    comp = nccl.compute(tp_trace.kernels)
    segs = overlap.segments(comm, comp)
    totals = overlap.totals(segs)
    span = segs.group_by("device_id").agg(pl.col("start").min(), pl.col("end").max())
    halves = pl.concat([span.with_columns(end=(pl.col("start") + pl.col("end")) // 2),
                        span.with_columns(start=(pl.col("start") + pl.col("end")) // 2)])
    summed = overlap.in_windows(segs, halves).group_by("device_id").agg(
        pl.col("exposed_ns", "overlapped_ns", "compute_only_ns").sum()).sort("device_id")
    assert summed.to_dicts() == totals.select("device_id", "exposed_ns", "overlapped_ns", "compute_only_ns").to_dicts()
    # every NCCL kernel and peer copy is communication: the union cannot exceed their summed durations
    per_dev = comm.group_by("device_id").agg(pl.col("duration").sum()).sort("device_id")
    assert (totals.get_column("comm_ns") <= per_dev.get_column("duration")).all()
    assert (totals.get_column("exposed_pct") > 99.5).all()


def test_decode_steps_attributed_by_launch(tp_trace):
    steps = overlap.ranges_named(tp_trace.nvtx, overlap.step_name(tp_trace.nvtx))
    coll = overlap.attribute(nccl.collectives(tp_trace.kernels), steps, tp_trace.api)
    decode = coll.filter(pl.col("stream_id").is_in([14, 24]))
    assert decode.get_column("range_id").null_count() == 0
    assert decode.group_by("range_id", "device_id").len().get_column("len").unique().to_list() == [8]
    # the 256 MiB all-gather phase runs after the last decode step: in no step
    assert coll.filter(pl.col("stream_id").is_in([15, 25])).get_column("range_id").null_count() == 16


def test_step_name_picks_the_repeated_range(tp_trace):
    assert overlap.step_name(tp_trace.nvtx) == "decode_step"
    assert overlap.step_name(tp_trace.nvtx, r"weight_sync") is None  # a single instance is not a step
