"""Anomaly checks for broken or hostile exports: fail with one line, or skip and warn.

Policy (never a silently wrong number):

- the file itself is broken (truncated, required table/column missing) -> ``CorruptExport``;
- single rows are unusable (NULL or negative timestamps, ``end < start``, NULL device,
  NULL or negative bytes, exact duplicates) -> the rows are skipped and a warning names
  the anomaly and the count, e.g. "12 kernels with end < start were skipped";
- sums that would leave the 64-bit range -> ``CorruptExport`` (no wrapped totals).
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

import polars as pl

from traceview.errors import CorruptExport
from traceview.ingest.detect import ExportInfo
from traceview.ingest.sqlite import check_file, map_sqlite_errors
from traceview.ingest.tables import API_TABLE, KERNEL_TABLE, MEMCPY_TABLE, MEMSET_TABLE, NVTX_TABLE

INT64_MAX = 2**63 - 1
INT32_LIMIT = 2**31

# Columns an activity table must have to be analyzed at all.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    KERNEL_TABLE: ("start", "end", "deviceId"),
    MEMCPY_TABLE: ("start", "end", "deviceId", "bytes"),
    MEMSET_TABLE: ("start", "end", "deviceId", "bytes"),
    API_TABLE: ("start", "end"),
    NVTX_TABLE: ("start", "end", "eventType"),
}

# Per frame kind: the word used in warnings and the columns that identify one event.
LABELS = {"kernels": "kernel", "memcpy": "memcpy", "memset": "memset", "api": "CUDA API call",
          "nvtx": "NVTX range"}
IDENTITY = {
    "kernels": ["start", "end", "device_id", "stream_id", "correlation_id"],
    "memcpy": ["start", "end", "device_id", "stream_id", "correlation_id", "bytes"],
    "memset": ["start", "end", "device_id", "stream_id", "correlation_id", "bytes"],
    "api": ["start", "end", "global_tid", "correlation_id", "raw_name"],
    "nvtx": ["start", "end", "global_tid", "event_type", "name"],
}
LAUNCH_COLUMNS = ["grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z", "registers_per_thread",
                  "static_shared_mem", "dynamic_shared_mem", "shared_mem_executed", "local_mem_per_thread"]


def check_header(path: Path) -> None:
    """Detect truncation from the SQLite header, which records the database size in pages
    (after ``check_file``: missing, empty and non-SQLite files get their own messages)."""
    check_file(path)
    with path.open("rb") as fh:
        head = fh.read(100)
    size = path.stat().st_size
    if len(head) < 100:
        raise CorruptExport(f"{path}: truncated SQLite file ({size} bytes, shorter than the 100-byte header)")
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, pages = struct.unpack(">II", head[24:32])
    valid_for = struct.unpack(">I", head[92:96])[0]
    if head[18] == 2 or pages == 0 or valid_for != change_counter:
        return  # WAL mode (pages may live in the -wal file) or a size field SQLite itself ignores
    if size < pages * page_size:
        raise CorruptExport(f"{path}: truncated or corrupt export: the SQLite header announces "
                            f"{pages * page_size:,} bytes, the file has {size:,}; copy or export it again")


def check_schema(conn: sqlite3.Connection, info: ExportInfo, path: Path) -> list[str]:
    """Required columns present, kernel names resolvable. Returns warnings for degraded exports."""
    warnings: list[str] = []
    for table, required in REQUIRED_COLUMNS.items():
        missing = [c for c in required if info.has(table) and not info.has(table, c)]
        if missing:
            raise CorruptExport(f"{path}: table {table} lacks required column(s) {', '.join(missing)}; "
                                "the export is incomplete or was modified")
    if not info.has(KERNEL_TABLE):
        return warnings
    if not info.has(KERNEL_TABLE, "demangledName"):
        if not info.has(KERNEL_TABLE, "shortName"):
            raise CorruptExport(f"{path}: table {KERNEL_TABLE} has neither demangledName nor shortName; "
                                "kernels cannot be named")
        warnings.append(f"{KERNEL_TABLE} has no demangledName column: kernels are named by shortName")
    if not info.has("StringIds"):
        name_col = "demangledName" if info.has(KERNEL_TABLE, "demangledName") else "shortName"
        kind = conn.execute(f"SELECT typeof({name_col}) FROM {KERNEL_TABLE} LIMIT 1").fetchone()
        if kind and kind[0] == "integer":
            raise CorruptExport(f"{path}: table StringIds is missing: kernel names (string ids) cannot be resolved")
    return warnings


def _replace_invalid_utf8(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def read_checked(conn: sqlite3.Connection, info: ExportInfo, reader: Callable[..., pl.DataFrame], path: Path,
                 warnings: list[str], **options: object) -> pl.DataFrame:
    """Run a table reader (``reader(conn, info, **options)``) with every failure mapped to a
    one-line error.

    Invalid UTF-8 in the export's strings is not fatal: the read is retried with the bad
    bytes replaced by U+FFFD, and a warning says so."""
    try:
        with map_sqlite_errors(path):
            try:
                return reader(conn, info, **options)
            except sqlite3.OperationalError as exc:
                if "decode" not in str(exc) or conn.text_factory is _replace_invalid_utf8:
                    raise
                conn.text_factory = _replace_invalid_utf8  # this connection only: the default is faster
                warnings.append("invalid UTF-8 in trace strings was replaced by U+FFFD")
                return reader(conn, info, **options)
    except (pl.exceptions.PolarsError, ValueError, TypeError, OverflowError) as exc:
        detail = " ".join(str(exc).split(";")[0].split())[:120]
        raise CorruptExport(f"{path}: {reader.__name__.removeprefix('read_')}: a value has the wrong type or is "
                            f"out of range ({detail}); is the export corrupt?") from exc


def _plural(n: int, label: str) -> str:
    return f"{n} {label}{'' if n == 1 else 's'}"


def _was(n: int) -> str:
    return "was" if n == 1 else "were"


def _row_checks(frame: pl.DataFrame) -> list[tuple[str, pl.Expr]]:
    """(description, expression that is True for a row to skip), in reporting order."""
    start, end = pl.col("start"), pl.col("end")
    checks = [
        ("with NULL start/end timestamps", start.is_null() | end.is_null()),
        ("with negative timestamps", start < 0),
        ("with end < start", end < start),
    ]
    if "device_id" in frame.columns:
        checks.append(("with NULL deviceId", pl.col("device_id").is_null()))
    if "bytes" in frame.columns:
        checks.append(("with NULL or negative bytes", pl.col("bytes").is_null() | (pl.col("bytes") < 0)))
    return checks


def _rows_plainly_valid(frame: pl.DataFrame) -> bool:
    """True when no row can fail ``_row_checks``, decided from column minima and null counts
    (a few vectorized reductions instead of one mask per check over every row)."""
    cols = [c for c in ("start", "end", "device_id", "bytes") if c in frame.columns]
    if any(frame.get_column(c).null_count() for c in cols):
        return False
    lows = frame.select(pl.col(c).min() for c in ("start", "bytes") if c in frame.columns).row(0)
    return all(v is None or v >= 0 for v in lows) and bool(frame.select((pl.col("end") >= pl.col("start")).all()).item())


def clean(kind: str, frame: pl.DataFrame, source: str = "") -> tuple[pl.DataFrame, list[str]]:
    """Skip unusable rows of an activity frame (``kind`` = kernels, memcpy, memset, api, nvtx)
    and return the frame with one warning per anomaly found. Other kinds pass through.
    ``source`` (the trace path) prefixes error messages."""
    if kind not in LABELS or frame.height == 0:
        return frame, []
    label, warnings = LABELS[kind], []
    checks = _row_checks(frame)
    # Each row is counted under the first check it fails (NULL end is not also "end < start").
    flags = [expr.fill_null(False) for _, expr in checks]
    firsts, remaining = [], pl.lit(True)
    for i, flag in enumerate(flags):
        firsts.append((remaining & flag).sum().alias(str(i)))
        remaining = remaining & ~flag
    counts = [0] if _rows_plainly_valid(frame) else frame.select(firsts).row(0)
    if any(counts):
        for (what, _), n in zip(checks, counts):
            if n:
                warnings.append(f"{_plural(n, label)} {what} {_was(n)} skipped")
        frame = frame.filter(~pl.any_horizontal(flags))
    keys = [k for k in IDENTITY[kind] if k in frame.columns]
    duplicated = _count_duplicates(frame, keys)
    if duplicated:
        frame = frame.unique(subset=keys, keep="first", maintain_order=True)
        warnings.append(f"{_plural(duplicated, 'duplicated ' + label + ' row')} (same {', '.join(keys)}) "
                        f"{_was(duplicated)} dropped")
    if kind == "kernels":
        frame, note = _null_bad_launch_values(frame)
        warnings += note
        unnamed = int(frame.select((pl.col("name") == "<unknown>").sum()).item())
        if unnamed:
            warnings.append(f"{_plural(unnamed, 'kernel')} without a resolvable name (id missing from StringIds) "
                            f"{'is' if unnamed == 1 else 'are'} listed as <unknown>")
    _check_sums(kind, frame, source)
    return frame, warnings


def _count_duplicates(frame: pl.DataFrame, keys: list[str]) -> int:
    """Rows that repeat an earlier row's ``keys``. In a start-ordered frame (every reader orders
    by start) only rows sharing their start with a neighbour can repeat one, so the hashing
    runs on those few rows, not on a copy of the whole key set."""
    if frame.height == 0:
        return 0
    start = frame.get_column("start")
    if "start" in keys and start.is_sorted():
        tied = (start == start.shift(1)).fill_null(False) | (start == start.shift(-1)).fill_null(False)
        candidates = frame.select(keys).filter(tied)
        return candidates.height - candidates.n_unique() if candidates.height else 0
    return frame.height - frame.select(keys).n_unique()


def _null_bad_launch_values(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Launch-configuration values outside [0, 2^31) are nonsense: treat them as unknown (NULL)."""
    cols = [c for c in LAUNCH_COLUMNS if c in frame.columns]
    if not cols:
        return frame, []
    bounds = frame.select(*(pl.col(c).min().alias(f"lo{c}") for c in cols),
                          *(pl.col(c).max().alias(f"hi{c}") for c in cols)).row(0)
    if all(v is None or 0 <= v < INT32_LIMIT for v in bounds):  # the usual case: no row to look at
        return frame, []
    bad = pl.any_horizontal([((pl.col(c) < 0) | (pl.col(c) >= INT32_LIMIT)).fill_null(False) for c in cols])
    n = int(frame.select(bad.sum()).item())
    if not n:
        return frame, []
    frame = frame.with_columns(
        [pl.when((pl.col(c) < 0) | (pl.col(c) >= INT32_LIMIT)).then(None).otherwise(pl.col(c)).alias(c) for c in cols]
    )
    return frame, [f"{_plural(n, 'kernel')} with out-of-range launch values (grid, block, registers or "
                   f"shared memory) {'has' if n == 1 else 'have'} those values treated as unknown"]


def _check_sums(kind: str, frame: pl.DataFrame, source: str) -> None:
    """Totals are 64-bit integers: refuse inputs whose sums would wrap around."""
    cols = [c for c in ("duration", "bytes") if c in frame.columns]
    bounds = frame.select(*(pl.col(c).min().alias(f"lo{c}") for c in cols),
                          *(pl.col(c).max().alias(f"hi{c}") for c in cols)).row(0)
    if max((abs(v) for v in bounds if v is not None), default=0) * frame.height <= INT64_MAX:
        return  # even every value at the largest magnitude sums within range
    sums = frame.select([pl.col(c).cast(pl.Int128).abs().sum().alias(c) for c in cols]).row(0)  # exact
    for col, total in zip(cols, sums):
        if total is not None and total > INT64_MAX:
            raise CorruptExport(f"{source}: {LABELS[kind]} {col} values sum beyond the 64-bit range; "
                                "the timestamps or sizes in the export are corrupt")
