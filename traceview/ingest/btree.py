"""The native path for integer columns: read straight from the table's b-tree pages.

Every SQLite reader (connectorx included) pays ~50 ns a value in SQLite's own record
decoding; ``_btree`` (a C extension, built when a compiler is present) decodes the pages of
the file itself at a few ns a value, in parallel over the root's subtrees. It handles what
nsys exports hold (rowid tables of INTEGER and NULL values); anything else, or no compiled
extension, returns None and the caller reads through SQLite. The file is opened read-only.
"""

from __future__ import annotations

import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

try:
    from traceview.ingest import _btree
except ImportError:  # no compiler at install time: connectorx / sqlite3 read everything
    _btree = None

ROWID = -2  # the record index that means "the rowid" (an INTEGER PRIMARY KEY column)
PARTS = max(1, min(os.cpu_count() or 1, 4))  # threads, each over consecutive subtrees


def available() -> bool:
    return _btree is not None


def _plain_column(expr: str) -> str | None:
    """``t.start`` / ``t.[end]`` -> the column name; any other expression -> None."""
    if not expr.startswith("t."):
        return None
    name = expr[2:]
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name if name.replace("_", "").isalnum() else None


def _layout(conn: sqlite3.Connection, table: str) -> tuple[int, dict[str, int]] | None:
    """The table's root page and each column's index in its records (``ROWID`` for an
    INTEGER PRIMARY KEY), or None when the table is not a plain rowid table."""
    row = conn.execute("SELECT rootpage, sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                       (table,)).fetchone()
    if row is None or not row[0] or "WITHOUT ROWID" in (row[1] or "").upper():
        return None
    info = conn.execute(f'PRAGMA table_xinfo("{table}")').fetchall()  # cid, name, type, notnull, dflt, pk, hidden
    if any(r[6] for r in info):
        return None  # generated or hidden columns: record order differs from column order
    keys = [r for r in info if r[5]]
    pk_index = any(r[3] == "pk" for r in conn.execute(f'PRAGMA index_list("{table}")'))  # seq, name, unique, origin
    alias = keys[0][1] if len(keys) == 1 and keys[0][2].upper() == "INTEGER" and not pk_index else None
    index = {r[1]: (ROWID if r[1] == alias else r[0]) for r in info}
    defaults = {r[1] for r in info if r[4] is not None}
    return row[0], {k: v for k, v in index.items() if k not in defaults}  # a default needs SQLite


def _subtrees(path: str, root: int, enough: int) -> list[int] | None:
    """Pages whose subtrees cover the table in key order: the root's children, their
    children, ... until there are ``enough`` of them or only leaves (None: unreadable)."""
    pages = [root]
    while len(pages) < enough:
        deeper = [_btree.children(path, p) for p in pages]
        if any(d is None for d in deeper):
            return None
        flat = [p for d in deeper for p in d]
        if flat == pages:
            break
        pages = flat
    return pages


def _split(pages: list[int], counts: list[int], parts: int) -> list[tuple[list[int], int, int]]:
    """Consecutive groups of subtrees with about equal rows: (pages, first row, rows)."""
    total, groups, first = sum(counts), [], 0
    i = 0
    for part in range(parts):
        target, start, rows = total * (part + 1) // parts, i, 0
        while i < len(pages) and (first + rows < target or part == parts - 1):
            rows += counts[i]
            i += 1
        if i > start:
            groups.append((pages[start:i], first, rows))
            first += rows
    return groups


def read(conn: sqlite3.Connection, path: str, table: str, columns: dict[str, str]) -> pl.DataFrame | None:
    """``{alias: "t.column"}`` of every row of ``table`` in rowid order, or None."""
    if _btree is None or any(os.path.exists(path + suffix) for suffix in ("-wal", "-journal")):
        return None
    layout = _layout(conn, table)
    names = {alias: _plain_column(expr) for alias, expr in columns.items()}
    if layout is None or any(n is None or n not in layout[1] for n in names.values()):
        return None
    root, index = layout
    wanted = sorted({index[n] for n in names.values()})  # ascending record order, each once
    pages = _subtrees(path, root, 16 * PARTS)
    if not pages:
        return None
    counts = _btree.rows(path, np.array(pages, np.int64).tobytes())
    if counts is None:
        return None
    n = sum(counts)
    values = [np.empty(n, np.int64) for _ in wanted]  # one array each: a column dropped later frees its memory
    nulls = np.zeros((len(wanted), n), np.uint8)
    spec = np.array(wanted, np.int64).tobytes()
    groups = _split(pages, counts, PARTS)

    def one(group: tuple[list[int], int, int]) -> bool:
        subtrees, first, rows = group
        done = _btree.scan(path, np.array(subtrees, np.int64).tobytes(), spec, values, nulls, n, first, rows)
        return done == rows

    with ThreadPoolExecutor(len(groups)) as pool:
        if not all(pool.map(one, groups)):
            return None
    return pl.DataFrame([_series(alias, values[wanted.index(index[name])], nulls[wanted.index(index[name])])
                         for alias, name in names.items()])


def _series(alias: str, values: np.ndarray, nulls: np.ndarray) -> pl.Series:
    """A column over ``values`` (no copy) with nulls where ``nulls`` is set."""
    if not nulls.any():
        return pl.Series(alias, values)
    if nulls.all():
        return pl.Series(alias, [], dtype=pl.Int64).extend_constant(None, len(values))
    import pyarrow as pa

    return pl.Series(alias, pa.array(values, mask=nulls.view(bool)))
