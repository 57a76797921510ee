"""The public Python API; the CLI calls only this module.

    >>> import traceview
    >>> trace = traceview.load("report.sqlite")
    >>> result = traceview.analyze(trace)
    >>> result.to_dict()["kernels"][0]["name"]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from traceview.analyses import keys, summaries, timeline
from traceview.errors import NoCudaActivity
from traceview.ingest import open_export
from traceview.model.trace import Trace
from traceview.pipeline import run_steps


def load(path: str | Path, *, cache_dir: str | Path | None = None, columns: str = "all") -> Trace:
    """Open an nsys SQLite export read-only (lazy: frames load on first use).

    ``cache_dir`` (or $TRACEVIEW_CACHE_DIR) turns on the Parquet cache of loaded frames
    (``traceview.cache``); it is off by default. ``columns="analysis"`` leaves out of the
    frames the model columns that no analysis reads (``model.columns.NOT_ANALYZED``): what
    ``analyze``, ``compare`` and the report need, read faster and held in less memory."""
    from traceview.cache import FrameCache
    from traceview.model.columns import NOT_ANALYZED

    if columns not in ("all", "analysis"):
        raise ValueError(f"columns must be 'all' or 'analysis', not {columns!r}")
    trace = open_export(path, NOT_ANALYZED if columns == "analysis" else None)
    trace.cache = FrameCache.from_setting(cache_dir, trace.path)
    return trace


def analyze_many(paths: Sequence[str | Path], *, device: int | None = None, top: int | None = None,
                 options: AnalyzeOptions | None = None, workers: int | None = None, scheduler: str | None = None,
                 cache_dir: str | Path | None = None, progress: Any = None) -> Any:
    """Analyze several rank files (directories stand for their ``*.sqlite`` files): one
    report per rank plus the cross-rank view -> ``traceview.multirank.MultiRankResult``.

    ``workers``: local processes (default: one per core; 1 = this process). ``scheduler``:
    address of an existing Dask distributed scheduler that runs the per-file work instead
    (files must be readable by its workers at the same paths). ``progress(done, total, path)``
    is called as files finish. The reduction runs here in every case.
    """
    from traceview import multirank

    files = [str(p) for p in multirank.expand_paths(paths)]
    kwargs = {"device": device, "top": top, "options": options,
              "cache_dir": None if cache_dir is None else str(cache_dir)}
    reports = multirank.run_files(files, multirank.analyze_file, kwargs, workers=workers, scheduler=scheduler,
                                  progress=progress)
    return multirank.reduce_ranks(reports, top=top)


@dataclass(slots=True)
class AnalyzeOptions:
    """Options of ``analyze`` beyond the summaries (each feature adds its own field)."""

    hardware: str | None = None                 # what-if target GPU from the hardware table
    ncu: list[Path] = field(default_factory=list)  # Nsight Compute CSV exports to join
    work: Path | None = None                    # sidecar: bytes/FLOPs per kernel launch (analyses.work)
    recipe: Any = None                          # a loaded Recipe (traceview.recipe)
    select: list[str] | None = None             # rule ids/globs to run (None = all)
    ignore: list[str] | None = None             # rule ids/globs to skip
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule id -> param overrides
    silence: list[tuple[str, str]] = field(default_factory=list)         # (rule glob, subject name glob)


@dataclass(slots=True)
class AnalysisResult:
    """Everything ``analyze`` found. Frames for Python users; ``to_dict`` is the JSON contract."""

    trace: Trace
    kernels: pl.DataFrame
    kernel_shapes: pl.DataFrame
    memory_ops: pl.DataFrame
    api_calls: pl.DataFrame
    nvtx_ranges: pl.DataFrame
    devices: pl.DataFrame
    gpus: list[dict[str, Any]]
    duration_ns: int
    device_filter: int | None = None
    top: int | None = None
    options: AnalyzeOptions = field(default_factory=AnalyzeOptions)
    warnings: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # keys added by later analyses
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)  # activity frames after --device filtering
    derived: dict[str, Any] = field(default_factory=dict, repr=False)  # steps' shared frames (analyses.derived)

    def to_dict(self) -> dict[str, Any]:
        from traceview.report.jsonout import result_to_dict

        return result_to_dict(self)


def _gpu_entries(trace: Trace, device_ids: list[int]) -> list[dict[str, Any]]:
    """GPUs that ran something; TARGET_INFO_GPU rows of idle GPUs are left out."""
    by_id = {int(r["id"]): r for r in trace.gpus.iter_rows(named=True)}
    out = []
    for dev in device_ids:
        row = by_id.get(dev, {})
        out.append({
            "id": dev,
            "name": row.get("name"),
            "sm_count": row.get("sm_count"),
            "compute_capability": row.get("compute_capability"),
            "memory_bandwidth_bytes_per_s": row.get("memory_bandwidth_bytes_per_s"),
        })
    return out


def analyze(trace: Trace, *, device: int | None = None, top: int | None = None,
            options: AnalyzeOptions | None = None) -> AnalysisResult:
    """Summaries equal to `nsys stats`, per-device utilization, then the pipeline steps
    (launch analysis, bound classification, rules, ...; see ``traceview.pipeline``).

    Raises ``NoCudaActivity`` when the export has no kernel activity at all.
    """
    kernels = trace.kernels
    if kernels.height:
        trace.prefetch("memcpy", "memset", "api", "nvtx")  # read while the kernel summaries run
    memcpy, memset = trace.memcpy, trace.memset
    if kernels.height == 0 and trace.warnings:  # rows existed, none usable: say why
        raise NoCudaActivity(f"{trace.path}: no usable CUDA kernel rows: {'; '.join(trace.warnings)}")
    if kernels.height == 0:
        raise NoCudaActivity(f"{trace.path}: no CUDA kernel activity: was CUDA tracing enabled? (nsys profile -t cuda)")
    if device is not None:
        if device not in trace.device_ids:
            raise NoCudaActivity(f"{trace.path}: no GPU activity on device {device} (devices with activity: "
                                 f"{', '.join(map(str, trace.device_ids))})")
        kernels, memcpy, memset = (f.filter(pl.col("device_id") == device) for f in (kernels, memcpy, memset))
    merged = timeline.merged_activity(kernels, memcpy, memset)
    names = keys.encode(kernels.get_column("name"))  # integer codes: the summaries and steps group on them
    bounds = trace.time_bounds or (0, 0)
    utilization = timeline.device_utilization(merged, merged=True)  # one row per device, sorted
    devices = [int(d) for d in utilization.get_column("device_id").to_list()]
    kernel_summary, kernel_shapes = summaries.kernel_summaries(kernels, names)
    result = AnalysisResult(
        trace=trace,
        kernels=kernel_summary,
        kernel_shapes=kernel_shapes,
        memory_ops=summaries.memory_op_summary(memcpy, memset),
        api_calls=summaries.api_summary(trace.api),
        nvtx_ranges=summaries.nvtx_summary(trace.nvtx),
        devices=utilization,
        gpus=_gpu_entries(trace, devices),
        duration_ns=bounds[1] - bounds[0],
        device_filter=device,
        top=top,
        options=options or AnalyzeOptions(),
    )
    result.frames = {"kernels": kernels, "memcpy": memcpy, "memset": memset}
    result.derived.update(merged_activity=merged, kernel_names=names)  # analyses.derived: the steps reuse them
    result.warnings.extend(trace.warnings)  # rows skipped while loading (traceview.ingest.validate)
    run_steps(result, result.options)
    result.derived.clear()  # per-row helper frames (hundreds of MB at 10M kernels): rebuilt if asked again
    return result


def compare(baseline: str | Path | Trace, candidate: str | Path | Trace, recipe: Any = None, *,
            baselines: list[str | Path | Trace] | None = None, alpha: float | None = None,
            threshold_pct: float | None = None, today: Any = None) -> Any:
    """Baseline vs candidate regression gate -> ``traceview.compare.Comparison``.

    ``recipe``: a loaded Recipe, a recipe name or TOML path (its ``[gate]`` section), or None.
    ``baselines``: more baseline runs of the same workload, to learn run-to-run noise.
    ``comparison.verdict`` is "pass" or "fail"; incomparable inputs raise ``IncomparableTraces``.
    """
    from traceview.compare.comparison import run_comparison
    from traceview.compare.settings import load_settings

    settings = load_settings(recipe, alpha=alpha, threshold_pct=threshold_pct)
    as_trace = lambda t: t if isinstance(t, Trace) else load(t, columns="analysis")  # noqa: E731
    runs = [as_trace(baseline)] + [as_trace(b) for b in baselines or []]
    return run_comparison(runs, as_trace(candidate), settings, today)
