"""launch.tail-effect: a partial last wave after full waves leaves most of the GPU idle."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin import launch_common as lc
from traceview.rules.registry import rule


@dataclass(frozen=True)
class TailEffectParams:
    min_idle_share: float = 0.5       # idle share of the last wave that counts as a tail
    max_waves: float = 8.0            # beyond this many waves a tail costs little
    min_time_share: float = 0.005     # ignore launch shapes below this share of GPU time


@rule(id="launch.tail-effect", title="Partial last wave (tail effect)", category="launch",
      severity=Severity.medium, params=TailEffectParams)
def tail_effect(ctx: RuleContext, p: TailEffectParams) -> Iterable[Finding] | NotApplicable:
    """What it does: flags launches with at least one full wave of blocks and a last, partial wave
    whose idle share (``1 - tail blocks / slots per wave``) is at least ``min_idle_share``.
    A wave is ``sm_count x active blocks per SM`` blocks.

    Why it matters: the last wave takes about as long as a full one while most SMs sit idle; with
    few waves that idle time is a large part of the kernel (275 blocks at 264 per wave run as two
    waves, the second 96% empty).

    How to fix: make the block count a multiple of the wave size or much larger than it (smaller
    blocks or more work per block), or use a persistent kernel with exactly one wave of blocks.

    Parameters: ``min_idle_share`` (0.5), ``max_waves`` (8), ``min_time_share`` (0.005).
    """
    frame = lc.launch_frame(ctx, "launch.tail-effect")
    if isinstance(frame, NotApplicable):
        return frame
    frame = lc.share_filter(ctx, frame, p.min_time_share).filter(
        (pl.col("full_waves") >= 1) & (pl.col("tail_blocks") > 0)
        & (pl.col("tail_fraction") >= p.min_idle_share) & (pl.col("waves") <= p.max_waves))
    gain = pl.col("total_ns") * pl.col("quantization_loss")
    return [_finding(ctx, row, g) for row, g, _ in lc.worst_per_kernel(frame, gain)]


def _finding(ctx: RuleContext, row: dict, gain: float) -> Finding:
    slots, tail, full = row["slots_per_wave"], row["tail_blocks"], row["full_waves"]
    waves = row["waves"]
    calc = "blocks / (sm_count x active blocks per SM)"
    return Finding(
        rule_id="launch.tail-effect", severity=lc.severity_for(ctx, gain),
        title=f"{row['name']}: last wave {100 * row['tail_fraction']:.0f}% idle",
        message=(f"{row['name']} runs {row['blocks']} blocks at {slots} per wave ({row['sm_count']} SMs x "
                 f"{row['active_blocks_per_sm']} blocks){lc.what_if_note(row, ctx)}: {full} full wave(s) then "
                 f"{tail} blocks, so the last wave leaves {100 * row['tail_fraction']:.0f}% of the GPU idle "
                 f"and {100 * row['quantization_loss']:.0f}% of the kernel's SM time is wasted."),
        subject=lc.subject(row),
        evidence=(*lc.shape_evidence(row), *lc.hw_evidence(ctx, row), *lc.occupancy_evidence(ctx, row),
                  Evidence("waves", round(waves, 3), "waves", calc),
                  Evidence("tail blocks", tail, "blocks", f"blocks mod slots per wave ({slots})"),
                  Evidence("idle share of last wave", round(100 * row["tail_fraction"], 1), "%",
                           "1 - tail blocks / slots per wave"),
                  lc.time_share(ctx, row)),
        estimated_gain_ns=gain,
        recommendation=(f"Make the grid a multiple of {slots} blocks, or many times larger: e.g. {full * slots or slots}"
                        f" blocks with a little more work each, smaller blocks (more resident per SM), or a "
                        f"persistent kernel of {slots} blocks that loops over the work."),
    )
