"""The JSON contract (documented in docs/json.md). Later work adds keys; never renames."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from traceview.api import AnalysisResult


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 3)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _rows(frame: pl.DataFrame, columns: list[str], limit: int | None = None) -> list[dict[str, Any]]:
    frame = frame.select(columns)
    if limit is not None:
        frame = frame.head(limit)
    return [_clean(r) for r in frame.iter_rows(named=True)]


KERNEL_KEYS = ["name", "short_name", "instances", "total_ns", "avg_ns", "med_ns", "min_ns", "max_ns", "std_ns",
               "time_pct", "device_ids"]
SHAPE_KEYS = ["name", "grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z", "instances", "total_ns",
              "avg_ns", "med_ns", "min_ns", "max_ns", "std_ns", "time_pct"]
MEMOP_KEYS = ["operation", "count", "total_ns", "total_bytes", "avg_ns", "med_ns", "min_ns", "max_ns", "std_ns",
              "time_pct", "avg_bytes", "med_bytes", "min_bytes", "max_bytes"]
API_KEYS = ["name", "count", "total_ns", "avg_ns", "med_ns", "min_ns", "max_ns", "std_ns", "time_pct"]
NVTX_KEYS = ["name", "style", "instances", "total_ns", "avg_ns", "med_ns", "min_ns", "max_ns", "std_ns", "time_pct"]
DEVICE_KEYS = ["id", "busy_ns", "idle_ns", "utilization_pct", "window_ns"]


def result_to_dict(result: AnalysisResult) -> dict[str, Any]:
    from traceview import __version__

    trace = result.trace
    kernels = _rows(result.kernels, KERNEL_KEYS, result.top)
    for entry in kernels:
        entry.update(result.extra.get("kernel_details", {}).get(entry["name"], {}))
    out: dict[str, Any] = {
        "traceview_version": __version__,
        "trace": {
            "path": str(trace.path),
            "nsys_version": trace.nsys_version,
            "schema_version": trace.schema_version,
            "duration_ns": result.duration_ns,
            "gpus": _clean(result.gpus),
        },
        "kernels": kernels,
        "kernel_shapes": _rows(result.kernel_shapes, SHAPE_KEYS, result.top),
        "memory_ops": _rows(result.memory_ops, MEMOP_KEYS),
        "api_calls": _rows(result.api_calls, API_KEYS),
        "nvtx_ranges": _rows(result.nvtx_ranges, NVTX_KEYS),
        "devices": _rows(result.devices.rename({"device_id": "id"}), DEVICE_KEYS),
        "findings": _clean(result.findings),
        "warnings": list(result.warnings),
    }
    for key, value in result.extra.items():
        if key != "kernel_details":
            out[key] = _clean(value)
    return out


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
