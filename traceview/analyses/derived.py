"""Derived frames that several pipeline steps read, built once per analysis and memoized on the
``AnalysisResult`` (so they follow its ``--device`` filter: activity comes from ``result.frames``).

Each holds only the columns its readers use: at 10M kernels a full-width copy of the kernel
frame is about 2 GB, a narrow one a fraction of that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import polars as pl

from traceview.analyses import hostcalls, streams, timeline

if TYPE_CHECKING:
    from traceview.api import AnalysisResult

CALL_COLUMNS = ["start", "end", "duration", "name", "correlation_id", "global_tid", "pid"]


def memo(result: AnalysisResult, key: str, build: Callable[[], Any]) -> Any:
    """``build()`` once per analysis and key. ``AnalysisResult`` has slots, so the memo lives on its
    ``Trace``, tagged with the result's activity frames (held, so that they stay the same objects):
    another analysis of the trace (another --device) starts a fresh memo."""
    frames = tuple(result.frames.get(n) for n in ("kernels", "memcpy", "memset"))
    held = result.trace.__dict__.get("_derived")
    if held is None or len(held[0]) != len(frames) or any(a is not b for a, b in zip(held[0], frames)):
        held = (frames, {})
        result.trace.__dict__["_derived"] = held
    cache = held[1]
    if key not in cache:
        cache[key] = build()
    return cache[key]


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


def kernel_points(result: AnalysisResult) -> pl.DataFrame:
    """Kernels with a known launching thread: ``_id`` (row in the kernel frame), ``host_t``,
    ``global_tid``, sorted by ``host_t`` (``hostcalls.launch_points``)."""
    return memo(result, "kernel_points",
                lambda: hostcalls.launch_points(activity(result, "kernels"), launch_calls(result)))


def merged_activity(result: AnalysisResult) -> pl.DataFrame:
    """Union of kernel, memcpy and memset intervals per device (``timeline.merged_activity``)."""
    return memo(result, "merged_activity", lambda: timeline.merged_activity(
        activity(result, "kernels"), activity(result, "memcpy"), activity(result, "memset")))


def neighbours(result: AnalysisResult) -> pl.DataFrame | None:
    """``streams.neighbours`` of the kernels (None without kernels)."""
    kernels = activity(result, "kernels")
    return memo(result, "neighbours", lambda: streams.neighbours(kernels) if kernels.height else None)
