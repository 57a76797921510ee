"""GPU busy time in fixed time windows, per device (vectorized: intervals are split at window edges)."""

from __future__ import annotations

import polars as pl

from traceview.analyses.timeline import merge_intervals

MAX_WINDOWS = 5_000_000  # more windows than this would take gigabytes (corrupt or far-apart timestamps)


def window_count(intervals: pl.DataFrame, window_ns: int) -> int:
    """How many windows ``utilization_windows`` would build: check before calling it."""
    spans = intervals.group_by("device_id").agg((pl.col("end").max() - pl.col("start").min()).alias("span"))
    return int(spans.select((pl.col("span") // window_ns + 1).sum()).item() or 0)


def _clip_to_windows(spans: pl.DataFrame, origin: pl.DataFrame, window_ns: int, out: str) -> pl.DataFrame:
    """Per window (``_gw``: global window number, ``origin``'s ``base`` + the window's number on its
    device): the time ``spans`` cover inside it (``out`` column)."""
    if spans.height == 0:
        return pl.DataFrame(schema={"_gw": pl.Int64, out: pl.Int64})
    s = spans.join(origin, on="device_id").with_columns(
        first=(pl.col("start") - pl.col("w0")) // window_ns, last=(pl.col("end") - 1 - pl.col("w0")) // window_ns)
    inside = s.filter(pl.col("first") == pl.col("last")).select(  # most spans: no split needed
        (pl.col("base") + pl.col("first")).alias("_gw"), (pl.col("end") - pl.col("start")).alias(out))
    s = s.filter(pl.col("first") != pl.col("last"))
    s = s.with_columns(win=pl.int_ranges("first", pl.col("last") + 1)).explode("win")
    s = s.with_columns(ws=pl.col("w0") + pl.col("win") * window_ns)
    s = s.select((pl.col("base") + pl.col("win")).alias("_gw"), (pl.min_horizontal("end", pl.col("ws") + window_ns)
                                                               - pl.max_horizontal("start", "ws")).alias(out))
    return pl.concat([inside, s]).group_by("_gw").agg(pl.col(out).sum())  # one integer key


def utilization_windows(intervals: pl.DataFrame, window_ns: int, long_gap_ns: int, *,
                        merged: bool = False) -> pl.DataFrame:
    """Windows of ``window_ns`` from each device's first activity to its last (``merged``:
    ``intervals`` already come from ``merge_intervals``).

    Columns: device_id, win, start, length (the last window is shorter), busy_ns (union of
    activity), long_idle_ns (idle inside gaps of at least ``long_gap_ns``), utilization_pct.
    """
    merged = intervals if merged else merge_intervals(intervals)
    count = (pl.col("w1") - pl.col("w0") + window_ns - 1) // window_ns
    bounds = (merged.group_by("device_id").agg(pl.col("start").min().alias("w0"), pl.col("end").max().alias("w1"))
              .sort("device_id").with_columns(base=count.cum_sum() - count))  # windows of the devices before
    grid = (bounds.with_columns(win=pl.int_ranges(0, count))
            .explode("win").drop_nulls("win")
            .with_columns(start=pl.col("w0") + pl.col("win") * window_ns, _gw=pl.col("base") + pl.col("win"))
            .with_columns(length=pl.min_horizontal(pl.col("start") + window_ns, "w1") - pl.col("start")))
    same = pl.col("device_id").shift(-1) == pl.col("device_id")  # sorted by device: no .over()
    gaps = (merged.with_columns(next_start=pl.when(same).then(pl.col("start").shift(-1)))
            .filter(pl.col("next_start") - pl.col("end") >= long_gap_ns)
            .select("device_id", pl.col("end").alias("start"), pl.col("next_start").alias("end")))
    origin = bounds.select("device_id", "w0", "base")
    busy = _clip_to_windows(merged, origin, window_ns, "busy_ns")
    long_idle = _clip_to_windows(gaps, origin, window_ns, "long_idle_ns")
    out = (grid.join(busy, on="_gw", how="left").join(long_idle, on="_gw", how="left")
           .with_columns(pl.col("busy_ns").fill_null(0), pl.col("long_idle_ns").fill_null(0)))
    return out.select("device_id", "win", "start", "length", "busy_ns", "long_idle_ns",
                      (pl.col("busy_ns") * 100.0 / pl.col("length")).alias("utilization_pct")).sort("device_id", "win")
