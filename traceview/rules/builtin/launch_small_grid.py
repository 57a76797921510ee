"""launch.small-grid: fewer blocks than SMs leaves SMs idle for the whole kernel."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin import launch_common as lc
from traceview.rules.registry import rule


@dataclass(frozen=True)
class SmallGridParams:
    min_blocks_per_sm: float = 1.0    # fire when blocks < SMs x this
    min_time_share: float = 0.005     # ignore launch shapes below this share of GPU time


@rule(id="launch.small-grid", title="Grid smaller than the GPU", category="launch", severity=Severity.medium,
      params=SmallGridParams)
def small_grid(ctx: RuleContext, p: SmallGridParams) -> Iterable[Finding] | NotApplicable:
    """What it does: flags kernels launched with fewer thread blocks than the GPU has SMs
    (``gridX*gridY*gridZ < sm_count x min_blocks_per_sm``).

    Why it matters: a block runs on one SM, so at most ``blocks`` SMs work and the rest stay idle
    for the whole kernel; a memory-bound kernel also cannot draw full DRAM bandwidth from a few SMs.

    How to fix: give the kernel at least one block per SM, better ``SMs x active blocks per SM``:
    split rows/elements across more blocks, use a grid-stride loop sized to the GPU, split-K for
    reductions, or run independent work concurrently on other streams.

    Parameters: ``min_blocks_per_sm`` (1.0), ``min_time_share`` (0.005 of GPU time).
    """
    frame = lc.launch_frame(ctx, "launch.small-grid")
    if isinstance(frame, NotApplicable):
        return frame
    frame = lc.share_filter(ctx, frame, p.min_time_share).filter(
        (pl.col("blocks") > 0) & (pl.col("blocks") < pl.col("sm_count") * p.min_blocks_per_sm))
    idle = (1 - pl.col("blocks") / pl.col("sm_count")).clip(lower_bound=0)
    return [_finding(ctx, row, gain) for row, gain, _ in lc.worst_per_kernel(frame, pl.col("total_ns") * idle)]


def _finding(ctx: RuleContext, row: dict, gain: float) -> Finding:
    sms, blocks = row["sm_count"], row["blocks"]
    idle_share = max(0.0, 1 - blocks / sms)
    slots = row["slots_per_wave"]
    return Finding(
        rule_id="launch.small-grid", severity=lc.severity_for(ctx, gain),
        title=f"{row['name']}: {blocks} blocks on {sms} SMs",
        message=(f"{row['name']} launches {blocks} blocks on a {sms}-SM GPU{lc.what_if_note(row, ctx)}: "
                 f"{sms - blocks} SMs ({100 * idle_share:.0f}%) have no work while it runs "
                 f"({row['total_ns'] / 1e6:.3f} ms over {row['instances']} launches)."),
        subject=lc.subject(row),
        evidence=(*lc.shape_evidence(row), *lc.hw_evidence(ctx, row),
                  Evidence("idle SM share", round(100 * idle_share, 1), "%", "1 - blocks / sm_count"),
                  lc.time_share(ctx, row)),
        estimated_gain_ns=gain,
        recommendation=(f"Launch at least {sms} blocks (one per SM; {slots} = {sms} SMs x "
                        f"{row['active_blocks_per_sm']} resident blocks fills every slot): split the work over more "
                        "blocks (split-K for reductions) or use a grid-stride loop sized to the GPU. The gain "
                        "assumes the work spreads evenly over all SMs."),
    )
