"""api.sync: device/context/stream/event synchronization calls and the GPU idle they cause."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from traceview.analyses import hostcalls
from traceview.rules import timeline_data as td
from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.registry import rule


@dataclass(frozen=True, slots=True)
class Params:
    min_idle_ns: int = 200_000      # GPU idle after the calls of one call site (NVTX range + API) to report
    max_idle_per_call_ns: int = 1_000_000  # idle after one call counted at most (longer: host busy elsewhere)


@rule(id="api.sync", title="Host synchronization stalls the GPU", category="api", severity=Severity.medium,
      params=Params)
def api_sync(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Finds host synchronization calls (``cudaDeviceSynchronize``, ``cudaStreamSynchronize``,
    ``cudaEventSynchronize``, ``cuCtxSynchronize``, ``cuStreamSynchronize``,
    ``cuEventSynchronize``), grouped by API function and NVTX range, and measures the time the
    host was blocked in them and the GPU idle gap each one leaves (the idle gap on the device that
    contains the call's return). Reports call sites whose GPU idle reaches ``min_idle_ns``.

    ## Why it matters
    A synchronize drains the GPU's queue: when it returns the GPU has nothing left to run and idles
    until the host launches more work. In a loop (a sync per step or per layer) these bubbles add
    up, and the host cannot run ahead of the GPU.

    ## How to fix
    Remove synchronizes that only exist for timing or debugging; wait on a CUDA event for the one
    stream whose result is needed (``cudaStreamWaitEvent`` keeps the wait on the GPU); move
    host-side decisions onto the GPU; capture steady-state loops in a CUDA graph.

    ## Parameters
    - ``min_idle_ns``: total GPU idle after the calls of one call site before it is reported.
    - ``max_idle_per_call_ns``: GPU idle counted per call at most; a longer gap means the host went on
      to other work (timeline.gpu-idle reports it).

    The estimated gain is that GPU idle time (host time blocked is evidence, not gain: waiting for
    a result that is needed is not waste by itself).
    """
    syncs = td.ranged_calls(ctx).filter(pl.col("call_kind") == "sync")
    if syncs.height == 0:
        return NotApplicable("api.sync", "no synchronization calls in the trace")
    with_idle = hostcalls.bubble_after_calls(syncs, td.gaps(ctx), td.devices(ctx))
    groups = with_idle.group_by("name", "nvtx_range").agg(
        pl.len().alias("count"), pl.col("duration").sum().alias("blocked_ns"),
        td.attributable_idle(p.max_idle_per_call_ns).sum().alias("idle_ns"),
        (pl.col("bubble_ns") > 0).sum().alias("stalls"),
    ).filter(pl.col("idle_ns") >= p.min_idle_ns).sort("idle_ns", descending=True)
    return _findings(groups, td.range_instances(ctx))


def _findings(groups: pl.DataFrame, instances: dict[str, int]) -> Iterator[Finding]:
    for g in groups.iter_rows(named=True):
        per = instances.get(g["nvtx_range"] or "", 0)
        loop = f" ({g['count'] / per:.1f} per '{g['nvtx_range']}' range)" if per else ""
        yield Finding(
            rule_id="api.sync", severity=Severity.medium,
            title=f"{g['name']} {td.where(g['nvtx_range'])} leaves the GPU idle",
            message=(f"{g['count']} {g['name']} calls {td.where(g['nvtx_range'])}{loop} blocked the host "
                     f"{td.human_ns(g['blocked_ns'])}; {g['stalls']} of them drained the GPU, which then idled "
                     f"{td.human_ns(g['idle_ns'])} in total"),
            subject={"kind": "api", "name": g["name"], "nvtx_range": g["nvtx_range"]},
            evidence=(Evidence("calls", g["count"], "count", td.SRC_API),
                      Evidence("host time blocked", g["blocked_ns"], "ns", td.SRC_API),
                      Evidence("calls followed by GPU idle", g["stalls"], "count", td.SRC_GAPS),
                      Evidence("GPU idle after the calls", g["idle_ns"], "ns", td.SRC_GAPS)),
            estimated_gain_ns=float(g["idle_ns"]),
            recommendation=("Drop synchronizes used only for timing/debugging, wait on an event for the stream "
                            "whose result is needed, keep decisions on the GPU, and capture the loop in a CUDA graph."),
        )
