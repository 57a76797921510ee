"""Properties (hypothesis): generated kernel tables written into a copy of the real H200
baseline's schema summarize exactly as a plain Python reference says, anomalies included;
loading never changes a file; the same input gives byte-identical JSON."""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import traceview
from hostile import BASELINE, KERNEL, MEMCPY, copy_trace, edit, run_cli, sha256
from paths import H200, PUBLIC
from traceview.analyses import summaries, timeline
from traceview.errors import CorruptExport, NoCudaActivity
from traceview.report.jsonout import dumps

INT64_MAX = 2**63 - 1
NAMES = ["gemm_f32", "void k<float, 128>(float*)", "a|b*c_", "ünïcødé", "x" * 300, "[bold]k[/bold]", ""]
# Fixed budget and seed; no shrinking phase (each example runs the whole pipeline, ~0.2 s, and
# shrinking could take minutes in CI: the failing example is reported as generated).
SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, dict, dict[str, int]]:
    """The baseline with no GPU activity: a real schema to write generated kernels into."""
    path = copy_trace(BASELINE, tmp_path_factory.mktemp("tpl") / "template.sqlite")
    with closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        real = dict(conn.execute(f"SELECT * FROM {KERNEL} LIMIT 1").fetchone())
        first = conn.execute("SELECT max(id) FROM StringIds").fetchone()[0] + 1
        conn.executemany("INSERT INTO StringIds (id, value) VALUES (?, ?)", list(enumerate(NAMES, first)))
        for table in (KERNEL, MEMCPY, "CUPTI_ACTIVITY_KIND_MEMSET"):
            conn.execute(f"DELETE FROM {table}")
        conn.commit()
    return path, real, {n: i for i, n in enumerate(NAMES, first)}


row = st.fixed_dictionaries({
    "name": st.sampled_from(NAMES),
    "device": st.integers(0, 2),
    "stream": st.integers(7, 9),
    "start": st.one_of(st.integers(0, 10**7), st.integers(0, 2**62)),
    "duration": st.one_of(st.integers(0, 10**5), st.integers(0, 2**40), st.integers(2**61, 2**62 - 1)),
    "grid": st.integers(1, 2**31 - 1),
    "anomaly": st.sampled_from([None] * 6 + ["reversed", "duplicate"]),
})


def write_kernels(template, rows: list[dict], folder: Path) -> Path:
    path, real, ids = template
    out = copy_trace(path, folder / "gen.sqlite")
    records = []
    for i, r in enumerate(rows):
        start, end = r["start"], r["start"] + r["duration"]
        if r["anomaly"] == "reversed" and end > start:
            start, end = end, start
        rec = {**real, "start": start, "end": end, "deviceId": r["device"], "streamId": r["stream"],
               "correlationId": 1000 + i, "demangledName": ids[r["name"]], "shortName": ids[r["name"]],
               "gridX": r["grid"]}
        records += [rec, rec] if r["anomaly"] == "duplicate" else [rec]
    cols = list(real)
    sql = f"INSERT INTO {KERNEL} ({', '.join(f'[{c}]' for c in cols)}) VALUES ({', '.join('?' * len(cols))})"
    return edit(out, (sql, [tuple(rec[c] for c in cols) for rec in records]))


def reference(rows: list[dict]) -> dict:
    """What the summaries must say, computed the obvious way."""
    reversed_n = sum(1 for r in rows if r["anomaly"] == "reversed" and r["duration"] > 0)
    valid = [r for r in rows if not (r["anomaly"] == "reversed" and r["duration"] > 0)]
    duplicates = sum(1 for r in valid if r["anomaly"] == "duplicate")
    by_name: dict[str, list[int]] = {}
    for r in valid:
        by_name.setdefault(r["name"], []).append(r["duration"])
    grand = sum(sum(d) for d in by_name.values())
    kernels = {n: {"instances": len(d), "total_ns": sum(d), "min_ns": min(d), "max_ns": max(d),
                   "avg_ns": sum(d) / len(d), "med_ns": statistics.median(d),
                   "std_ns": statistics.stdev(d) if len(d) > 1 else 0.0,
                   "time_pct": sum(d) * 100 / grand if grand else 0.0} for n, d in by_name.items()}
    busy: dict[int, int] = {}
    for dev in {r["device"] for r in valid}:
        spans = sorted((r["start"], r["start"] + r["duration"]) for r in valid if r["device"] == dev)
        total, cur_s, cur_e = 0, *spans[0]
        for s, e in spans[1:]:
            if s > cur_e:
                total, cur_s, cur_e = total + cur_e - cur_s, s, e
            else:
                cur_e = max(cur_e, e)
        busy[dev] = total + cur_e - cur_s
    return {"reversed": reversed_n, "duplicates": duplicates, "kernels": kernels, "busy": busy,
            "overflow": sum(r["duration"] for r in valid) > INT64_MAX}


def close(a: float, b: float) -> bool:
    return a == pytest.approx(b, rel=1e-9, abs=1e-6)


@settings(SETTINGS, max_examples=40)
@given(rows=st.lists(row, min_size=1, max_size=25))
def test_generated_kernels_summarize_like_the_reference(template, rows):
    """Ingest (with its anomaly checks) + the summary functions ``analyze`` uses; the full
    pipeline runs on generated tables in ``test_analysis_is_deterministic``."""
    ref = reference(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = write_kernels(template, rows, Path(folder))
        before = sha256(path)
        with traceview.load(path) as trace:
            if ref["overflow"]:
                with pytest.raises(CorruptExport, match="64-bit range"):
                    _ = trace.kernels
                return
            kernels, memcpy, memset = trace.kernels, trace.memcpy, trace.memset
            loaded = trace.warnings
        assert sha256(path) == before  # loading never writes
    got = {r["name"]: r for r in summaries.kernel_summary(kernels).iter_rows(named=True)}
    assert got.keys() == ref["kernels"].keys()
    for name, want in ref["kernels"].items():
        for key, value in want.items():
            assert close(got[name][key], value), (name, key, got[name][key], value)
    devices = timeline.device_utilization(timeline.gpu_intervals(kernels, memcpy, memset))
    assert dict(devices.select("device_id", "busy_ns").iter_rows()) == ref["busy"]
    expected = []
    if ref["reversed"]:
        n = ref["reversed"]
        expected.append(f"{n} kernel{'s' * (n != 1)} with end < start {'was' if n == 1 else 'were'} skipped")
    if ref["duplicates"]:
        expected.append(f"{ref['duplicates']} duplicated kernel row")
    assert len(loaded) == len(expected) and all(w.startswith(e) for w, e in zip(loaded, expected)), loaded


@settings(SETTINGS, max_examples=5)
@given(rows=st.lists(row.filter(lambda r: r["duration"] < 2**40), min_size=1, max_size=12))
def test_analysis_is_deterministic(template, rows):
    """Two independent loads of the same file give byte-identical JSON (ties included), and
    the whole pipeline survives generated tables (the summary of all-reversed rows says why)."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_kernels(template, rows + [dict(r, device=(r["device"] + 1) % 3) for r in rows], Path(folder))
        outputs = []
        for _ in range(2):
            with traceview.load(path) as trace:
                try:
                    outputs.append(dumps(traceview.analyze(trace).to_dict()))
                except NoCudaActivity as exc:  # every generated row reversed: the error must say so
                    assert "with end < start w" in str(exc)
                    outputs.append(str(exc))
        assert outputs[0] == outputs[1]


# One per ingest path: H200 schema 3.0 + GENERIC_EVENTS, two GPUs with NCCL, schema 2.9 (EXPORT_META_DATA),
# schema 3.24 (new columns), no kernel table at all. (conftest also checks every trace at session end.)
MUTATION_CHECKED = [H200 / "h200_gpumetrics.sqlite", H200 / "h200x2_nccl_tp_serial.sqlite",
                    PUBLIC / "hpcgroup__pipit__saxpy-mpi-cuda_nsys_perlmutter0.sqlite",
                    PUBLIC / "GindaChen__nsys-ai__mock.sqlite", PUBLIC / "Donovoi__ripgrep__report1.sqlite"]


@pytest.mark.parametrize("path", MUTATION_CHECKED, ids=lambda p: p.stem[:40])
def test_loading_never_mutates_a_real_export(path, tmp_path):
    """Every frame loaded, analysis run, on a copy whose bytes and mtime are checked."""
    copy = copy_trace(path, tmp_path / path.name)
    before, mtime = sha256(copy), copy.stat().st_mtime_ns
    with traceview.load(copy) as trace:
        for frame in ("kernels", "memcpy", "memset", "api", "nvtx", "gpus", "threads", "processes"):
            getattr(trace, frame)
        if trace.kernels.height:
            traceview.analyze(trace)
    assert (sha256(copy), copy.stat().st_mtime_ns) == (before, mtime)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_json_is_identical_across_processes_and_hash_seeds(tmp_path):
    """Set/dict ordering must not leak into the report: another interpreter, another hash seed."""
    trace = H200 / "h200_gpumetrics.sqlite"  # GPU-metrics sampling + NVTX phases: both had hash-order bugs
    here = run_cli("analyze", str(trace), "-f", "json", "-o", str(tmp_path / "a.json"))
    assert here.code == 0, here.stderr
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run([sys.executable, "-m", "traceview", "analyze", str(trace), "-f", "json", "-o",
                           str(tmp_path / "b.json")], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
