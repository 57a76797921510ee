"""``phases._phase_codes`` (the name patterns run on the distinct names) against the patterns run
on every range, on the real exports: library ranges (NCCL), PyTorch op suffixes, null names."""

from __future__ import annotations

import polars as pl
import pytest

import traceview
from tests.paths import ALL_EXPORTS, H200, PUBLIC, trace_id
from traceview.analyses import derived, keys, phases

WITH_NVTX = [p for p in ALL_EXPORTS if traceview.load(p).nvtx.height]


def _row_by_row(ranges: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """What ``phase_table`` did before: filter and rename each range, then encode."""
    kept = ranges.filter(~pl.col("name").fill_null("").str.contains(phases.LIBRARY_DOMAINS)).with_columns(
        pl.col("name").str.replace(phases.OP_SUFFIX, ""))
    codes, names = keys.encode(kept.get_column("name"))
    return kept.with_columns(codes.alias("_pc")), names


def _assert_same(ranges: pl.DataFrame) -> None:
    got, got_names = phases._phase_codes(ranges)
    want, want_names = _row_by_row(ranges)
    assert got_names.equals(want_names)
    assert got.drop("name").equals(want.drop("name"))
    assert got.select(derived.decoded(pl.col("_pc"), got_names)).to_series().equals(want.get_column("name"),
                                                                                     check_names=False)


@pytest.mark.parametrize("path", WITH_NVTX, ids=trace_id)
def test_phase_codes_equal_the_row_by_row_patterns(path):
    _assert_same(traceview.load(path).nvtx)


def test_library_ranges_suffixes_and_null_names():
    nccl = traceview.load(H200 / "h200x2_nccl_tp_serial.sqlite").nvtx
    assert nccl.filter(pl.col("name").str.contains(phases.LIBRARY_DOMAINS)).height > 0
    torch = traceview.load(PUBLIC / "GindaChen__nsys-ai__h100_2gpu_1s.sqlite").nvtx
    assert torch.filter(pl.col("name").str.contains(phases.OP_SUFFIX)).height > 0
    for ranges in (nccl, torch):
        nulled = ranges.with_columns(pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("name"))
                                     .alias("name"))
        _assert_same(nulled)
        _assert_same(nulled.filter(pl.col("name").is_null()))
