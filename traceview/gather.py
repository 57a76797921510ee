"""Row gathers of big columns by numpy: a polars gather of millions of rows takes several times
longer, and numpy's releases the GIL (columns can gather in parallel threads)."""

from __future__ import annotations

import numpy as np
import polars as pl


def take(values: pl.Series, rows: np.ndarray | pl.Series) -> pl.Series:
    """``values.gather(rows)``, by numpy for numeric values (a polars gather of millions of rows
    takes several times longer); nulls are kept."""
    rows = rows.to_numpy() if isinstance(rows, pl.Series) else rows
    if not values.dtype.is_numeric():
        return values.gather(pl.Series(rows, dtype=pl.UInt64))
    if values.null_count() == 0:
        return pl.Series(values.name, values.to_numpy()[rows], dtype=values.dtype)
    if values.null_count() == values.len():
        return pl.Series(values.name, dtype=values.dtype).extend_constant(None, len(rows))
    taken = pl.Series(values.name, values.fill_null(0).to_numpy()[rows], dtype=values.dtype)
    return pl.select(pl.when(pl.Series(values.is_not_null().to_numpy()[rows])).then(taken)).to_series()


def take_columns(frame: pl.DataFrame, columns: list[str], rows: np.ndarray | pl.Series) -> pl.DataFrame:
    """``frame.select(pl.col(columns).gather(rows))`` column by column with ``take``."""
    rows = rows.to_numpy() if isinstance(rows, pl.Series) else rows
    return pl.DataFrame([take(frame.get_column(c), rows) for c in columns])
