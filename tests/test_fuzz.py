"""Bounded fuzzing of the ingest + analyze path: hypothesis mutates bytes and rows of real
exports (tmp_path copies); every run must end in a sane report or one error line (exit 2).

Fixed budget and seed (derandomized) so CI is reproducible and fast; for a longer local
run set TRACEVIEW_FUZZ_EXAMPLES (e.g. 2000).
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hostile import BASELINE, KERNEL, MEMCPY, analyze_json, assert_one_line_error, copy_trace, edit, relax, sha256
from paths import PUBLIC

BUDGET = int(os.environ.get("TRACEVIEW_FUZZ_EXAMPLES", "0"))
FUZZ = settings(deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SOURCES = [BASELINE, PUBLIC / "GindaChen__nsys-ai__mock.sqlite"]
EXAMPLE_LIMIT_S = 30
RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
INTERESTING = [None, 0, -1, 1, 2**31, 2**62, 2**63 - 1, -(2**63), 1.5, -0.0, float("inf"), "text", "",
               b"\xff\xfe", "\x1b[31m<b>x</b>", "y" * 5000]


@contextmanager
def time_limit(seconds: int):
    """A hang fails the example (SIGALRM) instead of blocking CI."""
    def expire(*_):
        raise TimeoutError(f"fuzz example ran longer than {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_outcome(trace: Path, folder: Path) -> None:
    """Exit 0 with a well-formed, internally consistent report, or exit 2 with one line."""
    before = sha256(trace)
    with time_limit(EXAMPLE_LIMIT_S):
        res = analyze_json(trace, folder / "out.json")
    assert sha256(trace) == before  # never written, even when broken
    if res.code != 0:
        assert_one_line_error(res)
        return
    data = res.data
    assert json.loads(json.dumps(data)) == data
    for k in data["kernels"]:
        assert k["instances"] >= 1 and 0 <= k["min_ns"] <= k["max_ns"] and k["total_ns"] >= k["max_ns"]
        assert k["min_ns"] - 1e-3 <= k["avg_ns"] <= k["max_ns"] + 1e-3 and 0 <= k["time_pct"] <= 100 + 1e-6
    for d in data["devices"]:
        assert 0 <= d["busy_ns"] <= d["window_ns"] and 0 <= d["utilization_pct"] <= 100 + 1e-6
    for m in data["memory_ops"]:
        assert m["count"] >= 1 and m["total_ns"] >= 0 and m["total_bytes"] >= 0
    numbers = [v for k in data["kernels"] for v in k.values() if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers)


byte_edits = st.lists(st.tuples(st.one_of(st.integers(0, 99), st.integers(0, 4095), st.integers(0, 2**20)),
                                st.integers(0, 255)), min_size=1, max_size=8)


@settings(FUZZ, max_examples=BUDGET or 18)
@given(source=st.sampled_from(SOURCES), edits=byte_edits, cut=st.one_of(st.none(), st.integers(0, 2**20)))
def test_fuzz_bytes(source, edits, cut):
    """Overwrite bytes (header, schema page, anywhere), optionally truncate."""
    data = bytearray(source.read_bytes())
    for offset, value in edits:
        data[offset % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "fuzzed.sqlite"
        trace.write_bytes(bytes(data))
        check_outcome(trace, Path(folder))


@pytest.fixture(scope="module")
def relaxed(tmp_path_factory) -> Path:
    """The baseline with constraint-free kernel, memcpy, runtime and StringIds tables."""
    path = copy_trace(BASELINE, tmp_path_factory.mktemp("fuzz") / "relaxed.sqlite")
    return edit(path, *relax(KERNEL), *relax(MEMCPY), *relax(RUNTIME), *relax("StringIds"))


COLUMNS = {KERNEL: ["start", "end", "deviceId", "streamId", "correlationId", "demangledName", "gridX", "blockX",
                    "registersPerThread", "staticSharedMemory", "dynamicSharedMemory", "sharedMemoryExecuted"],
           MEMCPY: ["start", "end", "deviceId", "bytes", "copyKind", "srcKind", "dstKind"],
           RUNTIME: ["start", "end", "nameId", "globalTid", "correlationId"],
           "StringIds": ["id", "value"]}
row_edits = st.lists(st.tuples(st.sampled_from(list(COLUMNS)), st.integers(0, 40), st.integers(0, 11),
                               st.sampled_from(INTERESTING)), min_size=1, max_size=6)


@settings(FUZZ, max_examples=BUDGET or 12)
@given(edits=row_edits, duplicate=st.booleans())
def test_fuzz_rows(relaxed, edits, duplicate):
    """Set cells of real rows to NULL, extremes, wrong types, bytes, control characters."""
    with tempfile.TemporaryDirectory() as folder:
        trace = copy_trace(relaxed, Path(folder) / "rows.sqlite")
        statements = []
        for table, row, col, value in edits:
            column = COLUMNS[table][col % len(COLUMNS[table])]
            statements.append((f"UPDATE {table} SET [{column}] = ? WHERE rowid = "
                               f"(SELECT rowid FROM {table} ORDER BY rowid LIMIT 1 OFFSET {row})", (value,)))
        if duplicate:
            statements.append(f"INSERT INTO {KERNEL} SELECT * FROM {KERNEL} LIMIT 3")
        edit(trace, *statements)
        check_outcome(trace, Path(folder))
