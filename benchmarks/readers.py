"""Compare ways to move SQLite rows into polars (the choice behind ``read_frame``): SQLite's own
readers (sqlite3, connectorx, ADBC, DuckDB's scanner) and traceview's native page reader.

Each candidate runs in its own child process (so peak RSS is its own) and reads the same
kernel columns from a big export made by ``make_big_trace.py``:

    python benchmarks/readers.py benchmarks/data/h200_baseline_10M.sqlite
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import measure  # noqa: E402

COLUMNS = ("start, [end], deviceId, streamId, correlationId, demangledName, shortName, "
           "gridX, gridY, gridZ, blockX, blockY, blockZ, registersPerThread")
SQL = f"SELECT {COLUMNS} FROM CUPTI_ACTIVITY_KIND_KERNEL"
CANDIDATES = ["sqlite3", "connectorx", "adbc", "duckdb", "native", "traceview"]


def _read(candidate: str, path: str) -> int:
    import polars as pl

    uri = f"file:{path}?mode=ro"
    if candidate == "sqlite3":
        import sqlite3

        cur = sqlite3.connect(uri, uri=True).execute(SQL)
        names = [d[0] for d in cur.description]
        chunks = []
        while rows := cur.fetchmany(200_000):
            chunks.append(pl.DataFrame(rows, schema=names, orient="row"))
        frame = pl.concat(chunks)
    elif candidate == "connectorx":
        import connectorx as cx

        frame = pl.from_arrow(cx.read_sql(f"sqlite://{path}", SQL, return_type="arrow"))
    elif candidate == "adbc":
        import adbc_driver_sqlite.dbapi as adbc

        with adbc.connect(uri) as conn, conn.cursor() as cur:
            cur.execute(SQL)
            frame = pl.from_arrow(cur.fetch_arrow_table())
    elif candidate == "duckdb":
        import duckdb
        import duckdb_extension_sqlite as ext

        import shutil
        import tempfile

        # The wheel ships the binary as sqlite.duckdb_extension; DuckDB wants its real name.
        binary = Path(tempfile.mkdtemp()) / "sqlite_scanner.duckdb_extension"
        shutil.copyfile(next(Path(ext.__file__).parent.rglob("*.duckdb_extension")), binary)
        con = duckdb.connect()
        con.execute(f"LOAD '{binary}'")
        con.execute(f"ATTACH '{path}' AS t (TYPE sqlite, READ_ONLY)")
        frame = con.execute(SQL.replace("CUPTI", "t.CUPTI").replace("[end]", '"end"')).pl()
    elif candidate == "native":  # traceview.ingest.btree: the table's pages decoded in C
        from traceview.ingest import btree
        from traceview.ingest.sqlite import connect_readonly

        columns = [c.strip().strip("[]") for c in COLUMNS.split(",")]
        frame = btree.read(connect_readonly(Path(path)), path, "CUPTI_ACTIVITY_KIND_KERNEL",
                           {c: f"t.{c}" for c in columns})
    else:
        from traceview.ingest.sqlite import connect_readonly, read_frame

        conn = connect_readonly(Path(path))
        cur = conn.execute(SQL + " LIMIT 0")
        frame = read_frame(conn, SQL, {d[0]: pl.Int64 for d in cur.description})
    return frame.height


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        t0 = time.perf_counter()
        rows = _read(sys.argv[2], sys.argv[3])
        print(json.dumps({"rows": rows, "s": time.perf_counter() - t0}))
        return 0
    path = str(Path(sys.argv[1]).resolve())
    for cand in sys.argv[2:] or CANDIDATES:
        run = measure([sys.executable, __file__, "--child", cand, path])
        if run.returncode:
            print(f"{cand:12s} failed: {run.stderr.strip().splitlines()[-1:]}")
            continue
        out = json.loads(run.stdout)
        print(f"{cand:12s} {out['rows']:>10d} rows {out['s']:7.2f} s read, {run.wall_s:6.2f} s process, "
              f"peak {run.peak_rss_mib:7.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
