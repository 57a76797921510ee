"""memcpy.sync: synchronous copies repeated in a hot loop (e.g. a small D2H every decode step)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from traceview.rules import timeline_data as td
from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.registry import rule

GROUP = ["device_id", "nvtx_range", "api_name", "operation"]


@dataclass(frozen=True, slots=True)
class Params:
    min_repeats: int = 8                 # copies from one call site (NVTX range + API + direction) = a hot loop
    sync_follow_ns: int = 50_000         # an async copy followed this soon by a synchronize counts as synchronous
    max_idle_per_call_ns: int = 1_000_000  # idle after one call counted at most (longer: host busy elsewhere)


def blocking_copies(copies: pl.DataFrame, calls: pl.DataFrame, follow_ns: int) -> pl.DataFrame:
    """Copies whose issuing call blocks the host, with ``how``: a synchronous API, an async call on
    pageable memory, or an async call followed by a synchronize (PyTorch ``.item()``/``.cpu()``)."""
    c = copies.filter(pl.col("api_name").is_not_null())
    if "next_kind" in c.columns:  # joined with the call already (td.activity)
        c = c.with_columns((pl.col("next_start") - pl.col("api_end")).alias("next_after_ns"))
    else:
        follow = calls.select("pid", "correlation_id", "next_name", "next_kind",
                              (pl.col("next_start") - pl.col("end")).alias("next_after_ns"))
        c = c.join(follow, on=["pid", "correlation_id"], how="left")
    pageable = (pl.col("src_kind") == "Pageable") | (pl.col("dst_kind") == "Pageable")
    followed = (pl.col("next_kind") == "sync") & (pl.col("next_after_ns") <= follow_ns)
    how = (pl.when(~pl.col("is_async")).then(pl.lit("synchronous API"))
           .when(pageable).then(pl.lit("async call on pageable memory (runs synchronously)"))
           .when(followed).then(pl.lit("async call followed by ") + pl.col("next_name"))
           .otherwise(pl.lit(None)))
    return c.with_columns(how=how).filter(pl.col("how").is_not_null())


@rule(id="memcpy.sync", title="Synchronous copy in a hot loop", category="memcpy", severity=Severity.medium,
      params=Params)
def memcpy_sync(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Finds copies that block the host thread and repeat from one call site (same NVTX range, API
    function and direction) at least ``min_repeats`` times, such as a small device-to-host copy of
    the sampled token at the end of every decode step. A copy blocks when its API is synchronous
    (``cudaMemcpy``, ``cuMemcpyDtoH``), when an ``*Async`` call touches pageable memory, or when an
    ``*Async`` call is followed by a stream/device synchronize within ``sync_follow_ns`` (PyTorch
    ``.item()``, ``.cpu()``, ``.tolist()``). API calls are joined to the copies by correlation id
    and to NVTX ranges by thread and time.

    ## Why it matters
    Each blocking copy waits for all earlier work in the stream to drain, so the host cannot queue
    the next step's kernels ahead of the GPU; the GPU then idles while the host catches up (the
    idle gap after the call returns), or, when work is still queued, the host thread loses the
    time it spent blocked.

    ## How to fix
    Keep the value on the GPU (sample, compare and branch on device), or copy into pinned memory
    with ``cudaMemcpyAsync`` and wait on an event only when the value is needed, one step later if
    possible; capture the step in a CUDA graph so the launch sequence does not depend on the host.

    ## Parameters
    - ``min_repeats``: copies from one call site before it counts as a hot loop.
    - ``sync_follow_ns``: an async copy followed by a synchronize within this many ns is blocking.
    - ``max_idle_per_call_ns``: GPU idle counted per call at most; a longer gap means the host went on
      to other work (timeline.gpu-idle reports it).

    The estimated gain sums, per copy, the larger of the GPU idle gap containing the call's return
    and the time from the copy's end to the call's return (host-side overhead).
    """
    copies = td.activity(ctx, "memcpy")
    if copies.height == 0:
        return NotApplicable("memcpy.sync", "no memory copies in the trace")
    blocking = blocking_copies(copies, td.ranged_calls(ctx), p.sync_follow_ns)
    per_copy = pl.max_horizontal(td.attributable_idle(p.max_idle_per_call_ns), (pl.col("api_end") - pl.col("end")).clip(0))
    groups = blocking.group_by(GROUP).agg(
        pl.len().alias("count"), pl.col("bytes").median().alias("bytes_med"), pl.col("duration").sum().alias("copy_ns"),
        pl.col("api_duration").sum().alias("api_ns"),
        td.attributable_idle(p.max_idle_per_call_ns).sum().alias("bubble_ns"),
        per_copy.sum().alias("gain_ns"), pl.col("how").first().alias("how"),
    ).filter(pl.col("count") >= p.min_repeats).sort("gain_ns", descending=True)
    return _findings(groups, td.range_instances(ctx))


def _findings(groups: pl.DataFrame, instances: dict[str, int]) -> Iterator[Finding]:
    for g in groups.iter_rows(named=True):
        per = instances.get(g["nvtx_range"] or "", 0)
        loop = f", {g['count'] / per:.1f} per '{g['nvtx_range']}' range" if per else ""
        evidence = (
            Evidence("copies", g["count"], "count", td.SRC_MEMCPY),
            Evidence("median bytes per copy", g["bytes_med"], "bytes", td.SRC_MEMCPY),
            Evidence("copy time", g["copy_ns"], "ns", td.SRC_MEMCPY),
            Evidence(f"host time blocked in {g['api_name']}", g["api_ns"], "ns", td.SRC_API),
            Evidence("GPU idle after the calls returned", g["bubble_ns"], "ns", td.SRC_GAPS),
        ) + ((Evidence(f"'{g['nvtx_range']}' ranges", per, "count", td.SRC_NVTX),) if per else ())
        yield Finding(
            rule_id="memcpy.sync", severity=Severity.medium,
            title=f"Blocking {g['operation']} {td.where(g['nvtx_range'])}",
            message=(f"{g['count']} blocking {g['operation']} copies of ~{td.human_bytes(g['bytes_med'])} "
                     f"{td.where(g['nvtx_range'])}{loop} ({g['api_name']}: {g['how']}); the host was blocked "
                     f"{td.human_ns(g['api_ns'])} and the GPU idled {td.human_ns(g['bubble_ns'])} after they returned"),
            subject={"kind": "memcpy", "name": g["operation"], "nvtx_range": g["nvtx_range"], "api": g["api_name"],
                     "device_id": g["device_id"]},
            evidence=evidence, estimated_gain_ns=float(g["gain_ns"]),
            recommendation=("Keep the value on the GPU, or copy asynchronously into pinned memory and wait on an "
                            "event only when the value is needed (one step later if possible); capture the step "
                            "in a CUDA graph."),
        )
