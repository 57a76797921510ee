"""Build a large Nsight Systems export from a real one, for benchmarks.

The source export is COPIED to ``--out`` (the original is only read), then its activity rows
(kernels, runtime/driver API calls, memcpy, memset, NVTX ranges) are replicated in SQL: copy
``k`` is shifted by ``k`` times the source's time span (plus a 1 ms gap) and gets correlation
ids offset by ``k`` times (max correlation id + 1), so every id stays unique and every kernel
still matches its launch call. The kernel table ends with exactly ``--kernels`` rows.

    python benchmarks/make_big_trace.py --kernels 1000000
    python benchmarks/make_big_trace.py --kernels 10000000 --source /work/shared/traces/h200/h200_baseline.sqlite
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_SOURCES = [Path(os.environ.get("TRACEVIEW_SHARED", REPO.parent / "shared")) / "traces" / "h200" / "h200_baseline.sqlite",
                   REPO / "sample_traces" / "h200_baseline.sqlite"]
KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
REPLICATED = [KERNEL, "CUPTI_ACTIVITY_KIND_RUNTIME", "CUPTI_ACTIVITY_KIND_MEMCPY",
              "CUPTI_ACTIVITY_KIND_MEMSET", "NVTX_EVENTS"]
NVTX_RANGES = "eventType IN (59, 60, 70, 71)"  # domain-create and other markers are not copied


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


def _span(conn: sqlite3.Connection, tables: list[str]) -> tuple[int, int]:
    """(time shift per copy, correlation id shift per copy) over all replicated tables."""
    lo, hi, corr = None, 0, 0
    for t in tables:
        a, b = conn.execute(f'SELECT min(start), max(coalesce("end", start)) FROM "{t}"').fetchone()
        if a is not None:
            lo = a if lo is None else min(lo, a)
            hi = max(hi, b)
        if "correlationId" in _columns(conn, t):
            corr = max(corr, conn.execute(f'SELECT coalesce(max(correlationId), 0) FROM "{t}"').fetchone()[0])
    return (hi - (lo or 0)) + 1_000_000, corr + 1


def _replicate(conn: sqlite3.Connection, table: str, copies: int, shift: int, corr_shift: int,
               limit: int | None = None) -> None:
    """Append ``copies`` shifted copies of the original rows of ``table`` (at most ``limit`` rows)."""
    cols = _columns(conn, table)
    exprs = []
    for c in cols:
        if c in ("start", "end"):
            exprs.append(f'CASE WHEN t."{c}" IS NULL THEN NULL ELSE t."{c}" + c.k * {shift} END')
        elif c == "correlationId":
            exprs.append(f"t.correlationId + c.k * {corr_shift}")
        else:
            exprs.append(f't."{c}"')
    where = f"WHERE t.{NVTX_RANGES}" if table == "NVTX_EVENTS" else ""
    base_rows = conn.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()[0] or 0
    sql = (f"WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < {copies}) "
           f'INSERT INTO "{table}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) '
           f'SELECT {", ".join(exprs)} FROM c CROSS JOIN (SELECT * FROM "{table}" WHERE rowid <= {base_rows}) AS t '
           f"{where}" + (f" LIMIT {limit}" if limit is not None else ""))
    conn.execute(sql)


def build(source: Path, kernels: int, out: Path) -> Path:
    """Copy ``source`` to ``out`` and grow it to ``kernels`` kernel rows; returns the new file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    shutil.copyfile(source, tmp)
    tmp.chmod(0o644)
    conn = sqlite3.connect(tmp)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables = [t for t in REPLICATED if t in have]
        base = conn.execute(f"SELECT count(*) FROM {KERNEL}").fetchone()[0]
        if base == 0 or kernels < base:
            raise SystemExit(f"{source}: has {base} kernels; need a source with 1..{kernels} kernels")
        copies = -(-kernels // base) - 1
        shift, corr_shift = _span(conn, tables)
        for table in tables:
            limit = kernels - base if table == KERNEL else None
            if copies:
                _replicate(conn, table, copies, shift, corr_shift, limit)
            conn.commit()
        got = conn.execute(f"SELECT count(*) FROM {KERNEL}").fetchone()[0]
        assert got == kernels, (got, kernels)
    finally:
        conn.close()
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, action="append", help="kernel rows wanted (repeatable)")
    parser.add_argument("--source", type=Path, help="real nsys SQLite export to grow (default: h200_baseline)")
    parser.add_argument("--out-dir", type=Path, default=HERE / "data")
    parser.add_argument("--force", action="store_true", help="rebuild files that exist")
    args = parser.parse_args(argv)
    source = args.source or next((p for p in DEFAULT_SOURCES if p.is_file()), None)
    if source is None or not source.is_file():
        print(f"make_big_trace: no source export (tried {', '.join(map(str, DEFAULT_SOURCES))})", file=sys.stderr)
        return 2
    for n in args.kernels or [1_000_000, 10_000_000]:
        out = args.out_dir / f"{source.stem}_{_label(n)}.sqlite"
        if out.exists() and not args.force:
            print(f"{out}: exists (use --force to rebuild)")
            continue
        t0 = time.perf_counter()
        build(source, n, out)
        print(f"{out}: {n} kernels, {out.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s")
    return 0


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


if __name__ == "__main__":
    raise SystemExit(main())
