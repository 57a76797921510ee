"""Launch-configuration analysis: occupancy, waves, tails, small grids, per kernel launch shape.

Pure functions over the kernel activity frame (``launch_shapes``, ``analyze_shapes``) and one
pipeline step (``enrich``) that stores per-kernel ``launch`` entries and ``extra["hardware"]``.

Model: a launch of ``blocks`` blocks runs in waves of ``sm_count x active_blocks_per_sm``
blocks. ``waves = blocks / slots``; a partial last wave leaves ``tail_fraction`` of its slots idle.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import polars as pl

from traceview.analyses import derived, keys
from traceview.analyses.tiles import parse_tile
from traceview.hardware import (
    GpuSpec,
    HardwareError,
    find_gpu,
    gpu_spec_for_device,
    occupancy,
)

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions
    from traceview.model.trace import Trace

SHAPE_KEYS = ["device_id", "name", "grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z",
              "registers_per_thread", "static_shared_mem", "dynamic_shared_mem"]
# trace column (CUPTI_ACTIVITY_KIND_KERNEL) behind each launch field, for evidence
KERNEL_TABLE = "CUPTI_ACTIVITY_KIND_KERNEL"
TRACE_COLUMNS = {
    "grid": "gridX/gridY/gridZ", "block": "blockX/blockY/blockZ", "registers_per_thread": "registersPerThread",
    "static_shared_mem": "staticSharedMemory", "dynamic_shared_mem": "dynamicSharedMemory",
    "shared_mem_config_bytes": "sharedMemoryExecuted", "local_mem_per_thread": "localMemoryPerThread",
    "duration": "end - start",
}


def trace_source(field: str) -> str:
    """``"trace: CUPTI_ACTIVITY_KIND_KERNEL.<column>"`` for a launch field."""
    return f"trace: {KERNEL_TABLE}.{TRACE_COLUMNS[field]}"


def launch_shapes(kernels: pl.DataFrame, names: tuple[pl.Series, pl.Series] | None = None) -> pl.DataFrame:
    """One row per (device, name, grid, block, registers, static + dynamic shared memory).

    Adds ``instances``, ``total_ns``, ``blocks``, ``threads_per_block``, ``shared_mem_bytes``,
    the most common ``shared_mem_config_bytes`` (carveout; the smallest of equally common ones)
    and the largest ``local_mem_per_thread``.
    ``names``: ``derived.encode`` of the kernel names (groups on codes; built when not given).
    """
    if kernels.height == 0:
        return pl.DataFrame()
    codes, distinct = derived.encode(kernels.get_column("name")) if names is None else names
    filled = kernels.select(*(pl.col(c).fill_null(0) for c in [*SHAPE_KEYS, "shared_mem_executed"] if c != "name"),
                            "duration", "local_mem_per_thread").with_columns(name=codes)
    shapes = _carveout_groups(filled).group_by(SHAPE_KEYS).agg(
        instances=pl.col("n").sum(),
        total_ns=pl.col("ns").sum(),
        shared_mem_config_bytes=pl.col("shared_mem_executed").sort_by("n", "shared_mem_executed",
                                                                      descending=[True, False]).first(),
        local_mem_per_thread=pl.col("local_mem_per_thread").max(),
    ).with_columns(name=derived.decoded(pl.col("name"), distinct))
    return shapes.with_columns(
        blocks=pl.col("grid_x") * pl.col("grid_y") * pl.col("grid_z"),
        threads_per_block=pl.col("block_x") * pl.col("block_y") * pl.col("block_z"),
        shared_mem_bytes=pl.col("static_shared_mem") + pl.col("dynamic_shared_mem"),
    ).sort(["total_ns", *SHAPE_KEYS], descending=[True] + [False] * len(SHAPE_KEYS))  # ties: by shape, not hash order


def _carveout_groups(filled: pl.DataFrame) -> pl.DataFrame:
    """Per launch shape and carveout (``shared_mem_executed``): the key columns, n, ns and the largest
    ``local_mem_per_thread``; grouped on one integer key (``keys.compact_key``) when the values allow."""
    by = [*SHAPE_KEYS, "shared_mem_executed"]
    aggs = [pl.len().alias("n"), pl.col("duration").sum().alias("ns"),
            pl.col("local_mem_per_thread").fill_null(0).max()]
    key = keys.compact_key(filled, by)
    if key is None:
        return filled.group_by(by).agg(*aggs)
    groups = filled.select("duration", "local_mem_per_thread").with_columns(key).with_row_index("_row").group_by(
        "_key").agg(pl.col("_row").first(), *aggs)
    return filled.select(pl.col(by).gather(groups.get_column("_row"))).hstack(groups.drop("_key", "_row"))


def wave_stats(blocks: int, sm_count: int, active_blocks_per_sm: int) -> dict[str, Any]:
    """Waves of a grid: ``waves``, ``full_waves``, ``tail_blocks`` and the idle share of the last wave."""
    slots = sm_count * active_blocks_per_sm
    if slots <= 0 or blocks <= 0:
        return {"slots_per_wave": slots, "waves": None, "full_waves": 0, "tail_blocks": 0, "tail_fraction": 0.0}
    full, tail = divmod(blocks, slots)
    return {
        "slots_per_wave": slots,
        "waves": blocks / slots,
        "full_waves": full,
        "tail_blocks": tail,
        "tail_fraction": (1.0 - tail / slots) if tail else 0.0,
        # share of slot-time idle over the whole launch (wave quantization), 0 when waves are whole
        "quantization_loss": 1.0 - (blocks / slots) / math.ceil(blocks / slots),
    }


def analyze_shape(row: dict[str, Any], spec: GpuSpec, *, use_trace_carveout: bool) -> dict[str, Any]:
    """Occupancy and waves of one launch shape on ``spec``."""
    carveout = row.get("shared_mem_config_bytes") if use_trace_carveout else None
    occ = occupancy(spec.limits, int(row["threads_per_block"]), int(row["registers_per_thread"]),
                    int(row["shared_mem_bytes"]), carveout_bytes=carveout or None)
    blocks, threads = int(row["blocks"]), int(row["threads_per_block"])
    out = {
        "device_id": int(row["device_id"]),
        "grid": [int(row["grid_x"]), int(row["grid_y"]), int(row["grid_z"])],
        "block": [int(row["block_x"]), int(row["block_y"]), int(row["block_z"])],
        "blocks": blocks,
        "threads_per_block": threads,
        "registers_per_thread": int(row["registers_per_thread"]),
        "shared_mem_bytes": int(row["shared_mem_bytes"]),
        "static_shared_mem": int(row["static_shared_mem"]),
        "dynamic_shared_mem": int(row["dynamic_shared_mem"]),
        "shared_mem_config_bytes": int(row.get("shared_mem_config_bytes") or 0) or None,
        "local_mem_per_thread": int(row.get("local_mem_per_thread") or 0),
        "active_blocks_per_sm": occ.active_blocks_per_sm,
        "active_warps_per_sm": occ.active_warps_per_sm,
        "theoretical_occupancy": occ.theoretical_occupancy,
        "occupancy_limiter": occ.limiter,
        "block_limits": dict(occ.block_limits),
        "warps_per_block": occ.warps_per_block,
        "sm_count": spec.sm_count,
        "small_grid": blocks < spec.sm_count,
        "block_multiple_of_warp": threads % spec.limits.warp_size == 0,
        "instances": int(row["instances"]),
        "total_ns": int(row["total_ns"]),
        "hardware": spec.key,
    }
    out.update(wave_stats(blocks, spec.sm_count, occ.active_blocks_per_sm))
    tile = parse_tile(str(row["name"]))
    if tile is not None:
        out["tile"] = tile.to_dict()
    return out


def analyze_shapes(shapes: pl.DataFrame, specs: dict[int, GpuSpec], *, what_if: bool = False) -> list[dict[str, Any]]:
    """Per-shape launch analysis (one dict per row of ``launch_shapes``) for devices with a spec."""
    out = []
    for row in shapes.iter_rows(named=True):  # one iteration per distinct launch shape, not per launch
        spec = specs.get(int(row["device_id"]))
        if spec is None:
            continue
        entry = analyze_shape(row, spec, use_trace_carveout=not what_if)
        entry["name"] = row["name"]
        entry["what_if"] = what_if
        out.append(entry)
    return out


def device_specs(trace: Trace, device_ids: list[int], override: str | None) -> tuple[dict[int, GpuSpec], list[str]]:
    """GpuSpec per device, and one warning per device the trace does not describe."""
    specs: dict[int, GpuSpec] = {}
    problems: list[str] = []
    for dev in device_ids:
        try:
            specs[dev] = gpu_spec_for_device(trace, dev, override)
        except HardwareError as exc:
            problems.append(str(exc))
    return specs, problems


def per_kernel(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Kernel name -> its dominant shape's launch dict (by total time), plus ``launch_shapes`` when several."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_name.setdefault(e["name"], []).append(e)
    out = {}
    for name, group in by_name.items():
        group.sort(key=lambda e: -e["total_ns"])
        main = {k: v for k, v in group[0].items() if k != "name"}
        if len(group) > 1:
            main["launch_shapes"] = [{k: v for k, v in e.items() if k != "name"} for e in group]
        out[name] = main
    return out


def shapes_frame(entries: list[dict[str, Any]]) -> pl.DataFrame:
    """The per-shape entries as a frame (rules filter it with polars); empty when no device had a spec."""
    if not entries:
        return pl.DataFrame()
    return pl.DataFrame(entries, infer_schema_length=None)


def specs_for(result: AnalysisResult) -> dict[int, GpuSpec]:
    """The GpuSpec per device that ``enrich`` used (resolved again; the table is cached)."""
    frame = result.frames.get("launch_shapes")
    devices = [] if frame is None or frame.height == 0 else \
        [int(d) for d in frame.get_column("device_id").unique().to_list()]
    return device_specs(result.trace, devices, getattr(result.options, "hardware", None))[0]


def hardware_entry(dev: int, spec: GpuSpec, what_if: bool) -> dict[str, Any]:
    """JSON description of the spec used for one device."""
    d = spec.to_dict()
    d.pop("patterns", None)
    return {"device_id": dev, "what_if": what_if, **d}


def enrich(result: AnalysisResult, options: AnalyzeOptions) -> None:
    """Pipeline step: ``kernel_details[name]["launch"]``, ``extra["hardware"]``, ``frames["launch_shapes"]``."""
    kernels = result.frames.get("kernels", result.trace.kernels)
    devices = sorted(int(d) for d in kernels.get_column("device_id").drop_nulls().unique().to_list())
    override = getattr(options, "hardware", None)
    if override:
        find_gpu(override)  # an unknown --hardware is the user's error: one line, exit 2
    specs, problems = device_specs(result.trace, devices, override)
    what_if = bool(override)
    entries = analyze_shapes(launch_shapes(kernels, derived.kernel_names(result)), specs, what_if=what_if)
    result.frames["launch_shapes"] = shapes_frame(entries)
    details = result.extra.setdefault("kernel_details", {})
    for name, launch in per_kernel(entries).items():
        details.setdefault(name, {})["launch"] = launch
    result.extra["hardware"] = {
        "what_if": override,
        "note": (f"launch analysis re-run as if on {next(iter(specs.values())).name} (--hardware {override}); "
                 "registers and shared memory per block as traced" if what_if and specs else None),
        "devices": [hardware_entry(dev, spec, what_if) for dev, spec in specs.items()],
        "unavailable": problems,
    }
    result.warnings.extend(f"launch analysis: {p}" for p in problems)


_LIMITER_ABBREV = {"warps": "", "blocks": " blk", "registers": " reg", "shared_memory": " smem",
                   "invalid-launch": " n/a"}


def launch_cells(launch: dict[str, Any] | None) -> list[str]:
    """Compact ``[blocks x threads, occupancy + limiter, waves]`` cells for report kernel tables."""
    if not launch:
        return ["", "", ""]
    waves = launch.get("waves")
    occ = f"{100 * launch['theoretical_occupancy']:.0f}%{_LIMITER_ABBREV.get(launch['occupancy_limiter'], '')}"
    waves_text = "" if waves is None else f"{waves:.2f}" if waves >= 0.1 else f"{waves:.3f}"
    return [f"{launch['blocks']}x{launch['threads_per_block']}", occ, waves_text]
