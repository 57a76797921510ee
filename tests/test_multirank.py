"""Multi-rank analysis: a directory of rank files analyzed in this process, in local worker
processes and through a real Dask LocalCluster gives identical results, and the cross-rank
view holds the values of the per-rank reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from paths import H200
from traceview import api
from traceview.cli import app
from traceview.errors import InputError
from traceview.multirank import expand_paths

RANK_FILES = ["h200_baseline.sqlite", "h200_regressed.sqlite", "h200x2_nccl_tp_serial.sqlite"]


@pytest.fixture(scope="module")
def rank_dir(tmp_path_factory) -> Path:
    """A directory of rank files (symlinks to the read-only real traces)."""
    d = tmp_path_factory.mktemp("ranks")
    for i, name in enumerate(RANK_FILES):
        (d / f"rank{i}.sqlite").symlink_to(H200 / name)
    (d / "notes.txt").write_text("not a trace")
    return d


@pytest.fixture(scope="module")
def local(rank_dir):
    return api.analyze_many([rank_dir], workers=1, top=10)


def _canon(result) -> str:
    return json.dumps(result.to_dict(), sort_keys=True, default=str)


def test_directory_expands_to_sorted_trace_files(rank_dir) -> None:
    assert [p.name for p in expand_paths([rank_dir])] == ["rank0.sqlite", "rank1.sqlite", "rank2.sqlite"]
    with pytest.raises(InputError, match="is a directory without trace files"):
        expand_paths([rank_dir / "empty"] if (rank_dir / "empty").mkdir() is None else [])


def test_one_report_per_rank_equals_single_file_analysis(local, rank_dir) -> None:
    assert len(local.ranks) == 3
    single = api.analyze(api.load(rank_dir / "rank1.sqlite"), top=10).to_dict()
    assert local.ranks[1].report == single


def test_cross_rank_view_values(local) -> None:
    per_rank = local.per_rank
    assert per_rank.select("rank", "device_id").rows() == [(0, 0), (1, 0), (2, 0), (2, 1)]
    for i, rank in enumerate(local.ranks):  # busy time = the rank's own device utilization
        own = {d["id"]: d["busy_ns"] for d in rank.report["devices"]}
        mine = dict(per_rank.filter(pl.col("rank") == i).select("device_id", "gpu_busy_ns").rows())
        assert mine == own
    # NCCL time only on the NCCL rank, on both of its GPUs; GPU 1 waits longer (README: ~3x)
    nccl = dict(per_rank.filter(pl.col("rank") == 2).select("device_id", "nccl_ns").rows())
    assert per_rank.filter(pl.col("rank") < 2).get_column("nccl_ns").sum() == 0
    assert nccl[1] > 2 * nccl[0] > 0
    # reduce_small_grid is the top kernel: summed over ranks, present on both H200 single-GPU runs
    top = local.top_kernels.row(0, named=True)
    totals = [next(k["total_ns"] for k in r.report["kernels"] if k["name"] == "reduce_small_grid")
              for r in local.ranks[:2]]
    assert top["name"] == "reduce_small_grid" and top["total_ns"] == sum(totals)
    assert top["max_rank"] == 1  # the regressed run: 4 blocks instead of 16
    # every rank has decode steps; the slowest rank per step is one of them
    assert local.steps.height > 0 and set(local.steps.get_column("slowest_rank")) <= {0, 1, 2}


def _equal(x, y, where: str = "") -> None:
    """Exact equality, except floats: polars' multi-threaded float sums may differ in the
    last bits between runs (any run, not only distributed ones), and the JSON rounds them
    to 3 decimals, which can flip the last digit."""
    if isinstance(x, float) or isinstance(y, float):
        assert math.isclose(x, y, rel_tol=1e-9, abs_tol=2e-3), where
    elif isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            _equal(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, list):
        assert len(x) == len(y), where
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            _equal(a, b, f"{where}[{i}]")
    else:
        assert x == y, where


def _same(a, b) -> None:
    """Equal results; findings compared as a set (tied findings' order depends on string
    hashing, which differs between processes: PYTHONHASHSEED)."""
    x, y = json.loads(_canon(a)), json.loads(_canon(b))
    for doc in (x, y):
        for rank in doc["ranks"]:
            rank["report"]["findings"].sort(key=lambda f: json.dumps(f, sort_keys=True))
    _equal(x, y)


def test_local_processes_equal_in_process(local, rank_dir) -> None:
    _same(api.analyze_many([rank_dir], workers=2, top=10), local)


def test_dask_local_cluster_equals_local(local, rank_dir) -> None:
    distributed = pytest.importorskip("dask.distributed")
    seen: list[int] = []
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        result = api.analyze_many([rank_dir], top=10, scheduler=cluster.scheduler_address,
                                  progress=lambda done, total, path: seen.append(done))
    assert seen == [1, 2, 3]
    _same(result, local)


def test_cli_directory_json(rank_dir) -> None:
    out = CliRunner().invoke(app, ["analyze", str(rank_dir), "-f", "json", "--jobs", "1", "--top", "10"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [r["path"] for r in data["ranks"]] == [str(p) for p in expand_paths([rank_dir])]
    assert {"per_rank", "top_kernels", "steps"} <= set(data["cross_rank"])
