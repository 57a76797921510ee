"""Summaries that match `nsys stats` (gpukernsum, gpumemtimesum/gpumemsizesum, cudaapisum, nvtxsum).

Conventions follow nsys stats: ``time_pct`` is the percent of the listed items' total time,
``std_ns`` is the sample standard deviation (0 for one instance), medians average the two
middle values. Every function returns a frame sorted by total time, descending.
"""

from __future__ import annotations

import polars as pl

from traceview.analyses import keys

STAT_COLUMNS = ["total_ns", "avg_ns", "med_ns", "min_ns", "max_ns", "std_ns"]


def _duration_stats(col: str = "duration") -> list[pl.Expr]:
    d = pl.col(col)
    return [
        d.sum().alias("total_ns"),
        d.mean().alias("avg_ns"),
        d.median().cast(pl.Float64).alias("med_ns"),
        d.min().alias("min_ns"),
        d.max().alias("max_ns"),
        d.std(ddof=1).fill_null(0.0).alias("std_ns"),
    ]


def _kernel_stats() -> list[pl.Expr]:
    """The per-group figures every kernel summary has: short name, instances, duration stats."""
    return [pl.col("short_name").first(), pl.len().alias("instances"), *_duration_stats()]


DEVICE_IDS = pl.col("device_id").unique().sort().alias("device_ids")
IS_NCCL = pl.col("is_nccl").any().alias("is_nccl")
SHAPE_LIMITS = [pl.col("registers_per_thread").max().alias("registers_per_thread"),
                (pl.col("static_shared_mem") + pl.col("dynamic_shared_mem")).max().alias("shared_mem_bytes")]


def _with_time_pct(frame: pl.DataFrame) -> pl.DataFrame:
    total = frame.get_column("total_ns").sum() if frame.height else 0
    pct = (pl.col("total_ns") * 100.0 / total) if total else pl.lit(0.0)
    return frame.with_columns(pct.alias("time_pct"))


def kernel_summary(kernels: pl.DataFrame, names: tuple[pl.Series, pl.Series] | None = None) -> pl.DataFrame:
    """Per demangled name: instances, total/avg/med/min/max/std ns, time_pct, device_ids.
    ``names``: ``keys.encode`` of the name column when the caller has it (groups on its codes)."""
    codes, distinct = names or keys.encode(kernels.get_column("name"))
    out = kernels.select("short_name", "duration", "device_id", "is_nccl").with_columns(codes.alias("_code")).group_by(
        "_code").agg(*_kernel_stats(), DEVICE_IDS, IS_NCCL)
    return _finish_kernel_summary(out, distinct)


def _finish_kernel_summary(out: pl.DataFrame, distinct: pl.Series) -> pl.DataFrame:
    out = out.select(keys.decoded(pl.col("_code"), distinct).alias("name"), pl.exclude("_code"))
    return _with_time_pct(out).sort(["total_ns", "name"], descending=[True, False])


SHAPE = ["grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z"]


def kernel_summaries(kernels: pl.DataFrame, names: tuple[pl.Series, pl.Series]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(kernel_summary, kernel_shape_summary)`` of the kernels. When every name launches with one
    grid + block (the usual case) both come from one group-by on the name codes: the shape groups
    are then the name groups, same rows in the same order, so the same floats."""
    codes, distinct = names
    if distinct.len() < 2 or any(kernels.get_column(c).null_count() for c in SHAPE):
        # one name: the packed shape key is then a constant, whose one group polars aggregates by
        # another float path (the last bits of std_ns differ from a group-by on the codes)
        return kernel_summary(kernels, names), kernel_shape_summary(kernels, names)
    constant = {c: _constant(kernels.get_column(c)) for c in [*SHAPE, "device_id"]}
    varying = [c for c in SHAPE if constant[c] is None]  # only these need a per-name check
    one_device = constant["device_id"] is not None
    out = kernels.select("short_name", "duration", "device_id", "is_nccl", "registers_per_thread", "static_shared_mem",
                         "dynamic_shared_mem", *varying).with_columns(codes.alias("_code")).group_by("_code").agg(
        *_kernel_stats(), *([] if one_device else [DEVICE_IDS]), IS_NCCL, *SHAPE_LIMITS,
        *(pl.col(c).min() for c in varying), *(pl.col(c).max().alias(f"_hi{c}") for c in varying))
    out = out.with_columns(*([pl.lit(pl.Series([[constant["device_id"]]], dtype=pl.List(kernels.schema["device_id"])))
                              .first().alias("device_ids")] if one_device else []),
                           *(pl.lit(constant[c], dtype=kernels.schema[c]).alias(c) for c in SHAPE if c not in varying))
    kernel = out.select("_code", "short_name", "instances", *STAT_COLUMNS, "device_ids", "is_nccl")
    if not all(out.get_column(c).equals(out.get_column(f"_hi{c}")) for c in varying):
        return _finish_kernel_summary(kernel, distinct), kernel_shape_summary(kernels, names)
    shapes = out.select("_code", *SHAPE, "short_name", "instances", *STAT_COLUMNS, "registers_per_thread",
                        "shared_mem_bytes", "device_ids")
    return _finish_kernel_summary(kernel, distinct), _finish_shape_summary(shapes, distinct)


def _constant(values: pl.Series) -> object | None:
    """The one value of a column without nulls when all rows hold it, else None."""
    low, high = values.min(), values.max()
    return low if low == high and values.null_count() == 0 else None


def kernel_shape_summary(kernels: pl.DataFrame, names: tuple[pl.Series, pl.Series] | None = None) -> pl.DataFrame:
    """Per demangled name + grid + block (the grouping of `nsys stats -r gpukernsum`), grouped on one
    packed integer key when the values allow (``keys.packed_key``)."""
    codes, distinct = names or keys.encode(kernels.get_column("name"))
    frame = kernels.select(*SHAPE, "short_name", "duration", "registers_per_thread", "static_shared_mem",
                           "dynamic_shared_mem", "device_id").with_columns(codes.alias("_code"))
    packed = keys.packed_key(frame, ["_code", *SHAPE])
    by = ["_code", *SHAPE] if packed is None else [packed.alias("_key")]
    out = frame.group_by(by).agg(
        *([] if packed is None else [pl.col(c).first() for c in ["_code", *SHAPE]]),
        *_kernel_stats(), *SHAPE_LIMITS, DEVICE_IDS)
    return _finish_shape_summary(out.drop("_key", strict=False), distinct)


def _finish_shape_summary(out: pl.DataFrame, distinct: pl.Series) -> pl.DataFrame:
    out = out.select(keys.decoded(pl.col("_code"), distinct).alias("name"), pl.exclude("_code"))
    order = ["name", *SHAPE]
    return _with_time_pct(out).sort(["total_ns", *order], descending=[True] + [False] * len(order))  # ties: by shape


def memory_op_summary(memcpy: pl.DataFrame, memset: pl.DataFrame) -> pl.DataFrame:
    """Per operation label (`[CUDA memcpy HtoD]`, `[CUDA memset]`, ...): time and bytes."""
    cols = ["operation", "duration", "bytes"]
    ops = pl.concat([memcpy.select(cols), memset.select(cols)])
    b = pl.col("bytes")
    out = ops.group_by("operation").agg(
        pl.len().alias("count"),
        *_duration_stats(),
        b.sum().alias("total_bytes"),
        b.mean().alias("avg_bytes"),
        b.median().cast(pl.Float64).alias("med_bytes"),
        b.min().alias("min_bytes"),
        b.max().alias("max_bytes"),
        b.std(ddof=1).fill_null(0.0).alias("std_bytes"),
    )
    return _with_time_pct(out).sort(["total_ns", "operation"], descending=[True, False])


def api_summary(api: pl.DataFrame) -> pl.DataFrame:
    """Per CUDA runtime/driver API function name."""
    out = api.group_by("name").agg(pl.len().alias("count"), *_duration_stats())
    return _with_time_pct(out).sort(["total_ns", "name"], descending=[True, False])


def nvtx_summary(nvtx: pl.DataFrame) -> pl.DataFrame:
    """Per NVTX range name and style (PushPop / StartEnd)."""
    out = nvtx.group_by(["name", "style"]).agg(pl.len().alias("instances"), *_duration_stats())
    return _with_time_pct(out).sort(["total_ns", "name", "style"], descending=[True, False, False])
