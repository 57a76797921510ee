"""LLM-inference patterns read from the timeline: decode steps, their kernels, host syncs per
token and CUDA-graph use (the unfused chains are in ``llm_chains``).

All functions are pure (frames in, frames/dicts out) and vectorized; loops run over groups
(step lengths, nesting levels), never over kernel launches. Per-step figures are cut from the
steps' kernels by positions (numpy), as the kernels a step launched come one after the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from traceview.analyses import derived, families, phases

EW_FAMILIES = ("elementwise", "normalization")      # re-read and re-write the same activations
GEMM_FAMILIES = ("gemm", "gemv")
SYNC_SOURCE = ("trace: CUPTI_ACTIVITY_KIND_RUNTIME (blocking calls inside the step's NVTX range) and "
               "CUPTI_ACTIVITY_KIND_MEMCPY (DtoH copies it launched)")


def is_weight_stream(kernel: dict[str, Any]) -> bool:
    """A row of ``step_kernel_table``: a memory-bound GEMV/GEMM, i.e. one streaming the weights."""
    return kernel["family"] in GEMM_FAMILIES and kernel["bound_class"] == "memory"


def decode_ranges(nvtx: pl.DataFrame, pattern: str = phases.DECODE) -> tuple[str | None, pl.DataFrame]:
    """The NVTX range name that marks decode steps (matches ``pattern``, most instances, >= 2)
    and its ranges; (None, empty) when there is none. The regexes run once per distinct name."""
    if nvtx.height == 0:
        return None, nvtx
    name = pl.col("name")
    counts = (nvtx.group_by("name").agg(pl.len().alias("n"))
              .filter(name.str.contains(pattern) & ~name.str.contains(phases.LIBRARY_DOMAINS) & (pl.col("n") >= 2))
              .sort(["n", "name"], descending=[True, False]))
    if counts.height == 0:
        return None, nvtx.head(0)
    found = counts.get_column("name")[0]
    return found, nvtx.filter(name == found)


def step_rows(points: pl.DataFrame, ranges: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Kernels launched inside each step range (by the launching API call): ``(rows, step)``, their
    rows in the kernel frame and the range's start time as the step id. ``points``:
    ``derived.kernel_points``."""
    searched = _searched_rows(points, ranges)
    if searched is not None:
        return searched
    hits = phases.range_hits(points, _one_phase(ranges), "_phase")
    return hits.get_column("_id").to_numpy(), hits.get_column("r_start").to_numpy()


def _searched_rows(points: pl.DataFrame, ranges: pl.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """``step_rows`` by one binary search of the range starts among the sorted launch times, when the
    ranges lie on one nesting level of one thread (the usual case: then they do not overlap);
    None otherwise (``phases.range_hits``: an as-of join per level, by thread)."""
    level, tid, host_t = ranges.get_column("level"), ranges.get_column("global_tid"), points.get_column("host_t")
    if (ranges.height == 0 or level.null_count() or tid.null_count() or ranges.get_column("start").null_count()
            or host_t.null_count() or level.min() != level.max() or tid.min() != tid.max() or not host_t.is_sorted()):
        return None
    ranges = ranges.select("start", "end")
    if not ranges.get_column("start").is_sorted():
        ranges = ranges.sort("start")
    start, end, host_t = ranges.get_column("start").to_numpy(), ranges.get_column("end").to_numpy(), host_t.to_numpy()
    first = np.searchsorted(host_t, start)  # the first launch at or after each range's start
    at = np.repeat(np.arange(-1, len(start)), np.diff(first, prepend=0, append=len(host_t)))  # last range started
    keep = (at >= 0) & (end[np.maximum(at, 0)] >= host_t) & (points.get_column("global_tid").to_numpy() == tid[0])
    return points.get_column("_id").to_numpy()[keep], start[at[keep]]


def _one_phase(ranges: pl.DataFrame) -> pl.DataFrame:
    """``ranges`` (all of one name) with a constant ``_phase``: ``phases.range_hits`` then carries
    one small integer per hit instead of the name."""
    return ranges.with_columns(pl.lit(0, pl.UInt8).alias("_phase"))


def busiest_device(kernels: pl.DataFrame, rows: np.ndarray) -> int | None:
    """The device with the most kernel time among ``rows`` (ties: the lowest id); None without rows."""
    if len(rows) == 0:
        return None
    devices = kernels.get_column("device_id")
    if devices.null_count() == 0 and devices.min() == devices.max():
        return int(devices[0])
    per = (pl.DataFrame([derived.take(devices, rows), derived.take(kernels.get_column("duration"), rows)])
           .group_by("device_id").agg(pl.col("duration").sum()).sort(["duration", "device_id"], descending=[True, False]))
    return int(per.get_column("device_id")[0])


def on_device(kernels: pl.DataFrame, rows: np.ndarray, step: np.ndarray, device: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, step)`` of the kernels on ``device``."""
    devices = kernels.get_column("device_id")
    if devices.null_count() == 0 and devices.min() == devices.max() == device:
        return rows, step
    keep = devices.to_numpy()[rows] == device
    return rows[keep], step[keep]


def step_profile(kernels: pl.DataFrame, rows: np.ndarray, step: np.ndarray, n_steps: int) -> dict[str, Any]:
    """Per-step GPU figures (medians over the steps) of the kernels launched by the steps
    (``rows`` and ``step``: ``step_rows``, not empty)."""
    if not np.all(step[1:] >= step[:-1]):  # several threads or levels: bring each step's kernels together
        by_step = np.argsort(step, kind="stable")
        rows, step = rows[by_step], step[by_step]
    heads = np.flatnonzero(np.concatenate([[True], step[1:] != step[:-1]]))
    lengths = np.diff(heads, append=len(step))
    duration = kernels.get_column("duration").to_numpy()[rows]
    busy = np.add.reduceat(duration, heads)
    span = (np.maximum.reduceat(kernels.get_column("end").to_numpy()[rows], heads)
            - np.minimum.reduceat(kernels.get_column("start").to_numpy()[rows], heads))
    graphed = np.zeros(len(heads), dtype=bool)
    if kernels.get_column("graph_id").null_count() + kernels.get_column("graph_node_id").null_count() < 2 * kernels.height:
        launch = kernels.select(pl.col("graph_id").is_not_null() | pl.col("graph_node_id").fill_null(0).gt(0))
        graphed = np.logical_or.reduceat(launch.to_series().to_numpy()[rows], heads)

    def median(values: np.ndarray) -> float:
        return float(pl.Series(values).median() or 0)

    return {
        "steps": n_steps,
        "launches_per_step": median(lengths),
        "gpu_ns_per_step": median(busy),
        "span_ns_per_step": median(span),
        "gap_ns_per_step": median(np.clip(span - busy, 0, None)),
        "median_kernel_ns": median(_segment_medians(duration, heads, lengths)),
        "graphed_steps": int(graphed.sum()),
    }


def _segment_medians(values: np.ndarray, heads: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Median of each segment (``lengths`` values from ``heads``, one after the other): the segments
    of one length form a matrix, one ``np.median`` per distinct length (decode steps have few)."""
    if lengths.min() == lengths.max():  # the usual case: all of them, as they are
        return np.median(values.reshape(len(heads), -1), axis=1)
    out = np.empty(len(heads))
    by_length = np.argsort(lengths, kind="stable")
    for group in np.split(by_length, np.flatnonzero(np.diff(lengths[by_length])) + 1):
        out[group] = np.median(values[heads[group, None] + np.arange(lengths[group[0]])], axis=1)
    return out


def step_kernel_table(kernels: pl.DataFrame, codes: np.ndarray, rows: np.ndarray, n_steps: int,
                      details: dict[str, Any], names: pl.DataFrame) -> pl.DataFrame:
    """Per kernel name among ``rows`` (``step_rows``): launches and ns per step, bytes per launch and
    bound class (from ``extra["kernel_details"][name]["bound"]``). ``codes``: per kernel row, its
    name's code (``derived.encode``; a null name one past the last); ``names``: ``name`` and ``family``
    per code."""
    facts = pl.DataFrame(
        [{"name": n, "bytes_per_launch": (d.get("bound") or {}).get("bytes_per_launch"),
          "bytes_source": (d.get("bound") or {}).get("bytes_source"),
          "bound_class": (d.get("bound") or {}).get("class", "unknown")} for n, d in details.items()],
        schema={"name": pl.String, "bytes_per_launch": pl.Float64, "bytes_source": pl.String,
                "bound_class": pl.String})
    slot = codes[rows]
    launches = np.bincount(slot, minlength=names.height + 1)
    ns = np.zeros(len(launches), dtype=np.int64)
    np.add.at(ns, slot, kernels.get_column("duration").to_numpy()[rows])
    used = np.flatnonzero(launches)
    table = pl.DataFrame([pl.Series("code", used), pl.Series("launches", launches[used], dtype=pl.UInt32),
                          pl.Series("ns", ns[used])])
    table = table.with_columns(pl.when(pl.col("code") < names.height).then(pl.col("code")).alias("code"))
    table = table.select(derived.decoded(pl.col("code"), names.get_column("name")).alias("name"),
                         derived.decoded(pl.col("code"), names.get_column("family"))
                         .fill_null(families.family_of("").name).alias("family"), "launches", "ns")
    return (table.join(facts, on="name", how="left")
            .with_columns(launches_per_step=pl.col("launches") / max(n_steps, 1),
                          ns_per_step=pl.col("ns") / max(n_steps, 1))
            .with_columns(bytes_per_step=pl.col("bytes_per_launch") * pl.col("launches_per_step"))
            .sort("ns", descending=True))


def host_syncs(calls: pl.DataFrame, memcpy: pl.DataFrame, ranges: pl.DataFrame,
               copy_points: pl.DataFrame) -> dict[str, Any]:
    """Blocking host calls issued inside the steps (synchronize calls, synchronous copies) and
    device-to-host copies the steps launched: steps with either, median blocked ns and DtoH bytes
    per step (steps without count as 0) and the blocking calls' names. ``calls``:
    ``derived.calls``; ``copy_points``: ``derived.copy_points``."""
    step_of = ranges.select("global_tid", pl.col("start").alias("step"), pl.col("end").alias("_end")).sort("step")
    hit = (_blocking(calls).join_asof(step_of, left_on="start", right_on="step", by="global_tid", strategy="backward",
                                      check_sortedness=False)
           .filter(pl.col("_end").is_not_null() & (pl.col("start") <= pl.col("_end"))))
    is_d2h = (memcpy.get_column("operation") == "[CUDA memcpy DtoH]").gather(copy_points.get_column("_id"))
    d2h, d2h_step = step_rows(copy_points.filter(is_d2h), ranges)
    steps = ranges.get_column("start").unique().sort().to_numpy()  # a step is a range start (np.unique: 20x slower)

    def per_step(step: np.ndarray, values: pl.Series | None = None) -> np.ndarray:
        """Per step, the number of ``step`` entries or the sum of their ``values``."""
        if values is None:
            return np.bincount(np.searchsorted(steps, step), minlength=len(steps))
        sums = np.zeros(len(steps), dtype=np.int64)
        np.add.at(sums, np.searchsorted(steps, step), values.fill_null(0).to_numpy())
        return sums

    sync_step = hit.get_column("step").to_numpy()
    return {
        "steps_with_sync": int(np.count_nonzero(per_step(sync_step) + per_step(d2h_step))),
        "median_sync_ns": float(pl.Series(per_step(sync_step, hit.get_column("duration"))).median() or 0),
        "median_d2h_bytes": float(pl.Series(per_step(d2h_step, derived.take(memcpy.get_column("bytes"), d2h)))
                                  .median() or 0),
        "calls": hit.get_column("name").drop_nulls().unique().sort().to_list(),
        "source": SYNC_SOURCE,
    }


def _blocking(calls: pl.DataFrame) -> pl.DataFrame:
    """Synchronize calls and synchronous copies among ``calls`` (start, duration, name, global_tid),
    sorted by start."""
    kind = pl.col("call_kind")
    blocking = (calls.lazy().filter((kind == "sync") | ((kind == "copy") & ~pl.col("is_async")))
                .select("start", "duration", "name", "global_tid").collect())
    return blocking if blocking.get_column("start").is_sorted() else blocking.sort("start")
