"""Kernel order on each stream: launch gaps and the kernels that run next to each other."""

from __future__ import annotations

import polars as pl

STREAM = ["device_id", "stream_id"]


def with_stream_gaps(kernels: pl.DataFrame, columns: list[str] | None = None) -> pl.DataFrame:
    """Kernels (only ``columns`` of them when given) in stream order (device, stream, start) with
    ``gap_ns`` (start minus the end of the previous kernel on the same device and stream, clipped
    at 0; null for a stream's first kernel), ``prev_name`` and ``next_name``."""
    keep = kernels.columns if columns is None else list(dict.fromkeys([*STREAM, "start", "end", "name", *columns]))
    k = kernels.select(keep)
    if not k.get_column("start").is_sorted():
        k = k.sort("start")
    k = k.sort(STREAM, maintain_order=True)  # stable: start order within each stream
    same_prev = pl.all_horizontal(pl.col(c).shift(1).eq_missing(pl.col(c)) for c in STREAM).fill_null(False)
    same_next = pl.all_horizontal(pl.col(c).shift(-1).eq_missing(pl.col(c)) for c in STREAM).fill_null(False)
    return k.with_columns(  # shifts masked at stream boundaries instead of .over(): no per-group scatter
        gap_ns=pl.when(same_prev).then((pl.col("start") - pl.col("end").shift(1)).clip(lower_bound=0)),
        prev_name=pl.when(same_prev).then(pl.col("name").shift(1)),
        next_name=pl.when(same_next).then(pl.col("name").shift(-1)),
    )


def neighbours(kernels: pl.DataFrame) -> pl.DataFrame:
    """Per kernel name and side (``before`` | ``after``): the neighbouring kernel on the same stream,
    how often it is that neighbour (``count``) out of the kernel's ``instances``, and the
    median gap between the two. Sorted by name, side, count descending."""
    narrow = kernels.select(*STREAM, "start", "end", pl.col("name").cast(pl.Categorical))  # group by codes, not text
    k = with_stream_gaps(narrow, []).with_columns(next_gap_ns=pl.col("gap_ns").shift(-1))  # null at a stream's end
    instances = k.group_by("name").agg(pl.len().alias("instances"))
    before = (k.drop_nulls("prev_name").group_by("name", pl.col("prev_name").alias("neighbour"))
              .agg(pl.len().alias("count"), pl.col("gap_ns").median().alias("median_gap_ns"))
              .with_columns(side=pl.lit("before")))
    after = (k.drop_nulls("next_name").group_by("name", pl.col("next_name").alias("neighbour"))
             .agg(pl.len().alias("count"), pl.col("next_gap_ns").median().alias("median_gap_ns"))
             .with_columns(side=pl.lit("after")))
    both = pl.concat([before, after]).join(instances, on="name")
    return both.select(pl.col("name").cast(pl.String), "side", pl.col("neighbour").cast(pl.String), "count",
                       "instances", "median_gap_ns").sort(
        ["name", "side", "count", "neighbour"], descending=[False, False, True, False])
