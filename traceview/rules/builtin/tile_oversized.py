"""tile.oversized: a GEMM/conv tile too large for the problem and the GPU's SM count."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from traceview.analyses.tiles import Tile, smaller_tiles
from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin import launch_common as lc
from traceview.rules.registry import rule


@dataclass(frozen=True)
class TileParams:
    min_waves: float = 1.0            # fire below this many waves ...
    min_tail_idle_share: float = 0.5  # ... or when the last wave is at least this idle (few waves)
    max_waves: float = 4.0            # tails beyond this many waves cost little
    min_time_share: float = 0.005     # ignore launch shapes below this share of GPU time


@rule(id="tile.oversized", title="Tile too large for the problem and GPU", category="tile",
      severity=Severity.low, params=TileParams)
def tile_oversized(ctx: RuleContext, p: TileParams) -> Iterable[Finding] | NotApplicable:
    """What it does: for kernels whose name encodes a block tile (``tilesize128x128x64``,
    ``_128x128_32x3_``, ``sgemm_128x64_``, ``tile64x64``, CUTLASS ``GemmShape<...>``), flags
    launches whose grid at that tile is less than ``min_waves`` waves, or leaves a last wave at
    least ``min_tail_idle_share`` idle within ``max_waves`` waves, and names the largest smaller
    tile (M and/or N halved) whose grid would fill at least one full wave.

    Why it matters: a large tile means few blocks for a given problem; on a GPU with many SMs
    (132 on H100/H200, 148 on B200) part of the machine idles or one block per SM does all the
    work with little latency hiding. The same tile can be right on a 48-SM GB10: use
    ``--hardware`` to check a deployment target.

    How to fix: choose a smaller tile (cuBLAS/cuBLASLt heuristics, CUTLASS tile config, Triton
    ``BLOCK_M``/``BLOCK_N``), split-K or stream-K for skinny problems.

    Parameters: ``min_waves`` (1.0), ``min_tail_idle_share`` (0.5), ``max_waves`` (4),
    ``min_time_share`` (0.005).
    """
    frame = lc.launch_frame(ctx, "tile.oversized")
    if isinstance(frame, NotApplicable):
        return frame
    if "tile" not in frame.columns:
        return NotApplicable("tile.oversized", "no kernel name encodes a tile shape")
    frame = lc.share_filter(ctx, frame, p.min_time_share).filter(
        pl.col("tile").is_not_null() & (pl.col("active_blocks_per_sm") > 0)
        & ((pl.col("waves") < p.min_waves)
           | ((pl.col("full_waves") >= 1) & (pl.col("tail_blocks") > 0) & (pl.col("waves") <= p.max_waves)
              & (pl.col("tail_fraction") >= p.min_tail_idle_share))))
    waste = pl.when(pl.col("waves") < 1).then(1 - pl.col("waves")).otherwise(pl.col("quantization_loss"))
    return [_finding(ctx, row, g) for row, g, _ in lc.worst_per_kernel(frame, pl.col("total_ns") * waste)]


def suggest(tile: Tile, blocks: int, slots: int) -> tuple[Tile, int] | None:
    """The largest halved tile whose grid fills at least one wave, with its block count."""
    for cand in smaller_tiles(tile):
        new_blocks = blocks * tile.area // cand.area
        if new_blocks >= slots:
            return cand, new_blocks
    return None


def _finding(ctx: RuleContext, row: dict, gain: float) -> Finding:
    t = row["tile"]
    tile = Tile(m=t["m"], n=t["n"], k=t["k"], stages=t["stages"], pattern=t["pattern"])
    slots, waves = row["slots_per_wave"], row["waves"]
    better = suggest(tile, row["blocks"], slots)
    shape = (f"{waves:.2f} waves" if waves < 1 else
             f"{row['full_waves']} full wave(s) plus a last wave {100 * row['tail_fraction']:.0f}% idle")
    advice = (f"A {better[0].m}x{better[0].n} tile gives ~{better[1]} blocks ({better[1] / slots:.2f} waves, "
              f"assuming the same blocks per SM) and fills the GPU." if better else
              "No halved tile fills a wave: consider split-K / stream-K or batching more work per launch.")
    return Finding(
        rule_id="tile.oversized", severity=lc.severity_for(ctx, gain),
        title=f"{row['name']}: tile {tile.m}x{tile.n} gives {waves:.2f} waves",
        message=(f"{row['name']} uses a {tile.text} tile: {row['blocks']} blocks at {slots} per wave "
                 f"({row['sm_count']} SMs x {row['active_blocks_per_sm']} blocks){lc.what_if_note(row, ctx)}, "
                 f"{shape}."),
        subject={**lc.subject(row), "tile": tile.text},
        evidence=(*lc.shape_evidence(row), *lc.hw_evidence(ctx, row), *lc.occupancy_evidence(ctx, row),
                  Evidence("tile", tile.text, "elements", f"kernel name ({tile.pattern} pattern); "
                           "trace: CUPTI_ACTIVITY_KIND_KERNEL.demangledName"),
                  Evidence("waves", round(waves, 3), "waves", "blocks / (sm_count x active blocks per SM)"),
                  lc.time_share(ctx, row)),
        estimated_gain_ns=gain,
        recommendation=advice,
    )
