"""Column names and polars schemas of the model tables. Times are ns, sizes bytes."""

from __future__ import annotations

import polars as pl

I64, I32, F64, STR, BOOL = pl.Int64, pl.Int32, pl.Float64, pl.String, pl.Boolean

# Kernels: one row per kernel launch (CUPTI_ACTIVITY_KIND_KERNEL).
KERNELS: dict[str, pl.DataType] = {
    "start": I64, "end": I64, "duration": I64,
    "device_id": I64, "context_id": I64, "stream_id": I64, "correlation_id": I64,
    "global_pid": I64, "pid": I64,
    "name": STR,            # demangled name, as nsys stats prints it
    "short_name": STR,
    "grid_x": I64, "grid_y": I64, "grid_z": I64,
    "block_x": I64, "block_y": I64, "block_z": I64,
    "registers_per_thread": I64,
    "static_shared_mem": I64, "dynamic_shared_mem": I64, "shared_mem_executed": I64,
    "local_mem_per_thread": I64, "local_mem_total": I64,
    "graph_id": I64, "graph_node_id": I64,
    "is_nccl": BOOL, "nccl_collective": STR,
}

# Memory copies (CUPTI_ACTIVITY_KIND_MEMCPY), labels decoded as nsys stats prints them.
MEMCPY: dict[str, pl.DataType] = {
    "start": I64, "end": I64, "duration": I64,
    "device_id": I64, "context_id": I64, "stream_id": I64, "correlation_id": I64, "global_pid": I64,
    "bytes": I64, "copy_kind": I64, "operation": STR,
    "src_kind": STR, "dst_kind": STR, "src_device_id": I64, "dst_device_id": I64,
    "graph_node_id": I64, "throughput_bytes_per_s": F64,
}

MEMSET: dict[str, pl.DataType] = {
    "start": I64, "end": I64, "duration": I64,
    "device_id": I64, "context_id": I64, "stream_id": I64, "correlation_id": I64, "global_pid": I64,
    "bytes": I64, "value": I64, "mem_kind": STR, "operation": STR, "graph_node_id": I64,
}

# CUDA runtime and driver API calls (CUPTI_ACTIVITY_KIND_RUNTIME holds both in nsys exports).
API: dict[str, pl.DataType] = {
    "start": I64, "end": I64, "duration": I64,
    "name": STR,      # as nsys stats prints it: a 4-digit version suffix (_v3020) dropped
    "raw_name": STR,  # the name as exported
    "correlation_id": I64, "global_tid": I64, "pid": I64, "tid": I64, "return_value": I64,
}

# Columns that no analysis, rule or report reads. ``traceview.load(path, columns="analysis")``
# (what the CLI uses) leaves them out of the frames: every value SQLite hands over costs
# ~50 ns, so at 10M kernels each column is ~0.5 s and 80 MB. tests/test_projection.py checks
# that no module reads them and that the analysis is the same with and without them.
NOT_ANALYZED: dict[str, frozenset[str]] = {
    "kernels": frozenset({"context_id", "local_mem_total"}),
    "api": frozenset({"return_value"}),
}

# NVTX ranges (push/pop and start/end); marks are not ranges and are left out.
NVTX: dict[str, pl.DataType] = {
    "start": I64, "end": I64, "duration": I64, "name": STR, "text": STR, "domain": STR,
    "style": STR, "event_type": I64, "global_tid": I64, "pid": I64, "tid": I64, "level": I64,
}

GPUS: dict[str, pl.DataType] = {
    "id": I64, "name": STR, "sm_count": I64, "compute_capability": STR, "cc_major": I64, "cc_minor": I64,
    "memory_bandwidth_bytes_per_s": F64, "clock_hz": I64, "l2_cache_bytes": I64, "total_memory_bytes": I64,
    "max_warps_per_sm": I64, "max_blocks_per_sm": I64, "max_registers_per_sm": I64,
    "max_registers_per_block": I64, "max_shared_mem_per_sm": I64, "max_shared_mem_per_block": I64,
    "max_shared_mem_per_block_optin": I64, "max_threads_per_block": I64, "threads_per_warp": I64,
    "bus_location": STR, "uuid": STR,
}

PROCESSES: dict[str, pl.DataType] = {"pid": I64, "name": STR}
THREADS: dict[str, pl.DataType] = {"global_tid": I64, "pid": I64, "tid": I64, "name": STR}

# copyKind -> label used by `nsys stats` (CUPTI_ACTIVITY_MEMCPY_KIND, stable enum).
COPY_KIND_LABELS: dict[int, str] = {
    0: "[CUDA memcpy Unknown]", 1: "[CUDA memcpy HtoD]", 2: "[CUDA memcpy DtoH]",
    3: "[CUDA memcpy HtoA]", 4: "[CUDA memcpy AtoH]", 5: "[CUDA memcpy AtoA]",
    6: "[CUDA memcpy AtoD]", 7: "[CUDA memcpy DtoA]", 8: "[CUDA memcpy DtoD]",
    9: "[CUDA memcpy HtoH]", 10: "[CUDA memcpy PtoP]", 11: "[CUDA Unified Memory memcpy HtoD]",
    12: "[CUDA Unified Memory memcpy DtoH]", 13: "[CUDA Unified Memory memcpy DtoD]",
}
MEMSET_LABEL = "[CUDA memset]"

# Memory kinds as nsys exports number them (ENUM_CUDA_MEM_KIND; used when the table is absent).
MEMORY_KIND_LABELS: dict[int, str] = {
    0: "Pageable", 1: "Pinned", 2: "Device", 3: "Array",
    4: "Managed", 5: "Device Static", 6: "Managed Static", 7: "Unknown",
}
