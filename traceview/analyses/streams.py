"""Kernel order on each stream: launch gaps and the kernels that run next to each other."""

from __future__ import annotations

import polars as pl

STREAM = ["device_id", "stream_id"]


def with_stream_gaps(kernels: pl.DataFrame) -> pl.DataFrame:
    """Kernels sorted by start with ``gap_ns`` (start minus the end of the previous kernel on the same
    device and stream, clipped at 0; null for a stream's first kernel), ``prev_name`` and ``next_name``."""
    k = kernels.sort("start")
    return k.with_columns(
        gap_ns=(pl.col("start") - pl.col("end").shift(1).over(STREAM)).clip(lower_bound=0),
        prev_name=pl.col("name").shift(1).over(STREAM),
        next_name=pl.col("name").shift(-1).over(STREAM),
    )


def neighbours(kernels: pl.DataFrame) -> pl.DataFrame:
    """Per kernel name and side (``before`` | ``after``): the neighbouring kernel on the same stream,
    how often it is that neighbour (``count``) out of the kernel's ``instances``, and the
    median gap between the two. Sorted by name, side, count descending."""
    k = with_stream_gaps(kernels).with_columns(next_gap_ns=pl.col("gap_ns").shift(-1).over(STREAM))
    instances = k.group_by("name").agg(pl.len().alias("instances"))
    before = (k.drop_nulls("prev_name").group_by("name", pl.col("prev_name").alias("neighbour"))
              .agg(pl.len().alias("count"), pl.col("gap_ns").median().alias("median_gap_ns"))
              .with_columns(side=pl.lit("before")))
    after = (k.drop_nulls("next_name").group_by("name", pl.col("next_name").alias("neighbour"))
             .agg(pl.len().alias("count"), pl.col("next_gap_ns").median().alias("median_gap_ns"))
             .with_columns(side=pl.lit("after")))
    both = pl.concat([before, after]).join(instances, on="name")
    return both.select("name", "side", "neighbour", "count", "instances", "median_gap_ns").sort(
        ["name", "side", "count", "neighbour"], descending=[False, False, True, False])
