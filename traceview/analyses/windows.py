"""GPU busy time in fixed time windows, per device (vectorized: cumulative busy time sampled at window edges)."""

from __future__ import annotations

import numpy as np
import polars as pl

from traceview.analyses.timeline import merge_intervals

MAX_WINDOWS = 5_000_000  # more windows than this would take gigabytes (corrupt or far-apart timestamps)


def window_count(intervals: pl.DataFrame, window_ns: int) -> int:
    """How many windows ``utilization_windows`` would build: check before calling it."""
    one = intervals.get_column("device_id").n_unique() == 1
    span = (pl.col("end").max() - pl.col("start").min()).alias("span")
    spans = intervals.select(span) if one else intervals.group_by("device_id").agg(span)
    return int(spans.select((pl.col("span") // window_ns + 1).sum()).item() or 0)


def _covered_at_edges(starts: np.ndarray, ends: np.ndarray, w0: int, window_ns: int, edges: np.ndarray) -> np.ndarray:
    """Per window edge (``edges[i] = min(w0 + i * window_ns, last end)``): how much of the disjoint,
    sorted intervals [starts, ends) (inside [w0, last end]) lies before it. The intervals starting
    at or before each edge are counted per edge (O(intervals + edges), no search); arrays are
    reused in place (at millions of intervals every new array costs page faults)."""
    if len(ends) == 0:
        return np.zeros(len(edges), dtype=np.int64)
    covered = np.empty(len(starts) + 1, dtype=np.int64)  # covered[j]: the first j intervals
    covered[0] = 0
    np.subtract(ends, starts, out=covered[1:])
    np.cumsum(covered[1:], out=covered[1:])
    first_edge = starts - (w0 - window_ns + 1)  # ceil((start - w0) / window_ns): the first edge at or after it
    first_edge //= window_ns
    j = np.bincount(first_edge, minlength=len(edges))[:len(edges)]
    np.cumsum(j, out=j)  # intervals starting <= edge (non-decreasing)
    rest = j - 1
    np.maximum(rest, 0, out=rest)
    rest = ends[rest]
    rest -= edges
    np.maximum(rest, 0, out=rest)  # the part of the last interval started after the edge
    rest[:np.searchsorted(j, 1)] = 0  # edges before any interval
    out = covered[j]
    out -= rest
    return out


def _device_windows(starts: np.ndarray, ends: np.ndarray, window_ns: int, long_gap_ns: int) -> dict[str, np.ndarray]:
    """The windows of one device from its merged intervals (sorted, disjoint): each window's busy
    time and long idle time are differences of the covered-time functions at its edges."""
    w0, w1 = int(starts[0]), int(ends.max())
    count = (w1 - w0 + window_ns - 1) // window_ns
    edges = np.arange(w0, w0 + (count + 1) * window_ns, window_ns, dtype=np.int64)[:count + 1]
    edges[-1] = w1  # only the last edge can pass the last end
    gap = starts[1:] - ends[:-1]  # idle gaps between consecutive intervals
    long = gap >= long_gap_ns
    busy = np.diff(_covered_at_edges(starts, ends, w0, window_ns, edges))
    idle = np.diff(_covered_at_edges(ends[:-1][long], starts[1:][long], w0, window_ns, edges))
    return {"win": np.arange(count, dtype=np.int64), "start": edges[:-1], "length": np.diff(edges),
            "busy_ns": busy, "long_idle_ns": idle}


def _per_device(intervals: pl.DataFrame) -> list[tuple[int | None, np.ndarray, np.ndarray]]:
    """(device, starts, ends) of each device's merged intervals (loop over devices)."""
    devices = intervals.get_column("device_id").unique().sort().to_list()
    out = []
    for dev in devices:
        one = intervals if len(devices) == 1 else intervals.filter(
            pl.col("device_id").is_null() if dev is None else pl.col("device_id") == dev)
        out.append((dev, one.get_column("start").to_numpy(), one.get_column("end").to_numpy()))
    return out


def _frame(parts: list[tuple[int | None, dict[str, np.ndarray]]]) -> pl.DataFrame:
    schema = {"device_id": pl.Int64, "win": pl.Int64, "start": pl.Int64, "length": pl.Int64,
              "busy_ns": pl.Int64, "long_idle_ns": pl.Int64}
    frames = [pl.DataFrame(cols).select(pl.lit(dev, dtype=pl.Int64).alias("device_id"), pl.all()) for dev, cols in parts]
    out = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    return out.with_columns((pl.col("busy_ns") * 100.0 / pl.col("length")).alias("utilization_pct"))


def utilization_windows(intervals: pl.DataFrame, window_ns: int, long_gap_ns: int, *,
                        merged: bool = False) -> pl.DataFrame:
    """Windows of ``window_ns`` from each device's first activity to its last (``merged``:
    ``intervals`` already come from ``merge_intervals``).

    Columns: device_id, win, start, length (the last window is shorter), busy_ns (union of
    activity), long_idle_ns (idle inside gaps of at least ``long_gap_ns``), utilization_pct.
    O(windows + intervals) per device: busy time before each window edge from the cumulative interval
    lengths; no interval is split."""
    merged = intervals if merged else merge_intervals(intervals)
    return _frame([(dev, _device_windows(starts, ends, window_ns, long_gap_ns))
                   for dev, starts, ends in _per_device(merged)])


def fragmented_windows(intervals: pl.DataFrame, window_ns: int, long_gap_ns: int,
                       max_utilization_pct: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ``utilization_windows`` (of merged ``intervals``) busy less than ``max_utilization_pct``
    with idle time outside long gaps (``fragmented_idle_ns`` = length - busy - long idle > 0), and
    per device with windows the number of all of them (device_id, total). Windows are picked in numpy, so
    only those become a frame (millions of windows at long traces, few of them low)."""
    parts, totals = [], []
    for dev, starts, ends in _per_device(intervals):
        cols = _device_windows(starts, ends, window_ns, long_gap_ns)
        busy, length = cols["busy_ns"], cols["length"]
        fragmented = length - busy - cols["long_idle_ns"]
        keep = (busy * 100.0 / length < max_utilization_pct) & (fragmented > 0)  # as utilization_pct
        parts.append((dev, {**{k: v[keep] for k, v in cols.items()}, "fragmented_idle_ns": fragmented[keep]}))
        if len(length):
            totals.append((dev, len(length)))
    low = _frame(parts)
    if "fragmented_idle_ns" not in low.columns:
        low = low.with_columns(pl.lit(0, dtype=pl.Int64).alias("fragmented_idle_ns"))
    total = pl.DataFrame(totals, schema={"device_id": pl.Int64, "total": pl.UInt32}, orient="row")
    return low.select(pl.exclude("fragmented_idle_ns"), "fragmented_idle_ns"), total
