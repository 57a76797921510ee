"""Resource bounds: refuse, with one line, exports that would not fit in memory.

Cheap checks only: ``max(rowid)`` per activity table (a b-tree descent, not a scan) times
an estimate of the bytes a row costs once loaded and analyzed. ``max(rowid)`` can
overstate (sparse rowids), so a table is counted exactly before the export is refused.
The budget is the available memory, or ``TRACEVIEW_MAX_MEMORY`` (bytes; K/M/G suffixes).
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from traceview.errors import ResourceLimitExceeded
from traceview.ingest.detect import ExportInfo
from traceview.ingest.tables import API_TABLE, KERNEL_TABLE, MEMCPY_TABLE, MEMSET_TABLE, NVTX_TABLE

PEAK_FACTOR = 3  # loaded frame + concat/rechunk + filtered/sorted copies during analysis
# Loaded bytes per row: fixed-width columns (8 B each) plus an allowance for strings.
ROW_BYTES = {KERNEL_TABLE: 27 * 8, MEMCPY_TABLE: 17 * 8 + 64, MEMSET_TABLE: 13 * 8 + 32,
             API_TABLE: 10 * 8 + 64, NVTX_TABLE: 12 * 8 + 128}
NAME_SAMPLE = 1000  # kernel rows whose name lengths are averaged into the estimate


def memory_budget() -> int | None:
    """Bytes the analysis may use: TRACEVIEW_MAX_MEMORY, else MemAvailable, else physical memory."""
    env = os.environ.get("TRACEVIEW_MAX_MEMORY")
    if env:
        m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", env, re.IGNORECASE)
        if m:
            return int(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " ")
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _row_bytes(conn: sqlite3.Connection, info: ExportInfo, table: str) -> int:
    base = ROW_BYTES[table]
    if table != KERNEL_TABLE or not info.has("StringIds"):
        return base + (128 if table == KERNEL_TABLE else 0)
    name_col = "demangledName" if info.has(table, "demangledName") else "shortName"
    if not info.has(table, name_col):
        return base
    avg = conn.execute(f"SELECT avg(length(CAST(s.value AS BLOB))) FROM (SELECT {name_col} AS n FROM {table} "
                       f"LIMIT {NAME_SAMPLE}) AS k JOIN StringIds AS s ON s.id = k.n").fetchone()[0]
    return base + 2 * int(avg or 64)  # name and short name


def _rows(conn: sqlite3.Connection, table: str, exact: bool) -> int:
    if not exact:
        try:
            return int(conn.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()[0] or 0)
        except sqlite3.OperationalError:  # WITHOUT ROWID table
            pass
    return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def check_memory(conn: sqlite3.Connection, info: ExportInfo, path: Path) -> None:
    """Raise ``ResourceLimitExceeded`` when the activity tables would not fit in the budget."""
    budget = memory_budget()
    if budget is None:
        return
    tables = [t for t in ROW_BYTES if info.has(t)]
    row_bytes = {t: _row_bytes(conn, info, t) for t in tables}
    for exact in (False, True):
        rows = {t: _rows(conn, t, exact) for t in tables}
        need = sum(rows[t] * row_bytes[t] for t in tables) * PEAK_FACTOR
        if need <= budget:
            return
    biggest = max(tables, key=lambda t: rows[t] * row_bytes[t])
    raise ResourceLimitExceeded(
        f"{path}: too large to analyze in memory: {rows[biggest]:,} rows in {biggest} "
        f"(~{need / 2**30:.1f} GiB needed, {budget / 2**30:.1f} GiB available); "
        "export a shorter capture (nsys --duration or --capture-range) or raise TRACEVIEW_MAX_MEMORY")
