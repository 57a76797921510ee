"""Read-only access to an Nsight Systems SQLite export.

The user's file is opened with the SQLite URI ``mode=ro``: nothing is ever written to
it (no indexes, no helper tables). All SQLite errors are mapped to typed errors.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import polars as pl

from traceview.errors import CorruptExport, ExportNotFound, NotAnNsysExport

if TYPE_CHECKING:
    from traceview.ingest.fastread import Plan

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 5.0  # wait this long for another process's write lock before giving up
MAX_VALUE_BYTES = 64 * 2**20  # SQLITE_LIMIT_LENGTH: a larger string or blob is refused, not loaded


@contextlib.contextmanager
def map_sqlite_errors(path: Path) -> Iterator[None]:
    """Turn sqlite3 exceptions into one-line traceview errors."""
    try:
        yield
    except sqlite3.DatabaseError as exc:  # includes OperationalError
        msg = str(exc)
        if "locked" in msg or "busy" in msg:
            raise CorruptExport(f"{path}: database is locked by another process; retry when it is done writing") from exc
        if "readonly" in msg:  # a hot journal: rolling it back would need write access
            raise CorruptExport(f"{path}: an interrupted write left a hot journal ({path.name}-journal); traceview "
                                "opens traces read-only and will not roll it back: re-export the trace") from exc
        if "too big" in msg:
            raise CorruptExport(f"{path}: a string or blob in the export exceeds {MAX_VALUE_BYTES // 2**20} MiB; "
                                "the export is corrupt") from exc
        raise CorruptExport(f"{path}: unreadable SQLite database ({msg}); is the export truncated or corrupt?") from exc


def check_file(path: Path) -> None:
    """Fail early, with a clear message, on paths that cannot be an export."""
    if not path.exists():
        raise ExportNotFound(f"{path}: no such file")
    if path.is_dir():
        raise NotAnNsysExport(f"{path}: is a directory, expected an nsys SQLite export (nsys export --type sqlite)")
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ExportNotFound(f"{path}: cannot read file ({exc.strerror})") from exc
    if len(head) == 0:
        raise NotAnNsysExport(f"{path}: empty file, expected an nsys SQLite export")
    if head != SQLITE_MAGIC:
        hint = " (an .nsys-rep? export it first: nsys export --type sqlite)" if path.suffix in {".nsys-rep", ".qdrep"} else ""
        raise NotAnNsysExport(f"{path}: not an SQLite file{hint}")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open ``path`` read-only (URI ``mode=ro``); never creates or modifies the file."""
    check_file(path)
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    with map_sqlite_errors(path):
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA trusted_schema = OFF")  # no side-effect functions from the file's schema
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


def table_columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Every table in the export with its column names, in order."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {name: [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')] for name in names}


def read_frame(conn: sqlite3.Connection, sql: str, schema: dict[str, pl.DataType], params: tuple = (),
               plan: Plan | None = None) -> pl.DataFrame:
    """Run ``sql`` and return a frame with exactly ``schema`` (column order = SELECT order).

    This is the single place rows cross from SQLite into polars. With a ``plan`` (the same
    read, split by rowid) a large table goes through ``traceview.ingest.fastread``
    (connectorx, parallel, read-only); otherwise, or when that declines, rows come through
    ``sqlite3`` in batches.
    """
    if plan is not None and not params:
        from traceview.ingest.fastread import read_fast

        fast = read_fast(conn, plan, schema)
        if fast is not None:
            return fast
    cur = conn.execute(sql, params)
    names = list(schema)
    chunks: list[pl.DataFrame] = []
    while rows := cur.fetchmany(200_000):
        chunks.append(pl.DataFrame(rows, schema=list(zip(names, [schema[n] for n in names])), orient="row", strict=False))
    if not chunks:
        return pl.DataFrame(schema=schema)
    return pl.concat(chunks, how="vertical", rechunk=True)
