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
from traceview.model import columns as C

# Peak resident memory of `traceview analyze` over the loaded frames' size, measured on the
# 10M-kernel benchmark (benchmarks/RESULTS.md: ~7 GB peak for ~3 GB of frames) plus a margin.
PEAK_FACTOR = 2.5


def _frame_row_bytes(schema: dict) -> int:
    """Bytes per loaded row: 8 per number, 16 per string (a view; the text of repeated names is
    stored once), 1 per boolean."""
    return sum(16 if t == C.STR else 1 if t == C.BOOL else 8 for t in schema.values())


ROW_BYTES = {KERNEL_TABLE: _frame_row_bytes(C.KERNELS), MEMCPY_TABLE: _frame_row_bytes(C.MEMCPY),
             MEMSET_TABLE: _frame_row_bytes(C.MEMSET), API_TABLE: _frame_row_bytes(C.API),
             NVTX_TABLE: _frame_row_bytes(C.NVTX)}


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
    row_bytes = {t: ROW_BYTES[t] for t in tables}
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
