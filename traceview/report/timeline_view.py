"""What the timeline draws: one frame of events (or of time bins, for large traces).

This is display preparation, not analysis: it lays the already-loaded activity frames
(kernels, memcpy, memset after the --device filter, and the trace's NVTX ranges) out on
rows, and above ``max_events`` merges them into fixed-width time bins per row so the
browser stays responsive. All work is in polars; loops run over rows and categories only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from traceview.analyses.keys import compact_key

CATEGORIES = ("NVTX", "kernels", "NCCL", "memcpy", "memset")
BINS_PER_ROW = 1500
NVTX_MAX_THREADS = 4
NVTX_MAX_LEVEL = 3   # deeper ranges share the last NVTX row of their thread


@dataclass(slots=True)
class TimelineView:
    """Rows top to bottom, and events with columns (row, category, name, start_ms, end_ms, dur_us, count)."""

    rows: list[str]
    events: pl.DataFrame
    total_events: int
    aggregated: bool
    bin_ns: int | None
    t0_ns: int
    dropped_nvtx_threads: int = 0


def _activity(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """GPU activity as (device_id, stream_id, start, end, cat, name); ``cat`` indexes CATEGORIES,
    null devices and streams are -1."""
    cols = [pl.col("device_id").fill_null(-1), pl.col("stream_id").fill_null(-1), "start", "end"]
    code = {c: pl.lit(i, pl.UInt8) for i, c in enumerate(CATEGORIES)}
    parts = []
    kernels = frames.get("kernels")
    if kernels is not None and kernels.height:
        parts.append(kernels.select(
            *cols, pl.when(pl.col("is_nccl").fill_null(False)).then(code["NCCL"]).otherwise(code["kernels"]).alias("cat"),
            pl.coalesce("short_name", "name").alias("name")))
    for key in ("memcpy", "memset"):
        frame = frames.get(key)
        if frame is not None and frame.height:
            parts.append(frame.select(*cols, code[key].alias("cat"), pl.col("operation").alias("name")))
    if not parts:
        return pl.DataFrame(schema={"device_id": pl.Int64, "stream_id": pl.Int64, "start": pl.Int64, "end": pl.Int64,
                                    "cat": pl.UInt8, "name": pl.String})
    return pl.concat(parts)


def _nvtx(nvtx: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """NVTX ranges of the busiest threads (tid, level clipped to NVTX_MAX_LEVEL), and how many
    threads were left out."""
    if nvtx.height == 0:
        return nvtx.select("start", "end", "name").with_columns(tid=pl.lit(0), level=pl.lit(0)), 0
    per_thread = nvtx.group_by("tid").len().sort(["len", "tid"], descending=[True, False])
    keep = per_thread.head(NVTX_MAX_THREADS).get_column("tid").to_list()
    ranges = (nvtx.filter(pl.col("tid").is_in(keep))
              .select("start", "end", "name", pl.col("tid").fill_null(0),
                      pl.col("level").fill_null(0).clip(0, NVTX_MAX_LEVEL)))
    return ranges, max(per_thread.height - len(keep), 0)


def _row_labels(nvtx_keys: list[tuple[int, int]], device_streams: list[tuple[int, int]]) -> list[str]:
    one_thread = len({tid for tid, _ in nvtx_keys}) <= 1
    labels = []
    for tid, level in nvtx_keys:
        label = "NVTX" if one_thread else f"NVTX tid {tid}"
        labels.append(label + (f" L{level}" if level else ""))
    labels += [f"GPU {dev} \u00b7 stream {stream}" for dev, stream in device_streams]
    return labels


def build(frames: dict[str, pl.DataFrame], nvtx: pl.DataFrame, t0_ns: int, max_events: int = 50_000
          ) -> TimelineView:
    """Lay out events on rows; above ``max_events`` events, bin them (BINS_PER_ROW per row)."""
    activity = _activity(frames)
    ranges, dropped = _nvtx(nvtx)
    nvtx_rows, nvtx_keys = _rows(ranges, ["tid", "level"], 0)
    stream_rows, device_streams = _rows(activity, ["device_id", "stream_id"], len(nvtx_keys))
    events = pl.concat([
        ranges.select(nvtx_rows, pl.lit(CATEGORIES.index("NVTX"), pl.UInt8).alias("cat"), "name", "start", "end"),
        activity.select(stream_rows, "cat", "name", "start", "end"),
    ])
    total = events.height
    aggregated = total > max_events
    bin_ns = None
    category = pl.lit(pl.Series(CATEGORIES)).gather(pl.col("cat")).alias("category")
    if aggregated:
        span = max(int(events.get_column("end").max()) - t0_ns, 1)  # type: ignore[arg-type]
        bin_ns = max(span // BINS_PER_ROW + 1, 1)
        bins = _binned(events, t0_ns, bin_ns)
        events = bins.select("row", category, "start", "end", "count",
                             pl.lit(events.get_column("name")).gather(pl.col("_first")).alias("name"))
    else:
        events = events.select("row", category, "name", "start", "end", count=pl.lit(1, pl.UInt32))
    events = events.with_columns(
        start_ms=(pl.col("start") - t0_ns) / 1e6, end_ms=(pl.col("end") - t0_ns) / 1e6,
        dur_us=(pl.col("end") - pl.col("start")) / 1e3,
    ).sort("row", "start")
    return TimelineView(rows=_row_labels(nvtx_keys, device_streams), events=events, total_events=total,
                        aggregated=aggregated, bin_ns=bin_ns, t0_ns=t0_ns, dropped_nvtx_threads=dropped)


def _rows(frame: pl.DataFrame, columns: list[str], first: int) -> tuple[pl.Series, list[tuple[int, int]]]:
    """Each row's timeline row, ``first`` + the rank of its (``columns``) values among the distinct
    ones, and the distinct values in that (sorted) order. One integer key per row (the first
    column in the high bits keeps the order), then a binary search among the few distinct keys."""
    key = compact_key(frame, columns[::-1])
    if key is None:  # empty, or values too wide even as ranks: rank the value pairs by a join
        distinct = frame.select(columns).unique().sort(columns).with_row_index("_rank")
        ranks = frame.select(columns).join(distinct, on=columns, how="left", maintain_order="left").get_column("_rank")
        return (ranks.cast(pl.Int64) + first).alias("row"), distinct.select(columns).rows()
    values = key.to_numpy()
    distinct = key.unique().sort().to_numpy()
    rank = np.searchsorted(distinct, values)
    some_row = np.empty(len(distinct), dtype=np.int64)
    some_row[rank] = np.arange(len(values))  # any row of each key: they share the values
    return pl.Series("row", rank + first, dtype=pl.Int64), frame.select(columns).gather(some_row).rows()


def _binned(events: pl.DataFrame, t0_ns: int, bin_ns: int) -> pl.DataFrame:
    """Per row, category and time bin: row, cat, first start, last end, events (``count``) and the
    position of the bin's first event (``_first``), grouped on one packed integer when it fits."""
    bins = (pl.col("start") - t0_ns) // bin_ns
    lo, hi, top = events.select(bins.min(), bins.max().alias("hi"), pl.col("row").max()).row(0)
    n_cat, n_bin = len(CATEGORIES), hi - lo + 1
    agg = [pl.col("start").min(), pl.col("end").max(), pl.len().alias("count"), pl.col("_first").first()]
    narrow = events.select("row", "cat", bins.alias("bin"), "start", "end").with_row_index("_first")
    if (top + 1) * n_cat * n_bin >= 1 << 62:
        return narrow.group_by("row", "cat", "bin").agg(*agg)
    key = ((pl.col("row") * n_cat + pl.col("cat").cast(pl.Int64)) * n_bin + (pl.col("bin") - lo)).alias("_k")
    return (narrow.group_by(key).agg(*agg)
            .with_columns(row=pl.col("_k") // (n_cat * n_bin), cat=(pl.col("_k") // n_bin) % n_cat))
