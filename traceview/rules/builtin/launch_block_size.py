"""launch.block-size: block sizes that are not a multiple of the warp size waste lanes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin import launch_common as lc
from traceview.rules.registry import rule


@dataclass(frozen=True)
class BlockSizeParams:
    min_time_share: float = 0.0       # ignore launch shapes below this share of GPU time


@rule(id="launch.block-size", title="Block size not a multiple of 32", category="launch", severity=Severity.low,
      params=BlockSizeParams)
def block_size(ctx: RuleContext, p: BlockSizeParams) -> Iterable[Finding] | NotApplicable:
    """What it does: flags launches whose threads per block (``blockX*blockY*blockZ``) are not a
    multiple of the warp size (32).

    Why it matters: the GPU schedules whole warps; the last warp of every block runs with idle
    lanes (100 threads use 4 warps = 128 lanes, 22% idle) and still takes warp slots, registers and
    issue cycles.

    How to fix: round the block size to a multiple of 32 (128, 256) and guard the extra threads
    with a bounds check; for 2-D blocks make ``blockX`` a multiple of 32.

    Parameters: ``min_time_share`` (0: any kernel; the findings rank by the estimated gain).
    """
    frame = lc.launch_frame(ctx, "launch.block-size")
    if isinstance(frame, NotApplicable):
        return frame
    frame = lc.share_filter(ctx, frame, p.min_time_share).filter(~pl.col("block_multiple_of_warp"))
    lanes = pl.col("warps_per_block") * 32
    gain = pl.col("total_ns") * (lanes - pl.col("threads_per_block")) / lanes
    return [_finding(ctx, row, g) for row, g, _ in lc.worst_per_kernel(frame, gain)]


def _finding(ctx: RuleContext, row: dict, gain: float) -> Finding:
    threads, warps = row["threads_per_block"], row["warps_per_block"]
    lanes = warps * 32
    idle = (lanes - threads) / lanes
    better = lanes  # same warps, every lane used, fewer blocks
    return Finding(
        rule_id="launch.block-size", severity=lc.severity_for(ctx, gain),
        title=f"{row['name']}: {threads} threads per block",
        message=(f"{row['name']} uses {threads} threads per block, not a multiple of 32: each block occupies "
                 f"{warps} warps ({lanes} lanes), {lanes - threads} of them ({100 * idle:.0f}%) idle."),
        subject=lc.subject(row),
        evidence=(*lc.shape_evidence(row), *lc.hw_evidence(ctx, row, ("limits.warp_size",)),
                  Evidence("threads per block", threads, "threads", lc.trace_source("block") + " (product)"),
                  Evidence("idle lanes per block", round(100 * idle, 1), "%", "1 - threads / (warps x 32)"),
                  lc.time_share(ctx, row)),
        estimated_gain_ns=gain,
        recommendation=(f"Use {better} threads per block (a multiple of 32: the same {warps} warps with every lane "
                        "busy) and shrink the grid to match; guard the tail elements with a bounds check."),
    )
