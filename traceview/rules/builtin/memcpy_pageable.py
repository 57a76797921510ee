"""memcpy.pageable: copies from or to pageable host memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from traceview.rules import timeline_data as td
from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.registry import rule

GROUP = ["device_id", "nvtx_range", "operation", "api_name"]


@dataclass(frozen=True, slots=True)
class Params:
    min_bytes: int = 1 << 20              # ignore copies smaller than this (staging cost is negligible)
    assumed_pinned_gbps: float = 25.0     # pinned rate when the trace has no pinned copy in that direction


def pinned_rates(copies: pl.DataFrame, min_bytes: int) -> dict[str, float]:
    """Bytes-weighted throughput (bytes/ns = GB/s) of pinned copies per operation label, measured."""
    pinned = copies.filter(((pl.col("src_kind") == "Pinned") | (pl.col("dst_kind") == "Pinned"))
                           & (pl.col("bytes") >= min_bytes) & (pl.col("duration") > 0))
    rates = pinned.group_by("operation").agg((pl.col("bytes").sum() / pl.col("duration").sum()).alias("gbps"))
    return dict(rates.iter_rows())


@rule(id="memcpy.pageable", title="Copy from/to pageable host memory", category="memcpy",
      severity=Severity.medium, params=Params)
def memcpy_pageable(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Finds host-device copies whose host side is pageable memory (``srcKind``/``dstKind`` in the
    memcpy activity), whether issued synchronously or with an ``*Async`` call, through the runtime
    (``cudaMemcpy*``) or the driver API (``cuMemcpy*``). Copies are grouped by device, NVTX range,
    direction and API function; copies below ``min_bytes`` are ignored.

    ## Why it matters
    The DMA engine can only read pinned (page-locked) memory, so the driver stages pageable data
    through a pinned bounce buffer in chunks: the copy runs at a fraction of the link rate, and an
    ``*Async`` copy from pageable memory is synchronous with respect to the host, so it cannot
    overlap compute. Nsight Systems' own ``cuda_memcpy_async`` rule only inspects
    ``cudaMemcpy*Async`` runtime calls and misses synchronous and driver-API copies.

    ## How to fix
    Allocate the host buffer pinned (``cudaMallocHost``/``cudaHostAlloc``, ``cuMemHostAlloc``) or pin
    an existing one with ``cudaHostRegister``; in PyTorch use ``tensor.pin_memory()`` or
    ``DataLoader(pin_memory=True)`` with ``.to(device, non_blocking=True)``. Then issue the copy with
    ``cudaMemcpyAsync`` on a non-default stream so it overlaps kernels.

    ## Parameters
    - ``min_bytes``: smallest copy considered (bytes).
    - ``assumed_pinned_gbps``: pinned throughput used for the estimate when the trace has no pinned
      copy in the same direction (otherwise the measured pinned rate is used).

    The estimated gain is the copy time minus the time at the pinned rate (GPU timeline only; the
    host time an ``*Async`` call spent blocked is shown as evidence).
    """
    copies = td.activity(ctx, "memcpy")
    if copies.height == 0:
        return NotApplicable("memcpy.pageable", "no memory copies in the trace")
    pageable = copies.filter(((pl.col("src_kind") == "Pageable") | (pl.col("dst_kind") == "Pageable"))
                             & (pl.col("bytes") >= p.min_bytes))
    rates = pinned_rates(copies, p.min_bytes)
    groups = pageable.group_by(GROUP).agg(
        pl.len().alias("count"), pl.col("bytes").sum().alias("bytes"), pl.col("duration").sum().alias("copy_ns"),
        pl.col("api_duration").sum().alias("api_ns"), pl.col("is_async").first().alias("is_async"),
    ).sort("copy_ns", descending=True)
    return _findings(groups, rates, p)


def _findings(groups: pl.DataFrame, rates: dict[str, float], p: Params) -> Iterator[Finding]:
    for g in groups.iter_rows(named=True):
        measured = rates.get(g["operation"])
        pinned_gbps = measured if measured else p.assumed_pinned_gbps
        pinned_src = (f"{td.SRC_MEMCPY}: pinned {g['operation']} copies in this trace" if measured
                      else "parameter memcpy.pageable.assumed_pinned_gbps")
        achieved = g["bytes"] / g["copy_ns"] if g["copy_ns"] else 0.0
        gain = max(g["copy_ns"] - g["bytes"] / pinned_gbps, 0.0)
        api = g["api_name"] or "unknown call"
        layer = "driver API" if api.startswith("cu") and not api.startswith("cuda") else "runtime API"
        evidence = [
            Evidence("copies", g["count"], "count", td.SRC_MEMCPY),
            Evidence("bytes", g["bytes"], "bytes", td.SRC_MEMCPY),
            Evidence("copy time", g["copy_ns"], "ns", td.SRC_MEMCPY),
            Evidence("achieved throughput", round(achieved, 3), "GB/s", td.SRC_MEMCPY),
            Evidence("pinned throughput", round(pinned_gbps, 3), "GB/s", pinned_src),
        ]
        async_note = ""
        if g["api_ns"] is not None:
            evidence.append(Evidence(f"host time in {api}", g["api_ns"], "ns", td.SRC_API))
            if g["is_async"]:
                async_note = (f"; the {api} call is asynchronous in name only: it blocked the host for "
                              f"{td.human_ns(g['api_ns'])}")
        yield Finding(
            rule_id="memcpy.pageable", severity=Severity.medium,
            title=f"Pageable {g['operation']} {td.where(g['nvtx_range'])}",
            message=(f"{g['count']} {g['operation']} cop{'y' if g['count'] == 1 else 'ies'} of "
                     f"{td.human_bytes(g['bytes'])} {td.where(g['nvtx_range'])} use pageable host memory "
                     f"({api}, {layer}): {achieved:.1f} GB/s vs {pinned_gbps:.1f} GB/s pinned{async_note}"),
            subject={"kind": "memcpy", "name": g["operation"], "nvtx_range": g["nvtx_range"], "api": g["api_name"],
                     "device_id": g["device_id"]},
            evidence=tuple(evidence), estimated_gain_ns=float(gain),
            recommendation=("Pin the host buffer (cudaHostAlloc/cuMemHostAlloc, cudaHostRegister, or "
                            "tensor.pin_memory() in PyTorch) and copy with cudaMemcpyAsync on a non-default "
                            "stream so the copy overlaps compute."),
        )
