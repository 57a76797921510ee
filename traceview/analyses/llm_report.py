"""Pipeline step ``extra["llm"]``: the decode step, its host syncs, fusion candidates and the
quantization what-if; and ``decode_step_for_projection`` for `traceview project`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from traceview.analyses import derived, llm, projection

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions

def _decode_pattern(options: AnalyzeOptions) -> str:
    recipe = options.recipe
    names = list(getattr(recipe, "phases", {}).get("decode", []) or []) if recipe is not None else []
    return "^(" + "|".join(names) + ")$" if names else llm.phases.DECODE


def _busiest_device(steps: pl.DataFrame) -> int | None:
    if steps.height == 0:
        return None
    per = steps.group_by("device_id").agg(pl.col("duration").sum()).sort(["duration", "device_id"],
                                                                          descending=[True, False])
    return int(per.get_column("device_id")[0])


def decode_analysis(result: AnalysisResult, options: AnalyzeOptions) -> dict[str, Any] | None:
    """The decode step on its busiest device: profile, kernels, host syncs, quantization what-if."""
    trace = result.trace
    frames = result.frames or {"kernels": trace.kernels, "memcpy": trace.memcpy}
    name, ranges = llm.decode_ranges(trace.nvtx, _decode_pattern(options))
    if name is None:
        return None
    steps = llm.step_kernels(frames["kernels"], trace.api, ranges, points=derived.kernel_points(result),
                             codes=derived.kernel_names(result)[0])
    device = _busiest_device(steps)
    if device is None:
        return None
    steps = steps.filter(pl.col("device_id") == device)
    n = ranges.height
    table = llm.step_kernel_table(steps, n, result.extra.get("kernel_details", {}), derived.name_families(result))
    profile = llm.step_profile(steps, n)
    syncs = llm.host_syncs_in_steps(trace.api, frames["memcpy"], ranges, calls=derived.calls(result),
                                    copy_points=derived.copy_points(result))
    kernels = [projection.StepKernel(
        name=r["name"], ns_per_step=r["ns_per_step"], bytes_per_step=r["bytes_per_step"],
        bound_class=r["bound_class"] or "unknown", is_weight_stream=llm.is_weight_stream(r),
        source_bits=projection.source_bits(r["name"])) for r in table.iter_rows(named=True)]
    return {
        "phase": name, "device_id": device, **profile,
        "kernels": [{k: r[k] for k in ("name", "family", "bound_class", "launches_per_step", "ns_per_step",
                                         "bytes_per_launch", "bytes_per_step", "bytes_source")}
                    for r in table.iter_rows(named=True)],
        "host_sync": {
            "steps_with_sync": int(syncs.filter((pl.col("sync_calls") > 0) | (pl.col("d2h_copies") > 0)).height),
            "median_sync_ns": float(syncs.get_column("sync_ns").median() or 0),
            "median_d2h_bytes": float(syncs.get_column("d2h_bytes").median() or 0),
            "calls": syncs.get_column("call_names").explode().drop_nulls().unique().sort().to_list(),
            "source": "trace: CUPTI_ACTIVITY_KIND_RUNTIME (blocking calls inside the step's NVTX range) and "
                      "CUPTI_ACTIVITY_KIND_MEMCPY (DtoH copies it launched)",
        },
        "quantization": projection.quantization_whatif(profile["gpu_ns_per_step"], kernels),
    }


def default_projection(result: AnalysisResult, options: AnalyzeOptions) -> dict[str, Any] | None:
    """The deployment what-if with the recipe's ``[projection]`` (else GB10, 1/2/4 nodes), or None
    when the decode step streams no weights."""
    from traceview.analyses import deployment
    from traceview.errors import TraceviewError

    conf = dict(getattr(options.recipe, "sections", {}).get("projection", {})) if options.recipe else {}
    key = options.hardware or conf.get("hardware") or "gb10"
    try:
        step = deployment.measured_step(result)
        target = deployment.target_for(key, conf.get("bandwidth_share"))
        link = deployment.link_named(conf.get("link") or deployment.default_link(key))
    except TraceviewError:
        return None
    return projection.project(step, target, link, nodes=[int(n) for n in conf.get("nodes", [1, 2, 4])],
                              batch=int(conf.get("batch", 1)), microbatches=int(conf.get("microbatches", 1)))


def enrich(result: AnalysisResult, options: AnalyzeOptions) -> None:
    kernels = (result.frames or {}).get("kernels", result.trace.kernels)
    names = derived.kernel_names(result)
    ordered = llm.stream_ordered(kernels, names)  # one sort for both chain finders
    chains = llm.elementwise_chains(kernels, ordered=ordered, names=names)
    attention = llm.attention_chains(kernels, ordered=ordered, names=names)
    del ordered
    result.extra["llm"] = {
        "decode": decode_analysis(result, options),
        "elementwise_chains": chains.head(20).to_dicts(),
        "attention_chains": attention.head(20).to_dicts(),
    }
    if result.extra["llm"]["decode"]:
        result.extra["llm"]["projection"] = default_projection(result, options)
