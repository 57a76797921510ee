"""The fast path from SQLite to polars for large activity tables.

``connectorx`` (optional dependency) reads a query straight into Arrow in native threads,
one thread per ``rowid`` range of the table, without a Python object per value. It is
~4x faster than ``sqlite3`` + ``fetchmany`` on one core and scales with cores (10M kernels,
14 columns: 31 s -> 3.9 s on 2 cores; see benchmarks/RESULTS.md).

Safety: the file is opened through an SQLite URI with ``mode=ro`` (verified with strace:
``O_RDONLY``, no journal, no file created). Anything unusual (a text value in an integer
column, a value type that differs from the first row's, invalid UTF-8, an error) makes
``read_fast`` return ``None`` and the caller falls back to the ``sqlite3`` reader, which
has the full handling. Strings are resolved by joining ``StringIds`` in polars, not by a
per-row SQL subquery. ``TRACEVIEW_READER=sqlite3`` disables the fast path;
``TRACEVIEW_READER=fast`` uses it even for small tables (tests).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from urllib.parse import quote

import polars as pl

READER_ENV = "TRACEVIEW_READER"
FAST_MIN_ROWS = 50_000      # below this the sqlite3 reader is as fast (and has every guard)
ROWS_PER_PART = 250_000     # at least this many rows per parallel range
MAX_PARTS = 8


class Col(str):
    """One SELECT item (``expr AS alias``) that remembers its parts, for the fast plan.

    ``expr`` is None for a column the export lacks (NULL); ``string_of`` names the raw
    column when the item resolves a ``StringIds`` reference."""

    expr: str | None
    alias: str
    string_of: str | None

    def __new__(cls, sql: str, alias: str, expr: str | None, string_of: str | None = None) -> Col:
        obj = super().__new__(cls, sql)
        obj.alias, obj.expr, obj.string_of = alias, expr, string_of
        return obj


@dataclass(frozen=True)
class Plan:
    """A read of ``table AS t`` that can be split by rowid: ``items`` in SELECT order,
    an optional ``where`` (over ``t``), and the output columns to sort by."""

    table: str
    items: list[str]  # Col items; a plain string declines the fast path
    where: str = ""
    order_by: tuple[str, ...] = ()
    string_table: bool = True  # StringIds exists


def mode() -> str:
    value = os.environ.get(READER_ENV, "auto").strip().lower()
    return value if value in {"auto", "sqlite3", "fast"} else "auto"


def available() -> bool:
    try:
        import connectorx  # noqa: F401
    except ImportError:
        return False
    return True


def _database_path(conn: sqlite3.Connection) -> str | None:
    for _, name, path in conn.execute("PRAGMA database_list"):
        if name == "main" and path:
            return str(path)
    return None


def _url(path: str) -> str:
    """connectorx URL whose SQLite URI opens ``path`` read-only (the whole URI is
    percent-encoded once more, so connectorx hands it to SQLite unchanged)."""
    return "sqlite://" + quote(f"file:{quote(path)}?mode=ro", safe="/")


def _ranges(conn: sqlite3.Connection, table: str) -> list[tuple[int, int]]:
    lo, hi = conn.execute(f'SELECT min(rowid), max(rowid) FROM "{table}"').fetchone()
    if lo is None:
        return []
    total = hi - lo + 1
    parts = max(1, min(os.cpu_count() or 1, MAX_PARTS, total // ROWS_PER_PART))
    step = -(-total // parts)
    return [(lo + i * step, min(hi, lo + (i + 1) * step - 1)) for i in range(parts)]


def _fast_sql(plan: Plan) -> tuple[str, list[Col]]:
    picked = [c for c in plan.items if isinstance(c, Col) and c.expr is not None]
    exprs = [f"t.{c.string_of} AS {c.alias}" if c.string_of else f"{c.expr} AS {c.alias}" for c in picked]
    where = f"({plan.where}) AND " if plan.where else ""
    return f'SELECT {", ".join(exprs)} FROM "{plan.table}" AS t WHERE {where}t.rowid BETWEEN {{lo}} AND {{hi}}', picked


def _resolve_strings(conn: sqlite3.Connection, frame: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """Replace string-id columns by their ``StringIds`` values (missing ids -> null)."""
    ids = pl.concat([frame.get_column(c).drop_nulls() for c in cols]).unique().to_list()
    mapping: dict[int, str] = {}
    for i in range(0, len(ids), 30_000):
        chunk = ids[i:i + 30_000]
        q = f"SELECT id, value FROM StringIds WHERE id IN ({', '.join('?' * len(chunk))})"
        mapping.update({int(k): v for k, v in conn.execute(q, chunk)})
    keys, values = list(mapping), list(mapping.values())
    return frame.with_columns(
        pl.col(c).replace_strict(keys, values, default=None, return_dtype=pl.String) for c in cols)


def read_fast(conn: sqlite3.Connection, plan: Plan, schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
    """The plan's rows as a frame with ``schema``, or None when the fast path does not apply."""
    how = mode()
    if how == "sqlite3" or not available() or conn.text_factory is not str:
        return None
    items = [c for c in plan.items if isinstance(c, Col)]
    if len(items) != len(plan.items) or [c.alias for c in items] != list(schema):
        return None
    if any(c.string_of for c in items) and not plan.string_table:
        return None
    path = _database_path(conn)
    ranges = _ranges(conn, plan.table)
    if path is None or not ranges:
        return None
    if how == "auto" and ranges[-1][1] - ranges[0][0] + 1 < FAST_MIN_ROWS:
        return None
    sql, picked = _fast_sql(plan)
    try:
        import connectorx as cx

        queries = [sql.format(lo=lo, hi=hi) for lo, hi in ranges]
        table = cx.read_sql(_url(path), queries if len(queries) > 1 else queries[0], return_type="arrow")
        frame = pl.from_arrow(table, rechunk=False)  # one chunk per range: no full copy
        del table
        assert isinstance(frame, pl.DataFrame)
        strings = [c.alias for c in picked if c.string_of]
        if strings:
            frame = _resolve_strings(conn, frame.with_columns(pl.col(strings).cast(pl.Int64, strict=True)), strings)
        frame = frame.with_columns(pl.lit(None).alias(c.alias) for c in items if c.expr is None)
        frame = frame.select([pl.col(n).cast(t, strict=True) for n, t in schema.items()])
    except Exception:  # noqa: BLE001 - any surprise: the sqlite3 reader decides
        return None
    if plan.order_by and frame.height > 1 and not _sorted(frame, plan.order_by):
        holder = [frame]
        del frame
        return _sort_lean(holder, plan.order_by)
    return frame


def _sort_lean(holder: list[pl.DataFrame], by: tuple[str, ...]) -> pl.DataFrame:
    """Stable sort of the frame in ``holder`` (taken out of it) that gathers one column at a
    time and releases each source column as it goes: peak memory is the frame plus one
    column, not two frames."""
    frame = holder.pop()
    order = frame.select(pl.arg_sort_by(list(by), maintain_order=True)).to_series()
    columns = frame.get_columns()
    del frame
    out = []
    for i in range(len(columns)):
        out.append(columns[i].gather(order))
        columns[i] = None  # type: ignore[call-overload]
    return pl.DataFrame(out)


def _sorted(frame: pl.DataFrame, by: tuple[str, ...]) -> bool:
    """True when a one-column sort key is already ascending (exports are nearly always in
    start order, so the O(n) check usually saves the sort)."""
    if len(by) != 1 or frame.get_column(by[0]).null_count():
        return False
    return bool((frame.get_column(by[0]).diff().drop_nulls() >= 0).all())
