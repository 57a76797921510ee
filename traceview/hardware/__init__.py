"""Hardware model: a cited GPU table, per-compute-capability SM limits, trace-derived specs.

Public interface::

    SmLimits, GpuSpec, HardwareError
    list_gpus() -> list[GpuSpec]
    find_gpu(name_or_key) -> GpuSpec
    gpu_spec_for_device(trace, device_id, override=None) -> GpuSpec
    occupancy(limits, threads_per_block, registers_per_thread, shared_mem_bytes, carveout_bytes=None)
"""

from __future__ import annotations

from traceview.hardware.db import cc_limits, cc_table, find_gpu, list_gpus
from traceview.hardware.device import gpu_spec_for_device, spec_from_row
from traceview.hardware.occupancy import Occupancy, occupancy
from traceview.hardware.spec import GpuSpec, HardwareError, SmLimits

__all__ = [
    "GpuSpec", "HardwareError", "Occupancy", "SmLimits", "cc_limits", "cc_table", "find_gpu",
    "gpu_spec_for_device", "list_gpus", "occupancy", "spec_from_row",
]
