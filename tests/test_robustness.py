"""Hostile and broken inputs made from the real traces (tmp_path copies): every one gives a
correct analysis with a warning naming the anomaly, or one error line with exit code 2."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

import traceview
from hostile import (BASELINE, BASELINE_TOTALS, KERNEL, MEMCPY, analyze_json, assert_one_line_error, copy_trace,
                     edit, kernel_totals, relax, run_cli, sha256, variant)
from traceview.errors import CorruptExport

INT64_MAX = 2**63 - 1
HANG_LIMIT_S = 30


@pytest.fixture(autouse=True)
def no_hang():
    """Every case here must finish: an in-process run that hangs fails instead of blocking CI."""
    def timeout(*_):
        raise TimeoutError(f"hostile-input case ran longer than {HANG_LIMIT_S} s")
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(HANG_LIMIT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def baseline_sql(sql: str, params: tuple = ()) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{BASELINE}?mode=ro", uri=True)) as conn:
        return conn.execute(sql, params).fetchall()


def rowids_of(name: str, n: int) -> list[int]:
    return [r[0] for r in baseline_sql(f"SELECT k.rowid FROM {KERNEL} k JOIN StringIds s ON s.id = k.demangledName "
                                       "WHERE s.value = ? ORDER BY k.start LIMIT ?", (name, n))]


def durations_of(rowids: list[int]) -> int:
    marks = ",".join("?" * len(rowids))
    return baseline_sql(f"SELECT sum([end] - start) FROM {KERNEL} WHERE rowid IN ({marks})", tuple(rowids))[0][0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The untouched baseline's report, the yardstick for every variant."""
    out = tmp_path_factory.mktemp("ref") / "ref.json"
    res = analyze_json(BASELINE, out)
    assert res.code == 0 and res.data["warnings"] == []
    return res.data


def test_reference_totals_match_the_file(reference):
    rows = baseline_sql(f"SELECT s.value, sum(k.[end] - k.start) FROM {KERNEL} k JOIN StringIds s "
                        "ON s.id = k.demangledName GROUP BY 1")
    assert {n: t for n, t in rows if n in BASELINE_TOTALS} == BASELINE_TOTALS
    assert {n: t for n, t in kernel_totals(reference).items() if n in BASELINE_TOTALS} == BASELINE_TOTALS


# --- files that cannot be analyzed: one line, exit 2 -------------------------------------------

def _other_app(tmp: Path) -> Path:
    path = tmp / "places.sqlite"
    edit(path, "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)",
         ("INSERT INTO moz_places (url) VALUES (?)", ("https://example.org",)))
    return path


def _truncated(offset: int):
    def build(tmp: Path) -> Path:
        path = tmp / f"truncated_{offset}.sqlite"
        path.write_bytes(BASELINE.read_bytes()[:offset])
        return path
    return build


def _sum_overflow(tmp: Path) -> Path:
    ids = rowids_of("gelu_inplace", 2)
    return variant(tmp, "overflow",
                   f"UPDATE {KERNEL} SET start = 0, [end] = {INT64_MAX} WHERE rowid IN ({ids[0]}, {ids[1]})")


SIZE = BASELINE.stat().st_size
ERRORS = {
    "zero_length": (lambda tmp: (tmp / "empty.sqlite", (tmp / "empty.sqlite").write_bytes(b""))[0], "empty file"),
    "text_named_sqlite": (lambda tmp: (tmp / "t.sqlite", (tmp / "t.sqlite").write_text("id,start\n1,2\n"))[0],
                          "not an SQLite file"),
    "other_application": (_other_app, "not an Nsight Systems export"),
    **{f"truncated_at_{off}": (_truncated(off), "not an SQLite file" if off < 16 else "truncated")
       for off in (1, 15, 16, 99, 100, 4095, 4096, 4097, 65536, SIZE // 2, SIZE - 4096, SIZE - 1)},
    "kernel_table_without_start": (lambda tmp: variant(tmp, "nostart", *relax(KERNEL, drop=("start",))),
                                   "CUPTI_ACTIVITY_KIND_KERNEL lacks required column(s) start"),
    "memcpy_without_bytes": (lambda tmp: variant(tmp, "nobytes", *relax(MEMCPY, drop=("bytes",))),
                             "CUPTI_ACTIVITY_KIND_MEMCPY lacks required column(s) bytes"),
    "no_stringids": (lambda tmp: variant(tmp, "nostrings", "DROP TABLE StringIds"), "StringIds is missing"),
    "kernel_table_with_0_rows": (lambda tmp: variant(tmp, "nokernels", f"DELETE FROM {KERNEL}"),
                                 "no CUDA kernel activity"),
    "duration_sum_overflows_int64": (_sum_overflow, "64-bit range"),
    "text_in_timestamp": (lambda tmp: variant(tmp, "textts", f"UPDATE {KERNEL} SET start = 'soon' WHERE rowid = 3"),
                          "wrong type"),
    "value_beyond_sqlite_length_limit": (
        lambda tmp: variant(tmp, "huge", ("UPDATE StringIds SET value = ? WHERE value = 'stream_triad'",
                                          ("x" * (65 * 2**20),))), "exceeds 64 MiB"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_broken_file_gives_one_line_error(tmp_path, case):
    build, needle = ERRORS[case]
    trace = build(tmp_path)
    out = tmp_path / "report.json"
    assert_one_line_error(analyze_json(trace, out), needle)
    assert not out.exists()


def test_memory_guard_refuses_with_a_message(tmp_path):
    res = analyze_json(BASELINE, tmp_path / "r.json", env={"TRACEVIEW_MAX_MEMORY": "64K"})
    assert_one_line_error(res, "too large to analyze in memory", "CUPTI_ACTIVITY_KIND_", "TRACEVIEW_MAX_MEMORY")


def test_billions_of_announced_rows_are_counted_not_trusted(tmp_path, reference):
    """max(rowid) says 5e9 rows; the exact count (321) fits, so the analysis runs and is right."""
    rid = rowids_of("stream_triad", 1)[0]
    trace = variant(tmp_path, "sparse", f"INSERT INTO {KERNEL} (rowid, {_kernel_cols()}) SELECT 5000000000, "
                    f"{_kernel_cols().replace('start', 'start + 1', 1)} FROM {KERNEL} WHERE rowid = {rid}")
    res = analyze_json(trace, tmp_path / "r.json", env={"TRACEVIEW_MAX_MEMORY": "4G"})
    assert res.code == 0, res.stderr
    triad = next(k for k in res.data["kernels"] if k["name"] == "stream_triad")
    assert triad["instances"] == 2 and triad["total_ns"] == 2 * durations_of([rid]) - 1  # the copy starts 1 ns later


def _kernel_cols() -> str:
    return ", ".join(f"[{r[1]}]" if r[1] == "end" else r[1] for r in baseline_sql(f"PRAGMA table_info({KERNEL})"))


# --- files with bad rows: analysis of the good rows plus a warning naming the anomaly ----------

def _skip_case(tmp: Path, name: str, statements: list[str], kernel: str, rowids: list[int]) -> tuple[Path, dict]:
    expect = {kernel: BASELINE_TOTALS.get(kernel, 0) - durations_of(rowids)}
    return variant(tmp, name, *statements), expect


def test_end_before_start_rows_are_skipped_and_named(tmp_path, reference):
    ids = rowids_of("gemv_bf16_decode", 12)
    trace = variant(tmp_path, "reversed", f"UPDATE {KERNEL} SET start = [end], [end] = start "
                    f"WHERE rowid IN ({','.join(map(str, ids))})")
    data = analyze_json(trace, tmp_path / "r.json").data
    assert "12 kernels with end < start were skipped" in data["warnings"]
    gemv = next(k for k in data["kernels"] if k["name"] == "gemv_bf16_decode")
    assert gemv["instances"] == 96 - 12
    assert gemv["total_ns"] == BASELINE_TOTALS["gemv_bf16_decode"] - durations_of(ids)


@pytest.mark.parametrize("column, warning", [("start", "3 kernels with NULL start/end timestamps were skipped"),
                                             ("[end]", "3 kernels with NULL start/end timestamps were skipped"),
                                             ("deviceId", "3 kernels with NULL deviceId were skipped")])
def test_null_where_numbers_belong(tmp_path, column, warning):
    ids = rowids_of("reduce_small_grid", 3)
    trace = variant(tmp_path, "nulls", *relax(KERNEL),
                    f"UPDATE {KERNEL} SET {column} = NULL WHERE rowid IN ({','.join(map(str, ids))})")
    data = analyze_json(trace, tmp_path / "r.json").data
    assert warning in data["warnings"]
    red = next(k for k in data["kernels"] if k["name"] == "reduce_small_grid")
    assert (red["instances"], red["total_ns"]) == (21, BASELINE_TOTALS["reduce_small_grid"] - durations_of(ids))


def test_negative_timestamps_are_skipped(tmp_path):
    ids = rowids_of("reduce_small_grid", 2)
    trace = variant(tmp_path, "neg", f"UPDATE {KERNEL} SET start = -5 - start WHERE rowid IN ({ids[0]}, {ids[1]})")
    data = analyze_json(trace, tmp_path / "r.json").data
    assert "2 kernels with negative timestamps were skipped" in data["warnings"]
    assert kernel_totals(data)["reduce_small_grid"] == BASELINE_TOTALS["reduce_small_grid"] - durations_of(ids)


def test_duplicated_rows_are_dropped(tmp_path, reference):
    trace = variant(tmp_path, "dups", f"INSERT INTO {KERNEL} SELECT * FROM {KERNEL} ORDER BY start LIMIT 5",
                    f"INSERT INTO {MEMCPY} SELECT * FROM {MEMCPY} LIMIT 2")
    data = analyze_json(trace, tmp_path / "r.json").data
    assert any(w.startswith("5 duplicated kernel rows") for w in data["warnings"]), data["warnings"]
    assert any(w.startswith("2 duplicated memcpy rows") for w in data["warnings"]), data["warnings"]
    for key in ("kernels", "kernel_shapes", "memory_ops", "devices"):
        assert data[key] == reference[key], key


def test_null_bytes_in_memcpy_are_skipped(tmp_path, reference):
    trace = variant(tmp_path, "nullbytes", *relax(MEMCPY), f"UPDATE {MEMCPY} SET bytes = NULL WHERE rowid = 1")
    data = analyze_json(trace, tmp_path / "r.json").data
    assert "1 memcpy with NULL or negative bytes was skipped" in data["warnings"]
    assert sum(m["count"] for m in data["memory_ops"]) == sum(m["count"] for m in reference["memory_ops"]) - 1


def test_timestamps_near_int64_max_give_identical_results(tmp_path, reference):
    """All activity shifted so the last end is 2^63 - 1: durations, sums, utilization unchanged."""
    tables = [KERNEL, MEMCPY, "CUPTI_ACTIVITY_KIND_MEMSET", "CUPTI_ACTIVITY_KIND_RUNTIME", "NVTX_EVENTS"]
    last = max(baseline_sql(f"SELECT max([end]) FROM {t}")[0][0] for t in tables)
    shift = INT64_MAX - last
    trace = variant(tmp_path, "late", *[f"UPDATE {t} SET start = start + {shift}, [end] = [end] + {shift}"
                                        for t in tables])
    data = analyze_json(trace, tmp_path / "r.json").data
    assert data["warnings"] == []
    for key in ("kernels", "kernel_shapes", "memory_ops", "api_calls", "nvtx_ranges", "devices"):
        assert data[key] == reference[key], key
    assert data["trace"]["duration_ns"] == reference["trace"]["duration_ns"]


def test_kernel_table_without_demangled_name_uses_short_name(tmp_path, reference):
    trace = variant(tmp_path, "nodemangled", *relax(KERNEL, drop=("demangledName",)))
    data = analyze_json(trace, tmp_path / "r.json").data
    assert any("no demangledName" in w for w in data["warnings"])
    assert kernel_totals(data) == kernel_totals(reference)  # C kernels: short name == demangled name


def test_missing_string_id_is_named_unknown_with_warning(tmp_path):
    trace = variant(tmp_path, "lostname", "DELETE FROM StringIds WHERE value = 'stream_triad'")
    data = analyze_json(trace, tmp_path / "r.json").data
    assert any(w.startswith("1 kernel without a resolvable name") for w in data["warnings"])
    assert kernel_totals(data)["<unknown>"] == durations_of(rowids_of("stream_triad", 1))


def test_out_of_range_launch_values_become_unknown(tmp_path):
    ids = rowids_of("layernorm_rows", 2)
    trace = variant(tmp_path, "grid", f"UPDATE {KERNEL} SET gridX = -64, registersPerThread = {2**40} "
                    f"WHERE rowid IN ({ids[0]}, {ids[1]})")
    data = analyze_json(trace, tmp_path / "r.json").data
    assert any(w.startswith("2 kernels with out-of-range launch values") for w in data["warnings"])
    shapes = [s for s in data["kernel_shapes"] if s["name"] == "layernorm_rows"]
    assert sorted((s["grid_x"] is None, s["instances"]) for s in shapes) == [(False, 94), (True, 2)]


# --- hostile strings: escaped in every text output, kept verbatim in JSON ----------------------

EVIL = ("\x1b[2J\x1b]0;owned\x07[bold red]gelu[/bold red]\r\n<script>alert(1)</script>"
        "<img src=x onerror=alert(2)>|*_`@here\u202eevil\x00\x9b31m")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # anything but \t and \n


@pytest.fixture(scope="module")
def evil_trace(tmp_path_factory) -> Path:
    """Kernel names: escape sequences + markup + HTML, a 1 MB name, invalid UTF-8 bytes."""
    tmp = tmp_path_factory.mktemp("evil")
    return variant(tmp, "evil", ("UPDATE StringIds SET value = ? WHERE value = 'gelu_inplace'", (EVIL,)),
                   ("UPDATE StringIds SET value = ? WHERE value = 'reduce_small_grid'", ("k" * 2**20,)),
                   "UPDATE StringIds SET value = CAST(X'6c61796572ff6e6f726d80' AS TEXT) "
                   "WHERE value = 'layernorm_rows'")


def test_hostile_names_survive_json_verbatim(evil_trace, reference, tmp_path):
    data = analyze_json(evil_trace, tmp_path / "r.json").data
    assert "invalid UTF-8 in trace strings was replaced by U+FFFD" in data["warnings"]
    renamed = {EVIL: "gelu_inplace", "k" * 2**20: "reduce_small_grid", "layer\ufffdnorm\ufffd": "layernorm_rows"}
    assert {renamed.get(n, n): t for n, t in kernel_totals(data).items()} == kernel_totals(reference)


def test_terminal_output_neutralizes_escapes_and_markup(evil_trace):
    res = run_cli("analyze", str(evil_trace), "--top", "20")
    assert res.code == 0, res.stderr
    assert not CONTROL.search(res.stdout), CONTROL.search(res.stdout)
    assert "[bold red]gelu[/bold red]" in res.stdout  # rich markup shown literally, not applied
    assert "\\x1b[2J" in res.stdout and "\\u202eevil" in res.stdout  # visible escapes
    assert len(res.stdout) < 200_000  # the 1 MB name is cut in the table (JSON keeps it)
    assert "warning: invalid UTF-8" in res.stdout


def test_markdown_output_escapes_html_and_keeps_one_row_per_line(evil_trace):
    res = run_cli("analyze", str(evil_trace), "--format", "markdown", "--top", "20")
    assert res.code == 0, res.stderr
    md = res.stdout
    assert not CONTROL.search(md)
    assert "<script" not in md and "<img" not in md and "&lt;script&gt;" in md
    assert "@here" not in md  # no @-mentions from trace strings in PR comments
    kernel_rows = md.split("## Top kernels")[1].split("\n\n")[1].splitlines()
    assert len(kernel_rows) == 2 + 9 and all(r.startswith("| ") and r.endswith(" |") for r in kernel_rows[2:])
    evil_row = next(r for r in kernel_rows if "owned" in r)
    assert evil_row.count(" | ") == kernel_rows[0].count(" | ")  # the name's pipe is escaped: no extra cell


def test_error_lines_are_sanitized_too(tmp_path):
    name = tmp_path / "bad\x1b[31m\nname.sqlite"
    name.write_bytes(b"")
    line = assert_one_line_error(analyze_json(name, tmp_path / "o.json"), "empty file")
    assert not CONTROL.search(line) and "\\x1b[31m" in line


def test_html_report_escapes_hostile_names(evil_trace, tmp_path):
    pytest.importorskip("traceview.report.html")
    out = tmp_path / "r.html"
    res = run_cli("analyze", str(evil_trace), "--html", str(out), "-o", str(tmp_path / "r.txt"))
    assert res.code == 0, res.stderr
    page = out.read_text()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    remote = r"""<(script|link|img|iframe|object|embed|source)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//"""
    assert not re.search(remote, page, re.IGNORECASE)  # no remote resources


# --- read-only guarantees ----------------------------------------------------------------------

def test_readonly_file_in_readonly_directory_loads_and_nothing_is_created(tmp_path, reference):
    folder = tmp_path / "ro"
    folder.mkdir()
    trace = copy_trace(BASELINE, folder / "t.sqlite")
    before = sha256(trace)
    trace.chmod(0o444)
    folder.chmod(0o555)
    try:
        res = analyze_json(trace, tmp_path / "r.json")
        assert res.code == 0, res.stderr
        assert kernel_totals(res.data) == kernel_totals(reference)
        assert sorted(p.name for p in folder.iterdir()) == ["t.sqlite"]  # no -journal, -wal, -shm
        assert sha256(trace) == before
    finally:
        folder.chmod(0o755)


def test_exclusively_locked_database_gets_a_clear_message(tmp_path, monkeypatch, reference):
    monkeypatch.setattr("traceview.ingest.sqlite.BUSY_TIMEOUT_S", 0.2)
    trace = copy_trace(BASELINE, tmp_path / "t.sqlite")
    writer = sqlite3.connect(trace, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        assert_one_line_error(analyze_json(trace, tmp_path / "r.json"), "locked by another process")
        writer.execute("ROLLBACK")
        loaded = traceview.load(trace)  # opened, then a writer locks it before the lazy load
        writer.execute("BEGIN EXCLUSIVE")
        with pytest.raises(CorruptExport, match="locked by another process"):
            _ = loaded.kernels
        writer.execute("ROLLBACK")
        # a pending (uncommitted) write does not block readers, who see the committed data
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(f"DELETE FROM {KERNEL}")
        res = analyze_json(trace, tmp_path / "r.json")
        assert res.code == 0 and kernel_totals(res.data) == kernel_totals(reference)
        writer.execute("ROLLBACK")
    finally:
        writer.close()


def test_hot_journal_is_refused_not_rolled_back(tmp_path):
    trace = copy_trace(BASELINE, tmp_path / "t.sqlite")
    crash = ("import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
             "c.execute('PRAGMA cache_size = 1'); c.execute('BEGIN'); "
             f"c.execute('UPDATE {KERNEL} SET start = start + 1'); os._exit(0)")
    subprocess.run([sys.executable, "-c", crash, str(trace)], check=True, timeout=60)
    journal = tmp_path / "t.sqlite-journal"
    assert journal.stat().st_size > 0
    before = sha256(trace), sha256(journal)
    assert_one_line_error(analyze_json(trace, tmp_path / "r.json"), "hot journal")
    assert (sha256(trace), sha256(journal)) == before


# --- outputs -------------------------------------------------------------------------------------

def test_failed_run_leaves_existing_output_intact(tmp_path):
    out = tmp_path / "report.json"
    out.write_text('{"previous": true}\n')
    broken = variant(tmp_path, "broken", f"UPDATE {KERNEL} SET start = 'soon' WHERE rowid = 3")
    assert traceview.load(broken)  # opens fine: the failure comes mid-analysis, when kernels load
    assert_one_line_error(analyze_json(broken, out), "wrong type")
    assert out.read_text() == '{"previous": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.sqlite", "report.json"]  # no temp files left


def test_outputs_go_exactly_where_named(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    assert run_cli("analyze", str(BASELINE), "-f", "json", "-o", str(link)).code == 0
    assert target.read_text() == "keep me" and not link.is_symlink() and json.loads(link.read_text())["kernels"]
    for bad, needle in ((tmp_path, "is a directory"), (tmp_path / "missing" / "r.json", "cannot write"),
                        (copy_trace(BASELINE, tmp_path / "t.sqlite"), "refusing to overwrite")):
        assert_one_line_error(run_cli("analyze", str(BASELINE), "-f", "json", "-o", str(bad)), needle)
    assert sha256(tmp_path / "t.sqlite") == sha256(BASELINE)


# --- the real CLI process: exit codes and stderr without in-process help ------------------------

def test_subprocess_broken_inputs_exit_2_without_traceback(tmp_path, evil_trace):
    truncated = tmp_path / "t.sqlite"
    truncated.write_bytes(BASELINE.read_bytes()[:200_000])
    proc = subprocess.run([sys.executable, "-m", "traceview", "analyze", str(truncated)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("traceview: error:") and "truncated" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "traceview", "analyze", str(evil_trace), "-f", "markdown"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not CONTROL.search(proc.stdout) and "<script" not in proc.stdout


# --- both readers (sqlite3 and the connectorx fast path for big tables) agree on bad rows -------

def _reader_cases() -> dict[str, list]:
    gemv, red = rowids_of("gemv_bf16_decode", 4), rowids_of("reduce_small_grid", 2)
    return {
        "end_before_start": [f"UPDATE {KERNEL} SET start = [end], [end] = start WHERE rowid IN ({gemv[0]}, {gemv[1]})"],
        "null_start": [*relax(KERNEL), f"UPDATE {KERNEL} SET start = NULL WHERE rowid = {red[0]}"],
        "duplicates": [f"INSERT INTO {KERNEL} SELECT * FROM {KERNEL} LIMIT 3"],
        "invalid_utf8": ["UPDATE StringIds SET value = CAST(X'67656c75ff' AS TEXT) WHERE value = 'gelu_inplace'"],
        "text_in_timestamp": [f"UPDATE {KERNEL} SET [end] = 'later' WHERE rowid = {red[1]}"],
        "missing_string": ["DELETE FROM StringIds WHERE value = 'stream_triad'"],
        "real_in_integer": [f"UPDATE {KERNEL} SET start = start + 0.5 WHERE rowid = {gemv[2]}"],
    }


@pytest.mark.parametrize("case", ["end_before_start", "null_start", "duplicates", "invalid_utf8",
                                  "text_in_timestamp", "missing_string", "real_in_integer"])
def test_fast_reader_agrees_with_sqlite3_reader(tmp_path, case):
    pytest.importorskip("connectorx")
    trace = variant(tmp_path, case, *_reader_cases()[case])
    slow, fast = (analyze_json(trace, tmp_path / f"{r}.json", env={"TRACEVIEW_READER": r}) for r in ("sqlite3", "fast"))
    assert (slow.code, slow.stderr) == (fast.code, fast.stderr)
    assert slow.data == fast.data
