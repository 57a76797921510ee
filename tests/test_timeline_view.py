"""The HTML timeline's events (traceview.report.timeline_view) equal a plain polars definition
(joins on the row keys, a group-by on row, category and time bin with string columns) on real
traces, binned and not: the integer-key path changes speed only."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from paths import H200, PUBLIC, trace_id
from polars.testing import assert_frame_equal

import traceview
from traceview.report import timeline_view as tv

TRACES = [H200 / "h200x2_nccl_tp_serial.sqlite", H200 / "h200_baseline.sqlite",
          PUBLIC / "GindaChen__nsys-ai__h100_2gpu_1s.sqlite",
          PUBLIC / "openhackathons-org__gpubootcamp__jacobi_memcpy_nvlink_report.CONVERTED.sqlite"]


def _reference(frames: dict[str, pl.DataFrame], nvtx: pl.DataFrame, t0: int, max_events: int) -> tuple[list, pl.DataFrame]:
    parts = []
    for key in ("kernels", "memcpy", "memset"):
        frame = frames[key]
        if frame.height:
            category = (pl.when(pl.col("is_nccl").fill_null(False)).then(pl.lit("NCCL")).otherwise(pl.lit("kernels"))
                        if key == "kernels" else pl.lit(key))
            name = pl.coalesce("short_name", "name") if key == "kernels" else pl.col("operation")
            parts.append(frame.select(pl.col("device_id").fill_null(-1), pl.col("stream_id").fill_null(-1),
                                      "start", "end", category.alias("category"), name.alias("name")))
    activity = pl.concat(parts)
    per_thread = nvtx.group_by("tid").len().sort(["len", "tid"], descending=[True, False])
    keep = per_thread.head(tv.NVTX_MAX_THREADS).get_column("tid").to_list()
    ranges = nvtx.filter(pl.col("tid").is_in(keep)).select(
        "start", "end", "name", pl.col("tid").fill_null(0), pl.col("level").fill_null(0).clip(0, tv.NVTX_MAX_LEVEL))
    nvtx_keys = ranges.select("tid", "level").unique().sort("tid", "level").with_row_index("row")
    stream_keys = activity.select("device_id", "stream_id").unique().sort("device_id", "stream_id").with_row_index("row")
    stream_keys = stream_keys.with_columns(pl.col("row") + nvtx_keys.height)
    events = pl.concat([
        ranges.join(nvtx_keys, on=["tid", "level"], maintain_order="left")
        .select(pl.col("row").cast(pl.Int64), pl.lit("NVTX").alias("category"), "name", "start", "end"),
        activity.join(stream_keys, on=["device_id", "stream_id"], maintain_order="left")
        .select(pl.col("row").cast(pl.Int64), "category", "name", "start", "end"),
    ])
    if events.height > max_events:
        bin_ns = max((int(events.get_column("end").max()) - t0) // tv.BINS_PER_ROW + 1, 1)
        events = (events.with_columns(bin=(pl.col("start") - t0) // bin_ns)
                  .group_by("row", "category", "bin", maintain_order=True)
                  .agg(pl.col("start").min(), pl.col("end").max(), pl.len().alias("count"), pl.col("name").first())
                  .drop("bin"))
    else:
        events = events.with_columns(count=pl.lit(1, pl.UInt32))
    return nvtx_keys.select("tid", "level").rows() + stream_keys.select("device_id", "stream_id").rows(), events


@pytest.mark.parametrize("path", TRACES, ids=trace_id)
def test_timeline_events_equal_the_plain_definition(path: Path) -> None:
    result = traceview.analyze(traceview.load(path))
    t0 = result.trace.time_bounds[0]
    for max_events in (50_000, 500, 10):
        view = tv.build(result.frames, result.trace.nvtx, t0, max_events)
        keys, expected = _reference(result.frames, result.trace.nvtx, t0, max_events)
        assert len(view.rows) == len(keys) and view.total_events == sum(result.frames[k].height for k in ("kernels", "memcpy", "memset")) \
            + result.trace.nvtx.filter(pl.col("tid").is_in(
                result.trace.nvtx.group_by("tid").len().sort(["len", "tid"], descending=[True, False])
                .head(tv.NVTX_MAX_THREADS).get_column("tid").implode())).height
        got = view.events.select(expected.columns)
        assert_frame_equal(got.sort(got.columns), expected.sort(expected.columns), check_exact=True)
        assert view.aggregated == (max_events < view.total_events)
