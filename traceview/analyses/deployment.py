"""`traceview project`: a traced decode step projected onto other hardware and TP/PP layouts.

Builds the measured ``projection.DecodeStep`` from an analysis (``extra["llm"]`` and, for
tensor-parallel traces, ``extra["communication"]``) and runs ``projection.project``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from traceview.analyses import llm, projection, tp_cost
from traceview.errors import InputError

if TYPE_CHECKING:
    from traceview.api import AnalysisResult

# Per ring hop: NIC/switch or NVLink/PCIe latency. Assumptions (typical small-message numbers;
# measure yours with nccl-tests all_reduce_perf -b 8 -e 64K).
HOP_LATENCY_NS = {"nvlink": 1_000.0, "pcie": 1_500.0, "roce": 5_000.0}
TRACED_WEIGHT_BW_SHARE = 0.8   # weight GEMVs on HBM reach ~80% of peak (h200 gemv_bf16_decode: 3.8 of 4.8 TB/s)
GB10_DECODE_SHARE = 0.575      # DGX Spark decode: 55-60% of 273 GB/s


def link_named(key: str) -> projection.Link:
    link = tp_cost.LINKS.get(key)
    if link is None:
        raise InputError(f"unknown link {key!r} (known: {', '.join(sorted(tp_cost.LINKS))})")
    hop = next(v for k, v in HOP_LATENCY_NS.items() if key.startswith(k))
    return projection.Link(key, link.bytes_per_s, hop, f"{link.source}; {hop / 1e3:.1f} us per hop assumed")


def _weights(decode: dict[str, Any], source_bw: float) -> tuple[float, float, str]:
    """(ns, bytes, source) of the weight stream per step on the traced GPU."""
    weights = [k for k in decode["kernels"] if llm.is_weight_stream(k)]
    if not weights:
        raise InputError("no memory-bound GEMV/GEMM kernels in the decode step: nothing streams weights to project")
    ns = sum(k["ns_per_step"] for k in weights)
    if all(k["bytes_per_step"] is not None for k in weights):
        srcs = sorted({str(k["bytes_source"]) for k in weights})
        return ns, sum(k["bytes_per_step"] for k in weights), "; ".join(srcs)
    est = ns * 1e-9 * TRACED_WEIGHT_BW_SHARE * source_bw
    return ns, est, (f"estimated: weight-kernel time x {TRACED_WEIGHT_BW_SHARE:.0%} of the traced GPU's peak "
                     "bandwidth (no measured bytes: pass --ncu for measured DRAM bytes)")


DEFAULT_ALLREDUCE_BYTES = 16_384.0   # hidden 8192 x bf16 x batch 1 (assumption)
DEFAULT_ALLREDUCE_FIXED_NS = 5_000.0  # launch + kernel floor per all-reduce (assumption)


def _comm(result: AnalysisResult, device: int, weight_launches: float) -> tuple[int, float, float, int, str]:
    """(all-reduces per step, bytes each, fixed ns each, traced ranks, note) from extra["communication"];
    a single-GPU trace assumes Megatron-style TP: one all-reduce per two weight GEMMs."""
    comm = result.extra.get("communication") or {}
    steps = (comm.get("steps") or {}).get("per_device") or []
    row = next((s for s in steps if s.get("device_id") == device), steps[0] if steps else None)
    if not row or not row.get("allreduce_count"):
        count = max(1, round(weight_launches / 2))
        return count, DEFAULT_ALLREDUCE_BYTES, DEFAULT_ALLREDUCE_FIXED_NS, 1, (
            f"no all-reduce in the trace: under TP assume one per two weight GEMV/GEMM launches ({count} per step, "
            f"Megatron-style), {DEFAULT_ALLREDUCE_BYTES:.0f} B each; pass --layers to override")
    count = int(round(row["allreduce_count"]))
    sizes = [b.get("med_bytes") for b in comm.get("bandwidth", []) if b.get("device_id") == device and b.get("med_bytes")]
    msg = float(sizes[0]) if sizes else 0.0
    link = (comm.get("link") or {}).get("bytes_per_s") or 450e9
    per = row["comm_ns"] / count
    ranks = int(comm.get("ranks") or 1)
    return count, msg, max(per - msg / link * 1e9, 0.0), ranks, (
        f"the trace is tensor-parallel over {ranks} GPUs: the full model streams {ranks} x the per-GPU shard; "
        f"all-reduce cost measured: {count} per step, {msg:.0f} B, {per / 1e3:.1f} us each on the traced link")


def measured_step(result: AnalysisResult) -> projection.DecodeStep:
    decode = (result.extra.get("llm") or {}).get("decode")
    if not decode:
        raise InputError(f"{result.trace.path}: no decode-step NVTX ranges to project (name a range like "
                         "'decode_step', or set [phases] decode in a recipe)")
    gpu = {int(r["id"]): r for r in result.trace.gpus.iter_rows(named=True)}.get(decode["device_id"], {})
    source_bw = float(gpu.get("memory_bandwidth_bytes_per_s") or 0.0)
    if not source_bw:
        source_bw = float(next((h.get("dram_bandwidth_bytes_per_s") for h in _hw_devices(result)
                                if h.get("dram_bandwidth_bytes_per_s")), 0.0))
    w_ns, w_bytes, w_src = _weights(decode, source_bw or 1e12)
    weight_launches = sum(k["launches_per_step"] for k in decode["kernels"] if llm.is_weight_stream(k))
    count, msg, overhead, ranks, comm_note = _comm(result, decode["device_id"], weight_launches)
    notes = [f"measured on {gpu.get('name') or 'the traced GPU'}: decode step '{decode['phase']}' "
             f"{decode['gpu_ns_per_step'] / 1e3:.1f} us GPU time, weight stream {w_ns / 1e3:.1f} us", comm_note]
    # Communication kernels are re-costed on the target link; weights of a TP trace are a 1/ranks shard.
    others = [(k["ns_per_step"] * ranks, k["bound_class"], None if k["bytes_per_step"] is None
               else k["bytes_per_step"] * ranks) for k in decode["kernels"]
              if not llm.is_weight_stream(k) and k["bound_class"] != "communication"]
    w_bytes, w_ns = w_bytes * ranks, w_ns * ranks
    return projection.DecodeStep(
        step_ns=w_ns + sum(o[0] for o in others), weight_ns=w_ns, weight_bytes=w_bytes, weight_bytes_source=w_src,
        host_ns=decode["host_sync"]["median_sync_ns"], allreduces_per_step=count, allreduce_bytes=msg,
        allreduce_overhead_ns=overhead or DEFAULT_ALLREDUCE_FIXED_NS, source_bw=source_bw,
        source_fp32=_fp32(result), others=others, notes=notes)


def _hw_devices(result: AnalysisResult) -> list[dict[str, Any]]:
    return list((result.extra.get("hardware") or {}).get("devices") or [])


def _fp32(result: AnalysisResult) -> float:
    return float(next((h.get("peak_flops", {}).get("fp32") for h in _hw_devices(result) if h.get("peak_flops")),
                      0.0) or 0.0)


def target_for(key: str, share: float | None) -> projection.Target:
    from traceview.hardware import find_gpu

    spec = find_gpu(key)
    default = GB10_DECODE_SHARE if spec.key == "gb10" else TRACED_WEIGHT_BW_SHARE
    return projection.Target(name=spec.name, dram_bytes_per_s=spec.dram_bandwidth_bytes_per_s,
                             memory_bytes=float(spec.memory_bytes or 0), achievable_share=share or default,
                             source=spec.source("dram_bandwidth_bytes_per_s"),
                             fp32_flops=float(spec.peak_flops.get("fp32") or 0.0))


def default_link(key: str) -> str:
    return "roce200" if key == "gb10" else (tp_cost.link_for_gpu(key.upper()) or tp_cost.LINKS["pcie5"]).key
