"""occupancy.limited: theoretical occupancy capped by registers, shared memory or block limits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from traceview.hardware.occupancy import max_registers_for, max_shared_mem_for
from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin import launch_common as lc
from traceview.rules.registry import rule


@dataclass(frozen=True)
class OccupancyParams:
    max_occupancy: float = 0.5        # fire at or below this theoretical occupancy
    latency_share: float = 0.5        # share of kernel time assumed latency-bound (scales the gain)
    min_time_share: float = 0.005     # ignore launch shapes below this share of GPU time


@rule(id="occupancy.limited", title="Low theoretical occupancy", category="occupancy", severity=Severity.medium,
      params=OccupancyParams)
def occupancy_limited(ctx: RuleContext, p: OccupancyParams) -> Iterable[Finding] | NotApplicable:
    """What it does: flags launch shapes whose theoretical occupancy (active warps per SM / max
    warps per SM, from the CUDA occupancy rules) is at or below ``max_occupancy``, and names the
    limiting resource: registers, shared memory, resident blocks or warps.

    Why it matters: few resident warps leave the SM little to switch to while warps wait on
    memory or dependencies; latency-bound kernels slow down in proportion.

    How to fix: registers: ``__launch_bounds__`` / ``-maxrregcount`` to the count that fits one
    more block (watch for spills); shared memory: smaller tiles or fewer pipeline stages; blocks:
    larger blocks. Occupancy is not a goal in itself: a GEMM with 25% occupancy and enough ILP
    can be at peak; check achieved throughput (ncu) before trading registers for warps.

    Parameters: ``max_occupancy`` (0.5), ``latency_share`` (0.5: the gain assumes half the time
    scales with occupancy), ``min_time_share`` (0.005).
    """
    frame = lc.launch_frame(ctx, "occupancy.limited")
    if isinstance(frame, NotApplicable):
        return frame
    frame = lc.share_filter(ctx, frame, p.min_time_share).filter(
        pl.col("theoretical_occupancy") <= p.max_occupancy)
    out = []
    for row, _, _ in lc.worst_per_kernel(frame, pl.col("total_ns")):
        if row["active_blocks_per_sm"] == 0:
            out.append(_does_not_fit(ctx, row))
            continue
        potential = _potential(ctx, row)
        gain = row["gain_sum"] * p.latency_share * max(0.0, 1 - row["theoretical_occupancy"] / potential)
        out.append(_finding(ctx, row, gain, potential))
    return out


def _tied(row: dict) -> list[str]:
    """Every resource that allows exactly the active block count (the limiter and its ties)."""
    limits = {k: v for k, v in row["block_limits"].items() if v is not None}
    tied = [k for k, v in limits.items() if v == row["active_blocks_per_sm"] and k != "warps"]
    return tied or [row["occupancy_limiter"]]


def _potential(ctx: RuleContext, row: dict) -> float:
    """Occupancy with the limiting resource(s) lifted: the next-tightest limit decides."""
    limits = lc.spec(ctx, int(row["device_id"])).limits
    tied = _tied(row)
    others = [v for k, v in row["block_limits"].items() if k not in tied and v is not None]
    if not others:
        return row["theoretical_occupancy"]
    return min(1.0, min(others) * row["warps_per_block"] / limits.max_warps_per_sm)


def _advice(ctx: RuleContext, row: dict) -> str:
    limits = lc.spec(ctx, int(row["device_id"])).limits
    target = row["active_blocks_per_sm"] + 1
    limiter = row["occupancy_limiter"]
    if limiter == "registers":
        regs = max_registers_for(limits, row["threads_per_block"], target)
        if regs:
            return (f"Cap registers at {regs} per thread (now {row['registers_per_thread']}) with "
                    f"__launch_bounds__({row['threads_per_block']}, {target}) or -maxrregcount={regs} for "
                    f"{target} blocks per SM; check that it does not spill to local memory.")
    if limiter == "shared_memory":
        smem = max_shared_mem_for(limits, target)
        if smem:
            return (f"Use at most {smem} B of shared memory per block (now {row['shared_mem_bytes']} B) for "
                    f"{target} blocks per SM: a smaller tile, fewer pipeline stages, or reuse buffers.")
        return "Shared memory per block leaves room for one block per SM: use smaller tiles or fewer stages."
    if limiter == "blocks":
        return (f"The {limits.max_blocks_per_sm}-blocks-per-SM limit caps resident warps: use larger blocks "
                f"(now {row['threads_per_block']} threads).")
    return "Choose a block size whose warp count divides the SM's warp limit."


def _does_not_fit(ctx: RuleContext, row: dict) -> Finding:
    """A launch shape that cannot run at all on the GPU (a what-if target with smaller limits)."""
    gpu = lc.spec(ctx, int(row["device_id"]))
    limiter = row["occupancy_limiter"].replace("_", " ")
    return Finding(
        rule_id="occupancy.limited", severity=Severity.high,
        title=f"{row['name']}: does not fit on {gpu.name}",
        message=(f"{row['name']} cannot run as launched on {gpu.name}{' (what-if)' if row.get('what_if') else ''}: "
                 f"{limiter} allows "
                 f"0 blocks per SM ({row['threads_per_block']} threads, {row['registers_per_thread']} registers, "
                 f"{row['shared_mem_bytes']} B shared memory per block)."),
        subject=lc.subject(row),
        evidence=(*lc.shape_evidence(row), *lc.occupancy_evidence(ctx, row),
                  Evidence("shared memory per block", row["shared_mem_bytes"], "B",
                           lc.trace_source("static_shared_mem") + " + " + lc.trace_source("dynamic_shared_mem")),
                  *lc.hw_evidence(ctx, row, ("limits.max_shared_mem_per_block_optin", "limits.registers_per_sm")),
                  lc.time_share(ctx, row)),
        estimated_gain_ns=float(row["total_ns"]),
        recommendation="Re-tile the kernel for this GPU's per-block limits before deploying on it.",
    )


def _finding(ctx: RuleContext, row: dict, gain: float, potential: float) -> Finding:
    gpu = lc.spec(ctx, int(row["device_id"]))
    limiter = " and ".join(t.replace("_", " ") for t in _tied(row))
    used = {"registers": ("registers_per_thread", "register", "limits.registers_per_sm"),
            "shared_memory": ("shared_mem_bytes", "shared memory", "limits.shared_mem_per_sm")}
    extra = []
    if row["occupancy_limiter"] in used:
        col, label, hw_field = used[row["occupancy_limiter"]]
        src = (lc.trace_source("registers_per_thread") if col == "registers_per_thread"
               else lc.trace_source("static_shared_mem") + " + " + lc.trace_source("dynamic_shared_mem"))
        extra = [Evidence(f"{label} use per {'thread' if col == 'registers_per_thread' else 'block'}",
                          row[col], "registers" if col == "registers_per_thread" else "B", src),
                 *lc.hw_evidence(ctx, row, (hw_field,))]
    return Finding(
        rule_id="occupancy.limited", severity=lc.severity_for(ctx, gain),
        title=f"{row['name']}: {100 * row['theoretical_occupancy']:.0f}% occupancy, limited by {limiter}",
        message=(f"{row['name']} fits {row['active_blocks_per_sm']} blocks of {row['threads_per_block']} threads "
                 f"per SM ({row['active_warps_per_sm']} of {gpu.limits.max_warps_per_sm} warps, "
                 f"{100 * row['theoretical_occupancy']:.1f}% theoretical occupancy){lc.what_if_note(row, ctx)}; "
                 f"{limiter} is the limit (blocks allowed per resource: "
                 + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in row["block_limits"].items()) + ")."),
        subject=lc.subject(row),
        evidence=(*lc.shape_evidence(row), *lc.occupancy_evidence(ctx, row), *extra,
                  *lc.hw_evidence(ctx, row, ("limits.max_warps_per_sm",)),
                  Evidence("occupancy without this limit", round(100 * potential, 1), "%",
                           "next-tightest per-resource block limit x warps per block / max warps per SM"),
                  lc.time_share(ctx, row)),
        estimated_gain_ns=gain,
        recommendation=_advice(ctx, row),
    )
