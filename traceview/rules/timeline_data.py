"""Frames the timeline rules share, computed once per run and memoized in ``RuleContext.cache``.

All of them respect ``--device`` (they start from ``result.frames``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from traceview.analyses import derived, hostcalls, streams, timeline
from traceview.rules.base import RuleContext
from traceview.units import fmt_ns as human_ns  # noqa: F401  (used by the rules as td.human_ns)

# Where the numbers come from (Evidence.source).
SRC_API = "trace: CUPTI_ACTIVITY_KIND_RUNTIME (start, end, nameId)"
SRC_MEMCPY = "trace: CUPTI_ACTIVITY_KIND_MEMCPY (bytes, start, end, srcKind, dstKind)"
SRC_MEMSET = "trace: CUPTI_ACTIVITY_KIND_MEMSET (bytes, start, end)"
SRC_KERNEL = "trace: CUPTI_ACTIVITY_KIND_KERNEL (start, end, streamId)"
SRC_NVTX = "trace: NVTX_EVENTS (text, start, end, globalTid)"
SRC_GAPS = "derived: gaps in the union of kernel, memcpy and memset intervals per device"


NEXT_CALL = ("next_kind", "next_name", "next_start")  # ranged_calls: the thread's following call
ACTIVITY_COLUMNS = ("start", "end", "duration", "device_id", "correlation_id", "global_pid", "bytes", "operation",
                    "src_kind", "dst_kind")  # of memcpy/memset rows, read by the copy and memset rules


def _memo(ctx: RuleContext, key: str, build: Callable[[], Any]) -> Any:
    if key not in ctx.cache:
        ctx.cache[key] = build()
    return ctx.cache[key]


def frame(ctx: RuleContext, name: str) -> pl.DataFrame:
    """Activity frame after the --device filter (``kernels``, ``memcpy``, ``memset``)."""
    return derived.activity(ctx.result, name)


def calls(ctx: RuleContext) -> pl.DataFrame:
    """All API calls, one per (thread, correlation id), with ``call_kind`` and ``is_async``, sorted
    by start (``derived.calls``). No NVTX range: ``ranged_calls`` has it for the calls that need one."""
    return derived.calls(ctx.result)


def keyed_calls(ctx: RuleContext) -> pl.DataFrame | None:
    """``hostcalls.keyed_calls`` of ``calls`` with ``_row`` (row in ``calls``) and ``duration``."""
    return _memo(ctx, "tl.keyed_calls", lambda: hostcalls.keyed_calls(
        calls(ctx), [pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), "duration"]))


def ranged_calls(ctx: RuleContext) -> pl.DataFrame:
    """``calls`` that the host-call rules group by NVTX range, with ``nvtx_range`` (innermost range
    at the call's start, reduced to its call site) and ``next_kind``/``next_name``/``next_start``
    (the thread's following call): synchronize, copy and memset calls, and any call that issued a
    memcpy or memset (graph launches issue copies too). Sorted by start."""
    def build() -> pl.DataFrame:
        c = calls(ctx)
        issued = pl.concat([f.select(hostcalls.PID_OF_GLOBAL.alias("pid"), "correlation_id")
                            for f in (ctx.trace.memcpy, ctx.trace.memset)])
        keyed = keyed_calls(ctx)
        if keyed is None:
            rows = hostcalls.join_on_call(c.with_row_index("_row").select("_row", "pid", "correlation_id"),
                                          issued, "semi").get_column("_row").to_numpy()
        else:
            rows = keyed.get_column("_row").to_numpy()[hostcalls.keyed_rows(issued, keyed)]
        keep = c.select(pl.col("call_kind").is_in(["sync", "copy", "memset"]).fill_null(False)).to_series().to_numpy().copy()
        keep[rows] = True
        following = streams.adjacent_at(c, streams.group_numbers(c, ["global_tid"]).to_numpy(), np.flatnonzero(keep))
        follow = c.select(pl.col("call_kind").alias("next_kind"), pl.col("name").alias("next_name"),
                          pl.col("start").alias("next_start")).gather(streams.with_nulls(following))  # null: none
        out = hostcalls.innermost_range(c.filter(pl.Series(keep)).hstack(follow), ctx.trace.nvtx)
        out = out.with_columns(hostcalls.call_sites(out.get_column("nvtx_range")))
        return hostcalls.sorted_by(out, "start")
    return _memo(ctx, "tl.ranged_calls", build)


def gaps(ctx: RuleContext) -> pl.DataFrame:
    """GPU idle gaps per device: (device_id, start, end, duration)."""
    return _memo(ctx, "tl.gaps", lambda: timeline.idle_gaps(derived.merged_activity(ctx.result), merged=True))


def devices(ctx: RuleContext) -> list[int]:
    """Devices with activity after the --device filter."""
    return _memo(ctx, "tl.devices", lambda: sorted(
        int(d) for f in ("kernels", "memcpy", "memset")
        for d in timeline.distinct_values(frame(ctx, f).get_column("device_id"))))


def activity(ctx: RuleContext, name: str) -> pl.DataFrame:
    """memcpy or memset rows (``ACTIVITY_COLUMNS``) joined to their API call, with ``bubble_ns``: the
    GPU idle gap that contains the call's end (the GPU waiting for the host after the call
    returned), and the call's ``NEXT_CALL`` columns when (pid, correlation id) identifies one call."""
    def build() -> pl.DataFrame:
        calls = ranged_calls(ctx)
        unique = calls.select(hostcalls.CALL_KEY.n_unique()).item() == calls.height  # a key repeats: no next_*
        rows = frame(ctx, name)
        rows = rows.select(c for c in rows.columns if c in ACTIVITY_COLUMNS)  # narrow: the join and sort copy less
        joined = hostcalls.activity_with_calls(rows, calls, NEXT_CALL if unique else ())
        with_end = joined.with_columns(pl.col("api_end").fill_null(pl.col("end")).alias("_t"))
        return hostcalls.gap_containing(with_end, gaps(ctx), "_t").drop("_t")
    return _memo(ctx, f"tl.activity.{name}", build)


def stream_links(ctx: RuleContext) -> pl.DataFrame:
    """``derived.stream_links``: per kernel its stream number, name code, previous kernel, gap."""
    return derived.stream_links(ctx.result)


def neighbours(ctx: RuleContext) -> pl.DataFrame | None:
    """``derived.neighbours`` (the flowchart reads it too)."""
    return derived.neighbours(ctx.result)


def range_instances(ctx: RuleContext) -> dict[str, int]:
    """How many times each NVTX range name (reduced to its call site) occurs: counted per name
    first, so the call-site regex runs once per distinct name."""
    return _memo(ctx, "tl.range_instances", lambda: dict(
        ctx.trace.nvtx.group_by("name").agg(pl.len()).with_columns(hostcalls.call_site_name(pl.col("name")))
        .group_by("name").agg(pl.col("len").sum()).iter_rows()))


def blocking_call_ends(ctx: RuleContext) -> pl.DataFrame:
    """End times of host calls that block until the GPU catches up: synchronization calls, and
    copies/memsets that are synchronous (``end`` column). Idle gaps containing one are explained."""
    c = ranged_calls(ctx)
    return c.filter((pl.col("call_kind") == "sync")
                    | (pl.col("call_kind").is_in(["copy", "memset"]) & ~pl.col("is_async"))).select("end")


def attributable_idle(cap_ns: int) -> pl.Expr:
    """Per call: the GPU idle gap containing its return, capped at ``cap_ns`` (a longer gap means the
    host went on to other work; timeline.gpu-idle reports that)."""
    return pl.min_horizontal(pl.col("bubble_ns"), pl.lit(cap_ns))


def where(nvtx_range: str | None) -> str:
    return f"in NVTX range '{nvtx_range}'" if nvtx_range else "outside any NVTX range"


def human_bytes(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
