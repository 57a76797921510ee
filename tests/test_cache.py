"""The Parquet frame cache: off by default, written only into the cache directory, equal
frames on a hit, never stale after the trace changes, harmless when unwritable."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from paths import H200
from traceview import api
from traceview.cache import CACHE_ENV, fingerprint

FRAMES = ["kernels", "memcpy", "memset", "api", "nvtx"]


def _frames(trace) -> dict:
    return {name: getattr(trace, name) for name in FRAMES}


def test_off_by_default(monkeypatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    with api.load(H200 / "h200_baseline.sqlite") as trace:
        assert trace.cache is None


def test_hit_equals_sqlite_and_nothing_next_to_trace(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "traces" / "t.sqlite"
    src.parent.mkdir()
    shutil.copyfile(H200 / "h200_baseline.sqlite", src)
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))  # the environment variable turns it on
    with api.load(src) as cold:
        expected = _frames(cold)
    files = sorted(p.name for p in cache.rglob("*.parquet"))
    assert files == sorted(f"{n}.parquet" for n in FRAMES)
    assert sorted(p.name for p in src.parent.iterdir()) == ["t.sqlite"]
    with api.load(src) as warm:
        real_get = warm.cache.get
        hits = []
        warm.cache.get = lambda name: hits.append(name) or real_get(name)
        got = _frames(warm)
    assert hits == FRAMES
    for name in FRAMES:
        assert_frame_equal(got[name], expected[name])
    # the analysis on cached frames equals the one on SQLite (the oracle-checked path)
    with api.load(src, cache_dir=cache) as warm, api.load(H200 / "h200_baseline.sqlite") as plain:
        assert api.analyze(warm).to_dict()["kernels"] == api.analyze(plain).to_dict()["kernels"]


def test_never_stale_after_the_trace_changes(tmp_path: Path) -> None:
    src = tmp_path / "t.sqlite"
    shutil.copyfile(H200 / "h200_baseline.sqlite", src)
    cache = tmp_path / "cache"
    with api.load(src, cache_dir=cache) as trace:
        before = trace.kernels.height
        key = fingerprint(src)
    with sqlite3.connect(src) as conn:  # our own copy: drop the slowest kernel launches
        conn.execute("DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE rowid IN "
                     "(SELECT rowid FROM CUPTI_ACTIVITY_KIND_KERNEL ORDER BY [end] - start DESC LIMIT 5)")
    assert fingerprint(src) != key
    with api.load(src, cache_dir=cache) as trace:
        assert trace.kernels.height == before - 5


def test_unwritable_cache_dir_degrades_with_a_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")  # a file where the cache directory should be: mkdir fails even as root
    with api.load(H200 / "h200_baseline.sqlite", cache_dir=blocker / "cache") as trace:
        assert trace.kernels.height == 320
        assert any("not writable" in w for w in trace.warnings)


def test_cli_cache_dir(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from traceview.cli import app

    args = ["analyze", str(H200 / "h200_baseline.sqlite"), "-f", "json", "--cache-dir", str(tmp_path)]
    first, second = CliRunner().invoke(app, args), CliRunner().invoke(app, args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    cold, warm = json.loads(first.stdout), json.loads(second.stdout)
    for key in ("kernels", "kernel_shapes", "memory_ops", "api_calls", "nvtx_ranges", "devices", "trace"):
        assert warm[key] == cold[key], key
    assert len(warm["findings"]) == len(cold["findings"])
    assert len(list(tmp_path.rglob("kernels*.parquet"))) == 1  # the CLI caches its projected frame


@pytest.mark.parametrize("name", ["h200_baseline.sqlite", "h200_baseline_rerun.sqlite"])
def test_fingerprints_differ_between_runs(name: str) -> None:
    assert fingerprint(H200 / name) != fingerprint(H200 / "h200_regressed.sqlite")
