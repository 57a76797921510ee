"""What the timeline draws: one frame of events (or of time bins, for large traces).

This is display preparation, not analysis: it lays the already-loaded activity frames
(kernels, memcpy, memset after the --device filter, and the trace's NVTX ranges) out on
rows, and above ``max_events`` merges them into fixed-width time bins per row so the
browser stays responsive. All work is in polars; loops run over rows and categories only.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

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
    cols = ["device_id", "stream_id", "start", "end"]
    parts = []
    kernels = frames.get("kernels")
    if kernels is not None and kernels.height:
        parts.append(kernels.select(
            *cols, pl.when(pl.col("is_nccl").fill_null(False)).then(pl.lit("NCCL")).otherwise(pl.lit("kernels"))
            .alias("category"), pl.coalesce("short_name", "name").alias("name")))
    for key in ("memcpy", "memset"):
        frame = frames.get(key)
        if frame is not None and frame.height:
            parts.append(frame.select(*cols, pl.lit(key).alias("category"), pl.col("operation").alias("name")))
    if not parts:
        return pl.DataFrame(schema={**{c: pl.Int64 for c in cols}, "category": pl.String, "name": pl.String})
    return pl.concat(parts)


def _nvtx(nvtx: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[int, int]], int]:
    """NVTX ranges of the busiest threads, with their (tid, level) row keys."""
    if nvtx.height == 0:
        return nvtx.select("start", "end", "name").with_columns(tid=pl.lit(0), level=pl.lit(0)), [], 0
    per_thread = nvtx.group_by("tid").len().sort(["len", "tid"], descending=[True, False])
    keep = per_thread.head(NVTX_MAX_THREADS).get_column("tid").to_list()
    ranges = (nvtx.filter(pl.col("tid").is_in(keep))
              .select("start", "end", "name", pl.col("tid").fill_null(0),
                      pl.col("level").fill_null(0).clip(0, NVTX_MAX_LEVEL)))
    keys = ranges.select("tid", "level").unique().sort(["tid", "level"]).rows()
    return ranges, keys, max(per_thread.height - len(keep), 0)


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
    ranges, nvtx_keys, dropped = _nvtx(nvtx)
    device_streams = (activity.select(pl.col("device_id").fill_null(-1), pl.col("stream_id").fill_null(-1))
                      .unique().sort(["device_id", "stream_id"]).rows())
    rows = _row_labels(nvtx_keys, device_streams)
    row_of_nvtx = pl.DataFrame({"tid": [k[0] for k in nvtx_keys], "level": [k[1] for k in nvtx_keys],
                                "row": list(range(len(nvtx_keys)))},
                               schema={"tid": ranges.schema["tid"], "level": ranges.schema["level"], "row": pl.Int64})
    row_of_stream = pl.DataFrame({"device_id": [k[0] for k in device_streams],
                                  "stream_id": [k[1] for k in device_streams],
                                  "row": [len(nvtx_keys) + i for i in range(len(device_streams))]},
                                 schema={"device_id": pl.Int64, "stream_id": pl.Int64, "row": pl.Int64})
    events = pl.concat([
        ranges.join(row_of_nvtx, on=["tid", "level"]).select(
            "row", pl.lit("NVTX").alias("category"), "name", "start", "end"),
        activity.with_columns(pl.col("device_id").fill_null(-1), pl.col("stream_id").fill_null(-1))
        .join(row_of_stream, on=["device_id", "stream_id"]).select("row", "category", "name", "start", "end"),
    ])
    total = events.height
    aggregated = total > max_events
    bin_ns = None
    if aggregated:
        span = max(int(events.get_column("end").max()) - t0_ns, 1)  # type: ignore[arg-type]
        bin_ns = max(span // BINS_PER_ROW + 1, 1)
        events = (events.with_columns(bin=(pl.col("start") - t0_ns) // bin_ns)
                  .group_by("row", "category", "bin")
                  .agg(pl.col("start").min(), pl.col("end").max(), pl.len().alias("count"),
                       pl.col("name").first())
                  .drop("bin"))
    else:
        events = events.with_columns(count=pl.lit(1, pl.UInt32))
    events = events.with_columns(
        start_ms=(pl.col("start") - t0_ns) / 1e6, end_ms=(pl.col("end") - t0_ns) / 1e6,
        dur_us=(pl.col("end") - pl.col("start")) / 1e3,
    ).sort("row", "start")
    return TimelineView(rows=rows, events=events, total_events=total, aggregated=aggregated, bin_ns=bin_ns,
                        t0_ns=t0_ns, dropped_nvtx_threads=dropped)
