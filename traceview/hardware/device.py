"""The GpuSpec of a traced device: TARGET_INFO_GPU values over the table, or a what-if entry."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from traceview.hardware.db import CC_GUIDE, OCC_RULES, cc_limits, find_gpu, match_name
from traceview.hardware.spec import GpuSpec, HardwareError, SmLimits

if TYPE_CHECKING:
    from traceview.model.trace import Trace

_TABLE = "TARGET_INFO_GPU"
# model column -> (GpuSpec field, TARGET_INFO_GPU column)
_SPEC_FROM_TRACE = {
    "sm_count": ("sm_count", "smCount"),
    "memory_bandwidth_bytes_per_s": ("dram_bandwidth_bytes_per_s", "memoryBandwidth"),
    "l2_cache_bytes": ("l2_bytes", "l2CacheSize"),
    "total_memory_bytes": ("memory_bytes", "totalMemory"),
}
# model column -> (SmLimits field, TARGET_INFO_GPU column)
_LIMITS_FROM_TRACE = {
    "max_warps_per_sm": ("max_warps_per_sm", "maxWarpsPerSm"),
    "max_blocks_per_sm": ("max_blocks_per_sm", "maxBlocksPerSm"),
    "max_registers_per_sm": ("registers_per_sm", "maxRegistersPerSm"),
    "max_registers_per_block": ("max_registers_per_block", "maxRegistersPerBlock"),
    "max_shared_mem_per_sm": ("shared_mem_per_sm", "maxShmemPerSm"),
    "max_shared_mem_per_block_optin": ("max_shared_mem_per_block_optin", "maxShmemPerBlockOptin"),
    "max_threads_per_block": ("max_threads_per_block", "maxThreadsPerBlock"),
    "threads_per_warp": ("warp_size", "threadsPerWarp"),
}


def gpu_spec_for_device(trace: Trace, device_id: int, override: str | None = None) -> GpuSpec:
    """Spec of ``device_id``: the trace's TARGET_INFO_GPU values win over the table.

    A GPU missing from the table falls back to its compute capability's limits (``origin``
    says so). ``override`` (``--hardware``) returns that table entry instead, for a what-if.
    Raises ``HardwareError`` when the trace does not describe the device and no override is given.
    """
    if override:
        spec = find_gpu(override)
        return dataclasses.replace(spec, origin=f"table (what-if: --hardware {override})")
    rows = trace.gpus.filter(trace.gpus["id"] == device_id).to_dicts()
    if not rows:
        raise HardwareError(f"device {device_id}: the trace has no {_TABLE} row; "
                            "pass --hardware NAME to analyze launches against a known GPU")
    return spec_from_row(rows[0])


def spec_from_row(row: dict[str, Any]) -> GpuSpec:
    """Merge one ``trace.gpus`` row into the table entry it names (or its cc's limits)."""
    name = row.get("name") or f"GPU {row.get('id')}"
    table = match_name(name)
    cc = row.get("compute_capability") or (table.compute_capability if table else None)
    if cc is None:
        raise HardwareError(f"device {row.get('id')} ({name}): unknown GPU without a compute capability; "
                            "pass --hardware NAME")
    base_limits, used_cc = cc_limits(cc)
    if table is not None:
        base, origin = table, "trace+table"
        sources = dict(table.sources)
    else:
        origin = "trace+compute-capability fallback"
        if used_cc != cc:
            origin += f" (cc {cc} not in the table; using {used_cc})"
        base = GpuSpec(key=_key(name), name=name, compute_capability=cc, sm_count=0,
                       dram_bandwidth_bytes_per_s=0.0, memory_bytes=0, l2_bytes=0, peak_flops={},
                       limits=base_limits)
        sources = {"limits": f"{CC_GUIDE}, compute capability {used_cc}; {OCC_RULES}"}
    sources["compute_capability"] = _cite("computeMajor/computeMinor")
    spec_values: dict[str, Any] = {}
    for col, (fld, tcol) in _SPEC_FROM_TRACE.items():
        if row.get(col):
            spec_values[fld] = row[col]
            sources[fld] = _cite(tcol)
    limit_values: dict[str, Any] = {}
    for col, (fld, tcol) in _LIMITS_FROM_TRACE.items():
        if row.get(col):
            limit_values[fld] = int(row[col])
            sources[f"limits.{fld}"] = _cite(tcol)
    limits = _merge_limits(base_limits, limit_values)
    if not spec_values.get("sm_count", base.sm_count):
        raise HardwareError(f"device {row.get('id')} ({name}): SM count unknown (no smCount in {_TABLE} "
                            "and not in the table); pass --hardware NAME")
    return dataclasses.replace(base, name=name if table is None else base.name, compute_capability=cc,
                               limits=limits, sources=sources, origin=origin, **spec_values)


def _merge_limits(base: SmLimits, values: dict[str, Any]) -> SmLimits:
    limits = dataclasses.replace(base, **values)
    carveouts = tuple(c for c in base.shared_mem_carveouts if c <= limits.shared_mem_per_sm)
    if limits.shared_mem_per_sm not in carveouts:
        carveouts = (*carveouts, limits.shared_mem_per_sm)
    return dataclasses.replace(limits, shared_mem_carveouts=carveouts)


def _cite(column: str) -> str:
    return f"trace: {_TABLE}.{column}"


def _key(name: str) -> str:
    return "-".join(name.lower().replace("nvidia", "").split()) or "unknown"
