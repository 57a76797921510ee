"""The one-pass kernel summaries (``summaries.kernel_summaries``) against the two separate
group-bys they replace in ``analyze``, bit for bit, on the real exports."""

from __future__ import annotations

import polars as pl
import pytest

import traceview
from tests.paths import ALL_EXPORTS, H200, trace_id
from traceview.analyses import keys, summaries


def _assert_same(kernels: pl.DataFrame) -> None:
    names = keys.encode(kernels.get_column("name"))
    got_names, got_shapes = summaries.kernel_summaries(kernels, names)
    want_names, want_shapes = summaries.kernel_summary(kernels, names), summaries.kernel_shape_summary(kernels, names)
    assert got_names.schema == want_names.schema and got_names.equals(want_names)
    assert got_shapes.schema == want_shapes.schema and got_shapes.equals(want_shapes)
    # std_ns bit for bit (equals compares floats by value; NaN and -0.0 would hide behind it)
    for got, want in ((got_names, want_names), (got_shapes, want_shapes)):
        assert got.get_column("std_ns").to_numpy().tobytes() == want.get_column("std_ns").to_numpy().tobytes()


@pytest.mark.parametrize("path", ALL_EXPORTS, ids=trace_id)
def test_one_pass_summaries_equal_the_separate_ones(path):
    kernels = traceview.load(path).kernels
    _assert_same(kernels)  # an export without kernels too: both give empty frames
    for device in kernels.get_column("device_id").unique().to_list():  # analyze --device
        _assert_same(kernels.filter(pl.col("device_id") == device))


def test_names_with_several_shapes_and_one_name():
    """The fallbacks: a name launched with two grids (the shape group-by runs), one name only
    (a constant shape key), and several devices (device_ids per name)."""
    kernels = traceview.load(H200 / "h200_baseline.sqlite").kernels
    busiest = kernels.get_column("name").mode().sort()[0]
    regrid = pl.when((pl.col("name") == busiest) & (pl.int_range(pl.len()) % 3 == 0))
    _assert_same(kernels.with_columns(regrid.then(pl.col("grid_x") + 1).otherwise(pl.col("grid_x")).alias("grid_x")))
    _assert_same(kernels.filter(pl.col("name") == busiest))
    _assert_same(kernels.with_columns(regrid.then(1).otherwise(pl.col("device_id")).alias("device_id")))
    multi = traceview.load(H200 / "h200x2_tp_serial.sqlite").kernels
    assert multi.get_column("device_id").n_unique() == 2
    _assert_same(multi)
