"""memset.sync: synchronous memsets (cudaMemset, cuMemsetD8/D16/D32) that repeat or block long."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from traceview.rules import timeline_data as td
from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.registry import rule


@dataclass(frozen=True, slots=True)
class Params:
    min_repeats: int = 8                # synchronous memsets from one call site = a hot loop
    min_blocked_ns: int = 1_000_000     # or this much host time blocked at one call site
    max_idle_per_call_ns: int = 1_000_000  # idle after one call counted at most (longer: host busy elsewhere)


@rule(id="memset.sync", title="Synchronous memset", category="memset", severity=Severity.low, params=Params)
def memset_sync(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Finds memsets issued with the synchronous API (``cudaMemset``, ``cudaMemset2D``,
    ``cuMemsetD8/D16/D32``, without ``Async``), grouped by NVTX range and API function, that repeat
    at least ``min_repeats`` times or block the host for at least ``min_blocked_ns`` in total.

    ## Why it matters
    A synchronous memset is issued to the legacy default stream, which waits for all work on
    blocking streams and makes them wait for it: it serializes the GPU and stalls the host thread
    for longer than the fill itself. In a loop this repeats every iteration.

    ## How to fix
    Use ``cudaMemsetAsync``/``cuMemsetD32Async`` on the stream that consumes the buffer (PyTorch
    ``torch.zeros``/``tensor.zero_()`` already do), fold the zeroing into the kernel that writes
    the buffer, or allocate once and reuse instead of clearing every iteration.

    ## Parameters
    - ``min_repeats``: synchronous memsets from one call site before it counts as a hot loop.
    - ``min_blocked_ns``: total host time blocked at one call site that is reported regardless.
    - ``max_idle_per_call_ns``: GPU idle counted per call at most; a longer gap means the host went on
      to other work (timeline.gpu-idle reports it).

    The estimated gain sums, per call, the larger of the GPU idle gap containing the call's return
    and the time from the memset's end to the call's return.
    """
    sets = td.activity(ctx, "memset")
    if sets.height == 0:
        return NotApplicable("memset.sync", "no memsets in the trace")
    sync = sets.filter(pl.col("api_name").is_not_null() & ~pl.col("is_async"))
    per_call = pl.max_horizontal(td.attributable_idle(p.max_idle_per_call_ns), (pl.col("api_end") - pl.col("end")).clip(0))
    groups = sync.group_by("device_id", "nvtx_range", "api_name").agg(
        pl.len().alias("count"), pl.col("bytes").sum().alias("bytes"), pl.col("duration").sum().alias("set_ns"),
        pl.col("api_duration").sum().alias("api_ns"),
        td.attributable_idle(p.max_idle_per_call_ns).sum().alias("bubble_ns"),
        per_call.sum().alias("gain_ns"),
    ).filter((pl.col("count") >= p.min_repeats) | (pl.col("api_ns") >= p.min_blocked_ns)).sort("gain_ns", descending=True)
    return _findings(groups)


def _findings(groups: pl.DataFrame) -> Iterator[Finding]:
    for g in groups.iter_rows(named=True):
        yield Finding(
            rule_id="memset.sync", severity=Severity.low,
            title=f"Synchronous {g['api_name']} {td.where(g['nvtx_range'])}",
            message=(f"{g['count']} synchronous {g['api_name']} calls {td.where(g['nvtx_range'])} "
                     f"({td.human_bytes(g['bytes'])} in {td.human_ns(g['set_ns'])} on the GPU) blocked the host "
                     f"{td.human_ns(g['api_ns'])}; the GPU idled {td.human_ns(g['bubble_ns'])} after they returned"),
            subject={"kind": "api", "name": g["api_name"], "nvtx_range": g["nvtx_range"], "device_id": g["device_id"]},
            evidence=(Evidence("calls", g["count"], "count", td.SRC_API),
                      Evidence("memset time", g["set_ns"], "ns", td.SRC_MEMSET),
                      Evidence(f"host time blocked in {g['api_name']}", g["api_ns"], "ns", td.SRC_API),
                      Evidence("GPU idle after the calls returned", g["bubble_ns"], "ns", td.SRC_GAPS)),
            estimated_gain_ns=float(g["gain_ns"]),
            recommendation=("Use cudaMemsetAsync on the consuming stream, fold the zeroing into the producing "
                            "kernel, or allocate once and reuse the buffer."),
        )
