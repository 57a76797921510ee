"""The integer-key fast paths of the launch-shape grouping (``keys.compact_key``,
``launch.launch_shapes``) group exactly like plain polars group-bys on the columns."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import H200, PUBLIC

from traceview import load
from traceview.analyses import keys, launch, memory

ints = st.one_of(st.none(), st.integers(-(2**62), 2**62), st.integers(-3, 3), st.integers(0, 70_000))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ints, ints, ints, ints), min_size=1, max_size=60))
def test_compact_key_groups_like_the_columns(rows) -> None:
    frame = pl.DataFrame(rows, schema={c: pl.Int64 for c in "abcd"}, orient="row")
    key = keys.compact_key(frame, list("abcd"))
    assert key is not None  # at most 60 distinct values per column: their ranks always fit
    by_key = frame.with_columns(key).group_by("_key").agg(pl.col(*"abcd").n_unique())
    assert by_key.select(pl.col(*"abcd").max()).row(0) == (1, 1, 1, 1)  # one combination per key
    assert by_key.height == frame.unique().height  # and one key per combination


def _plain_launch_shapes(kernels: pl.DataFrame) -> pl.DataFrame:
    """``launch_shapes`` as a plain group-by on the 11 columns (carveout: the smallest most common)."""
    filled = kernels.with_columns(pl.col(c).fill_null(0) for c in launch.SHAPE_KEYS if c != "name")
    carveout = pl.col("shared_mem_executed").fill_null(0)
    most_common = carveout.filter(carveout.is_in(carveout.mode().implode()))
    return filled.group_by(launch.SHAPE_KEYS).agg(
        pl.len().alias("instances"), pl.col("duration").sum().alias("total_ns"),
        most_common.min().alias("shared_mem_config_bytes"),
        pl.col("local_mem_per_thread").fill_null(0).max().alias("local_mem_per_thread"))


@pytest.mark.parametrize("path", [H200 / "h200x2_nccl_tp_serial.sqlite", H200 / "h200_regressed.sqlite",
                                  PUBLIC / "GindaChen__nsys-ai__h100_2gpu_1s.sqlite"], ids=lambda p: p.stem)
def test_launch_shapes_equal_a_plain_group_by(path) -> None:
    kernels = load(path).kernels
    ours = launch.launch_shapes(kernels)
    plain = _plain_launch_shapes(kernels).select(ours.columns[:len(launch.SHAPE_KEYS) + 4])
    assert ours.height == plain.height > 1
    assert ours.select(plain.columns).sort(launch.SHAPE_KEYS).equals(plain.sort(launch.SHAPE_KEYS).cast(
        ours.select(plain.columns).schema))


def test_launch_shapes_carveout_ties_and_wide_keys() -> None:
    """Ties between carveouts take the smallest; values too wide to pack still group exactly."""
    kernels = load(H200 / "h200_regressed.sqlite").kernels
    rows = pl.int_range(pl.len())
    varied = kernels.with_columns(shared_mem_executed=(rows % 2) * 65536 + 32768,  # two equally common carveouts
                                  grid_x=pl.col("grid_x") * (1 << 40), static_shared_mem=rows % 3)
    ours = launch.launch_shapes(varied)
    plain = _plain_launch_shapes(varied)
    joined = ours.join(plain, on=launch.SHAPE_KEYS, how="full", suffix="_plain")
    assert joined.height == ours.height == plain.height
    for col in ("instances", "total_ns", "shared_mem_config_bytes", "local_mem_per_thread"):
        assert (joined.get_column(col) == joined.get_column(f"{col}_plain")).all(), col


def _plain_copy_table(memcpy: pl.DataFrame, memset: pl.DataFrame) -> pl.DataFrame:
    """``memory.copy_table`` computed per row: the DRAM traffic (DtoD: twice the bytes) before the group-by."""
    sets = memset.select("operation", pl.lit(None, pl.String).alias("src_kind"), pl.col("mem_kind").alias("dst_kind"),
                         "bytes", "duration")
    ops = pl.concat([memcpy.select("operation", "src_kind", "dst_kind", "bytes", "duration"), sets])
    traffic = pl.when(pl.col("operation").str.contains("DtoD")).then(2 * pl.col("bytes")).otherwise(pl.col("bytes"))
    large = pl.col("bytes") >= memory.LARGE_COPY
    return ops.with_columns(traffic.alias("traffic")).group_by("operation", "src_kind", "dst_kind").agg(
        (pl.col("traffic").sum() * 1e9 / pl.col("duration").sum()).alias("achieved_bytes_per_s"),
        (pl.col("traffic").filter(large).sum() * 1e9 / pl.col("duration").filter(large).sum())
        .fill_nan(None).alias("large_bytes_per_s"),
        (pl.col("traffic") * 1e9 / pl.col("duration")).filter(pl.col("duration") > 0).median()
        .fill_nan(None).alias("median_bytes_per_s"))


JACOBI = PUBLIC / "openhackathons-org__gpubootcamp__jacobi_memcpy_nvlink_report.CONVERTED.sqlite"


@pytest.mark.parametrize("path", [PUBLIC / "GindaChen__nsys-ai__h100_2gpu_1s.sqlite", H200 / "h200_baseline.sqlite",
                                  JACOBI], ids=lambda p: p.stem)
def test_copy_table_rates_equal_per_row_traffic(path) -> None:
    """The DtoD doubling applied per group gives bit-identical rates to doubling every row."""
    trace = load(path)
    ours = memory.copy_table(trace.memcpy, trace.memset)
    plain = _plain_copy_table(trace.memcpy, trace.memset)
    by = ["operation", "src_kind", "dst_kind"]
    assert ours.filter(pl.col("direction") == "DtoD").height > 0
    assert ours.select(plain.columns).sort(by, nulls_last=True).equals(plain.sort(by, nulls_last=True))
