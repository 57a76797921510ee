"""Ingest: open an export read-only, detect its version, build a ``Trace``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from traceview.errors import NotAnNsysExport
from traceview.ingest.detect import detect_export, looks_like_nsys_export
from traceview.ingest import limits, validate
from traceview.ingest.sqlite import connect_readonly, map_sqlite_errors, table_columns
from traceview.model.trace import Trace


def open_export(path: str | Path, skip: Mapping[str, frozenset[str]] | None = None) -> Trace:
    """Open an nsys SQLite export read-only and return its lazy ``Trace`` (``skip``: model
    columns to leave out per frame)."""
    path = Path(path)
    validate.check_header(path)
    conn = connect_readonly(path)
    try:
        with map_sqlite_errors(path):
            tables = table_columns(conn)
            if not looks_like_nsys_export(tables):
                raise NotAnNsysExport(f"{path}: SQLite file is not an Nsight Systems export (no StringIds/metadata tables)")
            info = detect_export(conn, tables)
            notes = validate.check_schema(conn, info, path)
            limits.check_memory(conn, info, path)
    except BaseException:
        conn.close()
        raise
    trace = Trace(path, conn, info, skip)
    trace.warnings.extend(notes)
    return trace


__all__ = ["open_export"]
