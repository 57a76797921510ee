"""Phases from NVTX ranges: the GPU work each range launched, its bytes, bandwidth and bound mix.

A kernel (or copy) belongs to every range that encloses the host call that launched it
(CUDA API ``correlationId``, same thread), the projection ``nsys`` uses for NVTX GPU
summaries. GPU work is asynchronous, so a range's wall time on the host can be much shorter
than the GPU time of the work it launched; both are reported.

For each phase: instances, wall time, kernel launches and time, bytes moved by kernels
(``bound.bytes_per_launch``: Nsight Compute DRAM bytes, sidecar or recognized kernels) and
copies, achieved bandwidth, the share of kernel time per bound class, and the
weight-streaming floor (bytes per instance / peak DRAM bandwidth) vs the measured GPU time
per instance, the number that matters for LLM decode steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from traceview.analyses import derived, hostcalls

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions

LIBRARY_DOMAINS = r"^(NCCL|CUBLAS|cuBLAS|CUDNN|cuDNN|NVSHMEM|cuFFT|TensorRT):"
DECODE = r"(?i)decode|token|generat|sampl"
OP_SUFFIX = r",\s*(op_id|seq|sizes)\s*=.*$"
MAX_PHASES = 30


def range_hits(points: pl.DataFrame, ranges: pl.DataFrame, phase: str = "name") -> pl.DataFrame:
    """``points`` (``hostcalls.launch_points``) with ``r_start``, ``r_end`` and ``phase`` (the
    range's ``phase`` column: its name, or a code standing for it), once per enclosing range."""
    parts = []
    for level in sorted(ranges.get_column("level").drop_nulls().unique().to_list()):  # loop over nesting levels
        lv = ranges.filter(pl.col("level") == level).select(
            pl.col("start").alias("r_start"), pl.col("end").alias("r_end"), pl.col(phase).alias("phase"),
            "global_tid").filter(pl.col("global_tid").is_not_null()).sort("r_start")
        tids = lv.get_column("global_tid").unique()
        if tids.len() == 1:  # one thread (the usual case): an as-of join without ``by`` takes half the time
            tid = points.get_column("global_tid")
            alone = tid.null_count() == 0 and tid.min() == tids[0] == tid.max()  # then no filter (a copy) is needed
            hit = (points if alone else points.filter(pl.col("global_tid") == tids[0])).join_asof(
                lv.drop("global_tid"), left_on="host_t", right_on="r_start", strategy="backward", check_sortedness=False)
        else:
            hit = points.join_asof(lv, left_on="host_t", right_on="r_start", by="global_tid", strategy="backward",
                                   check_sortedness=False)
        inside = hit.select((pl.col("r_end") >= pl.col("host_t")).fill_null(False).all()).item()
        parts.append(hit if inside else hit.filter(pl.col("r_end") >= pl.col("host_t")))  # all inside: no copy
    if not parts:
        return points.head(0).with_columns(pl.lit(None, pl.Int64).alias("r_start"), pl.lit(None, pl.Int64).alias(
            "r_end"), pl.lit(None, ranges.schema[phase]).alias("phase"))
    hits = pl.concat(parts)
    if _on_several_levels(ranges, phase):  # only then can a row hit one phase twice
        hits = hits.unique(subset=["_id", "phase"], keep="first")
    return hits


def _on_several_levels(ranges: pl.DataFrame, phase: str) -> bool:
    """Whether some ``phase`` value (a name, or a code standing for one) occurs on several levels."""
    levels = ranges.filter(pl.col("level").is_not_null()).group_by(phase).agg(pl.col("level").n_unique())
    return bool(levels.height) and int(levels.get_column("level").max()) > 1


def _kernel_facts(result: AnalysisResult) -> pl.DataFrame:
    details = result.extra.get("kernel_details", {})
    rows = [{"name": n, "bytes_per_launch": d.get("bound", {}).get("bytes_per_launch"),
             "bound_class": d.get("bound", {}).get("class", "unknown")} for n, d in details.items()]
    schema = {"name": pl.String, "bytes_per_launch": pl.Float64, "bound_class": pl.String}
    return pl.DataFrame(rows, schema=schema)


def phase_table(kernels: pl.DataFrame, copies: pl.DataFrame, api: pl.DataFrame, ranges: pl.DataFrame,
                facts: pl.DataFrame, *, calls: pl.DataFrame | None = None, kernel_points: pl.DataFrame | None = None,
                copy_points: pl.DataFrame | None = None,
                kernel_names: tuple[pl.Series, pl.Series] | None = None) -> pl.DataFrame:
    """One row per phase name with kernel and copy totals (see module doc). ``calls``,
    ``kernel_points`` and ``copy_points``: see ``project``; ``kernel_names``: ``derived.encode`` of
    the kernel names."""
    ranges, phase_names = _phase_codes(ranges)  # joins and groups carry codes, not strings
    if kernel_points is None or copy_points is None:
        calls = hostcalls.launch_calls(api) if calls is None else calls
    inst = ranges.group_by("_pc").agg(pl.len().alias("instances"), pl.col("duration").sum().alias("wall_ns")).select(
        derived.decoded(pl.col("_pc"), phase_names).alias("name"), "instances", "wall_ns")
    if kernel_points is None:
        kernel_points = hostcalls.launch_points(kernels, calls)
    codes, names = derived.encode(kernels.get_column("name")) if kernel_names is None else kernel_names
    # One row per (phase, kernel name) first: the per-launch facts join and the totals below read it.
    k = _per_phase_kernel(kernels, range_hits(kernel_points, ranges, "_pc"), codes, names, phase_names).join(
        facts, on="name", how="left")
    known = pl.col("bytes_per_launch").is_not_null()
    per_phase = k.group_by("phase").agg(
        pl.col("n").sum().cast(pl.UInt32).alias("kernel_launches"), pl.col("ns").sum().alias("kernel_ns"),
        (pl.col("bytes_per_launch") * pl.col("n")).sum().alias("kernel_bytes"),
        pl.col("ns").filter(known).sum().alias("_ns_with_bytes"),
        pl.col("first_start").min(), pl.col("last_end").max())
    by_class = k.group_by("phase", "bound_class").agg(pl.col("ns").sum())
    top = (k.sort(["ns", "name"], descending=[True, False])
           .group_by("phase", maintain_order=True).agg(pl.col("name").head(5).alias("top_kernels")))
    if copy_points is None:
        copy_points = hostcalls.launch_points(copies, calls)
    c = _copy_totals(copies, range_hits(copy_points, ranges, "_pc"), phase_names)
    classes = by_class.pivot(on="bound_class", index="phase", values="ns", aggregate_function="sum")
    cls_cols = sorted(col for col in classes.columns if col != "phase")  # pivot order follows hash order
    out = (inst.rename({"name": "phase"}).join(per_phase, on="phase", how="inner").join(top, on="phase", how="left")
           .join(c, on="phase", how="left").join(classes, on="phase", how="left"))
    shares = [(pl.col(col).fill_null(0) * 100.0 / pl.col("kernel_ns")).alias(f"{col}_pct") for col in cls_cols]
    return out.with_columns(
        *shares, (pl.col("_ns_with_bytes") * 100.0 / pl.col("kernel_ns")).alias("bytes_coverage_pct"),
        pl.when(pl.col("_ns_with_bytes") > 0).then(pl.col("kernel_bytes") * 1e9 / pl.col("_ns_with_bytes"))
        .alias("achieved_bytes_per_s"),
    ).drop(cls_cols + ["_ns_with_bytes"]).sort(["kernel_ns", "phase"], descending=[True, False])  # ties: nested ranges


def _phase_codes(ranges: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """``ranges`` without library domains, with ``_pc``: the code of the phase name (PyTorch
    emit_nvtx: "aten::mm, op_id = 12" -> "aten::mm"), and the phase names the codes stand for.
    The patterns run on the distinct names only."""
    codes, names = derived.encode(ranges.get_column("name"))
    kept = ~names.str.contains(LIBRARY_DOMAINS)
    phase_names = names.filter(kept).str.replace(OP_SUFFIX, "").unique().sort()
    renamed = pl.select(pl.when(kept).then(names.str.replace(OP_SUFFIX, ""))).to_series()  # null: library
    new_code = renamed.cast(pl.Enum(phase_names)).to_physical().cast(pl.UInt32)
    ranges = ranges.with_columns(pl.lit(new_code).gather(codes).alias("_pc"))
    return ranges.filter(pl.col("_pc").is_not_null() | pl.col("name").is_null()), phase_names


def _per_phase_kernel(kernels: pl.DataFrame, hits: pl.DataFrame, codes: pl.Series, names: pl.Series,
                      phase_names: pl.Series) -> pl.DataFrame:
    """Per (phase, kernel name) of the ``range_hits`` of the kernels: n, ns, first_start, last_end.
    Grouped on codes (``codes``/``names`` and ``phase_names``: ``derived.encode``), named after."""
    ids = hits.get_column("_id").to_numpy()
    per_launch = derived.take_columns(kernels, ["duration", "start", "end"], ids).with_columns(
        phase=hits.get_column("phase"), code=derived.take(codes, ids))
    return (per_launch.group_by("phase", "code").agg(
        pl.len().alias("n"), pl.col("duration").sum().alias("ns"), pl.col("start").min().alias("first_start"),
        pl.col("end").max().alias("last_end"))
        .with_columns(phase=derived.decoded(pl.col("phase"), phase_names), name=derived.decoded(pl.col("code"), names))
        .drop("code"))


def _copy_totals(copies: pl.DataFrame, hits: pl.DataFrame, phase_names: pl.Series) -> pl.DataFrame:
    """Per phase: copy_bytes and copy_ns of the ``range_hits`` of the copies."""
    return (derived.take_columns(copies, ["bytes", "duration"], hits.get_column("_id"))
            .with_columns(phase=hits.get_column("phase")).group_by("phase")
            .agg(pl.col("bytes").sum().alias("copy_bytes"), pl.col("duration").sum().alias("copy_ns"))
            .with_columns(phase=derived.decoded(pl.col("phase"), phase_names)))


def _phase_entry(r: dict[str, Any], peak_bw: float | None, peak_source: str) -> dict[str, Any]:
    shares = {k[:-4]: v for k, v in r.items() if k.endswith("_pct") and k not in ("bytes_coverage_pct",) and v}
    inst = r["instances"] or 1
    entry = {"name": r["phase"], "instances": r["instances"], "wall_ns": r["wall_ns"], "avg_wall_ns": r["wall_ns"] / inst,
             "kernel_launches": r["kernel_launches"], "kernel_ns": r["kernel_ns"], "gpu_ns_per_instance": r["kernel_ns"] / inst,
             "gpu_span_ns": r["last_end"] - r["first_start"], "top_kernels": r["top_kernels"],
             "kernel_bytes": r["kernel_bytes"] or None, "bytes_coverage_pct": r["bytes_coverage_pct"],
             "achieved_bytes_per_s": r["achieved_bytes_per_s"], "copy_bytes": r["copy_bytes"] or 0,
             "copy_ns": r["copy_ns"] or 0, "class_share_pct": shares, "is_decode": bool(
                 __import__("re").search(DECODE, r["phase"] or ""))}
    if peak_bw and entry["achieved_bytes_per_s"]:
        entry["bandwidth_pct_of_peak"] = 100.0 * entry["achieved_bytes_per_s"] / peak_bw
    if peak_bw and r["kernel_bytes"]:
        floor = r["kernel_bytes"] / inst / peak_bw * 1e9
        entry["weight_streaming_floor"] = {
            "bytes_per_instance": r["kernel_bytes"] / inst, "peak_bytes_per_s": peak_bw, "peak_source": peak_source,
            "floor_ns": floor, "measured_gpu_ns": entry["gpu_ns_per_instance"],
            "floor_pct_of_measured": 100.0 * floor / entry["gpu_ns_per_instance"] if entry["gpu_ns_per_instance"] else None,
            "note": "bytes per instance / peak DRAM bandwidth vs the GPU time of the kernels the instance launched"}
    return entry


def enrich(result: AnalysisResult, options: AnalyzeOptions) -> None:
    """Pipeline step: ``extra["phases"]`` (empty list when the trace has no NVTX ranges)."""
    trace = result.trace
    frames = result.frames or {"kernels": trace.kernels, "memcpy": trace.memcpy}
    if trace.nvtx.height == 0:
        result.extra["phases"] = []
        return
    table = phase_table(frames["kernels"], frames["memcpy"], trace.api, trace.nvtx, _kernel_facts(result),
                        kernel_points=derived.kernel_points(result), kernel_names=derived.kernel_names(result),
                        copy_points=derived.copy_points(result))
    peak_bw, peak_source = _peak(result, options)
    result.extra["phases"] = [_phase_entry(r, peak_bw, peak_source) for r in table.head(MAX_PHASES).iter_rows(named=True)]
    if table.height > MAX_PHASES:
        result.warnings.append(f"phases: {table.height} NVTX range names launched GPU work; the "
                               f"{MAX_PHASES} with the most kernel time are listed")


def _peak(result: AnalysisResult, options: AnalyzeOptions) -> tuple[float | None, str]:
    from traceview.analyses.bound import device_peaks

    devices = result.trace.device_ids
    peaks = device_peaks(result.trace, devices[0], options.hardware) if devices else None
    return (peaks.dram_bw, peaks.dram_source) if peaks else (None, "")
