"""Bottleneck classification per kernel with the strongest evidence available.

Tiers, best first (``traceview.analyses.verdicts`` holds one function per tier):

1. measured, Nsight Compute (``--ncu``): SOL throughputs, DRAM bytes, FLOPs, occupancy;
2. measured, GPU metrics samples attributed to the kernel (``--gpu-metrics-devices``);
3. analytic: bytes/FLOPs per launch (sidecar file or recognized kernels) vs peaks, launch shape;
4. heuristic: the kernel family from its name, labeled as a guess.

Pipeline step ``enrich`` stores ``extra["kernel_details"][name]["bound"]`` for every kernel,
``extra["roofline"]`` (points for the HTML report), ``extra["ncu"]`` and ``extra["gpu_metrics"]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from traceview.analyses import families, ncu_join, sampling, work
from traceview.analyses.verdicts import (Peaks, Verdict, analytic_verdict, gpu_metrics_verdict, heuristic_verdict,
                                         ncu_verdict)

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions
    from traceview.model.trace import Trace

MIN_SAMPLES = 3  # GPU-metrics samples a kernel needs before its averages are reported


def device_peaks(trace: Trace, device_id: int, override: str | None = None) -> Peaks | None:
    """Peaks of a traced device: the trace's TARGET_INFO_GPU and the hardware table; ``override``
    (``--hardware``) only when the trace does not describe the device."""
    from traceview.hardware import HardwareError, gpu_spec_for_device

    spec = None
    for candidate in (None, override):
        try:
            spec = gpu_spec_for_device(trace, device_id, candidate)
            break
        except HardwareError:
            continue
    if spec is None:
        return _trace_only_peaks(trace, device_id)
    return Peaks(name=spec.name, dram_bw=spec.dram_bandwidth_bytes_per_s or None,
                 dram_source=spec.evidence_source("dram_bandwidth_bytes_per_s"), flops=dict(spec.peak_flops),
                 flops_source=spec.evidence_source("peak_flops"), sm_count=spec.sm_count or None,
                 sm_source=spec.evidence_source("sm_count"))


def _trace_only_peaks(trace: Trace, device_id: int) -> Peaks | None:
    rows = trace.gpus.filter(pl.col("id") == device_id).to_dicts()
    if not rows:
        return None
    row = rows[0]
    return Peaks(name=row.get("name") or f"GPU {device_id}", dram_bw=row.get("memory_bandwidth_bytes_per_s"),
                 dram_source="trace: TARGET_INFO_GPU.memoryBandwidth", flops={}, flops_source="",
                 sm_count=row.get("sm_count"), sm_source="trace: TARGET_INFO_GPU.smCount")


def _ncu_rows(result: AnalysisResult, options: AnalyzeOptions) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    if not options.ncu:
        return {}, {}
    from traceview.ingest.ncu import read_ncu

    export = read_ncu(list(options.ncu))
    matched, unmatched = ncu_join.match_launches(export.launches, result.kernel_shapes)
    rows = {r["name"]: r for r in ncu_join.per_kernel(matched).iter_rows(named=True)}
    misses = unmatched.group_by("kernel_name", *ncu_join.SHAPE).agg(pl.len().alias("launches")).sort("kernel_name")
    result.extra["ncu"] = {
        "files": export.files, "launches": export.launches.height, "matched_launches": matched.height,
        "kernels_matched": sorted(rows), "metrics_used": dict(sorted(export.metrics.items())),
        "unmatched": misses.to_dicts(),
    }
    if unmatched.height:
        result.warnings.append(f"ncu: {unmatched.height} profiled launch(es) match no trace kernel by name and "
                               "launch shape (see ncu.unmatched)")
    return rows, export.metrics


def _gpu_metric_rows(result: AnalysisResult) -> tuple[dict[str, dict[str, Any]], dict[str, str], str]:
    from traceview.ingest.gpu_metrics import read_gpu_metrics

    from traceview.ingest.sqlite import map_sqlite_errors

    trace = result.trace
    with map_sqlite_errors(trace.path):
        found = read_gpu_metrics(trace.connection, trace.info)
    if found is None:
        return {}, {}, ""
    frames = result.frames or {"kernels": trace.kernels, "memcpy": trace.memcpy, "memset": trace.memset}
    kernels = frames["kernels"]
    devices = sorted(set(kernels.get_column("device_id").drop_nulls().to_list()))
    samples = found.samples
    if len(devices) == 1 and not samples.filter(pl.col("device_id") == devices[0]).height:
        samples = samples.with_columns(pl.lit(devices[0], pl.Int64).alias("device_id"))  # 2022.x type ids
    others = pl.concat([frames[k].select("start", "end", "device_id") for k in ("memcpy", "memset")])
    averages = sampling.kernel_metric_averages(samples, kernels, others, found.period_ns, MIN_SAMPLES)
    result.extra["gpu_metrics"] = {
        "table": found.table, "samples": samples.height, "period_ns": found.period_ns,
        "metrics": found.sources, "min_samples": MIN_SAMPLES,
        "kernels": {r["name"]: {k: v for k, v in r.items() if k != "name"} for r in averages.iter_rows(named=True)},
    }
    return {r["name"]: r for r in averages.iter_rows(named=True)}, found.sources, found.table


def _kernel_rows(result: AnalysisResult) -> pl.DataFrame:
    """Per kernel name: avg duration, device, blocks of its dominant launch shape, family."""
    shapes = result.kernel_shapes.sort("total_ns", descending=True).unique(subset="name", keep="first")
    blocks = shapes.select("name", (pl.col("grid_x") * pl.col("grid_y") * pl.col("grid_z")).alias("blocks"))
    rows = result.kernels.select("name", "avg_ns", "total_ns", "time_pct", "instances",
                                 pl.col("device_ids").list.first().alias("device_id"))
    return families.with_family(rows.join(blocks, on="name", how="left"))


def _bound_entry(verdicts: list[Verdict], family: str) -> dict[str, Any]:
    best = verdicts[0]
    entry: dict[str, Any] = {"class": best.cls, "tier": best.tier, "confidence": best.confidence,
                             "reason": best.reason, "evidence": best.evidence, "family": family}
    entry |= {k: v for k, v in best.extra.items() if v is not None}
    for lower in verdicts[1:]:  # keep bytes/bandwidth from a lower tier when the best lacks them
        if "achieved_bandwidth_bytes_per_s" in entry:
            break
        for key in ("bytes_per_launch", "bytes_source", "achieved_bandwidth_bytes_per_s", "achieved_bandwidth_source"):
            if key not in entry and lower.extra.get(key) is not None:
                entry[key] = lower.extra[key]
    entry["other_tiers"] = [{"tier": v.tier, "class": v.cls, "confidence": v.confidence, "reason": v.reason}
                            for v in verdicts[1:]]
    return entry


def _percent_of_peak(entry: dict[str, Any], peaks: Peaks | None) -> None:
    bw = entry.get("achieved_bandwidth_bytes_per_s")
    if bw and peaks and peaks.dram_bw:
        entry["bandwidth_pct_of_peak"] = 100.0 * bw / peaks.dram_bw
        entry["peak_bandwidth_bytes_per_s"] = peaks.dram_bw
        entry["peak_bandwidth_source"] = peaks.dram_source
    fl, peak_fl = entry.get("achieved_flops_per_s"), entry.get("peak_flops_per_s")
    if fl and peak_fl:
        entry["flops_pct_of_peak"] = 100.0 * fl / peak_fl


def classify(result: AnalysisResult, options: AnalyzeOptions) -> dict[str, dict[str, Any]]:
    """``bound`` entry per kernel name, from every tier that has evidence for it."""
    rows = _kernel_rows(result)
    peaks_by_dev = {int(d): device_peaks(result.trace, int(d), options.hardware)
                    for d in rows.get_column("device_id").drop_nulls().unique().to_list()}
    any_peaks = next((p for p in peaks_by_dev.values() if p), None)
    ncu_rows, ncu_used = _ncu_rows(result, options)
    gm_rows, gm_sources, gm_table = _gpu_metric_rows(result)
    known = work.kernel_work(result.kernel_shapes, getattr(options, "work", None),
                             any_peaks.sm_count if any_peaks else None)
    work_rows = {r["name"]: r for r in known.iter_rows(named=True)}
    out: dict[str, dict[str, Any]] = {}
    for row in rows.iter_rows(named=True):  # one iteration per kernel name
        name, fam = row["name"], families.family_info(row["family"])
        peaks = peaks_by_dev.get(row["device_id"]) if row["device_id"] is not None else any_peaks
        comm = fam.usual_class == "communication"  # launch shape says nothing about a collective
        verdicts = [v for v in (
            ncu_verdict(ncu_rows[name], peaks, ncu_used, row["avg_ns"]) if name in ncu_rows else None,
            gpu_metrics_verdict(gm_rows[name], peaks, gm_sources, gm_table) if name in gm_rows else None,
            None if comm else analytic_verdict(row, work_rows.get(name), peaks),
            heuristic_verdict(fam.name, fam.usual_class, fam.why)) if v is not None]
        for v in verdicts if comm else []:
            v.cls = "communication"
        entry = _bound_entry(verdicts, fam.name)
        if name in gm_rows:  # say why a sampled trace has no GPU-metric average for this kernel
            gm = gm_rows[name]
            entry["gpu_metrics"] = {"samples": gm["samples"], "reason": gm["reason"]}
        _percent_of_peak(entry, peaks)
        out[name] = entry
    return out


def roofline_points(result: AnalysisResult, bounds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Points for a roofline chart: kernels with both FLOPs and bytes, plus the ceilings."""
    points = []
    for k in result.kernels.select("name", "total_ns", "time_pct").iter_rows(named=True):
        b = bounds.get(k["name"], {})
        if b.get("arithmetic_intensity") is None or not b.get("achieved_flops_per_s"):
            continue
        points.append({"name": k["name"], "arithmetic_intensity": b["arithmetic_intensity"],
                       "achieved_flops_per_s": b["achieved_flops_per_s"],
                       "achieved_bandwidth_bytes_per_s": b.get("achieved_bandwidth_bytes_per_s"),
                       "class": b["class"], "tier": b["tier"], "time_pct": k["time_pct"],
                       "peak_flops_per_s": b.get("peak_flops_per_s"),
                       "peak_bandwidth_bytes_per_s": b.get("peak_bandwidth_bytes_per_s"),
                       "ridge_point": b.get("ridge_point")})
    devices = sorted({int(d) for ids in result.kernels.get_column("device_ids").to_list() for d in ids})
    peaks = device_peaks(result.trace, devices[0], result.options.hardware) if devices else None
    ceilings = {}
    if peaks:
        ceilings = {"gpu": peaks.name, "dram_bandwidth_bytes_per_s": peaks.dram_bw,
                    "dram_bandwidth_source": peaks.dram_source, "peak_flops_per_s": peaks.flops,
                    "peak_flops_source": peaks.flops_source}
    return {"ceilings": ceilings, "points": points}


def enrich(result: AnalysisResult, options: AnalyzeOptions) -> None:
    """Pipeline step: ``bound`` per kernel, ``roofline`` (and ``ncu``/``gpu_metrics`` when present)."""
    bounds = classify(result, options)
    details = result.extra.setdefault("kernel_details", {})
    for name, entry in bounds.items():
        details.setdefault(name, {})["bound"] = entry
    result.extra["roofline"] = roofline_points(result, bounds)
