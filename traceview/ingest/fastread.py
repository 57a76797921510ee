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
per-row SQL subquery.

Before connectorx, the native reader (``traceview.ingest.btree``) decodes integer columns
straight from the table's pages, ~4x faster than any SQLite reader; connectorx reads what it
declines (text columns, filtered reads, an unusual file). ``TRACEVIEW_READER=sqlite3``
disables both; ``fast`` uses them even for small tables and ``connectorx`` skips the native
reader (both for tests).
"""

from __future__ import annotations

import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np
import polars as pl

from traceview.gather import take
from traceview.ingest import btree

READER_ENV = "TRACEVIEW_READER"
FAST_MIN_ROWS = 50_000      # below this the sqlite3 reader is as fast (and has every guard)
ROWS_PER_PART = 250_000     # at least this many rows per parallel range
MAX_PARTS = 8
MAX_CHUNKS = 16             # a sorted frame with at most this many chunks per column is kept as is


class Col(str):
    """One SELECT item (``expr AS alias``) that remembers its parts, for the fast plan.

    ``expr`` is None for a column the export lacks (NULL); ``string_of`` names the raw
    column when the item resolves a ``StringIds`` reference; ``derive`` computes the column
    in polars from other output columns instead of reading it (``end - start``): every
    value SQLite hands over costs ~25 ns, computing it costs ~1 ns."""

    expr: str | None
    alias: str
    string_of: str | None
    derive: pl.Expr | None

    def __new__(cls, sql: str, alias: str, expr: str | None, string_of: str | None = None,
                derive: pl.Expr | None = None) -> Col:
        obj = super().__new__(cls, sql)
        obj.alias, obj.expr, obj.string_of, obj.derive = alias, expr, string_of, derive
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
    return value if value in {"auto", "sqlite3", "fast", "connectorx"} else "auto"


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
    """The table's rowid span split into one range per core (at least ``ROWS_PER_PART`` rows
    each): connectorx reads the ranges in parallel, one native thread each."""
    # Two queries: SQLite answers min(rowid) or max(rowid) alone from the b-tree's ends, but
    # scans the whole table for both in one SELECT (10M rows: 1.5 s).
    lo = conn.execute(f'SELECT min(rowid) FROM "{table}"').fetchone()[0]
    hi = conn.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()[0]
    return [] if lo is None else _split(lo, hi)


def _split(lo: int, hi: int) -> list[tuple[int, int]]:
    total = hi - lo + 1
    parts = max(1, min(os.cpu_count() or 1, MAX_PARTS, total // ROWS_PER_PART))
    step = -(-total // parts)
    return [(lo + i * step, min(hi, lo + (i + 1) * step - 1)) for i in range(parts)]


def _fast_sql(plan: Plan, read: list[Col]) -> str:
    exprs = [f"t.{c.string_of} AS {c.alias}" if c.string_of else f"{c.expr} AS {c.alias}" for c in read]
    where = f"({plan.where}) AND " if plan.where else ""
    return f'SELECT {", ".join(exprs)} FROM "{plan.table}" AS t WHERE {where}t.rowid BETWEEN {{lo}} AND {{hi}}'


def _resolve_strings(conn: sqlite3.Connection, frame: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """Replace string-id columns by their ``StringIds`` values (missing ids -> null). Ids are
    small dense integers: a lookup column indexed by id turns each column into one gather."""
    ids = pl.concat([frame.get_column(c).drop_nulls().unique() for c in cols]).unique().sort()
    mapping: dict[int, str] = {}
    for i in range(0, ids.len(), 30_000):
        chunk = ids.slice(i, 30_000).to_list()
        q = f"SELECT id, value FROM StringIds WHERE id IN ({', '.join('?' * len(chunk))})"
        mapping.update({int(k): v for k, v in conn.execute(q, chunk)})
    if ids.len() and 0 <= ids[0] and ids[-1] < 4 * ids.len() + 1_000_000:
        lookup = pl.Series([mapping.get(i) for i in range(int(ids[-1]) + 1)], dtype=pl.String)
        return frame.with_columns(pl.lit(lookup).gather(pl.col(c)).alias(c) for c in cols)
    keys, values = list(mapping), list(mapping.values())
    return frame.with_columns(
        pl.col(c).replace_strict(keys, values, default=None, return_dtype=pl.String) for c in cols)


def _read_arrow(path: str, plan: Plan, read: list[Col], ranges: list[tuple[int, int]]) -> pl.DataFrame:
    import connectorx as cx

    sql = _fast_sql(plan, read)
    queries = [sql.format(lo=lo, hi=hi) for lo, hi in ranges]
    table = cx.read_sql(_url(path), queries if len(queries) > 1 else queries[0], return_type="arrow")
    frame = pl.from_arrow(table, rechunk=False)  # one chunk per range: no full copy
    del table
    assert isinstance(frame, pl.DataFrame)
    return frame


def _read_native(conn: sqlite3.Connection, path: str, plan: Plan, read: list[Col]) -> pl.DataFrame | None:
    """The read columns from the table's pages (string ids as integers), or None."""
    return btree.read(conn, path, plan.table, {c.alias: f"t.{c.string_of}" if c.string_of else c.expr for c in read})


def read_fast(conn: sqlite3.Connection, plan: Plan, schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
    """The plan's rows as a frame with ``schema``, or None when the fast path does not apply."""
    how = mode()
    native = how != "connectorx" and btree.available() and not plan.where
    if how == "sqlite3" or not (native or available()) or conn.text_factory is not str:
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
    read = [c for c in items if c.expr is not None and c.derive is None]  # SQL reads; the rest is derived
    strings = [c.alias for c in read if c.string_of]
    try:
        holder = [_read_native(conn, path, plan, read) if native else None]
        if holder[0] is None:
            if not available():
                return None
            holder = [_read_arrow(path, plan, read, ranges)]
        frame = _compact(holder, plan.order_by)  # the one copy: Arrow batches -> one sorted chunk per column
        if strings:
            frame = _resolve_strings(conn, frame.with_columns(pl.col(strings).cast(pl.Int64, strict=True)), strings)
        frame = frame.with_columns(pl.lit(None).alias(c.alias) for c in items if c.expr is None)
        frame = frame.with_columns(c.derive.alias(c.alias) for c in items if c.expr is not None and c.derive is not None)
        return frame.select([pl.col(n).cast(t, strict=True) for n, t in schema.items()])
    except Exception:  # noqa: BLE001 - any surprise: the sqlite3 reader decides
        return None


def _compact(holder: list[pl.DataFrame], by: tuple[str, ...]) -> pl.DataFrame:
    """The frame in ``holder`` (taken out of it) stably sorted by ``by``, with one contiguous
    chunk per column (connectorx returns ~30 record batches per 2M rows; gathers and group-bys
    over them are ~3x slower, and a frame with mixed chunking is copied whole by the next
    ``select``). A sorted frame with at most ``MAX_CHUNKS`` chunks comes back as is. Columns
    are done in parallel threads, each source column released once copied."""
    frame = holder.pop()
    order = None
    if by and frame.height > 1 and not _sorted(frame, by):
        order = _order(frame, by)
    elif frame.n_chunks() <= MAX_CHUNKS:
        return frame
    columns: list[pl.Series | None] = list(frame.get_columns())
    del frame

    def one(i: int) -> pl.Series:
        column = columns[i].rechunk()  # a gather from one chunk is ~4x faster than from ~150
        columns[i] = None
        return column if order is None else take(column, order)

    with ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, 4))) as pool:
        return pl.DataFrame(list(pool.map(one, range(len(columns)))))


def _order(frame: pl.DataFrame, by: tuple[str, ...]) -> np.ndarray:
    """Row order of a stable sort by ``by`` (numpy's stable sort of one null-free integer key
    is ~3x faster than polars' on nearly sorted times)."""
    key = frame.get_column(by[0])
    if len(by) == 1 and key.null_count() == 0 and key.dtype.is_integer():
        return np.argsort(key.to_numpy(), kind="stable")
    return frame.select(pl.arg_sort_by(list(by), maintain_order=True)).to_series().to_numpy()


def _sorted(frame: pl.DataFrame, by: tuple[str, ...]) -> bool:
    """True when a one-column sort key is already ascending (exports are nearly always in
    start order, so the O(n) check usually saves the sort)."""
    if len(by) != 1 or frame.get_column(by[0]).null_count():
        return False
    return bool((frame.get_column(by[0]).diff().drop_nulls() >= 0).all())
