"""llm.kv-cache-pressure: device memory taken by weights vs buffers (KV cache, activations)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.registry import rule

USAGE_TABLE = "CUDA_GPU_MEMORY_USAGE_EVENTS"


@dataclass(frozen=True, slots=True)
class Params:
    max_share: float = 0.85   # of the GPU's memory known to be in use before it fires


def _footprint(ctx: RuleContext, device: int) -> tuple[float, float, str]:
    """(weights-like bytes, buffer bytes, source) on one device."""
    trace = ctx.trace
    if trace.info.has(USAGE_TABLE, "bytes") and trace.info.has(USAGE_TABLE, "memoryOperationType"):
        sql = (f"SELECT coalesce(sum(CASE WHEN memoryOperationType = 0 THEN bytes ELSE -bytes END), 0) "
               f"FROM {USAGE_TABLE} WHERE deviceId = ?")
        in_use = float(trace.connection.execute(sql, (device,)).fetchone()[0])
        return 0.0, in_use, f"trace: {USAGE_TABLE} (allocations minus frees)"
    copies = trace.memcpy.filter((pl.col("device_id") == device) & (pl.col("operation") == "[CUDA memcpy HtoD]"))
    sets = trace.memset.filter(pl.col("device_id") == device)
    return (float(copies.get_column("bytes").sum() or 0), float(sets.get_column("bytes").sum() or 0),
            "trace: CUPTI_ACTIVITY_KIND_MEMCPY HtoD bytes (weights) and CUPTI_ACTIVITY_KIND_MEMSET bytes "
            "(initialized buffers: KV cache, activations); a lower bound")


@rule(id="llm.kv-cache-pressure", title="GPU memory nearly full (weights + KV cache)", category="llm",
      severity=Severity.low, params=Params)
def kv_cache_pressure(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Estimates the device memory in use: from CUDA memory-usage events when the trace has them
    (``nsys profile --cuda-memory-usage=true``), else a lower bound from weights copied to the
    device and buffers initialized with memset (KV cache, activations). Fires when the share of
    the GPU's memory (``TARGET_INFO_GPU.totalMemory`` or the hardware table) reaches ``max_share``.

    ## Why it matters
    The KV cache holds every running sequence; when weights leave little room, the server runs
    fewer sequences at once (smaller batches, lower throughput) or preempts and recomputes.

    ## How to fix
    Keep ``--gpu-memory-utilization`` at 0.9 (the vLLM default) on a dedicated GPU and lower it
    when other processes share the GPU or for multi-node long-context serving; quantize weights
    (FP8/NVFP4) or the KV cache (FP8) to free room; shard with TP across GPUs.

    ## Parameters
    - ``max_share``: memory share in use that fires the rule.
    """
    gpus = {int(r["id"]): r for r in ctx.trace.gpus.iter_rows(named=True)}
    found = []
    for device in ctx.trace.device_ids:
        total = (gpus.get(device) or {}).get("total_memory_bytes")
        if not total:
            continue
        weights, buffers, source = _footprint(ctx, device)
        share = (weights + buffers) / total
        if share < p.max_share:
            continue
        found.append(Finding(
            rule_id="llm.kv-cache-pressure", severity=Severity.low, title="GPU memory nearly full",
            message=(f"device {device}: at least {(weights + buffers) / 2**30:.2f} GiB of {total / 2**30:.0f} GiB in use "
                     f"({share:.0%} >= {p.max_share:.0%}): weights {weights / 2**30:.2f} GiB, buffers "
                     f"{buffers / 2**30:.2f} GiB"),
            subject={"kind": "device", "name": f"device {device}", "device_id": device},
            evidence=(Evidence("weights-like bytes", weights, "B", source),
                      Evidence("buffer bytes (KV cache, activations)", buffers, "B", source),
                      Evidence("device memory", total, "B", "trace: TARGET_INFO_GPU.totalMemory")),
            estimated_gain_ns=0.0,
            recommendation="Keep --gpu-memory-utilization at 0.9 on a dedicated GPU (lower for shared GPUs or "
                           "multi-node long context); quantize weights or the KV cache to free room."))
    if not found and not gpus:
        return NotApplicable("llm.kv-cache-pressure", "the export lists no GPU memory size (TARGET_INFO_GPU)")
    return iter(found)
