"""timeline.gpu-idle: idle gaps on each GPU, with what the host was doing meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl

from traceview.rules import timeline_data as td
from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.registry import rule


@dataclass(frozen=True, slots=True)
class Params:
    min_gap_ns: int = 100_000      # idle gaps shorter than this are launch latency, not idle time
    report_top: int = 3            # largest gaps described per device


def host_activity(ctx: RuleContext, start: int, end: int) -> str:
    """What the host was doing during [start, end): the longest overlapping CUDA call and the
    innermost NVTX range open at the gap's midpoint (any thread)."""
    mid = (start + end) // 2
    calls = td.calls(ctx)
    if calls.get_column("start").null_count() == 0:  # sorted by start: only the calls starting before ``end``
        calls = calls.head(int(calls.get_column("start").search_sorted(end, side="left")))
    calls = calls.filter((pl.col("start") < end) & (pl.col("end") > start))
    ranges = ctx.trace.nvtx.filter((pl.col("start") <= mid) & (pl.col("end") >= mid)).sort("level", descending=True)
    parts = []
    if ranges.height:
        parts.append(f"in NVTX range '{ranges.get_column('name')[0]}'")
    if calls.height:
        longest = calls.sort("duration", descending=True).row(0, named=True)
        parts.append(f"host in {longest['name']} for {td.human_ns(longest['duration'])}")
    else:
        parts.append("no CUDA call on the host (host-side work)")
    return ", ".join(parts)


@rule(id="timeline.gpu-idle", title="GPU idle gaps", category="timeline", severity=Severity.medium, params=Params)
def gpu_idle(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Finds stretches where a GPU ran nothing (no kernel, copy or memset) for at least ``min_gap_ns``
    between its first and last activity, per device, and says what the host was doing during the
    largest ones (the longest overlapping CUDA call and the NVTX range open at the time). Unlike
    Nsight Systems' own GPU-starvation rule (500 ms), the threshold is in microseconds to
    milliseconds, where inference and training steps lose their time.

    ## Why it matters
    Idle GPU time is time the accelerator you pay for does nothing. Gaps come from the host:
    Python overhead, data loading, synchronization, allocation, logging, or waiting on another
    rank.

    ## How to fix
    Look at what the host was doing in each gap. Queue work ahead of the GPU (asynchronous copies
    from pinned memory, no synchronizes in the loop), move data loading to worker processes and
    prefetch, capture steady-state steps in CUDA graphs, and profile a steady-state window.

    ## Parameters
    - ``min_gap_ns``: shortest idle gap counted.
    - ``report_top``: number of largest gaps described per device.

    The estimated gain is the total idle time in those gaps; part of it may also be explained by
    the host-call rules (``api.sync``, ``memcpy.sync``).
    """
    gaps = td.gaps(ctx)
    if not td.devices(ctx):
        return NotApplicable("timeline.gpu-idle", "no GPU activity")
    long_gaps = gaps.filter(pl.col("duration") >= p.min_gap_ns)
    windows = {int(r["device_id"]): int(r["window_ns"]) for r in ctx.result.devices.iter_rows(named=True)}
    per_device = long_gaps.group_by("device_id").agg(pl.len().alias("count"), pl.col("duration").sum().alias("idle_ns"),
                                                     pl.col("duration").max().alias("largest_ns")).sort("device_id")
    return _findings(ctx, p, long_gaps, per_device, windows)


def _findings(ctx: RuleContext, p: Params, long_gaps: pl.DataFrame, per_device: pl.DataFrame,
              windows: dict[int, int]) -> Iterator[Finding]:
    for d in per_device.iter_rows(named=True):
        dev, window = int(d["device_id"]), windows.get(int(d["device_id"]), 0)
        share = d["idle_ns"] * 100.0 / window if window else 0.0
        top = long_gaps.filter(pl.col("device_id") == dev).sort("duration", descending=True).head(p.report_top)
        described: list[dict[str, Any]] = [
            {"start": g["start"], "duration_ns": g["duration"], "host": host_activity(ctx, g["start"], g["end"])}
            for g in top.iter_rows(named=True)]
        worst = "; ".join(f"{td.human_ns(g['duration_ns'])} ({g['host']})" for g in described)
        yield Finding(
            rule_id="timeline.gpu-idle", severity=Severity.medium,
            title=f"GPU {dev} idle in {d['count']} gaps of at least {td.human_ns(p.min_gap_ns)}",
            message=(f"GPU {dev} sat idle {td.human_ns(d['idle_ns'])} ({share:.1f}% of its active window) in "
                     f"{d['count']} gaps >= {td.human_ns(p.min_gap_ns)}; largest: {worst}"),
            subject={"kind": "device", "name": f"GPU {dev}", "device_id": dev, "gaps": described},
            evidence=(Evidence("gaps", d["count"], "count", td.SRC_GAPS),
                      Evidence("idle time in gaps", d["idle_ns"], "ns", td.SRC_GAPS),
                      Evidence("share of the device's active window", round(share, 2), "%",
                               "derived: idle / devices[].window_ns"),
                      Evidence("largest gap", d["largest_ns"], "ns", td.SRC_GAPS)),
            estimated_gain_ns=float(d["idle_ns"]),
            recommendation=("Find what the host does in the largest gaps (named above); queue work ahead with "
                            "async copies from pinned memory, remove synchronizes from the loop, prefetch data in "
                            "worker processes, and capture steady-state steps in CUDA graphs."),
        )
