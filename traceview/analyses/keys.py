"""Integer group keys for big frames: group-bys and gathers on strings or on many columns cost
several times those on one integer column (10M kernels: name + grid + block 2.9 s, one packed
key 1.2 s)."""

from __future__ import annotations

import numpy as np
import polars as pl

KEY_BITS = 63  # a packed key stays a non-negative Int64


def encode(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """``(codes, names)``: per row a UInt32 index into ``names``, the distinct non-null values sorted
    (null stays null)."""
    names = values.unique().drop_nulls().sort()
    return values.cast(pl.Enum(names)).to_physical().cast(pl.UInt32), names


def decoded(codes: pl.Expr, names: pl.Series) -> pl.Expr:
    """The names that ``codes`` (from ``encode``) stand for."""
    return pl.lit(names, dtype=pl.String).gather(codes)


def packed_key(frame: pl.DataFrame, columns: list[str]) -> pl.Expr | None:
    """One Int64 expression that is equal for two rows exactly when all integer ``columns`` are
    (nulls equal to nulls): each column offset by its minimum (plus a slot for null) in its own
    bits. None when the columns' value ranges need more than 63 bits together."""
    if frame.height == 0:
        return None
    stats = frame.select(*(e for c in columns for e in (pl.col(c).min().cast(pl.Int64).alias(f"lo{c}"),
                                                         pl.col(c).max().cast(pl.Int64).alias(f"hi{c}"),
                                                         pl.col(c).null_count().alias(f"n{c}")))).row(0, named=True)
    key, shift = pl.lit(0, pl.Int64), 0
    for c in columns:
        lo, hi, nulls = stats[f"lo{c}"], stats[f"hi{c}"], stats[f"n{c}"] > 0
        if lo is None:  # all null: one value, no bits
            continue
        slots = hi - lo + 1 + nulls
        width = (slots - 1).bit_length()
        if shift + width > KEY_BITS:
            return None
        value = pl.col(c).cast(pl.Int64) - (lo - nulls)
        if width:
            key = key + (value.fill_null(0) if nulls else value) * (1 << shift)
        shift += width
    return key


def compact_key(frame: pl.DataFrame, columns: list[str]) -> pl.Series | None:
    """Like ``packed_key`` (equal exactly when all integer ``columns`` are, nulls equal to nulls), built
    with numpy; columns whose value range does not fit are first replaced by their rank among the
    column's distinct values, widest first. None only when even the ranks need more than 63 bits."""
    if frame.height == 0:
        return None
    values = {c: _filled(frame.get_column(c)) for c in columns}
    nulls = {c: int(v is not None and frame.get_column(c).null_count() > 0) for c, v in values.items()}
    lows = {c: int(v.min()) for c, v in values.items() if v is not None}
    widths = {c: 0 if v is None else (int(v.max()) - lows[c] + nulls[c]).bit_length() for c, v in values.items()}
    ranked: dict[str, np.ndarray] = {}
    while sum(widths.values()) > KEY_BITS:
        wide = [c for c in columns if c not in ranked and widths[c] > 1]
        if not wide:
            return None
        c = max(wide, key=lambda col: widths[col])
        ranked[c] = frame.get_column(c).drop_nulls().unique().sort().cast(pl.Int64).to_numpy()
        widths[c] = (len(ranked[c]) - 1 + nulls[c]).bit_length()
    key, scratch, shift = np.zeros(frame.height, dtype=np.int64), np.empty(frame.height, dtype=np.int64), 0
    for c in columns:
        if widths[c]:
            _slots(values[c], lows[c], ranked.get(c), scratch)
            if nulls[c]:
                scratch += 1
                scratch[frame.get_column(c).is_null().to_numpy()] = 0
            key |= np.left_shift(scratch, shift, out=scratch)
        shift += widths[c]
    return pl.Series("_key", key)


def _filled(values: pl.Series) -> np.ndarray | None:
    """The column as Int64 numpy values, nulls replaced by a value of the column (None: all null)."""
    if values.null_count() == values.len():
        return None
    if values.null_count():
        values = values.fill_null(values.min())
    return values.cast(pl.Int64).to_numpy()


def _slots(raw: np.ndarray, low: int, ranks: np.ndarray | None, out: np.ndarray) -> None:
    """Into ``out``: each value's offset from ``low``, or its rank in ``ranks`` (looked up in a table when
    the values span a few million at most). In place: fresh arrays of millions of rows cost more
    than the arithmetic."""
    np.subtract(raw, low, out=out)
    if ranks is None:
        return
    if int(ranks[-1]) - low < (1 << 22):
        table = np.zeros(int(ranks[-1]) - low + 1, dtype=np.int64)
        table[ranks - low] = np.arange(len(ranks))
        np.take(table, out, out=out)
    else:
        out[:] = np.searchsorted(ranks, raw)
