"""Hostile and broken inputs made from the real traces (tmp_path copies): every one gives a
correct analysis with a warning naming the anomaly, or one error line with exit code 2."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from hostile import (BASELINE, BASELINE_TOTALS, KERNEL, MEMCPY, analyze_json, assert_one_line_error, copy_trace,
                     edit, kernel_totals, relax, variant)

INT64_MAX = 2**63 - 1


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
    return variant(tmp, "overflow", f"UPDATE {KERNEL} SET start = 0, [end] = {INT64_MAX} WHERE rowid IN ({ids[0]}, {ids[1]})")


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
    assert "1 memcpy with NULL or negative bytes were skipped" in data["warnings"]
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
