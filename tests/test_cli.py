"""The CLI on real traces and on bad input: exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

from paths import H200, PUBLIC, SAMPLES


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "traceview", *args], capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("traceview: error:"), proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_analyze_json_on_sample(tmp_path):
    out = tmp_path / "r.json"
    proc = run("analyze", str(SAMPLES / "h200_baseline.sqlite"), "--format", "json", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["kernels"][0]["name"] == "reduce_small_grid"
    assert data["kernels"][0]["total_ns"] == 22522797
    assert data["trace"]["gpus"] == [{"id": 0, "name": "NVIDIA H200", "sm_count": 132, "compute_capability": "9.0",
                                      "memory_bandwidth_bytes_per_s": 4814304000000.0}]
    assert {"traceview_version", "trace", "kernels", "memory_ops", "api_calls", "nvtx_ranges", "devices",
            "findings"} <= set(data)


def test_analyze_text_and_markdown():
    text = run("analyze", str(SAMPLES / "h200_baseline.sqlite"), "--top", "3")
    assert text.returncode == 0 and "reduce_small_grid" in text.stdout and "scale_odd_block" not in text.stdout
    md = run("analyze", str(SAMPLES / "h200_baseline.sqlite"), "--format", "markdown")
    assert md.returncode == 0 and "| 72.4 |" in md.stdout


def test_device_filter_on_two_gpu_trace():
    proc = run("analyze", str(H200 / "h200x2_tp_serial.sqlite"), "--format", "json", "--device", "1")
    data = json.loads(proc.stdout)
    assert [d["id"] for d in data["devices"]] == [1]
    assert all(k["device_ids"] == [1] for k in data["kernels"])
    assert_one_line_error(run("analyze", str(H200 / "h200x2_tp_serial.sqlite"), "--device", "7"), "device 7")


def test_info_lists_versions_and_tables():
    proc = run("info", str(PUBLIC / "hpcgroup__pipit__saxpy-mpi-cuda_nsys_perlmutter0.sqlite"), "--format", "json")
    data = json.loads(proc.stdout)
    assert data["schema_version"] == "2.9.1" and data["metadata_table"] == "EXPORT_META_DATA"
    assert data["tables"]["CUPTI_ACTIVITY_KIND_KERNEL"] == 5


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "text", "truncated", "other_sqlite",
                                  "no_kernels", "nsys_rep"])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, kind):
    target = tmp_path / "bad.sqlite"
    needle = {"missing": "no such file", "directory": "is a directory", "empty": "empty file",
              "text": "not an SQLite file", "truncated": "corrupt", "other_sqlite": "not an Nsight Systems export",
              "no_kernels": "no CUDA kernel activity: was CUDA tracing enabled?", "nsys_rep": "nsys export"}[kind]
    if kind == "directory":
        target = tmp_path
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "text":
        target.write_text("hello, not a database\n")
    elif kind == "nsys_rep":
        target = tmp_path / "report.nsys-rep"
        target.write_bytes(b"\x00QDSTRM" * 10)
    elif kind == "truncated":
        data = (H200 / "h200_baseline.sqlite").read_bytes()
        target.write_bytes(data[: len(data) // 3])
    elif kind == "other_sqlite":
        with sqlite3.connect(target) as conn:
            conn.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    elif kind == "no_kernels":
        shutil.copy(PUBLIC / "Donovoi__ripgrep__report1.sqlite", target)
    assert_one_line_error(run("analyze", str(target)), needle)
