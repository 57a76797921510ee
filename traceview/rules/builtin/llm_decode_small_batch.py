"""llm.decode-small-batch: a decode step dominated by streaming the weights."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from traceview.analyses import llm
from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin.llm_common import DECODE_SRC, decode_or_na, us
from traceview.rules.registry import rule


@dataclass(frozen=True, slots=True)
class Params:
    min_weight_share: float = 0.5   # memory-bound GEMV/GEMM share of the step's GPU time


@rule(id="llm.decode-small-batch", title="Decode dominated by weight streaming (small batch)", category="llm",
      severity=Severity.medium, params=Params)
def decode_small_batch(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Fires when memory-bound GEMV/GEMM kernels (the weight stream; class from the bound analysis)
    take at least ``min_weight_share`` of a decode step's GPU time.

    ## Why it matters
    At small batch every token re-reads all weights: step time is bytes / bandwidth no matter how
    fast the math units are. More tokens per weight read is the only way up.

    ## How to fix
    Speculative decoding (a draft model or n-gram/EAGLE/Medusa heads verify several tokens per
    weight pass; 2-3x on recent GPUs is typical, an estimate that depends on the acceptance
    rate); larger batches with continuous batching (vLLM, SGLang, TensorRT-LLM); quantized
    weights (FP8, NVFP4) to cut the bytes per token (see the quantization what-if).

    ## Parameters
    - ``min_weight_share``: weight-stream share of the step's GPU time to fire.

    The estimated gain assumes speculative decoding at 2x on the weight-stream part (an estimate).
    """
    d = decode_or_na(ctx, "llm.decode-small-batch")
    if isinstance(d, NotApplicable):
        return d
    weights = [k for k in d["kernels"] if llm.is_weight_stream(k)]
    w_ns = sum(k["ns_per_step"] for k in weights)
    share = w_ns / d["gpu_ns_per_step"] if d["gpu_ns_per_step"] else 0.0
    if not weights or share < p.min_weight_share:
        return iter(())
    fp8 = next((q for q in d["quantization"] if q["format"] == "fp8"), None)
    quant = f"; FP8 weights would bring the step to ~{us(fp8['projected_step_ns'])}" if fp8 else ""
    return iter([Finding(
        rule_id="llm.decode-small-batch", severity=Severity.medium, title="Decode dominated by weight streaming",
        message=(f"memory-bound {', '.join(k['name'] for k in weights)} take {us(w_ns)} of the {us(d['gpu_ns_per_step'])} "
                 f"'{d['phase']}' step ({share:.0%} >= {p.min_weight_share:.0%}){quant} (estimate)"),
        subject={"kind": "nvtx", "name": d["phase"], "device_id": d["device_id"]},
        evidence=(Evidence("weight-stream time per step", w_ns, "ns", DECODE_SRC),
                  Evidence("GPU time per step", d["gpu_ns_per_step"], "ns", DECODE_SRC),
                  Evidence("bound class of the weight kernels", "memory", "",
                           "traceview bound analysis (kernels[].bound)")),
        estimated_gain_ns=float(w_ns / 2 * d["steps"]),
        recommendation="Raise tokens per weight pass: speculative decoding (2-3x typical, an estimate), larger "
                       "batches with continuous batching, or FP8/NVFP4 weights.")])
