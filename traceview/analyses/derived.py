"""Derived frames that several pipeline steps read, built once per analysis and memoized on the
``AnalysisResult`` (so they follow its ``--device`` filter: activity comes from ``result.frames``).

Each holds only the columns its readers use: at 10M kernels a full-width copy of the kernel
frame is about 2 GB, a narrow one a fraction of that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from traceview.analyses import families, hostcalls, streams, timeline
from traceview.analyses.keys import decoded, encode  # noqa: F401  (re-exported)
from traceview.gather import take, take_columns  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from traceview.api import AnalysisResult

CALL_COLUMNS = ["start", "end", "duration", "name", "correlation_id", "global_tid", "pid"]


def memo(result: AnalysisResult, key: str, build: Callable[[], Any]) -> Any:
    """``build()`` once per analysis and key, kept in ``result.derived`` (dropped when ``analyze``
    returns; a later call rebuilds)."""
    if key not in result.derived:
        result.derived[key] = build()
    return result.derived[key]


def activity(result: AnalysisResult, name: str) -> pl.DataFrame:
    """``kernels``, ``memcpy`` or ``memset`` after the --device filter."""
    return result.frames[name] if name in result.frames else getattr(result.trace, name)


def calls(result: AnalysisResult) -> pl.DataFrame:
    """API calls, one per (thread, correlation id), with ``call_kind`` and ``is_async``, sorted by
    start; columns ``CALL_COLUMNS`` only."""
    def build() -> pl.DataFrame:
        api = result.trace.api
        return hostcalls.classify_calls(hostcalls.unique_calls(api.select(c for c in CALL_COLUMNS if c in api.columns)))
    return memo(result, "calls", build)


def launch_calls(result: AnalysisResult) -> pl.DataFrame:
    """Per launching call (correlation id, pid): its start ``host_t`` and ``global_tid``."""
    return memo(result, "launch_calls", lambda: hostcalls.launch_calls(result.trace.api))


def call_index(result: AnalysisResult) -> CallIndex | None:
    """``CallIndex`` of the launching calls (None when their ids are too sparse for one)."""
    return memo(result, "call_index", lambda: CallIndex.build(launch_calls(result)))


def points(result: AnalysisResult, activity_frame: pl.DataFrame) -> pl.DataFrame:
    """``hostcalls.launch_points(activity_frame, launch_calls(result))``, through the call index."""
    index = call_index(result)
    if index is None:
        return hostcalls.launch_points(activity_frame, launch_calls(result))
    return index.points(activity_frame)


def kernel_points(result: AnalysisResult) -> pl.DataFrame:
    """Kernels with a known launching thread: ``_id`` (row in the kernel frame), ``host_t``,
    ``global_tid``, sorted by ``host_t`` (``hostcalls.launch_points``)."""
    return memo(result, "kernel_points", lambda: points(result, activity(result, "kernels")))


def copy_points(result: AnalysisResult) -> pl.DataFrame:
    """``kernel_points`` of the memcpy rows."""
    return memo(result, "copy_points", lambda: points(result, activity(result, "memcpy")))


def kernel_names(result: AnalysisResult) -> tuple[pl.Series, pl.Series]:
    """``encode`` of the kernel names: ``(codes, names)``."""
    return memo(result, "kernel_names", lambda: encode(activity(result, "kernels").get_column("name")))


def name_families(result: AnalysisResult) -> pl.DataFrame:
    """``families.with_family`` of the distinct kernel names, row i for code i."""
    return memo(result, "name_families",
                lambda: families.with_family(kernel_names(result)[1].to_frame("name")))


def merged_activity(result: AnalysisResult) -> pl.DataFrame:
    """Union of kernel, memcpy and memset intervals per device (``timeline.merged_activity``)."""
    return memo(result, "merged_activity", lambda: timeline.merged_activity(
        activity(result, "kernels"), activity(result, "memcpy"), activity(result, "memset")))


def stream_links(result: AnalysisResult) -> pl.DataFrame:
    """``streams.links`` of the kernels, names coded by ``kernel_names``: stream number, name code,
    previous kernel on the stream, gap."""
    return memo(result, "stream_links", lambda: streams.links(activity(result, "kernels"), kernel_names(result)))


def neighbours(result: AnalysisResult) -> pl.DataFrame | None:
    """``streams.neighbours`` of the kernels, from ``stream_links`` (None without kernels)."""
    kernels = activity(result, "kernels")
    return memo(result, "neighbours", lambda: streams.neighbours(kernels, stream_links(result), kernel_names(result))
                if kernels.height else None)


class CallIndex:
    """Launching calls (``hostcalls.launch_calls``) with a known thread, found by a lookup table
    indexed by (pid, correlation id) instead of a hash join: ids of one process are dense
    (CUPTI counts them up), so the table is a few bytes per call. Same rows as
    ``hostcalls.launch_points``."""

    def __init__(self, calls: pl.DataFrame, pids: pl.Series | None, low: int, span: int, table: np.ndarray) -> None:
        self.calls, self.pids, self.low, self.span, self.table = calls, pids, low, span, table

    @classmethod
    def build(cls, calls: pl.DataFrame) -> CallIndex | None:
        calls = calls.filter(pl.col("global_tid").is_not_null()).select("correlation_id", *(
            ["pid"] if "pid" in calls.columns else []), "host_t", "global_tid")
        if calls.height == 0:
            return None
        pids = calls.get_column("pid").unique().sort() if "pid" in calls.columns else None
        low, high = calls.select(pl.col("correlation_id").min().alias("lo"), pl.col("correlation_id").max()).row(0)
        span = high - low + 1
        if span * (1 if pids is None else pids.len()) > 4 * calls.height + (1 << 20):
            return None  # sparse ids: the hash join is cheaper
        index = cls(calls, pids, low, span, np.empty(0, dtype=np.int64))
        key = index._slots(calls, pl.col("pid") if pids is not None else None)
        index.table = np.full(span * (1 if pids is None else pids.len()) + 1, -1, dtype=np.int64)
        index.table[key] = np.arange(calls.height, dtype=np.int64)  # the last slot (no call) stays -1
        return index

    def _key(self, pid: pl.Expr | None) -> pl.Expr:
        """Slot of (pid, correlation id) in the table; the last slot when outside it or null."""
        offset = pl.col("correlation_id") - self.low
        inside = offset.is_between(0, self.span - 1)
        if pid is not None and self.pids is not None:
            pid_index = pid.replace_strict(self.pids, pl.int_range(self.pids.len(), dtype=pl.Int64, eager=True),
                                           default=None)
            offset = pid_index * self.span + offset
            inside = inside & pid_index.is_not_null()
        none = self.span * (1 if self.pids is None else self.pids.len())
        return pl.when(inside).then(offset).otherwise(none).fill_null(none).alias("_key")

    def _slots(self, frame: pl.DataFrame, pid: pl.Expr | None) -> np.ndarray:
        """``_key`` of the rows of ``frame``, in numpy when the ids have no null (no hash of the pids)."""
        pid = pid if self.pids is not None else None
        ids = frame.select("correlation_id", *([] if pid is None else [pid.alias("_pid")]))
        if ids.null_count().sum_horizontal().item():
            return frame.select(self._key(pid)).to_series().to_numpy()
        offset = ids.get_column("correlation_id").to_numpy() - self.low
        inside = offset.view(np.uint64) < self.span  # 0 <= offset < span (a negative one wraps around)
        if pid is not None and self.pids.len() == 1:
            inside &= ids.get_column("_pid").to_numpy() == self.pids[0]
        elif pid is not None:
            pids, values = self.pids.to_numpy(), ids.get_column("_pid").to_numpy()
            at = np.minimum(np.searchsorted(pids, values), len(pids) - 1)  # the pid's index when it is one
            inside &= pids[at] == values
            offset += at * self.span
        return np.where(inside, offset, self.span * (1 if self.pids is None else self.pids.len()))

    def points(self, activity: pl.DataFrame) -> pl.DataFrame:
        """``hostcalls.launch_points(activity, calls)``: ``_id``, ``host_t``, ``global_tid`` sorted by ``host_t``."""
        pid = None
        if self.pids is not None:
            pid = pl.col("pid") if "pid" in activity.columns else hostcalls.PID_OF_GLOBAL
        row = self.table[self._slots(activity, pid)]
        ids = np.flatnonzero(row >= 0)
        if ids.shape[0] < row.shape[0]:
            row = row[ids]
        host_t = take(self.calls.get_column("host_t"), row)
        if not host_t.is_sorted():  # stable numpy sort of the nearly sorted times: a fraction of a polars sort
            by_time = np.argsort(host_t.to_numpy() if host_t.null_count() == 0 else
                                 host_t.fill_null(np.iinfo(np.int64).min).to_numpy(), kind="stable")
            ids, row, host_t = ids[by_time], row[by_time], take(host_t, by_time)
        global_tid = take(self.calls.get_column("global_tid"), row)
        return pl.DataFrame([pl.Series("_id", ids, dtype=pl.UInt32), host_t, global_tid])
