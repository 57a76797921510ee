"""Summaries equal `nsys stats` (oracle_nsys_stats/) on every real export."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

import traceview
from traceview.errors import NoCudaActivity

from paths import ALL_EXPORTS, ORACLE, trace_id


def _oracle(path: Path, report: str) -> list[dict[str, str]]:
    f = ORACLE / f"{path.stem}_{report}.csv"
    if not f.exists() or f.stat().st_size == 0:
        return []
    with f.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module", params=ALL_EXPORTS, ids=trace_id)
def case(request):
    trace = traceview.load(request.param)
    try:
        result = traceview.analyze(trace)
    except NoCudaActivity:
        result = None
    return request.param, trace, result


def test_kernel_summary_matches_gpukernsum(case):
    path, trace, result = case
    rows = _oracle(path, "gpukernsum")
    if result is None:
        assert rows == [] and trace.kernels.height == 0
        return
    expected: dict[str, dict] = defaultdict(lambda: {"n": 0, "total": 0, "min": 1 << 62, "max": 0, "shapes": []})
    for r in rows:
        e = expected[r["Name"]]
        e["n"] += int(r["Instances"])
        e["total"] += int(r["Total Time (ns)"])
        e["min"] = min(e["min"], int(r["Min (ns)"]))
        e["max"] = max(e["max"], int(r["Max (ns)"]))
        e["shapes"].append(r)
    got = {k["name"]: k for k in result.to_dict()["kernels"]}
    assert set(got) == set(expected)
    for name, e in expected.items():
        k = got[name]
        assert (k["instances"], k["total_ns"], k["min_ns"], k["max_ns"]) == (e["n"], e["total"], e["min"], e["max"]), name
        assert k["avg_ns"] == pytest.approx(e["total"] / e["n"], abs=0.1)
        if len(e["shapes"]) == 1:
            assert k["med_ns"] == pytest.approx(float(e["shapes"][0]["Med (ns)"]), abs=0.1)
            assert k["std_ns"] == pytest.approx(float(e["shapes"][0]["StdDev (ns)"]), abs=0.1)


def test_kernel_shape_view_matches_gpukernsum_rows(case):
    path, _, result = case
    if result is None:
        return
    rows = _oracle(path, "gpukernsum")
    got = {(s["name"], f'{s["grid_x"]:>4} {s["grid_y"]:>4} {s["grid_z"]:>4}',
            f'{s["block_x"]:>4} {s["block_y"]:>4} {s["block_z"]:>4}'): s for s in result.to_dict()["kernel_shapes"]}
    assert len(got) == len(rows)
    for r in rows:
        key = (r["Name"], " ".join(f"{int(x):>4}" for x in r["GridXYZ"].split()),
               " ".join(f"{int(x):>4}" for x in r["BlockXYZ"].split()))
        s = got[key]
        assert (s["instances"], s["total_ns"]) == (int(r["Instances"]), int(r["Total Time (ns)"]))
        assert s["med_ns"] == pytest.approx(float(r["Med (ns)"]), abs=0.1)


def test_memory_ops_match_gpumemtimesum_and_gpumemsizesum(case):
    path, trace, result = case
    times = {r["Operation"]: r for r in _oracle(path, "gpumemtimesum")}
    sizes = {r["Operation"]: r for r in _oracle(path, "gpumemsizesum")}
    if result is None:
        assert not times
        return
    got = {m["operation"]: m for m in result.to_dict()["memory_ops"]}
    assert set(got) == set(times) == set(sizes)
    for op, r in times.items():
        m = got[op]
        assert (m["count"], m["total_ns"], m["min_ns"], m["max_ns"]) == (
            int(r["Count"]), int(r["Total Time (ns)"]), int(r["Min (ns)"]), int(r["Max (ns)"]))
        assert m["med_ns"] == pytest.approx(float(r["Med (ns)"]), abs=0.1)
        assert m["time_pct"] == pytest.approx(float(r["Time (%)"]), abs=0.06)
        s = sizes[op]
        assert m["total_bytes"] / 1e6 == pytest.approx(float(s["Total (MB)"]), abs=0.0006)
        assert m["max_bytes"] / 1e6 == pytest.approx(float(s["Max (MB)"]), abs=0.0006)


def test_nvtx_matches_nvtxsum(case):
    path, trace, _ = case
    rows = _oracle(path, "nvtxsum")
    got = {(n["name"], n["style"]): n for n in traceview.api.summaries.nvtx_summary(trace.nvtx).iter_rows(named=True)}
    assert set(got) == {(r["Range"], r["Style"]) for r in rows}
    for r in rows:
        n = got[(r["Range"], r["Style"])]
        assert (n["instances"], n["total_ns"], n["min_ns"], n["max_ns"]) == (
            int(r["Instances"]), int(r["Total Time (ns)"]), int(r["Min (ns)"]), int(r["Max (ns)"]))
        assert n["med_ns"] == pytest.approx(float(r["Med (ns)"]), abs=0.1)


def test_api_summary_matches_cudaapisum(case):
    """nsys groups by string id, so one name can appear in several rows: sum them."""
    path, trace, _ = case
    expected: dict[str, list[int]] = {}
    for r in _oracle(path, "cudaapisum"):
        e = expected.setdefault(r["Name"], [0, 0, 1 << 62, 0])
        e[0] += int(r["Num Calls"])
        e[1] += int(r["Total Time (ns)"])
        e[2] = min(e[2], int(r["Min (ns)"]))
        e[3] = max(e[3], int(r["Max (ns)"]))
    got = {a["name"]: a for a in traceview.api.summaries.api_summary(trace.api).iter_rows(named=True)}
    assert set(got) == set(expected)
    for name, e in expected.items():
        a = got[name]
        assert [a["count"], a["total_ns"], a["min_ns"], a["max_ns"]] == e, name
