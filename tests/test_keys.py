"""Packed integer group keys (traceview.analyses.keys) group exactly like the columns they pack."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from paths import H200
from traceview import load
from traceview.analyses import keys

ints = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.integers(-3, 3))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ints, ints, ints), min_size=1, max_size=60))
def test_packed_key_groups_like_the_columns(rows) -> None:
    frame = pl.DataFrame(rows, schema={"a": pl.Int64, "b": pl.Int64, "c": pl.Int64}, orient="row")
    key = keys.packed_key(frame, ["a", "b", "c"])
    if key is None:  # only when the ranges cannot share 63 bits
        spans = [(frame[c].max() - frame[c].min() + 2) if frame[c].max() is not None else 1 for c in "abc"]
        assert sum(max(1, (s - 1).bit_length()) for s in spans) > 60
        return
    by_key = frame.with_columns(key.alias("k")).group_by("k").agg(pl.col("a", "b", "c").n_unique())
    assert by_key.select(pl.col("a", "b", "c").max()).row(0) == (1, 1, 1)  # one combination per key
    assert by_key.height == frame.unique().height  # and one key per combination


def test_packed_key_declines_when_the_bits_do_not_fit() -> None:
    wide = pl.DataFrame({"a": [0, 2**40], "b": [0, 2**30]})
    assert keys.packed_key(wide, ["a", "b"]) is None
    assert keys.packed_key(wide, ["a"]) is not None


def test_shape_summary_on_codes_equals_string_grouping() -> None:
    """The kernel shape summary grouped on the packed key equals a plain group-by on the strings."""
    from traceview.analyses import summaries

    kernels = load(H200 / "h200_regressed.sqlite").kernels
    shape = ["name", *summaries.SHAPE]
    ours = summaries.kernel_shape_summary(kernels).select(*shape, "instances", "total_ns").sort(shape)
    plain = kernels.group_by(shape).agg(pl.len().cast(pl.UInt32).alias("instances"),
                                        pl.col("duration").sum().alias("total_ns")).sort(shape)
    assert ours.height == 9 and ours.equals(plain.select(ours.columns).cast(ours.schema))
