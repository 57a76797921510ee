"""Pipeline step ``extra["llm"]``: the decode step, its host syncs, fusion candidates and the
quantization what-if; and ``decode_step_for_projection`` for `traceview project`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from traceview.analyses import derived, llm, llm_chains, projection

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions

def _decode_pattern(options: AnalyzeOptions) -> str:
    recipe = options.recipe
    names = list(getattr(recipe, "phases", {}).get("decode", []) or []) if recipe is not None else []
    return "^(" + "|".join(names) + ")$" if names else llm.phases.DECODE


def name_codes(result: AnalysisResult) -> np.ndarray:
    """``derived.kernel_names`` codes as numpy, a null name one past the last name."""
    codes, names = derived.kernel_names(result)
    return derived.memo(result, "llm_name_codes", lambda: codes.fill_null(names.len()).to_numpy())


def decode_analysis(result: AnalysisResult, options: AnalyzeOptions) -> dict[str, Any] | None:
    """The decode step on its busiest device: profile, kernels, host syncs, quantization what-if."""
    trace = result.trace
    frames = result.frames or {"kernels": trace.kernels, "memcpy": trace.memcpy}
    name, ranges = llm.decode_ranges(trace.nvtx, _decode_pattern(options))
    if name is None:
        return None
    kernels = frames["kernels"]
    rows, step = llm.step_rows(derived.kernel_points(result), ranges)
    device = llm.busiest_device(kernels, rows)
    if device is None:
        return None
    rows, step = llm.on_device(kernels, rows, step, device)
    n = ranges.height
    table = llm.step_kernel_table(kernels, name_codes(result), rows, n,
                                  result.extra.get("kernel_details", {}), derived.name_families(result))
    profile = llm.step_profile(kernels, rows, step, n)
    step_kernels = [projection.StepKernel(
        name=r["name"], ns_per_step=r["ns_per_step"], bytes_per_step=r["bytes_per_step"],
        bound_class=r["bound_class"] or "unknown", is_weight_stream=llm.is_weight_stream(r),
        source_bits=projection.source_bits(r["name"])) for r in table.iter_rows(named=True)]
    return {
        "phase": name, "device_id": device, **profile,
        "kernels": [{k: r[k] for k in ("name", "family", "bound_class", "launches_per_step", "ns_per_step",
                                         "bytes_per_launch", "bytes_per_step", "bytes_source")}
                    for r in table.iter_rows(named=True)],
        "host_sync": llm.host_syncs(derived.calls(result), frames["memcpy"], ranges, derived.copy_points(result)),
        "quantization": projection.quantization_whatif(profile["gpu_ns_per_step"], step_kernels),
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
    view = llm_chains.StreamView.build(kernels, derived.kernel_names(result)[1], name_codes(result))  # for both finders
    chains = llm_chains.elementwise_chains(kernels, view=view)
    attention = llm_chains.attention_chains(kernels, view=view)
    del view
    result.extra["llm"] = {
        "decode": decode_analysis(result, options),
        "elementwise_chains": chains.head(20).to_dicts(),
        "attention_chains": attention.head(20).to_dicts(),
    }
    if result.extra["llm"]["decode"]:
        result.extra["llm"]["projection"] = default_projection(result, options)
