"""Many trace files (one per rank): one report per rank plus a cross-rank view.

The per-file work (``analyze_file``: load, analyze, keep the JSON report and a few small
frames) runs in this process, in local worker processes, or on an existing Dask
distributed cluster (``scheduler=ADDRESS``; the files must be readable by the workers at
the same paths). The reduction (``reduce_ranks``) always runs here, on the small
per-rank summaries, so the three ways give identical results.

Cross-rank view: per rank and device GPU busy time and NCCL kernel time, the top kernels
over all ranks, per step (the k-th NVTX step range of every rank) the slowest rank, and,
when ``traceview.analyses.ranks`` is present, collective arrival skew and stragglers.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from traceview.errors import InputError, TraceviewError

Progress = Callable[[int, int, str], None]  # (files done, files total, path just done)
TRACE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


@dataclass
class RankReport:
    """What one file's work returns: small and picklable (no Trace, no event frames)."""

    path: str
    report: dict[str, Any]
    devices: pl.DataFrame      # device_id, busy_ns, window_ns
    kernels: pl.DataFrame      # name, instances, total_ns
    nccl: pl.DataFrame         # device_id, nccl_ns, nccl_kernels
    steps: pl.DataFrame        # step, start, end, duration (k-th step range of this file)
    collectives: pl.DataFrame | None = None  # for traceview.analyses.ranks (None when unavailable)
    session_start_ns: int | None = None


@dataclass
class MultiRankResult:
    ranks: list[RankReport]
    per_rank: pl.DataFrame
    top_kernels: pl.DataFrame
    steps: pl.DataFrame
    skew: dict[str, pl.DataFrame] = field(default_factory=dict)
    top: int | None = None

    def to_dict(self) -> dict[str, Any]:
        from traceview import __version__

        cross: dict[str, Any] = {
            "per_rank": self.per_rank.to_dicts(),
            "top_kernels": (self.top_kernels.head(self.top) if self.top else self.top_kernels).to_dicts(),
            "steps": self.steps.to_dicts(),
        }
        cross |= {name: frame.to_dicts() for name, frame in self.skew.items()}
        ranks = [{"rank": i, "path": r.path, "report": r.report} for i, r in enumerate(self.ranks)]
        return {"traceview_version": __version__, "ranks": ranks, "cross_rank": cross}


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; a directory stands for its trace files (``*.sqlite``), sorted."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in TRACE_SUFFIXES)
            if not found:
                raise InputError(f"{p}: is a directory without trace files ({', '.join('*' + s for s in TRACE_SUFFIXES)}); "
                                 "give an nsys SQLite export or a directory of rank files")
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise InputError("no trace files given")
    return out


def analyze_file(path: str, device: int | None = None, top: int | None = None, options: Any = None,
                 cache_dir: str | None = None) -> RankReport:
    """Load and analyze one file; keep its report and the small frames the reduction needs."""
    from traceview import api

    with api.load(path, cache_dir=cache_dir, columns="analysis") as trace:
        result = api.analyze(trace, device=device, top=top, options=options)
        kernels = result.frames["kernels"]
        devices = result.devices.select("device_id", "busy_ns", "window_ns")
        nccl = (kernels.filter(pl.col("is_nccl")).group_by("device_id")
                .agg(pl.col("duration").sum().alias("nccl_ns"), pl.len().alias("nccl_kernels")))
        return RankReport(
            path=str(path), report=result.to_dict(), devices=devices,
            kernels=result.kernels.select("name", "instances", "total_ns"), nccl=nccl,
            steps=_steps(trace), collectives=_collectives(trace), session_start_ns=_session_start(trace))


def _steps(trace: Any) -> pl.DataFrame:
    empty = pl.DataFrame(schema={"step": pl.Int64, "start": pl.Int64, "end": pl.Int64, "duration": pl.Int64})
    try:
        from traceview.analyses import overlap
    except ImportError:
        return empty
    name = overlap.step_name(trace.nvtx)
    if name is None:
        return empty
    ranges = overlap.ranges_named(trace.nvtx, name)
    return ranges.select(pl.col("range_id").cast(pl.Int64).alias("step"), "start", "end",
                         (pl.col("end") - pl.col("start")).alias("duration"))


def _collectives(trace: Any) -> pl.DataFrame | None:
    try:
        from traceview.analyses import overlap, ranks

        return ranks._rank_collectives(trace, overlap.DEFAULT_STEP_PATTERN)
    except (ImportError, AttributeError):
        return None


def _session_start(trace: Any) -> int | None:
    try:
        from traceview.analyses.ranks import session_start_ns
    except ImportError:
        return None
    return session_start_ns(trace)


def run_files(paths: Sequence[str], work: Callable[..., RankReport], kwargs: dict[str, Any], *,
              workers: int | None = None, scheduler: str | None = None,
              progress: Progress | None = None) -> list[RankReport]:
    """``work(path, **kwargs)`` for every path, in input order: in this process
    (``workers=1``), in local processes, or on the Dask cluster at ``scheduler``."""
    if scheduler:
        return _run_dask(paths, work, kwargs, scheduler, progress)
    workers = min(len(paths), workers or os.cpu_count() or 1)
    out: dict[int, RankReport] = {}
    if workers <= 1:
        for i, p in enumerate(paths):
            out[i] = work(p, **kwargs)
            _tick(progress, len(out), len(paths), p)
        return [out[i] for i in range(len(paths))]
    ctx = multiprocessing.get_context("spawn")  # polars is multi-threaded: never fork it
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(work, p, **kwargs): i for i, p in enumerate(paths)}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                _tick(progress, len(out), len(paths), paths[futures[fut]])
    except BrokenProcessPool as exc:
        raise TraceviewError("a worker process died (out of memory?); retry with --jobs 1") from exc
    return [out[i] for i in range(len(paths))]


def _run_dask(paths: Sequence[str], work: Callable[..., RankReport], kwargs: dict[str, Any], address: str,
              progress: Progress | None) -> list[RankReport]:
    try:
        from dask.distributed import Client, as_completed as dask_completed
    except ImportError as exc:
        raise InputError("--dask-scheduler needs dask.distributed: pip install 'traceview[cluster]'") from exc
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address} ({exc})") from exc
    try:
        futures = [client.submit(work, p, **kwargs, pure=False, key=f"traceview-{i}-{os.getpid()}-{p}")
                   for i, p in enumerate(paths)]
        index = {f.key: i for i, f in enumerate(futures)}
        out: dict[int, RankReport] = {}
        for fut in dask_completed(futures):
            out[index[fut.key]] = fut.result()
            _tick(progress, len(out), len(paths), paths[index[fut.key]])
        return [out[i] for i in range(len(paths))]
    finally:
        client.close()


def _tick(progress: Progress | None, done: int, total: int, path: str) -> None:
    if progress is not None:
        progress(done, total, path)


def reduce_ranks(reports: Sequence[RankReport], top: int | None = None) -> MultiRankResult:
    """The cross-rank view from the per-rank summaries (rank = position in ``reports``)."""
    per_rank = _per_rank(reports)
    kernels = pl.concat([r.kernels.with_columns(rank=pl.lit(i, pl.Int64)) for i, r in enumerate(reports)])
    top_kernels = (kernels.group_by("name")
                   .agg(pl.col("instances").sum(), pl.col("total_ns").sum(), pl.col("rank").n_unique().alias("ranks"),
                        pl.col("total_ns").min().alias("min_rank_ns"), pl.col("total_ns").max().alias("max_rank_ns"),
                        pl.col("rank").sort_by("total_ns").last().alias("max_rank"))
                   .sort(["total_ns", "name"], descending=[True, False]))
    return MultiRankResult(ranks=list(reports), per_rank=per_rank, top_kernels=top_kernels,
                           steps=_slowest_per_step(reports), skew=_skew(reports), top=top)


def _per_rank(reports: Sequence[RankReport]) -> pl.DataFrame:
    rows = []
    for i, r in enumerate(reports):
        dev = r.devices.join(r.nccl, on="device_id", how="left").with_columns(
            pl.col("nccl_ns").fill_null(0), pl.col("nccl_kernels").fill_null(0).cast(pl.Int64))
        rows.append(dev.select(pl.lit(i, pl.Int64).alias("rank"), pl.lit(r.path).alias("path"), "device_id",
                               pl.col("busy_ns").alias("gpu_busy_ns"), "window_ns", "nccl_ns", "nccl_kernels"))
    return pl.concat(rows).sort("rank", "device_id")


def _slowest_per_step(reports: Sequence[RankReport]) -> pl.DataFrame:
    """Per step ordinal present on every rank: the slowest rank, its and the median duration."""
    steps = [r.steps.with_columns(rank=pl.lit(i, pl.Int64)) for i, r in enumerate(reports) if r.steps.height]
    schema = {"step": pl.Int64, "ranks": pl.UInt32, "slowest_rank": pl.Int64, "max_ns": pl.Int64,
              "median_ns": pl.Float64, "spread_ns": pl.Int64}
    if len(steps) != len(reports) or not steps:
        return pl.DataFrame(schema=schema)
    return (pl.concat(steps).group_by("step")
            .agg(pl.len().alias("ranks"), pl.col("rank").sort_by("duration", "rank").last().alias("slowest_rank"),
                 pl.col("duration").max().alias("max_ns"), pl.col("duration").median().alias("median_ns"),
                 (pl.col("duration").max() - pl.col("duration").min()).alias("spread_ns"))
            .filter(pl.col("ranks") == len(reports)).sort("step").select(list(schema)))


def _skew(reports: Sequence[RankReport]) -> dict[str, pl.DataFrame]:
    """Collective arrival skew via ``traceview.analyses.ranks`` (session clocks), when possible."""
    if len(reports) < 2 or any(r.collectives is None or r.session_start_ns is None for r in reports):
        return {}
    try:
        from traceview.analyses import ranks
    except ImportError:
        return {}
    base = min(int(r.session_start_ns) for r in reports)  # type: ignore[arg-type]
    cols = ["file_index", "device_id", "stream_id", "operation", "seq", "step", "start", "end", "duration"]
    frames = []
    for i, r in enumerate(reports):
        off = int(r.session_start_ns) - base  # type: ignore[arg-type]
        frames.append(r.collectives.with_columns(  # type: ignore[union-attr]
            file_index=pl.lit(i), start=pl.col("start") + off, end=pl.col("end") + off).select(cols))
    aligned = pl.concat(frames)
    if aligned.height == 0:
        return {}
    ids = aligned.select("file_index", "device_id").unique().sort("file_index", "device_id").with_row_index("rank")
    aligned = aligned.join(ids.with_columns(pl.col("rank").cast(pl.Int64)), on=["file_index", "device_id"])
    skew = ranks.collective_skew(aligned)
    # ranks.py numbers (file, device) pairs; say which file (= rank here) and device each is
    ids = ids.select(pl.col("rank").cast(pl.Int64), pl.col("file_index").cast(pl.Int64).alias("file_rank"),
                     "device_id")
    stragglers = ranks.stragglers(skew).join(ids, on="rank", how="left")
    return {"collective_skew": skew, "stragglers": stragglers, "step_skew": ranks.step_skew(skew),
            "collective_ranks": ids}
