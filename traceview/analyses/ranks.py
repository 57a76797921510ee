"""Several ranks on one clock: per-collective arrival skew, stragglers and per-step skew.

A rank is one (trace file, device) pair: several rank files (one per process or node), or,
for a single multi-GPU file, its devices. Trace timestamps count from each session's start,
so rank files are put on a common clock with ``TARGET_INFO_SESSION_START_TIME.utcEpochNs``;
``method="collective"`` then corrects clock offsets between nodes by lining up the ends of
matched collectives (a collective completes on all ranks at about the same time).

Collectives match across ranks by operation and order: the k-th all-reduce of rank 0 is the
k-th all-reduce of every other rank (NCCL requires every rank to issue them in one order).
The rank that starts a collective last is its straggler; the others wait for it.
All functions are pure over ``Trace`` objects and frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

from traceview.analyses import nccl, overlap
from traceview.errors import TraceviewError

if TYPE_CHECKING:
    from traceview.model.trace import Trace


class RankAlignmentError(TraceviewError):
    """Rank files that cannot be put on one clock (no session start time, no common collectives)."""


def session_start_ns(trace: Trace) -> int | None:
    """``utcEpochNs`` of the profiling session (the zero of the trace's timestamps), or None."""
    if not trace.info.has("TARGET_INFO_SESSION_START_TIME", "utcEpochNs"):
        return None
    row = trace.connection.execute("SELECT min(utcEpochNs) FROM TARGET_INFO_SESSION_START_TIME").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _rank_collectives(trace: Trace, step_pattern: str) -> pl.DataFrame:
    """One trace's collectives with seq (order per device and operation) and step ordinal."""
    coll = nccl.collectives(trace.kernels)
    name = overlap.step_name(trace.nvtx, step_pattern)
    if name is not None and coll.height:
        coll = overlap.attribute(coll, overlap.ranges_named(trace.nvtx, name), trace.api).rename({"range_id": "step"})
    else:
        coll = coll.with_columns(step=pl.lit(None, pl.Int64))
    return coll.sort("start").with_columns(seq=pl.int_range(pl.len()).over("device_id", "operation"))


def align_ranks(traces: Sequence[Trace], *, method: str = "session",
                step_pattern: str = overlap.DEFAULT_STEP_PATTERN) -> pl.DataFrame:
    """Collectives of every rank on a common clock.

    Columns: rank, file_index, device_id, stream_id, operation, seq, step, start, end,
    duration, offset_ns (added to the file's timestamps). Times are ns since the earliest
    session start. ``method``: ``session`` (session start times only) or ``collective``.
    """
    if method not in ("session", "collective"):
        raise RankAlignmentError(f"unknown alignment method {method!r} (use 'session' or 'collective')")
    starts = [session_start_ns(t) for t in traces]
    if len(traces) > 1 and any(s is None for s in starts) and method == "session":
        raise RankAlignmentError("a rank file has no TARGET_INFO_SESSION_START_TIME; use method='collective'")
    base = min((s for s in starts if s is not None), default=0)
    frames = []
    for i, (trace, start) in enumerate(zip(traces, starts, strict=True)):
        offset = (start - base) if start is not None else 0
        frames.append(_rank_collectives(trace, step_pattern).with_columns(
            file_index=pl.lit(i), offset_ns=pl.lit(offset, pl.Int64),
            start=pl.col("start") + offset, end=pl.col("end") + offset))
    cols = ["file_index", "device_id", "stream_id", "operation", "seq", "step", "start", "end", "duration", "offset_ns"]
    out = pl.concat([f.select(cols) for f in frames])
    ranks = out.select("file_index", "device_id").unique().sort("file_index", "device_id").with_row_index("rank")
    out = out.join(ranks.with_columns(pl.col("rank").cast(pl.Int64)), on=["file_index", "device_id"])
    if method == "collective":
        out = _align_on_collectives(out)
    return out.select("rank", *cols).sort("start")


def _align_on_collectives(aligned: pl.DataFrame) -> pl.DataFrame:
    """Shift each rank so that the median end of its collectives matches rank 0's."""
    ref = aligned.filter(pl.col("rank") == 0).select("operation", "seq", pl.col("end").alias("ref_end"))
    shift = (aligned.join(ref, on=["operation", "seq"]).group_by("rank")
             .agg((pl.col("ref_end") - pl.col("end")).median().round().cast(pl.Int64).alias("shift")))
    if shift.height == 0:
        raise RankAlignmentError("no collective is common to the ranks: cannot align them on collectives")
    return (aligned.join(shift, on="rank", how="left").with_columns(pl.col("shift").fill_null(0))
            .with_columns(start=pl.col("start") + pl.col("shift"), end=pl.col("end") + pl.col("shift"),
                          offset_ns=pl.col("offset_ns") + pl.col("shift")).drop("shift"))


def ranks_of_trace(trace: Trace, step_pattern: str = overlap.DEFAULT_STEP_PATTERN) -> pl.DataFrame:
    """A single multi-GPU file: its devices play the ranks (same columns as ``align_ranks``)."""
    return align_ranks([trace], step_pattern=step_pattern)


def collective_skew(aligned: pl.DataFrame) -> pl.DataFrame:
    """Per collective instance seen on every rank: operation, seq, step, first_start,
    last_start, skew_ns (last - first arrival), last_rank (the straggler), wait_ns (time
    the other ranks spend waiting for it: sum of last_start - start)."""
    n = aligned.get_column("rank").n_unique()
    return (aligned.sort("start").group_by("operation", "seq")
            .agg(pl.len().alias("ranks"), pl.col("step").min(), pl.col("start").min().alias("first_start"),
                 pl.col("start").max().alias("last_start"), pl.col("rank").sort_by("start").last().alias("last_rank"),
                 (pl.col("start").max() - pl.col("start")).sum().alias("wait_ns"),
                 pl.col("duration").sum().alias("time_ns"))
            .filter(pl.col("ranks") == n)
            .with_columns(skew_ns=pl.col("last_start") - pl.col("first_start"))
            .sort("first_start"))


def stragglers(skew: pl.DataFrame) -> pl.DataFrame:
    """Per rank: last_count (collectives it reached last), last_pct, med_lateness_ns and
    total_lateness_ns (skew of those collectives), wait_caused_ns (others' wait for it)."""
    total = skew.height
    return (skew.group_by(pl.col("last_rank").alias("rank"))
            .agg(pl.len().alias("last_count"), pl.col("skew_ns").median().alias("med_lateness_ns"),
                 pl.col("skew_ns").sum().alias("total_lateness_ns"), pl.col("wait_ns").sum().alias("wait_caused_ns"))
            .with_columns(last_pct=pl.col("last_count") * 100.0 / max(total, 1))
            .sort(["last_count", "rank"], descending=[True, False]))


def step_skew(skew: pl.DataFrame) -> pl.DataFrame:
    """Per step: collectives, total and max skew, wait_ns, and the rank most often last."""
    return (skew.drop_nulls("step").group_by("step")
            .agg(pl.len().alias("collectives"), pl.col("skew_ns").sum().alias("skew_ns"),
                 pl.col("skew_ns").max().alias("max_skew_ns"), pl.col("wait_ns").sum(),
                 pl.col("last_rank").mode().sort().first().alias("straggler"))
            .sort("step"))
