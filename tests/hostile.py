"""Broken and hostile variants of the real traces, always built in tmp_path copies.

Shared by test_robustness.py, test_properties.py and test_fuzz.py. The CLI is run
in-process (typer's CliRunner, TRACEVIEW_DEBUG=1 so that an unexpected exception fails the
test with its traceback instead of becoming an "internal error" line).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from paths import H200

BASELINE = H200 / "h200_baseline.sqlite"
KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
MEMCPY = "CUPTI_ACTIVITY_KIND_MEMCPY"
# Kernel total time per name in the baseline, from `SELECT sum(end - start) ... GROUP BY demangledName`
# on the real file; test_robustness checks these against the file before relying on them.
BASELINE_TOTALS = {"reduce_small_grid": 22522797, "gemv_bf16_decode": 3402269, "sgemm_tile64x64": 2808518}


def copy_trace(src: Path, dst: Path) -> Path:
    """A writable copy of a real trace (the original is never opened for writing)."""
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o644)
    return dst


def edit(path: Path, *statements: str | tuple[str, tuple | list]) -> Path:
    """Run SQL statements (plain or (sql, params)) on a COPY and commit."""
    with closing(sqlite3.connect(path)) as conn:
        for st in statements:
            sql, params = (st, ()) if isinstance(st, str) else st
            if isinstance(params, list):
                conn.executemany(sql, params)
            else:
                conn.execute(sql, params)
        conn.commit()
    return path


def relax(table: str, drop: tuple[str, ...] = ()) -> list[str]:
    """Statements that rebuild ``table`` without NOT NULL constraints, minus the ``drop`` columns."""
    return [f"CREATE TABLE _relaxed AS SELECT * FROM {table}", f"DROP TABLE {table}",
            *[f"ALTER TABLE _relaxed DROP COLUMN {c}" for c in drop],
            f"ALTER TABLE _relaxed RENAME TO {table}"]


def variant(tmp: Path, name: str, *statements: Any, src: Path = BASELINE) -> Path:
    """A copy of ``src`` named ``name``.sqlite with ``statements`` applied."""
    return edit(copy_trace(src, tmp / f"{name}.sqlite"), *statements)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kernel_string_id(path: Path, name: str) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT id FROM StringIds WHERE value = ?", (name,)).fetchone()[0]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    data: dict[str, Any] | None  # the JSON report when the run succeeded

    @property
    def error_line(self) -> str:
        return self.stderr.strip()


def run_cli(*args: str, env: dict[str, str] | None = None) -> Outcome:
    """``traceview ARGS`` in-process; unexpected exceptions propagate (TRACEVIEW_DEBUG=1)."""
    from traceview.cli import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False,
                                env={"TRACEVIEW_DEBUG": "1", "COLUMNS": "160", **(env or {})})
    return Outcome(result.exit_code, result.stdout, result.stderr, None)


def analyze_json(trace: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> Outcome:
    """``traceview analyze TRACE --format json -o OUT``; ``data`` is the parsed report on success."""
    res = run_cli("analyze", str(trace), "--format", "json", "-o", str(out), *extra, env=env)
    if res.code == 0:
        res.data = json.loads(out.read_text())
    return res


def assert_one_line_error(res: Outcome, *needles: str) -> str:
    """Exit 2, a single 'traceview: error:' line naming the problem, nothing on stdout."""
    assert res.code == 2, (res.code, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("traceview: error:"), res.stderr
    assert "internal error" not in lines[0] and "Traceback" not in res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert res.stdout == ""
    return lines[0]


def kernel_totals(data: dict[str, Any]) -> dict[str, int]:
    return {k["name"]: k["total_ns"] for k in data["kernels"]}
