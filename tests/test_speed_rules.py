"""The numpy fast paths of the shared timeline and host-call helpers (issue 8) against the plain
polars paths they replace: same frames, on real traces and on hypothesis-made intervals."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import H200

import traceview
from traceview.analyses import derived, hostcalls, streams, timeline

intervals = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3000), st.integers(-5, 400)), min_size=1, max_size=50)


@settings(max_examples=80, deadline=None)
@given(intervals)
def test_merge_intervals_numpy_equals_polars(rows):
    """Integer intervals take the numpy path; Float64 ends the polars one (the same union). A
    negative length (end before start) falls back to polars."""
    frame = pl.DataFrame(rows, schema=["device_id", "start", "end"], orient="row").with_columns(
        end=pl.col("start") + pl.col("end"))
    plain = timeline.merge_intervals(frame.with_columns(pl.col("end").cast(pl.Float64)))
    assert timeline.merge_intervals(frame).equals(plain.with_columns(pl.col("end").cast(pl.Int64)))


@pytest.mark.parametrize("name", ["h200_baseline", "h200x2_tp_serial"])
def test_merged_activity_of_real_trace(name):
    trace = traceview.load(H200 / f"{name}.sqlite")
    k, c, s = trace.kernels, trace.memcpy, trace.memset
    cols = ["device_id", "start", "end"]
    plain = timeline.merge_intervals(pl.concat([f.select(cols) for f in (k, c, s)])
                                     .with_columns(pl.col("end").cast(pl.Float64)))
    merged = timeline.merged_activity(k, c, s)
    assert merged.height > 100
    assert merged.equals(plain.with_columns(pl.col("end").cast(pl.Int64)))


def test_classify_calls_by_name_codes(baseline_trace):
    """More than 10k calls (the trace's calls 30 times): classified through the names' Enum codes,
    equal to the per-row regexes."""
    api = pl.concat([hostcalls.unique_calls(baseline_trace.api.select(derived.CALL_COLUMNS))] * 30)
    assert api.height > 10_000
    got = hostcalls.classify_calls(api)
    assert got.equals(hostcalls._classify(api))
    assert got.get_column("call_kind").value_counts().height >= 3


@pytest.mark.parametrize("name", ["h200_baseline", "h200x2_tp_serial"])
def test_stream_links_gap_in_numpy_equals_polars_gather(name):
    """``links`` takes each kernel's gap in numpy; the same as polars' gather of the previous end,
    which it uses when a time is null."""
    kernels = traceview.load(H200 / f"{name}.sqlite").kernels
    linked = streams.links(kernels)
    prev = linked.get_column("prev")
    expect = kernels.select((pl.col("start") - pl.col("end").gather(prev)).clip(lower_bound=0)).to_series()
    assert linked.get_column("gap_ns").equals(expect.alias("gap_ns"))
    assert prev.null_count() == kernels.select(streams.STREAM).unique().height
    with_null = kernels.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(None).otherwise(pl.col("end")).alias("end"))
    assert streams.links(with_null).get_column("gap_ns").null_count() == prev.null_count() + 1


@pytest.mark.parametrize("pids", [1, 3])
def test_call_index_slots_in_numpy_equal_the_polars_key(baseline_trace, pids):
    """``CallIndex`` finds table slots in numpy (one pid, or a search in the sorted pids); the same
    slots as its polars expression, also for unknown pids, ids outside the table and null ids."""
    calls = hostcalls.launch_calls(baseline_trace.api)
    calls = pl.concat([calls.with_columns(pl.col("pid") + 7 * i) for i in range(pids)])
    index = derived.CallIndex.build(calls)
    assert index is not None and index.pids.len() == pids
    kernels = baseline_trace.kernels
    shifted = kernels.with_columns(pid=pl.col("pid") + 7 * (pl.int_range(pl.len()) % 4),
                                   correlation_id=pl.col("correlation_id") - 2 * (pl.int_range(pl.len()) % 5))
    with_null = kernels.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(None)
                                     .otherwise(pl.col("correlation_id")).alias("correlation_id"))
    for frame in (kernels, shifted, with_null):
        slots = index._slots(frame, pl.col("pid"))
        assert (slots == frame.select(index._key(pl.col("pid"))).to_series().to_numpy()).all()
    assert (index.table[index._slots(shifted, pl.col("pid"))] < 0).sum() >= kernels.height // 4  # pid + 21: none
    assert index.points(kernels).equals(hostcalls.launch_points(kernels, calls))


def test_keyed_rows_find_the_rows_join_keyed_joins(baseline_trace):
    """The binary search finds the same calls as the merge join, for copies, memsets and kernels
    (ids outside the key and unknown ids included), and ``keyed_calls`` of calls in start order
    (one pass) equals that of the same calls reversed (the sort)."""
    calls = hostcalls.unique_calls(baseline_trace.api.select(derived.CALL_COLUMNS))
    keyed = hostcalls.keyed_calls(calls, [pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), "duration"])
    assert keyed is not None
    assert keyed.equals(hostcalls.keyed_calls(calls.reverse(), [(pl.len() - 1 - pl.int_range(pl.len(), dtype=pl.UInt32))
                                                                .alias("_row"), "duration"]))
    for frame in (baseline_trace.memcpy, baseline_trace.memset, baseline_trace.kernels):
        left = frame.select(hostcalls.PID_OF_GLOBAL.alias("pid"), "correlation_id")
        left = left.with_columns(pl.when(pl.int_range(pl.len()) % 7 == 0).then(-pl.col("correlation_id"))
                                 .otherwise(pl.col("correlation_id")).alias("correlation_id"))
        found = keyed.get_column("_row").to_numpy()[hostcalls.keyed_rows(left, keyed)]
        joined = hostcalls.join_keyed(left, keyed.select("_call_key", "_row")).get_column("_row").to_numpy()
        assert len(found) > 0 and sorted(found) == sorted(joined)


@pytest.mark.parametrize("name", ["h200_baseline", "h200x2_tp_serial"])
def test_activity_with_calls_by_positions_equals_the_join(name):
    """Copies and memsets take their call's columns by a binary search in the sorted call keys: the
    same frame as the left join, also when calls are missing (null columns) or a key repeats (the
    join repeats the row)."""
    trace = traceview.load(H200 / f"{name}.sqlite")
    calls = hostcalls.calls_with_ranges(trace.api, trace.nvtx).with_columns(next_name=pl.col("name"))
    repeated = pl.concat([calls, calls.head(5)])
    for frame in (trace.memcpy, trace.memset):
        some = calls.filter(~pl.col("correlation_id").is_in(frame.get_column("correlation_id").head(2).implode()))
        for right in (calls, some, repeated):
            got = hostcalls.activity_with_calls(frame, right, ("next_name",))
            expect = hostcalls.join_on_call(frame.with_columns(pid=hostcalls.PID_OF_GLOBAL), right.select(
                "pid", "correlation_id", pl.col("name").alias("api_name"), pl.col("start").alias("api_start"),
                pl.col("end").alias("api_end"), pl.col("duration").alias("api_duration"), "global_tid", "nvtx_range",
                "call_kind", "is_async", "next_name"))
            assert got.equals(expect)
        assert hostcalls.activity_with_calls(frame, some).get_column("api_name").null_count() > 0


def test_innermost_range_of_one_thread_without_by(baseline_trace):
    """Calls and ranges of one thread take an as-of join without ``by``; a range on another thread
    forces the by-thread join, which must find the same ranges."""
    calls = hostcalls.unique_calls(baseline_trace.api.select(derived.CALL_COLUMNS))
    tid = calls.get_column("global_tid").mode()[0]
    calls, nvtx = calls.filter(pl.col("global_tid") == tid), baseline_trace.nvtx.filter(pl.col("global_tid") == tid)
    other = nvtx.head(1).with_columns(pl.col("global_tid") + 1)
    one = hostcalls.innermost_range(calls, nvtx)
    assert one.get_column("nvtx_range").null_count() < one.height
    assert one.equals(hostcalls.innermost_range(calls, pl.concat([nvtx, other])))
