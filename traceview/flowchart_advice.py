"""Concrete next actions for one kernel at each action node of the optimization flowchart.

Every advisor is ``fn(k: KernelView) -> list[str]``; numbers name their source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

# Bits per stored value (scales included): NVFP4 = 4-bit E2M1 + one FP8 scale per 16 values;
# MXFP4 = E2M1 + one E8M0 scale per 32; INT4 = group-128 with a 16-bit scale.
FORMAT_BITS = {"nvfp4": 4.5, "mxfp4": 4.25, "fp8": 8.0, "int8": 8.0, "int4": 4.125}
FORMAT_NAMES = {"nvfp4": "NVFP4", "mxfp4": "MXFP4", "fp8": "FP8 (E4M3)", "int8": "INT8", "int4": "INT4 (weight-only)"}
FUSE_MAX_GAP_NS = 50_000  # neighbours further apart are separate phases, not a fusion candidate
DTYPE_BITS = (("nvfp4", 4.5), ("fp4", 4.5), ("fp8", 8.0), ("e4m3", 8.0), ("int8", 8.0), ("bf16", 16.0),
              ("fp16", 16.0), ("half", 16.0), ("f16", 16.0), ("f32", 32.0), ("fp32", 32.0), ("sgemm", 32.0),
              ("float", 32.0))


@dataclass(slots=True)
class KernelView:
    """What the advisors may read about one kernel."""

    name: str
    short_name: str
    total_ns: float
    instances: int
    time_pct: float
    details: dict[str, Any]                       # result.extra["kernel_details"][name]
    hardware: dict[str, Any]                      # the device's entry of result.extra["hardware"]
    neighbours: pl.DataFrame                      # analyses.streams.neighbours rows for this kernel
    findings: list[dict[str, Any]] = field(default_factory=list)
    formats: tuple[str, ...] = ()                 # recipe [flowchart] quantization (empty: by hardware)

    @property
    def bound(self) -> dict[str, Any]:
        return self.details.get("bound") or {}

    @property
    def launch(self) -> dict[str, Any]:
        return self.details.get("launch") or {}


def ncu_command(short_name: str) -> str:
    """The Nsight Compute command that profiles this kernel in depth."""
    out = re.sub(r"[^A-Za-z0-9_.-]+", "_", short_name)[:60] or "kernel"
    return f"ncu -k regex:{re.escape(short_name)} --set full -o {out} <app>"


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.2f} ms"


def value_bits(name: str) -> tuple[float, str]:
    """Bits per value of the kernel's data, guessed from its name; 16 (bf16) when it does not say."""
    low = name.lower()
    for token, bits in DTYPE_BITS:
        if token in low:
            return bits, f"heuristic: '{token}' in the kernel name"
    return 16.0, "assumed 16-bit (bf16/fp16) weights: the kernel name does not say"


def bytes_per_launch(k: KernelView) -> tuple[float | None, str]:
    for e in k.bound.get("evidence", []) or []:
        if e.get("unit") == "bytes" and "bytes" in str(e.get("name", "")).lower() and e.get("value"):
            return float(e["value"]), f"{e.get('name')} ({e.get('source')})"
    return None, ""


def formats_for(k: KernelView) -> tuple[str, ...]:
    """Quantization formats to advise: the recipe's, else what the GPU's tensor cores run."""
    if k.formats:
        return k.formats
    cc = str(k.hardware.get("compute_capability") or "0.0")
    major = int(cc.split(".")[0]) if cc.split(".")[0].isdigit() else 0
    if major >= 10:  # Blackwell (B200/GB200 sm_100, RTX 50 / GB10 sm_12x): FP4 tensor cores
        return ("nvfp4", "fp8", "int8")
    if cc in ("8.9", "9.0"):  # Ada, Hopper: FP8 tensor cores
        return ("fp8", "int8", "int4")
    return ("int8", "int4")


def quantize(k: KernelView) -> list[str]:
    bits, bits_src = value_bits(k.short_name)
    per_launch, bytes_src = bytes_per_launch(k)
    gpu = k.hardware.get("name") or "this GPU"
    out = []
    for fmt in formats_for(k):
        new_bits = FORMAT_BITS[fmt]
        if new_bits >= bits:
            continue
        keep = new_bits / bits
        size = (f", ~{per_launch * (1 - keep) / 2**20:.0f} MiB less per launch of {per_launch / 2**20:.0f} MiB "
                f"[{bytes_src}]" if per_launch else "")
        out.append(f"{FORMAT_NAMES[fmt]} data (weights, KV cache): {new_bits:g} vs {bits:g} bits per value [{bits_src}] = "
                   f"{(1 - keep) * 100:.0f}% fewer bytes{size}; a memory-bound kernel's time scales with bytes: "
                   f"up to {_ms(k.total_ns * (1 - keep))} of {_ms(k.total_ns)} saved")
    if not out:
        out.append(f"Data is already {bits:g}-bit [{bits_src}]: reduce bytes by other means (KV-cache "
                   f"compression, sparsity, fewer passes over the data)")
    if "nvfp4" not in formats_for(k):
        out.append(f"NVFP4 needs Blackwell-class tensor cores (B200, GB200, RTX 50, DGX Spark GB10); on {gpu} "
                   f"use FP8/INT8")
    return out


def fuse(k: KernelView) -> list[str]:
    if k.neighbours.height == 0:
        return [f"No other kernel runs next to {k.short_name} on its stream: fuse within the kernel"]
    rows = k.neighbours.filter((pl.col("count") * 2 >= pl.col("instances"))
                               & (pl.col("median_gap_ns") <= FUSE_MAX_GAP_NS)).sort("count", descending=True)
    out = []
    for r in rows.head(3).iter_rows(named=True):
        order = f"{r['neighbour']} -> {k.short_name}" if r["side"] == "before" else f"{k.short_name} -> {r['neighbour']}"
        out.append(f"Fuse {order}: {r['neighbour']} runs {r['side']} it on the same stream {r['count']}/"
                   f"{r['instances']} times ({r['median_gap_ns'] / 1e3:.1f} us apart) [trace: kernel order per "
                   f"stream]; the intermediate tensor then stays in registers/shared memory instead of a DRAM "
                   f"write and re-read")
    return out or [(f"No kernel consistently runs next to {k.short_name} on its stream: fuse within the kernel "
                    f"(epilogues, fewer passes over the data)")]


def intensity(k: KernelView) -> list[str]:
    peaks = k.hardware.get("peak_flops") or {}
    out = [("Reuse each byte more: batch more tokens/requests per weight read, larger tiles that keep "
            "operands in shared memory/registers")]
    bits, _ = value_bits(k.short_name)
    if bits >= 32 and peaks.get("fp32") and peaks.get("bf16"):
        out.append(f"Use tensor cores: FP32 FFMA peaks at {peaks['fp32'] / 1e12:.0f} TFLOP/s vs "
                   f"{peaks.get('tf32', 0) / 1e12:.0f} TF32 / {peaks['bf16'] / 1e12:.0f} BF16 dense on "
                   f"{k.hardware.get('name', 'this GPU')} [hardware table]")
    return out


def occupancy(k: KernelView) -> list[str]:
    la = k.launch
    out = ["Sweep the batch size: grow it while time per token/sample keeps falling"]
    if la.get("theoretical_occupancy") is not None and la["theoretical_occupancy"] < 0.75:
        out.append(f"Theoretical occupancy {la['theoretical_occupancy'] * 100:.0f}% limited by "
                   f"{la.get('occupancy_limiter')} [kernels[].launch]: trim it (__launch_bounds__/-maxrregcount "
                   f"for registers, smaller tiles for shared memory)")
    if la.get("waves") is not None and la.get("tail_fraction", 0) > 0.25 and la["waves"] > 1:
        out.append(f"{la['waves']:.2f} waves leave a {la['tail_fraction'] * 100:.0f}% partial last wave: "
                   f"choose a grid that is a multiple of {la.get('slots_per_wave')} blocks")
    return out


def parallelism(k: KernelView) -> list[str]:
    la = k.launch
    out = []
    if la.get("blocks") is not None and la.get("sm_count") and la["blocks"] < la["sm_count"]:
        out.append(f"Grid of {la['blocks']} blocks on {la['sm_count']} SMs [kernels[].launch]: split the work "
                   f"(split-K, more rows per launch, grid-stride over more blocks) to at least {la['sm_count']} blocks")
    out.append("Raise occupancy and in-flight memory requests (more warps, vectorized loads, unrolling)")
    if k.total_ns / max(k.instances, 1) < 10_000:
        out.append("Short kernel: capture the sequence in a CUDA graph or fuse it with its neighbours")
    return out


def communication(k: KernelView) -> list[str]:
    return ["Overlap the collective with independent compute on a separate stream (see the nccl.* findings)",
            "Shrink it: fewer, larger collectives (bucketing), lower-precision communication, or a faster link"]


def unknown(k: KernelView) -> list[str]:
    return [(f"Measure it: {ncu_command(k.short_name)}, export with `ncu --import {k.short_name}.ncu-rep --csv "
             f"--page raw > {k.short_name}.csv`, then `traceview analyze TRACE --ncu {k.short_name}.csv`")]


def reprofile(k: KernelView) -> list[str]:
    return [("Re-profile the same workload (nsys profile -t cuda,nvtx) and compare: "
             "`traceview compare before.sqlite after.sqlite --recipe ci-gate`")]


def identify(k: KernelView) -> list[str]:
    related = ", ".join(f"{f['rule_id']} ({f['estimated_gain_ns'] / 1e6:.2f} ms)" for f in k.findings)
    return [f"Profile it in depth: {ncu_command(k.short_name)}"] + ([f"Findings on it: {related}"] if related else [])


ADVISORS: dict[str, Callable[[KernelView], list[str]]] = {
    "identify": identify, "intensity": intensity, "occupancy": occupancy, "quantize": quantize, "fuse": fuse,
    "parallelism": parallelism, "communication": communication, "unknown": unknown, "reprofile": reprofile,
}
