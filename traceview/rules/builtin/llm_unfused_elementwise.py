"""llm.unfused-elementwise: chains of elementwise/normalization kernels that could be one kernel."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin.llm_common import llm_data, us
from traceview.rules.registry import rule


@dataclass(frozen=True, slots=True)
class Params:
    min_occurrences: int = 4        # a chain seen fewer times is not a pattern
    min_saving_share: float = 0.002  # of total kernel time


@rule(id="llm.unfused-elementwise", title="Unfused elementwise/normalization chain", category="llm",
      severity=Severity.low, params=Params)
def unfused_elementwise(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Finds chains of elementwise and normalization kernels (layernorm, RMSNorm, GELU, SiLU, add,
    bias, scale, ...; families from the kernel name) that run back to back on one stream (each
    starting within 50 us of the previous one's end), repeated at least ``min_occurrences`` times.

    ## Why it matters
    Each kernel of the chain reads the activations from DRAM and writes them back; a fused kernel
    makes one pass. For memory-bound chains the fused kernel takes about as long as the longest
    member, so the rest of the chain's time is the saving (an estimate).

    ## How to fix
    Fuse the chain: a GEMM epilogue (bias + activation in cuBLASLt/CUTLASS), ``torch.compile``
    (Inductor fuses pointwise chains), or a fused kernel (e.g. fused add + RMSNorm in vLLM,
    TensorRT-LLM plugins).

    ## Parameters
    - ``min_occurrences``: times the chain must repeat.
    - ``min_saving_share``: smallest estimated saving, as a share of total kernel time.
    """
    chains = llm_data(ctx).get("elementwise_chains") or []
    if not chains:
        return NotApplicable("llm.unfused-elementwise", "no back-to-back elementwise/normalization kernels")
    total = float(ctx.result.kernels.get_column("total_ns").sum() or 0)
    found = []
    for c in chains:
        if c["occurrences"] < p.min_occurrences or c["saving_ns"] < p.min_saving_share * total:
            continue
        found.append(Finding(
            rule_id="llm.unfused-elementwise", severity=Severity.low, title="Unfused elementwise/normalization chain",
            message=(f"{c['chain']} runs back to back {c['occurrences']} times ({us(c['total_ns'])} in total); one "
                     f"fused pass would take about {us(c['fused_estimate_ns'])} (estimate)"),
            subject={"kind": "kernel", "name": c["kernels"][0], "chain": c["kernels"]},
            evidence=(Evidence("chain occurrences", c["occurrences"], "count",
                               "trace: CUPTI_ACTIVITY_KIND_KERNEL start/end per (deviceId, streamId)"),
                      Evidence("chain kernel time", c["total_ns"], "ns", "trace: CUPTI_ACTIVITY_KIND_KERNEL end - start"),
                      Evidence("fused estimate (longest member per occurrence)", c["fused_estimate_ns"], "ns",
                               "estimate: one pass over the data")),
            estimated_gain_ns=float(c["saving_ns"]),
            recommendation=f"Fuse {' + '.join(c['kernels'])} into one kernel (GEMM epilogue, torch.compile, or a "
                           "fused normalization + activation kernel)."))
    return iter(found)
