"""The fast readers (the native page reader, then connectorx, rowid-split, StringIds joined in
polars) return exactly what the sqlite3 reader returns, on every real export; and they never
write to the file."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from paths import ALL_EXPORTS, H200, ORACLE, trace_id
from traceview.ingest import btree, fastread, open_export, tables

pytestmark = pytest.mark.skipif(not fastread.available(), reason="connectorx is not installed")

READERS = [tables.read_kernels, tables.read_memcpy, tables.read_memset, tables.read_api, tables.read_nvtx]


def _read(path: Path, reader, mode: str, monkeypatch) -> pl.DataFrame:
    monkeypatch.setenv(fastread.READER_ENV, mode)
    with open_export(path) as trace:
        return reader(trace.connection, trace.info)


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows with equal start may come in either order from SQLite's sorter."""
    return frame.sort(frame.columns, nulls_last=True)


@pytest.mark.parametrize("mode", ["fast", "connectorx"])
@pytest.mark.parametrize("path", ALL_EXPORTS, ids=trace_id)
def test_fast_reader_equals_sqlite3_reader(path: Path, mode: str, monkeypatch) -> None:
    for reader in READERS:
        slow = _read(path, reader, "sqlite3", monkeypatch)
        fast = _read(path, reader, mode, monkeypatch)
        assert_frame_equal(_canonical(fast), _canonical(slow), check_exact=True)
        assert fast.get_column("start").is_sorted(), reader.__name__


def test_fast_path_is_really_taken(monkeypatch) -> None:
    """Guard against a silent fallback: the fast reader itself answers for a real kernel
    table, and its names equal those of `nsys stats` (the oracle CSV)."""
    monkeypatch.setenv(fastread.READER_ENV, "fast")
    captured = {}
    real = tables.read_frame

    def spy(conn, sql, schema, params=(), plan=None):
        captured["plan"] = plan
        return real(conn, sql, schema, params, plan)

    monkeypatch.setattr(tables, "read_frame", spy)
    with open_export(H200 / "h200_baseline.sqlite") as trace:
        tables.read_kernels(trace.connection, trace.info)
        frame = fastread.read_fast(trace.connection, captured["plan"], _kernel_schema())
    assert frame is not None and frame.height == 320
    with (ORACLE / "h200_baseline_gpukernsum.csv").open() as fh:
        oracle: dict[str, int] = {}
        for row in csv.DictReader(fh):  # one row per name + grid + block
            oracle[row["Name"]] = oracle.get(row["Name"], 0) + int(row["Instances"])
    counts = dict(frame.group_by("name").len().iter_rows())
    assert counts == oracle


def _kernel_schema() -> dict[str, pl.DataType]:
    from traceview.model import columns as C

    return {k: v for k, v in C.KERNELS.items() if k not in ("is_nccl", "nccl_collective")}


def test_connectorx_url_opens_read_only(tmp_path: Path) -> None:
    """Through the URL the fast path builds, a write is refused by SQLite itself (mode=ro);
    through connectorx's plain sqlite:// URL the same write succeeds: the check can fail."""
    import connectorx as cx

    copy = tmp_path / "dir with space" / "t.sqlite"
    copy.parent.mkdir()
    shutil.copyfile(H200 / "h200_baseline.sqlite", copy)
    before = copy.read_bytes()
    with pytest.raises(Exception, match="readonly"):
        cx.read_sql(fastread._url(str(copy)), "PRAGMA user_version = 7", return_type="arrow")
    assert copy.read_bytes() == before and os.listdir(copy.parent) == ["t.sqlite"]
    with contextlib.suppress(Exception):  # connectorx complains about the empty result, after writing
        cx.read_sql(f"sqlite://{copy}", "PRAGMA user_version = 7", return_type="arrow")
    assert copy.read_bytes() != before


def test_auto_mode_keeps_small_tables_on_sqlite3(monkeypatch) -> None:
    monkeypatch.setenv(fastread.READER_ENV, "auto")
    with open_export(H200 / "h200_baseline.sqlite") as trace:
        plan = fastread.Plan(tables.KERNEL_TABLE, [fastread.Col("t.start AS start", "start", "t.start")])
        assert fastread.read_fast(trace.connection, plan, {"start": pl.Int64}) is None
    monkeypatch.setenv(fastread.READER_ENV, "fast")
    with open_export(H200 / "h200_baseline.sqlite") as trace:
        frame = fastread.read_fast(trace.connection, plan, {"start": pl.Int64})
        direct = trace.connection.execute(f"SELECT start FROM {tables.KERNEL_TABLE}").fetchall()
    assert frame is not None and sorted(frame.get_column("start").to_list()) == sorted(r[0] for r in direct)


@pytest.mark.parametrize("max_chunks", [1, 100])
def test_partitioned_reads_equal_one_read(max_chunks: int, monkeypatch) -> None:
    """The fast reader splits a big table into rowid ranges read in parallel, then copies the
    Arrow batches into one start-sorted chunk per column (or keeps few sorted chunks as they
    are); with tiny ranges (several partitions) the frames equal the sqlite3 reader's."""
    monkeypatch.setattr(fastread, "ROWS_PER_PART", 10)
    monkeypatch.setattr(fastread.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(fastread, "MAX_CHUNKS", max_chunks)
    answered: list[bool] = []
    real = fastread.read_fast
    monkeypatch.setattr(fastread, "read_fast", lambda *a: answered.append(real(*a) is not None) or real(*a))
    path = H200 / "h200x2_nccl_tp_serial.sqlite"
    for reader in READERS:
        slow = _read(path, reader, "sqlite3", monkeypatch)
        answered.clear()
        fast = _read(path, reader, "connectorx", monkeypatch)
        assert answered and all(answered), f"{reader.__name__}: the fast reader declined"
        assert_frame_equal(_canonical(fast), _canonical(slow), check_exact=True)
        assert fast.get_column("start").is_sorted(), reader.__name__


@pytest.mark.skipif(not btree.available(), reason="the _btree extension is not built")
def test_native_path_is_really_taken(monkeypatch) -> None:
    """With connectorx made to fail, the fast reader still answers for the kernel and API
    tables of a real export: the native page reader did, with the sqlite3 reader's rows."""
    monkeypatch.setattr(fastread, "_read_arrow", lambda *a: 1 / 0)
    real = tables.read_frame
    for reader in (tables.read_kernels, tables.read_api):
        captured = {}
        monkeypatch.setattr(tables, "read_frame",
                            lambda conn, sql, schema, params=(), plan=None: captured.update(plan=plan, schema=schema)
                            or real(conn, sql, schema, params, plan))
        slow = _read(H200 / "h200_baseline.sqlite", reader, "sqlite3", monkeypatch)
        monkeypatch.setenv(fastread.READER_ENV, "fast")
        with open_export(H200 / "h200_baseline.sqlite") as trace:
            native = fastread.read_fast(trace.connection, captured["plan"], captured["schema"])
        assert native is not None and native.height == slow.height > 0
        assert_frame_equal(_canonical(native), _canonical(slow.select(native.columns)), check_exact=True)
