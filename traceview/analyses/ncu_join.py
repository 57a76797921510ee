"""Join Nsight Compute launches to trace kernels by name and launch shape, then average
the metrics per trace kernel name (weighted by the profiled duration)."""

from __future__ import annotations

import polars as pl

SHAPE = ["grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z"]
PCT_COLS = ["sm_pct", "mem_pct", "dram_pct", "l1_pct", "l2_pct", "tensor_pct", "achieved_occ_pct",
            "theoretical_occ_pct"]
MEAN_COLS = ["duration_ns", "dram_bw", "dram_bytes", "fp32_flops", "fp64_flops", "fp16_flops", "peak_fp32_flops",
             "peak_dram_bw", "waves"]


def _full_key(col: str) -> pl.Expr:
    """Demangled name without 'void ' and whitespace: nsys and ncu space template args differently."""
    return pl.col(col).fill_null("").str.replace(r"^\s*void\s+", "").str.replace_all(r"\s+", "")


def _base_key(col: str) -> pl.Expr:
    """Function name only: no return type, namespaces, template or argument lists."""
    k = _full_key(col).str.replace(r"\(.*$", "")
    k = k.str.replace_all(r"<[^<>]*>", "").str.replace_all(r"<[^<>]*>", "").str.replace_all(r"<[^<>]*>", "")
    return k.str.replace(r"^.*::", "")


def match_launches(launches: pl.DataFrame, shapes: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(ncu launches with the trace ``name`` they belong to, launches that matched nothing).

    Full demangled names match first; then function base names, when exactly one trace kernel
    of that base name has the launch shape.
    """
    trace = shapes.select("name", "short_name", *SHAPE).unique(subset=["name", *SHAPE])
    ncu = launches.with_row_index("_row").with_columns(_full_key("kernel_name").alias("_k"),
                                                       _base_key("kernel_name").alias("_b"))
    exact = ncu.join(trace.select("name", *SHAPE, _full_key("name").alias("_k")), on=["_k", *SHAPE], how="inner")
    rest = ncu.join(exact.select("_row"), on="_row", how="anti")
    base = trace.with_columns(_base_key("name").alias("_b")).group_by(["_b", *SHAPE]).agg(
        pl.col("name").unique().alias("_names")).filter(pl.col("_names").list.len() == 1).with_columns(
        pl.col("_names").list.first().alias("name")).drop("_names")
    loose = rest.join(base, on=["_b", *SHAPE], how="inner")
    matched = pl.concat([exact, loose], how="diagonal_relaxed").drop("_k", "_b")
    unmatched = ncu.join(matched.select("_row"), on="_row", how="anti").drop("_row", "_k", "_b")
    return matched.drop("_row"), unmatched


def per_kernel(matched: pl.DataFrame) -> pl.DataFrame:
    """Per trace kernel name: launches profiled and duration-weighted means of every metric."""
    w = pl.col("duration_ns").fill_null(1.0)
    weighted = [((pl.col(c) * w).sum() / w.filter(pl.col(c).is_not_null()).sum()).alias(c) for c in PCT_COLS]
    return matched.group_by("name").agg(
        pl.len().alias("ncu_launches"), *weighted, *[pl.col(c).mean().alias(c) for c in MEAN_COLS],
        pl.col("grid_x").first(), pl.col("block_x").first(),
        (pl.col("grid_x") * pl.col("grid_y") * pl.col("grid_z")).first().alias("blocks"))
