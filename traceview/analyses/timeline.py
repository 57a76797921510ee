"""Per-device busy/idle time from the union of kernel, memcpy and memset intervals."""

from __future__ import annotations

import numpy as np
import polars as pl


def gpu_intervals(kernels: pl.DataFrame, memcpy: pl.DataFrame, memset: pl.DataFrame) -> pl.DataFrame:
    """All GPU activity as (device_id, start, end, kind) rows."""
    cols = ["device_id", "start", "end"]
    return pl.concat([
        kernels.select(cols).with_columns(kind=pl.lit("kernel")),
        memcpy.select(cols).with_columns(kind=pl.lit("memcpy")),
        memset.select(cols).with_columns(kind=pl.lit("memset")),
    ])


def merge_intervals(intervals: pl.DataFrame, by: str = "device_id") -> pl.DataFrame:
    """Union of overlapping [start, end) intervals per ``by``: columns (by, start, end), sorted by
    (by, start). Integer intervals without nulls in numpy (``_merge_numpy``), others by one sort
    per ``by`` value (a few devices) and filters: no group_by over intervals."""
    s = intervals.select(by, "start", "end")
    if s.height and not s.null_count().sum_horizontal().item() and all(s.schema[c].is_integer() for c in s.columns):
        fast = _merge_numpy(s, by)
        if fast is not None:
            return fast
    parts = []
    for key in s.get_column(by).unique().sort().to_list():  # loop over devices
        one = (s.filter(pl.col(by).is_null()) if key is None else s.filter(pl.col(by) == key)).sort("start")
        start, reach = one.get_column("start"), one.get_column("end").cum_max()
        before = reach.shift(1)
        opens = before.is_null() | (start > before)  # starts after everything before it ended
        closes = opens.shift(-1, fill_value=True)    # the row before the next block opens
        parts.append(pl.DataFrame([one.get_column(by).filter(opens), start.filter(opens),
                                   reach.filter(closes).alias("end")]))
    return pl.concat(parts) if parts else s.head(0)


def _merge_numpy(s: pl.DataFrame, by: str) -> pl.DataFrame | None:
    """``merge_intervals`` of integer intervals without nulls, in numpy: one stable sort by start
    (the activity frames are start-sorted runs: a merge), a pass per ``by`` value. None when an
    interval ends before it starts (then the order of equal starts would matter)."""
    start, end = s.get_column("start").to_numpy(), s.get_column("end").to_numpy()
    if not (end >= start).all():
        return None
    order = None if s.get_column("start").is_sorted() else np.argsort(start, kind="stable")
    start, end = (start, end) if order is None else (start[order], end[order])
    values = distinct_values(s.get_column(by))
    key = None if len(values) == 1 else s.get_column(by).to_numpy()
    key = key if key is None or order is None else key[order]
    parts = []
    for value in values:  # loop over devices
        rows = None if key is None else np.flatnonzero(key == value)
        one_start, one_end = (start, end) if rows is None else (start[rows], end[rows])
        reach = np.maximum.accumulate(one_end)
        opens = np.empty(len(one_start), dtype=bool)  # starts after everything before it ended
        opens[0] = True
        np.greater(one_start[1:], reach[:-1], out=opens[1:])
        closes = np.append(opens[1:], True)  # the row before the next block opens
        parts.append(pl.DataFrame([pl.Series("start", one_start[opens], dtype=s.schema["start"]),
                                   pl.Series("end", reach[closes], dtype=s.schema["end"])])
                     .select(pl.lit(value, dtype=s.schema[by]).alias(by), pl.all()))
    return pl.concat(parts) if len(parts) > 1 else parts[0]


def distinct_values(values: pl.Series) -> list:
    """The distinct non-null values, sorted; one pass (minimum and maximum) when there is one (one
    device: no hashing of millions of rows)."""
    low, high = values.min(), values.max()
    return [low] if low is not None and low == high else values.drop_nulls().unique().sort().to_list()


def merged_activity(kernels: pl.DataFrame, memcpy: pl.DataFrame, memset: pl.DataFrame) -> pl.DataFrame:
    """``merge_intervals`` of all GPU activity, reading only (device_id, start, end) of each frame."""
    cols = ["device_id", "start", "end"]
    return merge_intervals(pl.concat([kernels.select(cols), memcpy.select(cols), memset.select(cols)]))


def device_utilization(intervals: pl.DataFrame, *, merged: bool = False) -> pl.DataFrame:
    """Per device: busy_ns (union of activity), window_ns (first start to last end),
    idle_ns = window - busy, utilization_pct = busy / window. ``merged``: ``intervals``
    already come from ``merge_intervals``."""
    merged_frame = intervals if merged else merge_intervals(intervals)
    return (
        merged_frame.group_by("device_id")
        .agg(
            (pl.col("end") - pl.col("start")).sum().alias("busy_ns"),
            pl.col("start").min().alias("window_start"),
            pl.col("end").max().alias("window_end"),
        )
        .with_columns(window_ns=pl.col("window_end") - pl.col("window_start"))
        .with_columns(
            idle_ns=pl.col("window_ns") - pl.col("busy_ns"),
            utilization_pct=pl.when(pl.col("window_ns") > 0)
            .then(pl.col("busy_ns") * 100.0 / pl.col("window_ns")).otherwise(0.0),
        )
        .sort("device_id")
    )


def idle_gaps(intervals: pl.DataFrame, *, merged: bool = False) -> pl.DataFrame:
    """Gaps between merged activity per device: (device_id, start, end, duration).
    ``merged``: ``intervals`` already come from ``merge_intervals``."""
    m = intervals if merged else merge_intervals(intervals)
    if m.height < 2:
        return m.head(0).select("device_id", "start", "end", (pl.col("end") - pl.col("start")).alias("duration"))
    before, after = m.head(m.height - 1), m.tail(m.height - 1)  # each interval and the next (sorted by device)
    gap = pl.DataFrame([before.get_column("device_id"), before.get_column("end").alias("start"),
                        after.get_column("start").alias("end")])
    same = before.get_column("device_id") == after.get_column("device_id")
    return gap.with_columns(duration=pl.col("end") - pl.col("start")).filter(same & (pl.col("duration") > 0))
