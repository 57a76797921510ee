"""memory.low-bandwidth: a memory-bound kernel that matters draws too little DRAM bandwidth."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.registry import rule

RULE_ID = "memory.low-bandwidth"


@dataclass(frozen=True)
class LowBandwidthParams:
    min_share_of_peak: float = 0.6    # fire below this share of peak DRAM bandwidth
    min_time_share: float = 0.01      # ignore kernels below this share of kernel time


@rule(id=RULE_ID, title="Memory-bound kernel far from peak bandwidth", category="memory",
      severity=Severity.medium, params=LowBandwidthParams)
def low_bandwidth(ctx: RuleContext, p: LowBandwidthParams) -> Iterable[Finding] | NotApplicable:
    """What it does: flags kernels classified memory-bound (``bound.class == "memory"``, any
    evidence tier) whose achieved DRAM bandwidth is below ``min_share_of_peak`` of the GPU's
    peak, when they take at least ``min_time_share`` of kernel time.

    Why it matters: a memory-bound kernel's speed is its bandwidth. Well-tuned streaming
    kernels reach 75-90% of peak on HBM GPUs; an LLM decode phase on a DGX Spark typically
    reaches 55-60% of its 273 GB/s, and under CPU/GPU memory contention it can fall to a floor
    around 80-90 GB/s. Far below that, the kernel leaves bandwidth, and time, unused.

    How to fix: launch enough blocks to keep every SM's memory pipeline busy (at least a few
    waves, or a grid-stride loop sized to SMs x resident blocks), vectorize loads (16-byte
    accesses), coalesce accesses, avoid re-reading data through L2 misses, and fuse passes
    that re-read the same tensor. Check the achieved number with Nsight Compute (``--ncu``).

    Parameters: ``min_share_of_peak`` (0.6), ``min_time_share`` (0.01 of kernel time).
    """
    details = ctx.result.extra.get("kernel_details", {})
    total = float(ctx.result.kernels.get_column("total_ns").sum() or 0)
    candidates = [(k, details.get(k["name"], {}).get("bound", {}))
                  for k in ctx.result.kernels.select("name", "total_ns", "instances").iter_rows(named=True)]
    measured = [(k, b) for k, b in candidates if b.get("class") == "memory" and b.get("bandwidth_pct_of_peak")
                and b.get("memory_unit") in (None, "DRAM")]  # L1/L2-bound kernels are not DRAM-limited
    if not measured:
        return NotApplicable(RULE_ID, "no memory-bound kernel with a known achieved bandwidth (add --ncu, GPU "
                                      "metrics or a --work sidecar)")
    out = []
    for k, b in measured:
        share = b["bandwidth_pct_of_peak"] / 100.0
        if share >= p.min_share_of_peak or not total or k["total_ns"] / total < p.min_time_share:
            continue
        gain = k["total_ns"] * (1.0 - share / p.min_share_of_peak)
        out.append(_finding(k, b, share, gain, total, p))
    return out


def _finding(k: dict[str, Any], b: dict[str, Any], share: float, gain: float, total: float,
             p: LowBandwidthParams) -> Finding:
    bw, peak = b["achieved_bandwidth_bytes_per_s"], b["peak_bandwidth_bytes_per_s"]
    time_share = k["total_ns"] / total
    severity = Severity.high if gain / total >= 0.10 else Severity.medium if gain / total >= 0.02 else Severity.low
    return Finding(
        rule_id=RULE_ID, severity=severity,
        title=f"{k['name']}: memory-bound at {100 * share:.0f}% of peak bandwidth",
        message=(f"{k['name']} is memory-bound ({b['tier']} evidence) but moves {bw / 1e9:.0f} GB/s, "
                 f"{100 * share:.0f}% of the {peak / 1e9:.0f} GB/s peak (threshold {100 * p.min_share_of_peak:.0f}%), "
                 f"over {k['instances']} launches and {100 * time_share:.1f}% of kernel time."),
        subject={"kind": "kernel", "name": k["name"]},
        evidence=(Evidence("achieved DRAM bandwidth", round(bw), "bytes/s",
                           b.get("achieved_bandwidth_source") or b.get("bytes_source") or b["tier"]),
                  Evidence("peak DRAM bandwidth", peak, "bytes/s", b.get("peak_bandwidth_source", "")),
                  Evidence("share of peak", round(100 * share, 1), "%", "achieved / peak"),
                  Evidence("bound class", f"{b['class']} ({b['tier']})", "", "traceview.analyses.bound"),
                  Evidence("kernel time share", round(100 * time_share, 2), "%",
                           "trace: CUPTI_ACTIVITY_KIND_KERNEL durations")),
        estimated_gain_ns=gain,
        recommendation=(f"Raise its bandwidth toward {100 * p.min_share_of_peak:.0f}% of peak: more blocks or a "
                        "grid-stride loop sized to the GPU, 16-byte vectorized and coalesced loads, fewer passes "
                        "over the same data. The gain assumes it then reaches the threshold."),
    )
