"""Per-device busy/idle time from the union of kernel, memcpy and memset intervals."""

from __future__ import annotations

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
    """Union of overlapping [start, end) intervals per ``by``: columns (by, start, end)."""
    s = intervals.select(by, "start", "end").sort([by, "start"])
    s = s.with_columns(prev_end=pl.col("end").cum_max().shift(1).over(by))
    s = s.with_columns(new=(pl.col("prev_end").is_null() | (pl.col("start") > pl.col("prev_end"))).cast(pl.Int64))
    s = s.with_columns(block=pl.col("new").cum_sum().over(by))
    return s.group_by([by, "block"]).agg(pl.col("start").min(), pl.col("end").max()).sort([by, "start"]).drop("block")


def device_utilization(intervals: pl.DataFrame) -> pl.DataFrame:
    """Per device: busy_ns (union of activity), window_ns (first start to last end),
    idle_ns = window - busy, utilization_pct = busy / window."""
    merged = merge_intervals(intervals)
    return (
        merged.group_by("device_id")
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


def idle_gaps(intervals: pl.DataFrame) -> pl.DataFrame:
    """Gaps between merged activity per device: (device_id, start, end, duration)."""
    merged = merge_intervals(intervals)
    return (
        merged.with_columns(next_start=pl.col("start").shift(-1).over("device_id"))
        .filter(pl.col("next_start").is_not_null())
        .select("device_id", pl.col("end").alias("start"), pl.col("next_start").alias("end"))
        .with_columns(duration=pl.col("end") - pl.col("start"))
        .filter(pl.col("duration") > 0)
    )
