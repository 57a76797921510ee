"""Helpers shared by the launch, occupancy and tile rules (no rule is registered here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl

from traceview.analyses.launch import specs_for, trace_source

__all__ = ["trace_source"]
from traceview.hardware import GpuSpec
from traceview.rules.base import Evidence, NotApplicable, RuleContext, Severity


def launch_frame(ctx: RuleContext, rule_id: str) -> pl.DataFrame | NotApplicable:
    """The per-shape launch analysis, or why there is none (no kernels, GPU not described)."""
    frame = ctx.result.frames.get("launch_shapes")
    if frame is None or frame.height == 0:
        problems = (ctx.result.extra.get("hardware") or {}).get("unavailable") or []
        reason = "; ".join(problems) or "no kernel launches to analyze"
        return NotApplicable(rule_id, f"no launch analysis: {reason}")
    return frame


def gpu_time_ns(ctx: RuleContext) -> int:
    """Total kernel time of the analyzed devices (the weight base for time shares)."""
    if "gpu_time_ns" not in ctx.cache:
        kernels = ctx.result.frames.get("kernels", ctx.trace.kernels)
        ctx.cache["gpu_time_ns"] = int(kernels.get_column("duration").sum() or 0)
    return int(ctx.cache["gpu_time_ns"])


def spec(ctx: RuleContext, device_id: int) -> GpuSpec:
    """The GpuSpec the launch analysis used for a device."""
    if "launch_specs" not in ctx.cache:
        ctx.cache["launch_specs"] = specs_for(ctx.result)
    return ctx.cache["launch_specs"][device_id]


def worst_per_kernel(frame: pl.DataFrame, gain: pl.Expr) -> Iterator[tuple[dict[str, Any], float, int]]:
    """(dominant matching shape, summed gain ns, matching shape count) per (device, kernel name)."""
    ranked = frame.with_columns(gain_ns=gain).sort(["total_ns", "name"], descending=[True, False])
    grouped = ranked.group_by(["device_id", "name"], maintain_order=True).agg(
        pl.col("gain_ns").sum().alias("gain_sum"), pl.len().alias("shape_count"), pl.all().first())
    for row in grouped.iter_rows(named=True):
        yield row, float(row["gain_sum"]), int(row["shape_count"])


def subject(row: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "kernel", "name": row["name"], "device_id": row["device_id"],
            "grid": list(row["grid"]), "block": list(row["block"])}


def time_share(ctx: RuleContext, row: dict[str, Any]) -> Evidence:
    total = gpu_time_ns(ctx)
    share = row["total_ns"] / total if total else 0.0
    return Evidence("kernel share of GPU time", round(100 * share, 2), "%",
                    "trace: sum of CUPTI_ACTIVITY_KIND_KERNEL end - start for this launch shape over all kernels")


def shape_evidence(row: dict[str, Any]) -> list[Evidence]:
    """Grid, block and launch count of the shape, with their trace columns."""
    return [
        Evidence("grid", "x".join(map(str, row["grid"])), "blocks", trace_source("grid")),
        Evidence("blocks", row["blocks"], "blocks", trace_source("grid") + " (product)"),
        Evidence("block", "x".join(map(str, row["block"])), "threads", trace_source("block")),
        Evidence("launches", row["instances"], "launches", "trace: CUPTI_ACTIVITY_KIND_KERNEL rows of this shape"),
        Evidence("time in this shape", row["total_ns"], "ns", trace_source("duration")),
    ]


def hw_evidence(ctx: RuleContext, row: dict[str, Any], fields: tuple[str, ...] = ("sm_count",)) -> list[Evidence]:
    """Hardware values used, each with its table entry or trace column and citation."""
    gpu = spec(ctx, int(row["device_id"]))
    out = []
    for field in fields:
        value = getattr(gpu.limits, field.removeprefix("limits.")) if field.startswith("limits.") else getattr(gpu, field)
        out.append(Evidence(field.removeprefix("limits."), value, "", gpu.evidence_source(field)))
    return out


def occupancy_evidence(ctx: RuleContext, row: dict[str, Any]) -> list[Evidence]:
    calc = ("traceview occupancy calculator (CUDA occupancy rules) on "
            + trace_source("registers_per_thread") + ", " + trace_source("static_shared_mem") + " + "
            + trace_source("dynamic_shared_mem") + ", " + trace_source("block") + "; "
            + spec(ctx, int(row["device_id"])).evidence_source("limits"))
    return [
        Evidence("active blocks per SM", row["active_blocks_per_sm"], "blocks", calc),
        Evidence("theoretical occupancy", round(100 * row["theoretical_occupancy"], 1), "%", calc),
        Evidence("occupancy limiter", row["occupancy_limiter"], "", calc),
    ]


def what_if_note(row: dict[str, Any], ctx: RuleContext) -> str:
    """`` (what-if on <GPU>)`` when --hardware re-targets the analysis."""
    return f" (what-if: as if on {spec(ctx, int(row['device_id'])).name})" if row.get("what_if") else ""


def severity_for(ctx: RuleContext, gain_ns: float) -> Severity:
    """Severity from the estimated gain's share of GPU time: >= 10% high, >= 2% medium, >= 0.2% low."""
    total = gpu_time_ns(ctx)
    share = gain_ns / total if total else 0.0
    if share >= 0.10:
        return Severity.high
    if share >= 0.02:
        return Severity.medium
    return Severity.low if share >= 0.002 else Severity.info


def share_filter(ctx: RuleContext, frame: pl.DataFrame, min_time_share: float) -> pl.DataFrame:
    """Shapes whose time is at least ``min_time_share`` of GPU time."""
    total = gpu_time_ns(ctx)
    return frame.filter(pl.col("total_ns") >= min_time_share * total)
