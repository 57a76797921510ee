"""Kernel order on each stream: launch gaps and the kernels that run next to each other.

Stream order is (device, stream, start), stable: kernels with equal starts keep their row order.
It is computed as row positions (one integer sort key, a radix sort of dense stream numbers), and
the results come back in the kernels' own row order, so no wide frame is ever re-sorted.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from traceview.analyses.keys import encode

STREAM = ["device_id", "stream_id"]


def group_numbers(frame: pl.DataFrame, by: list[str]) -> pl.Series:
    """Per row, a number (UInt32) of its ``by`` values (one or two integer columns), numbers in the
    values' sort order, nulls first (as polars sorts them). Offsets from the minimums when the
    values span few numbers (device and stream ids), else dense ranks."""
    if frame.height == 0:
        return pl.Series(dtype=pl.UInt32)
    lows = frame.select(*(pl.col(c).min().alias(f"lo{i}") for i, c in enumerate(by)),
                        *(pl.col(c).max().alias(f"hi{i}") for i, c in enumerate(by)),
                        pl.sum_horizontal(pl.col(c).null_count() for c in by).alias("nulls")).row(0)
    if lows[-1] == 0 and None not in lows and len(by) <= 2:
        lo, hi = lows[:len(by)], lows[len(by):-1]
        spans = [h - low + 1 for low, h in zip(lo, hi)]
        if int(np.prod(spans)) <= 1 << 16:  # small numbers: no sort needed
            code = None  # numpy: a polars strict cast would check every value
            for c, low, span in zip(by, lo, spans):
                if span == 1:
                    continue  # one value: adds nothing
                part = frame.get_column(c).to_numpy().astype(np.int64, copy=False) - low
                code = part if code is None else code * span + part
            return pl.Series(np.zeros(frame.height, dtype=np.uint32) if code is None else code.astype(np.uint32))
    if len(by) == 1:
        col = frame.get_column(by[0]).cast(pl.Int64)
        low = col.min()
        if low is None or low > np.iinfo(np.int64).min:
            key = col.fill_null(np.iinfo(np.int64).min)
            return key.unique().sort().search_sorted(key).cast(pl.UInt32)
    elif len(by) == 2 and frame.select(pl.col(by[0]).fill_null(0).is_between(0, (1 << 30) - 1).all()
                                       & pl.col(by[1]).fill_null(0).is_between(0, (1 << 32) - 2).all()).item():
        key = frame.select((pl.col(by[0]).fill_null(-1) + 1) * (1 << 32) + pl.col(by[1]).fill_null(-1) + 1).to_series()
        return key.unique().sort().search_sorted(key).cast(pl.UInt32)
    return frame.select(pl.struct(by).rank("dense").cast(pl.UInt32) - 1).to_series()  # rare: out-of-range ids


FEW_GROUPS = 16  # up to this many groups, one pass per group beats a sort of all rows


def group_order(frame: pl.DataFrame, numbers: np.ndarray) -> np.ndarray:
    """Row positions of ``frame`` in (group, start) order, stable (equal starts keep their row
    order; null starts first); ``numbers``: ``group_numbers`` as numpy. A frame in start order
    (the usual case) needs no sort: one pass per group when there are few, else a radix sort of
    the group numbers; otherwise a lexicographic sort."""
    groups = int(numbers.max(initial=0)) + 1
    if not frame.get_column("start").is_sorted():
        start = frame.get_column("start").fill_null(np.iinfo(np.int64).min).to_numpy()
        return np.lexsort((np.arange(len(numbers)), start, numbers))
    if groups == 1:
        return np.arange(len(numbers))
    if groups <= FEW_GROUPS:
        return np.concatenate([np.flatnonzero(numbers == g) for g in range(groups)])  # loop over groups
    return np.argsort(numbers.astype(np.uint16) if groups <= (1 << 16) else numbers, kind="stable")


def adjacent_rows(frame: pl.DataFrame, numbers: pl.Series, *, after: bool = False) -> pl.Series:
    """Per row, the row position of the row before it (``after``: after it) among the rows of its
    group (``numbers``: ``group_numbers``) in start order (``group_order``); null at a group's end."""
    return with_nulls(adjacent_positions(frame, numbers.to_numpy(), after))


def adjacent_positions(frame: pl.DataFrame, code: np.ndarray, after: bool) -> np.ndarray:
    """``adjacent_rows`` as numpy, -1 at a group's end. A start-sorted frame in few groups takes
    one pass per group (each group's rows are in order already)."""
    rows = np.full(len(code), -1, dtype=np.int64)
    groups, in_order = int(code.max(initial=0)) + 1, frame.get_column("start").is_sorted()
    if groups == 1 and in_order:
        if after:
            rows[:-1] = np.arange(1, len(code))
        else:
            rows[1:] = np.arange(len(code) - 1)
        return rows
    if groups <= FEW_GROUPS and in_order:
        for g in range(groups):  # loop over groups
            members = np.flatnonzero(code == g)
            if after:
                rows[members[:-1]] = members[1:]
            else:
                rows[members[1:]] = members[:-1]
        return rows
    pos = group_order(frame, code)
    ordered = code[pos]
    same = ordered[1:] == ordered[:-1]
    moved, at = (pos[1:], pos[:-1]) if after else (pos[:-1], pos[1:])
    rows[at] = np.where(same, moved, -1)
    return rows


def adjacent_at(frame: pl.DataFrame, code: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``adjacent_positions(frame, code, after=True)[rows]`` (``rows`` ascending): a start-sorted
    frame of one group takes the next row of each, without positions for all rows."""
    if int(code.max(initial=0)) == 0 and frame.get_column("start").is_sorted():
        return np.where(rows + 1 < len(code), rows + 1, -1)
    return adjacent_positions(frame, code, after=True)[rows]


def with_nulls(rows: np.ndarray) -> pl.Series:
    """Row positions (``adjacent_positions``) as a Series, null where -1."""
    found = pl.Series("row", rows)
    return pl.select(pl.when(found >= 0).then(found)).to_series()


def links(kernels: pl.DataFrame, names: tuple[pl.Series, pl.Series] | None = None) -> pl.DataFrame:
    """Per kernel row, in the kernels' row order: ``stream`` (``group_numbers``), ``code`` (the
    name's index in ``names``; null for a null name), ``prev`` (row position of the previous kernel
    on the same device and stream, null for a stream's first kernel) and ``gap_ns`` (start minus
    that kernel's end, clipped at 0). ``names``: ``derived.encode`` of the kernel names, when built."""
    codes = _encoded(kernels, names)[0]
    numbers = group_numbers(kernels, STREAM)
    rows = adjacent_positions(kernels, numbers.to_numpy(), after=False)
    prev = with_nulls(rows).alias("prev")
    if kernels.select(pl.col("start").null_count() + pl.col("end").null_count()).item():
        gap = (pl.col("start") - pl.col("end").gather(prev)).clip(lower_bound=0)
    else:  # numpy: a polars gather with nulls of millions of rows takes several times longer
        gap_ns = kernels.get_column("end").to_numpy()[rows]  # in place below: no new array of every kernel
        np.subtract(kernels.get_column("start").to_numpy(), gap_ns, out=gap_ns)
        gap = pl.when(prev.is_not_null()).then(pl.Series(np.maximum(gap_ns, 0, out=gap_ns)))
    return kernels.select(numbers.alias("stream"), codes.alias("code"), prev, gap.alias("gap_ns"))


def _encoded(kernels: pl.DataFrame, names: tuple[pl.Series, pl.Series] | None) -> tuple[pl.Series, pl.Series]:
    return encode(kernels.get_column("name")) if names is None else names


def neighbours(kernels: pl.DataFrame, linked: pl.DataFrame | None = None,
               names: tuple[pl.Series, pl.Series] | None = None) -> pl.DataFrame:
    """Per kernel name and side (``before`` | ``after``): the neighbouring kernel on the same stream,
    how often it is that neighbour (``count``) out of the kernel's ``instances``, and the
    median gap between the two. Sorted by name, side, count descending. ``linked``:
    ``links(kernels, names)`` and ``names``: ``derived.encode`` of the kernel names, when built.

    A pair (a then b) with gap g is b's ``before`` neighbour a and a's ``after`` neighbour b with
    the same gap: the pairs are counted once and read both ways, grouped by their two name codes
    packed in one integer."""
    names = _encoded(kernels, names)
    linked = links(kernels, names) if linked is None else linked
    text = pl.lit(names[1], dtype=pl.String)
    pair, instances = _pairs(linked)
    instances = instances.select(text.gather(pl.col("code")).alias("name"), "instances")
    pairs = (pl.DataFrame([pair, linked.get_column("gap_ns")]).drop_nulls("pair").group_by("pair")
             .agg(pl.len().alias("count"), pl.col("gap_ns").median().alias("median_gap_ns"))
             .select(text.gather(pl.col("pair") // (1 << 32)).alias("name"),
                     text.gather(pl.col("pair") % (1 << 32)).alias("prev"), "count", "median_gap_ns"))
    before = pairs.select("name", pl.lit("before").alias("side"), pl.col("prev").alias("neighbour"), "count",
                          "median_gap_ns")
    after = pairs.select(pl.col("prev").alias("name"), pl.lit("after").alias("side"), pl.col("name").alias("neighbour"),
                         "count", "median_gap_ns")
    both = pl.concat([before, after]).join(instances, on="name")
    return both.select("name", "side", "neighbour", "count", "instances", "median_gap_ns").sort(
        ["name", "side", "count", "neighbour"], descending=[False, False, True, False])


def _pairs(linked: pl.DataFrame) -> tuple[pl.Series, pl.DataFrame]:
    """Per kernel, ``pair``: its name code * 2^32 + the previous kernel's (null at a stream's start
    or a null name); per name code, its ``instances``. In numpy when no name is null."""
    code, prev = linked.get_column("code"), linked.get_column("prev")
    if code.null_count() or code.len() == 0:
        wide = code.cast(pl.UInt64)
        instances = wide.to_frame("code").group_by("code").agg(pl.len().alias("instances")).drop_nulls("code")
        return (wide * (1 << 32) + wide.gather(prev)).alias("pair"), instances
    codes = code.to_numpy()
    counts = np.bincount(codes)
    instances = pl.DataFrame([pl.Series("code", np.flatnonzero(counts), dtype=pl.UInt64),
                              pl.Series("instances", counts[counts > 0], dtype=pl.UInt32)])
    pair = (codes.astype(np.uint64) << np.uint64(32)) + codes[prev.fill_null(-1).to_numpy()]  # -1: masked below
    return pl.select(pl.when(prev.is_not_null()).then(pl.Series(pair)).alias("pair")).to_series(), instances
