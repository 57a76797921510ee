"""The native page reader (traceview.ingest.btree) returns exactly what SQLite returns for the
same columns in rowid order, or None; it never crashes on a damaged file and never writes."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from paths import ALL_EXPORTS, H200, trace_id

from traceview.ingest import btree

pytestmark = pytest.mark.skipif(not btree.available(), reason="the _btree extension is not built")

TABLES = ["CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_RUNTIME", "CUPTI_ACTIVITY_KIND_MEMCPY",
          "CUPTI_ACTIVITY_KIND_MEMSET", "NVTX_EVENTS", "StringIds", "TARGET_INFO_GPU"]


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _sqlite_columns(conn: sqlite3.Connection, table: str, columns: list[str]) -> list[list]:
    rows = conn.execute(f'SELECT {", ".join(f"[{c}]" for c in columns)} FROM "{table}" ORDER BY rowid').fetchall()
    return [list(col) for col in zip(*rows)] if rows else [[] for _ in columns]


def _check(path: Path, table: str, integer_only: bool = False) -> bool:
    """Native == SQLite for every column of ``table`` (declared INTEGER only: ``integer_only``);
    True when the native reader answered. When it declines, some value is not an integer."""
    with _connect(path) as conn:
        columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')
                   if not integer_only or r[2].upper() == "INTEGER"]
        frame = btree.read(conn, str(path), table, {f"c{i}": f"t.[{c}]" for i, c in enumerate(columns)})
        expected = _sqlite_columns(conn, table, columns)
        if frame is None:
            types = {t for c in columns for (t,) in conn.execute(f'SELECT DISTINCT typeof([{c}]) FROM "{table}"')}
            assert types - {"integer", "null"}, f"{table}: declined a table of integers"
            return False
    assert frame.columns == [f"c{i}" for i in range(len(columns))]
    for i, values in enumerate(expected):
        assert frame.get_column(f"c{i}").to_list() == values, (table, columns[i])
    return True


@pytest.mark.parametrize("path", ALL_EXPORTS, ids=trace_id)
def test_native_reader_equals_sqlite_on_real_exports(path: Path) -> None:
    with _connect(path) as conn:
        present = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table in TABLES:
        if table in present:
            _check(path, table)
    if "CUPTI_ACTIVITY_KIND_KERNEL" in present:  # its INTEGER columns: the native path must answer
        assert _check(path, "CUPTI_ACTIVITY_KIND_KERNEL", integer_only=True)


INTEGERS = st.one_of(
    st.none(), st.integers(-2**63, 2**63 - 1),
    st.sampled_from([0, 1, -1, 127, 128, -129, 2**15, 2**23, -2**23 - 1, 2**31, 2**47, -2**47, 2**63 - 1, -2**63]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(INTEGERS, INTEGERS, INTEGERS), min_size=0, max_size=1500),
       page_size=st.sampled_from([512, 1024, 4096, 65536]), added=st.integers(0, 40),
       deleted=st.integers(0, 200), rowid_alias=st.booleans())
def test_native_reader_equals_sqlite_on_generated_tables(tmp_path: Path, rows, page_size, added, deleted,
                                                         rowid_alias) -> None:
    """Every integer width SQLite stores, NULLs, rows written before ALTER TABLE ADD COLUMN (shorter
    records), deleted rows (sparse rowids, free pages), an INTEGER PRIMARY KEY, several levels of
    interior pages with small pages."""
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "g.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA page_size = {page_size}")
        key = "id INTEGER PRIMARY KEY, " if rowid_alias else ""
        conn.execute(f"CREATE TABLE t ({key}a INTEGER, b INTEGER NOT NULL, c)")
        conn.executemany("INSERT INTO t (a, b, c) VALUES (?, ?, ?)", [(a, b or 0, c) for a, b, c in rows[:added]])
        conn.execute("ALTER TABLE t ADD COLUMN d INTEGER")
        conn.executemany("INSERT INTO t (a, b, c, d) VALUES (?, ?, ?, ?)",
                         [(a, b or 0, c, a) for a, b, c in rows[added:]])
        conn.execute("DELETE FROM t WHERE rowid % 7 = 3 AND rowid < ?", (deleted,))
    assert _check(path, "t")


def test_declines_what_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE ints (a INTEGER, b INTEGER DEFAULT 5)")
        conn.execute("CREATE TABLE mixed (a)")
        conn.execute("CREATE TABLE keyed (k INTEGER, v INTEGER, PRIMARY KEY (k, v)) WITHOUT ROWID")
        conn.execute("CREATE TABLE desc_key (k INTEGER PRIMARY KEY DESC, v INTEGER)")
        conn.executemany("INSERT INTO ints (a) VALUES (?)", [(i,) for i in range(10)])
        conn.executemany("INSERT INTO mixed VALUES (?)", [(1,), (2.5,), ("x",)])
        conn.executemany("INSERT INTO desc_key VALUES (?, ?)", [(i * 3, i) for i in range(10)])
    with _connect(path) as conn:
        read = lambda table, cols: btree.read(conn, str(path), table, cols)
        assert read("ints", {"a": "t.a"}).get_column("a").to_list() == list(range(10))
        assert read("ints", {"b": "t.b"}) is None           # a DEFAULT: short records need SQLite
        assert read("ints", {"a": "t.a + 1"}) is None       # an expression
        assert read("mixed", {"a": "t.a"}) is None          # REAL and TEXT values
        assert read("keyed", {"k": "t.k"}) is None          # not a rowid table
        assert read("desc_key", {"k": "t.k"}).get_column("k").to_list() == [i * 3 for i in range(10)]  # not a rowid alias
        assert read("missing", {"a": "t.a"}) is None
    wal = tmp_path / "w.sqlite"
    with sqlite3.connect(wal) as conn:
        conn.execute("PRAGMA journal_mode = wal")
        conn.execute("CREATE TABLE ints (a INTEGER)")
        conn.execute("INSERT INTO ints VALUES (1)")
        with _connect(wal) as ro:  # the writer is still open: pages may live in the -wal file
            assert btree.read(ro, str(wal), "ints", {"a": "t.a"}) is None


@pytest.mark.parametrize("seed", range(3))
def test_damaged_files_never_crash(tmp_path: Path, seed: int) -> None:
    """Random bytes of the kernel table's pages overwritten, then a truncated file: the reader
    answers None or a frame, never crashes the process (each offset is bounds-checked)."""
    source = H200 / "h200_baseline.sqlite"
    with _connect(source) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'CUPTI_ACTIVITY_KIND_KERNEL'").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(seed)
    pages = (btree._subtrees(str(source), root, 64) or [root]) + [root]
    for page in pages:
        start = (page - 1) * page_size
        for offset in rng.integers(0, page_size, 40):
            data[start + int(offset)] = int(rng.integers(0, 256))
    damaged = tmp_path / "damaged.sqlite"
    for body in (bytes(data), bytes(data[: len(data) // 3])):
        damaged.write_bytes(body)
        with _connect(damaged) as conn, contextlib.suppress(sqlite3.DatabaseError):  # SQLite's own complaint
            btree.read(conn, str(damaged), "CUPTI_ACTIVITY_KIND_KERNEL", {"start": "t.start", "grid": "t.gridX"})


def test_reads_without_writing(tmp_path: Path) -> None:
    copy = tmp_path / "t.sqlite"
    shutil.copyfile(H200 / "h200_baseline.sqlite", copy)
    before = copy.read_bytes()
    with _connect(copy) as conn:
        assert btree.read(conn, str(copy), "CUPTI_ACTIVITY_KIND_KERNEL", {"start": "t.start"}).height == 320
    assert copy.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["t.sqlite"]


@pytest.mark.parametrize("parts", [1, 3])
def test_deep_tree_read_in_parts(tmp_path: Path, monkeypatch, parts: int) -> None:
    """60k rows in 512-byte pages: three levels of interior pages, read by ``parts`` threads
    over consecutive subtrees, in rowid order."""
    monkeypatch.setattr(btree, "PARTS", parts)
    path = tmp_path / "deep.sqlite"
    rng = np.random.default_rng(7)
    values = rng.integers(-2**40, 2**40, (60_000, 2)).tolist()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA page_size = 512")
        conn.execute("CREATE TABLE t (a INTEGER, b INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", values)
    with _connect(path) as conn:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 't'").fetchone()[0]
        assert len(btree._subtrees(str(path), root, 10**6)) > 1000  # the leaves, two levels down
    assert _check(path, "t")
