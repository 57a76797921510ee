"""The vectorized timeline helpers the rules use at 10M kernels (issue 8) against brute force, and
the launch-bound merge join against the plain hash join on a real trace."""

from __future__ import annotations

import statistics
from itertools import pairwise

import polars as pl
from hypothesis import example, given, settings
from hypothesis import strategies as st

from traceview.analyses import hostcalls, streams, timeline, windows
from traceview.rules.builtin import timeline_launch_bound as lb

spans = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 3000), st.integers(0, 400)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(spans, st.integers(1, 700), st.integers(1, 500))
def test_utilization_windows_equal_brute_force(rows, window_ns, long_gap_ns):
    merged = timeline.merge_intervals(pl.DataFrame(rows, schema=["device_id", "start", "end"], orient="row")
                                      .with_columns(end=pl.col("start") + pl.col("end")))
    got = windows.utilization_windows(merged, window_ns, long_gap_ns, merged=True)
    for dev in merged.get_column("device_id").unique().to_list():
        m = merged.filter(pl.col("device_id") == dev).sort("start").rows()
        w0, w1 = m[0][1], max(e for _, _, e in m)
        gaps = [(a[2], b[1]) for a, b in pairwise(m) if b[1] - a[2] >= long_gap_ns]
        mine = got.filter(pl.col("device_id") == dev).sort("win")
        expect = []
        for i, start in enumerate(range(w0, w1, window_ns)):
            end = min(start + window_ns, w1)
            busy = sum(max(0, min(e, end) - max(s, start)) for _, s, e in m)
            idle = sum(max(0, min(e, end) - max(s, start)) for s, e in gaps)
            expect.append((i, start, end - start, busy, idle))
        assert mine.select("win", "start", "length", "busy_ns", "long_idle_ns").rows() == expect


kernels = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(0, 2000), st.integers(1, 300),
                             st.sampled_from(["a", "b", "c", None])), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(kernels)
def test_neighbours_equal_brute_force(rows):
    k = pl.DataFrame(rows, schema=["device_id", "stream_id", "start", "duration", "name"], orient="row").with_columns(
        end=pl.col("start") + pl.col("duration"))
    got = {(r["name"], r["side"], r["neighbour"]): (r["count"], r["instances"], r["median_gap_ns"])
           for r in streams.neighbours(k).iter_rows(named=True)}
    pairs: dict[tuple, list[int]] = {}
    for key in {(d, s) for d, s, *_ in rows}:
        on = sorted((r for r in rows if (r[0], r[1]) == key), key=lambda r: r[2])  # stable: row order on ties
        for a, b in pairwise(on):
            if a[4] is not None and b[4] is not None:
                gap = max(0, b[2] - (a[2] + a[3]))
                pairs.setdefault((b[4], "before", a[4]), []).append(gap)
                pairs.setdefault((a[4], "after", b[4]), []).append(gap)
    instances = {n: sum(1 for r in rows if r[4] == n) for n in "abc"}
    assert got == {key: (len(g), instances[key[0]], statistics.median(g)) for key, g in pairs.items()}


@settings(max_examples=60, deadline=None)
@given(spans, st.lists(st.tuples(st.integers(0, 2), st.integers(-10, 3500)), max_size=30))
@example(rows=[(0, 0, 0), (0, 1, 0), (0, 3, 0)], points=[(0, 1), (1, 1)])  # two gaps touch at t = 1
def test_gap_lookups_equal_brute_force(rows, points):
    activity = pl.DataFrame(rows, schema=["device_id", "start", "end"], orient="row").with_columns(
        end=pl.col("start") + pl.col("end"))
    gaps = timeline.idle_gaps(activity)
    frame = pl.DataFrame(points, schema={"device_id": pl.Int64, "t": pl.Int64}, orient="row").with_row_index("i")

    def brute(dev: int, t: int) -> int:
        """The gap containing t; where two gaps touch (a zero-length activity between them), the
        later one, as the as-of join on gap starts always chose."""
        return next((g[3] for g in reversed(gaps.rows()) if g[0] == dev and g[1] <= t <= g[2]), 0)

    got = hostcalls.gap_containing(frame, gaps, "t").sort("i")
    assert got.get_column("bubble_ns").to_list() == [brute(d, t) for d, t in points]
    after = hostcalls.bubble_after_calls(frame.rename({"t": "end"}), gaps, [0, 1])
    assert after.get_column("bubble_ns").to_list() == [max(brute(0, t), brute(1, t)) for _, t in points]


def test_launch_gaps_merge_join_equals_hash_join(baseline_result):
    """h200_baseline: every kernel group with its median launch call, through the sorted merge join
    and through the plain (pid, correlation id) join, gives the same table."""
    kernels = baseline_result.frames["kernels"]
    calls = hostcalls.classify_calls(hostcalls.unique_calls(baseline_result.trace.api))
    p = lb.Params(max_kernel_ns=10**12, min_gap_to_run_ratio=0.0, min_launches=1, max_launch_gap_ns=10**12)
    keyed = hostcalls.keyed_calls(calls, ["duration"])
    assert keyed is not None and keyed.get_column("_call_key").is_sorted()
    merged = lb.launch_gaps(kernels, calls, keyed, p).sort(lb.GROUP)
    hashed = lb.launch_gaps(kernels, calls, None, p).sort(lb.GROUP)
    assert merged.equals(hashed)
    assert merged.height >= 2
    assert merged.get_column("med_launch_ns").null_count() == 0  # every kernel has its launch call
    # every kernel but the first of each stream follows another one
    assert merged.get_column("count").sum() == kernels.height - kernels.select(streams.STREAM).unique().height


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 50)), min_size=1, max_size=80), st.booleans())
def test_adjacent_rows_of_start_sorted_rows_equal_brute_force(rows, after):
    """Rows in start order take the per-group pass (few groups) or the radix sort (more): both equal
    the previous/next row of the group found by scanning."""
    frame = pl.DataFrame(sorted(rows, key=lambda r: r[1]), schema=["group", "start"], orient="row")
    got = streams.adjacent_rows(frame, streams.group_numbers(frame, ["group"]), after=after).to_list()
    groups = frame.get_column("group").to_list()
    expect: list[int | None] = [None] * len(groups)
    seen: dict[int, int] = {}  # the group's last row scanned: forwards the one before, backwards the one after
    for i in reversed(range(len(groups))) if after else range(len(groups)):
        expect[i] = seen.get(groups[i])
        seen[groups[i]] = i
    assert got == expect


@settings(max_examples=60, deadline=None)
@given(spans, st.integers(1, 700), st.integers(1, 500), st.floats(0, 100))
def test_fragmented_windows_are_the_filtered_utilization_windows(rows, window_ns, long_gap_ns, max_pct):
    merged = timeline.merge_intervals(pl.DataFrame(rows, schema=["device_id", "start", "end"], orient="row")
                                      .with_columns(end=pl.col("start") + pl.col("end")))
    every = windows.utilization_windows(merged, window_ns, long_gap_ns, merged=True).with_columns(
        fragmented_idle_ns=pl.col("length") - pl.col("busy_ns") - pl.col("long_idle_ns"))
    low, totals = windows.fragmented_windows(merged, window_ns, long_gap_ns, max_pct)
    assert low.equals(every.filter((pl.col("utilization_pct") < max_pct) & (pl.col("fragmented_idle_ns") > 0)))
    assert totals.equals(every.group_by("device_id").agg(pl.len().alias("total")).sort("device_id"))
