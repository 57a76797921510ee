"""NVTX nesting levels against their definition, counted pair by pair: a range's level is the
number of its thread's ranges that started before it (earlier start, or the same start earlier
in the frame) and are still open at its start."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import traceview
from traceview.ingest.tables import _with_nesting_level
from tests.paths import H200, PUBLIC


def by_definition(frame: pl.DataFrame) -> list[int | None]:
    rows = frame.select("global_tid", "start", "end").rows()
    out: list[int | None] = []
    for i, (thread, start, end) in enumerate(rows):
        if start is None or end is None:
            out.append(None)
            continue
        out.append(sum(1 for j, (t, s, e) in enumerate(rows[:i]) if t == thread and s is not None and e is not None
                       and (s < start or s == start) and e > start))
    return out


@pytest.mark.parametrize("path", [PUBLIC / "NVIDIA__Fuser__df8f397_report1.sqlite", H200 / "h200x2_nccl_tp_serial.sqlite"],
                         ids=lambda p: p.stem)
def test_levels_of_real_traces(path) -> None:
    ranges = traceview.load(path).nvtx
    assert ranges.get_column("level").max() >= 1  # nested ranges: the test means something
    assert ranges.get_column("level").to_list() == by_definition(ranges)


RANGE = st.tuples(st.integers(0, 3), st.one_of(st.none(), st.integers(0, 40)), st.integers(0, 15))


@settings(max_examples=300, deadline=None)
@given(st.lists(RANGE, max_size=40))
def test_levels_of_generated_ranges(rows: list[tuple[int, int | None, int]]) -> None:
    """Ties, overlaps, zero-length ranges at one instant, unknown starts."""
    rows = sorted(rows, key=lambda r: (r[1] is not None, r[1] or 0))  # readers deliver start order
    frame = pl.DataFrame({"global_tid": [r[0] for r in rows], "start": [r[1] for r in rows],
                          "end": [None if r[1] is None else r[1] + r[2] for r in rows]},
                         schema={"global_tid": pl.Int64, "start": pl.Int64, "end": pl.Int64})
    assert _with_nesting_level(frame).get_column("level").to_list() == by_definition(frame)
