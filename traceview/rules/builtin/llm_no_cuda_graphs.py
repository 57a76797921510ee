"""llm.no-cuda-graphs: decode steps of many short kernels with launch gaps and no CUDA graph."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin.llm_common import DECODE_SRC, decode_or_na, us
from traceview.rules.registry import rule


@dataclass(frozen=True, slots=True)
class Params:
    min_launches_per_step: int = 8
    max_median_kernel_ns: int = 50_000   # "short" kernels
    min_gap_share: float = 0.10          # GPU idle inside the step's span, share of the span


@rule(id="llm.no-cuda-graphs", title="Decode steps launched kernel by kernel (no CUDA graph)", category="llm",
      severity=Severity.medium, params=Params)
def no_cuda_graphs(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    For the decode phase: fires when a step launches at least ``min_launches_per_step`` kernels
    whose median duration is at most ``max_median_kernel_ns``, the GPU idles for at least
    ``min_gap_share`` of the step's span between them, and no step ran from a CUDA graph
    (``graphId``/``graphNodeId`` absent or zero in the kernel table).

    ## Why it matters
    Each launch costs several microseconds of CPU time; when kernels are shorter than that the GPU
    waits for the CPU between kernels, so the step is launch-bound rather than GPU-bound.

    ## How to fix
    Capture the decode step in a CUDA graph (``torch.cuda.graphs``, vLLM/SGLang/TensorRT-LLM CUDA
    graph mode, ``--enforce-eager`` off) so one launch replays all kernels; fuse short kernels.

    ## Parameters
    - ``min_launches_per_step``, ``max_median_kernel_ns``: what counts as many short kernels.
    - ``min_gap_share``: GPU idle share of the step span to fire.

    The estimated gain is the median idle time inside a step times the number of steps (the
    gap a graph replay removes, an upper bound).
    """
    d = decode_or_na(ctx, "llm.no-cuda-graphs")
    if isinstance(d, NotApplicable):
        return d
    share = d["gap_ns_per_step"] / d["span_ns_per_step"] if d["span_ns_per_step"] else 0.0
    if (d["graphed_steps"] > 0 or d["launches_per_step"] < p.min_launches_per_step
            or d["median_kernel_ns"] > p.max_median_kernel_ns or share < p.min_gap_share):
        return iter(())
    return iter([Finding(
        rule_id="llm.no-cuda-graphs", severity=Severity.medium, title="Decode steps without CUDA graphs",
        message=(f"each '{d['phase']}' step launches {d['launches_per_step']:.0f} kernels (median "
                 f"{us(d['median_kernel_ns'])}) one by one; the GPU idles {us(d['gap_ns_per_step'])} of the "
                 f"{us(d['span_ns_per_step'])} step span ({share:.0%} >= {p.min_gap_share:.0%}) and no step uses a graph"),
        subject={"kind": "nvtx", "name": d["phase"], "device_id": d["device_id"]},
        evidence=(Evidence("kernel launches per step", d["launches_per_step"], "count", DECODE_SRC),
                  Evidence("median kernel duration", d["median_kernel_ns"], "ns",
                           "trace: CUPTI_ACTIVITY_KIND_KERNEL end - start"),
                  Evidence("GPU idle inside a step (median)", d["gap_ns_per_step"], "ns",
                           "trace: step span minus kernel busy time on the device"),
                  Evidence("steps launched from a CUDA graph", d["graphed_steps"], "steps",
                           "trace: CUPTI_ACTIVITY_KIND_KERNEL.graphId / graphNodeId")),
        estimated_gain_ns=float(d["gap_ns_per_step"] * d["steps"]),
        recommendation="Capture the decode step in a CUDA graph (torch.cuda.CUDAGraph, the serving engine's "
                       "CUDA-graph mode) and fuse the shortest kernels.")])
