"""llm.unfused-attention: attention as GEMM -> softmax -> GEMM instead of a fused kernel."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin.llm_common import llm_data, us
from traceview.rules.registry import rule


@dataclass(frozen=True, slots=True)
class Params:
    min_occurrences: int = 2
    score_bytes_per_element: int = 2   # fp16/bf16 score matrix


@rule(id="llm.unfused-attention", title="Unfused attention (GEMM -> softmax -> GEMM)", category="llm",
      severity=Severity.medium, params=Params)
def unfused_attention(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Finds a softmax kernel between two GEMM kernels on one stream, repeated at least
    ``min_occurrences`` times: attention computed as Q.K^T, softmax, then .V with the score matrix
    materialized in DRAM, instead of a fused FlashAttention / FlashInfer / cuDNN SDPA kernel.

    ## Why it matters
    The score matrix (batch x heads x seq x seq) is written by the first GEMM, read and written by
    the softmax and read again by the second GEMM; a fused kernel keeps it on chip. At long
    sequence lengths this traffic dominates attention time.

    ## How to fix
    Use ``torch.nn.functional.scaled_dot_product_attention`` (flash or cuDNN backend),
    FlashAttention-2/3, FlashInfer, or the serving engine's fused attention backend.

    ## Parameters
    - ``min_occurrences``: sequences seen before it counts.
    - ``score_bytes_per_element``: element size of the score matrix for the bytes estimate.

    The score-matrix size is estimated from the softmax launch (one thread per element when the
    kernel is not grid-stride: grid x block); the saving is estimated as the softmax time.
    """
    seqs = llm_data(ctx).get("attention_chains") or []
    if not seqs:
        return NotApplicable("llm.unfused-attention", "no GEMM -> softmax -> GEMM sequence on any stream")
    found = []
    for s in seqs:
        if s["occurrences"] < p.min_occurrences:
            continue
        score_bytes = s["threads"] * p.score_bytes_per_element
        found.append(Finding(
            rule_id="llm.unfused-attention", severity=Severity.medium, title="Unfused attention",
            message=(f"{s['seq']} runs {s['occurrences']} times; the softmax alone takes {us(s['softmax_ns'])} and "
                     f"the score matrix is ~{score_bytes / 2**20:.1f} MiB per call (estimate)"),
            subject={"kind": "kernel", "name": s["softmax"], "sequence": s["seq"]},
            evidence=(Evidence("occurrences", s["occurrences"], "count", "trace: kernel order per stream"),
                      Evidence("softmax time", s["softmax_ns"], "ns", "trace: CUPTI_ACTIVITY_KIND_KERNEL end - start"),
                      Evidence("score matrix per call (grid x block x element size)", score_bytes, "B",
                               "estimate from CUPTI_ACTIVITY_KIND_KERNEL gridX..blockZ")),
            estimated_gain_ns=float(s["softmax_ns"]),
            recommendation="Replace the GEMM/softmax/GEMM sequence with a fused attention kernel "
                           "(scaled_dot_product_attention, FlashAttention, FlashInfer, cuDNN SDPA)."))
    return iter(found)
