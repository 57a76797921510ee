"""What-if arithmetic for LLM decode: quantized weights, and deployment on other hardware
(DGX Spark clusters, TP/PP). Every projection is an estimate and carries its assumptions.

Model (documented in docs/llm.md):
- Memory-bound kernel time scales with the bytes it moves at its achieved bandwidth, so a
  format with ``f`` times the bytes takes ``f`` times as long (quantization what-if).
- On a target GPU the weight stream of one decode step takes
  ``weight_bytes / (achievable_share x peak DRAM bandwidth)``. Other kernels: with known bytes,
  ``max(traced time, bytes / (achievable_share x peak))``; without, memory-bound ones scale with
  the DRAM bandwidth ratio, compute-bound ones with the FP32 peak ratio, latency-bound ones keep
  their time (bounded by launch latency and the grid, not by bandwidth).
- TP over ``n`` nodes splits the weights (each node streams 1/n) and adds, per all-reduce,
  ``overhead + 2(n-1) x hop_latency + 2(n-1)/n x message_bytes / link_bandwidth`` (ring).
- PP over ``n`` nodes splits the weights by layer; one token still passes every stage, so a
  single sequence gains nothing; with ``m`` micro-batches throughput rises by ``n x m / (m+n-1)``
  (pipeline bubble ``(n-1)/(m+n-1)``), and each token pays ``n-1`` activation hops.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Bytes of a weight element relative to bf16/fp16 (16 bits), scale factors included.
FORMATS: dict[str, tuple[float, str, str]] = {
    "fp8": (8 / 16, "FP8 (E4M3) weights, per-tensor/channel scales", "minimal accuracy loss on most models"),
    "int8": (8 / 16, "INT8 weights (W8A16), per-channel scales", "depends on calibration; usually small loss"),
    "nvfp4": (4.5 / 16, "NVFP4: 4-bit E2M1 + one FP8 scale per 16 values (4.5 bits/value)",
              "noticeable on edge cases; validate on your eval set"),
    "int4": (4.25 / 16, "INT4 (AWQ/GPTQ, group 64, fp16 scales: 4.25 bits/value)", "task-dependent; validate"),
}
MEMORY_UTILIZATION = 0.9  # vLLM's --gpu-memory-utilization default


@dataclass(frozen=True, slots=True)
class StepKernel:
    """A kernel's share of one decode step."""

    name: str
    ns_per_step: float
    bytes_per_step: float | None   # None when the trace cannot say (no ncu/sidecar)
    bound_class: str               # memory | compute | latency | communication | unknown
    is_weight_stream: bool         # a memory-bound GEMV/GEMM reading weights (quantization shrinks it)
    source_bits: int = 16


def source_bits(name: str) -> int:
    """Weight element width guessed from the kernel name (fp32/sgemm 32, int8/fp8 8, else 16)."""
    low = name.lower()
    if any(t in low for t in ("f32", "fp32", "sgemm", "float32")):
        return 32
    if any(t in low for t in ("fp8", "e4m3", "int8", "i8")):
        return 8
    if any(t in low for t in ("fp4", "int4", "nvfp4", "w4")):
        return 4
    return 16


def quantization_whatif(step_ns: float, kernels: list[StepKernel]) -> list[dict[str, Any]]:
    """Projected decode step time per weight format (see module doc)."""
    weights = [k for k in kernels if k.is_weight_stream]
    w_ns = sum(k.ns_per_step for k in weights)
    known_bytes = [k.bytes_per_step for k in weights if k.bytes_per_step is not None]
    w_bytes = sum(known_bytes) if len(known_bytes) == len(weights) and weights else None
    out = []
    for fmt, (factor16, what, caveat) in FORMATS.items():
        new_ns = sum(k.ns_per_step * min(1.0, factor16 * 16 / k.source_bits) for k in weights)
        new_bytes = None if w_bytes is None else sum(
            (k.bytes_per_step or 0) * min(1.0, factor16 * 16 / k.source_bits) for k in weights)
        projected = step_ns - w_ns + new_ns
        out.append({"format": fmt, "description": what, "accuracy_caveat": caveat,
                    "weight_bytes_per_step": w_bytes, "projected_weight_bytes_per_step": new_bytes,
                    "weight_ns_per_step": w_ns, "projected_weight_ns_per_step": new_ns,
                    "step_ns": step_ns, "projected_step_ns": projected,
                    "speedup": step_ns / projected if projected > 0 else None,
                    "kernels": [k.name for k in weights]})
    return out


@dataclass(frozen=True, slots=True)
class Link:
    key: str
    bytes_per_s: float          # per direction
    hop_latency_ns: float       # one ring step (NIC + switch or NVLink hop)
    source: str


@dataclass(slots=True)
class DecodeStep:
    """One measured decode step, as the projection needs it."""

    step_ns: float                  # GPU time per step (kernels launched by the step)
    weight_ns: float                # part of it streaming weights (memory-bound GEMV/GEMM)
    weight_bytes: float             # bytes those kernels stream per step
    weight_bytes_source: str
    host_ns: float = 0.0            # host-blocked time per step not overlapped (syncs, D2H)
    allreduces_per_step: int = 0    # measured (TP trace) or 0
    allreduce_bytes: float = 0.0    # message size per all-reduce
    allreduce_overhead_ns: float = 5_000.0  # launch + kernel floor per all-reduce
    source_bw: float = 0.0          # DRAM bytes/s of the traced GPU
    source_fp32: float = 0.0        # FP32 FLOP/s of the traced GPU
    others: list[tuple[float, str, float | None]] = field(default_factory=list)  # (ns, class, bytes) per step
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    dram_bytes_per_s: float
    memory_bytes: float
    achievable_share: float         # of peak DRAM bandwidth (GB10 decode: 0.55-0.60)
    source: str
    fp32_flops: float = 0.0


def other_kernels_ns(step: DecodeStep, target: Target) -> float:
    """Per-step time of the kernels that do not stream weights, on the target (module doc)."""
    eff_bw = target.achievable_share * target.dram_bytes_per_s
    if not step.others:  # no per-kernel split: scale everything by the bandwidth ratio
        ratio = step.source_bw / target.dram_bytes_per_s if step.source_bw else 1.0
        return (step.step_ns - step.weight_ns) * ratio
    total = 0.0
    for ns, cls, nbytes in step.others:
        if nbytes is not None:
            total += max(ns, nbytes / eff_bw * 1e9)
        elif cls == "memory" and step.source_bw:
            total += ns * step.source_bw / target.dram_bytes_per_s
        elif cls == "compute" and step.source_fp32 and target.fp32_flops:
            total += ns * step.source_fp32 / target.fp32_flops
        else:
            total += ns
    return total


def allreduce_ns(n: int, msg_bytes: float, link: Link, overhead_ns: float) -> float:
    """Ring all-reduce time for ``n`` ranks (nccl-tests: 2(n-1)/n of the data crosses each link)."""
    if n <= 1:
        return 0.0
    return overhead_ns + 2 * (n - 1) * link.hop_latency_ns + 2 * (n - 1) / n * msg_bytes / link.bytes_per_s * 1e9


def project_config(step: DecodeStep, target: Target, link: Link, *, tp: int = 1, pp: int = 1, batch: int = 1,
                   microbatches: int = 1, weights_bytes_total: float | None = None,
                   layers: int | None = None) -> dict[str, Any]:
    """One deployment configuration: projected step time, tokens/s, memory fit, the limiter."""
    nodes = tp * pp
    eff_bw = target.achievable_share * target.dram_bytes_per_s
    weight_ns = step.weight_bytes / eff_bw * 1e9 / tp  # PP: a token still streams every stage's weights
    other_ns = other_kernels_ns(step, target) / tp
    n_ar = 2 * layers if layers else step.allreduces_per_step
    comm_ns = n_ar * allreduce_ns(tp, step.allreduce_bytes, link, step.allreduce_overhead_ns)
    act_bytes = step.allreduce_bytes or 16_384.0
    pp_hops_ns = (pp - 1) * (link.hop_latency_ns + act_bytes / link.bytes_per_s * 1e9)
    token_ns = weight_ns + other_ns + comm_ns + pp_hops_ns + step.host_ns
    bubble = (pp - 1) / (microbatches + pp - 1) if pp > 1 else 0.0
    throughput_gain = pp * microbatches / (microbatches + pp - 1) if pp > 1 else 1.0
    tokens_per_s = batch * 1e9 / token_ns * throughput_gain
    total_weights = weights_bytes_total if weights_bytes_total is not None else step.weight_bytes
    per_node = total_weights / nodes
    fits = per_node <= MEMORY_UTILIZATION * target.memory_bytes
    parts = {"weight streaming": weight_ns, "other kernels": other_ns, "all-reduce": comm_ns,
             "pipeline hops": pp_hops_ns, "host syncs": step.host_ns}
    limiter = "memory capacity" if not fits else max(parts, key=lambda k: parts[k])
    return {"config": ("single node" if nodes == 1 else f"TP{tp}" if pp == 1 else f"PP{pp}" if tp == 1
                       else f"TP{tp}xPP{pp}"),
            "nodes": nodes, "tp": tp, "pp": pp, "batch": batch, "microbatches": microbatches,
            "step_ns": token_ns, "tokens_per_s": tokens_per_s, "breakdown_ns": parts,
            "pipeline_bubble": bubble, "weights_per_node_bytes": per_node,
            "memory_per_node_bytes": target.memory_bytes, "fits": fits, "limited_by": limiter}


def project(step: DecodeStep, target: Target, link: Link, *, nodes: list[int], batch: int = 1,
            microbatches: int = 1, weights_bytes_total: float | None = None, layers: int | None = None,
            tp: int | None = None, pp: int | None = None) -> dict[str, Any]:
    """The configuration table: 1 node, then TP and PP for each node count (or one --tp/--pp)."""
    configs: list[tuple[int, int]] = []
    if tp or pp:
        configs.append((tp or 1, pp or 1))
    else:
        for n in nodes:
            configs += [(1, 1)] if n == 1 else [(n, 1), (1, n)]
    rows = [project_config(step, target, link, tp=t, pp=p, batch=batch, microbatches=microbatches,
                           weights_bytes_total=weights_bytes_total, layers=layers) for t, p in configs]
    assumptions = [
        f"target {target.name}: {target.dram_bytes_per_s / 1e9:.0f} GB/s DRAM, "
        f"{target.memory_bytes / 2**30:.0f} GiB per node ({target.source})",
        f"achievable bandwidth share {target.achievable_share:.0%} of peak for the weight stream "
        "(DGX Spark decode typically reaches 55-60%)",
        f"weights streamed per step: {step.weight_bytes / 2**20:.1f} MiB ({step.weight_bytes_source})",
        "other kernels: bytes-bound at the target's achievable bandwidth when their bytes are known, else "
        "memory-bound ones scale with the DRAM bandwidth ratio, compute-bound with FP32 peak, latency-bound keep "
        "their time; all split evenly under TP",
        f"link {link.key}: {link.bytes_per_s / 1e9:.1f} GB/s per direction, {link.hop_latency_ns / 1e3:.1f} us per "
        f"ring hop ({link.source})",
        f"all-reduces per step under TP: {2 * layers if layers else step.allreduces_per_step}, "
        f"{step.allreduce_bytes:.0f} B each, {step.allreduce_overhead_ns / 1e3:.1f} us fixed cost each",
        f"memory fit at --gpu-memory-utilization {MEMORY_UTILIZATION} (the rest for KV cache and activations)",
        "PP: one sequence gains nothing; micro-batches fill the pipeline (bubble (n-1)/(m+n-1))",
        *step.notes,
    ]
    return {"estimate": True, "target": target.name, "link": asdict(link), "configs": rows,
            "assumptions": assumptions, "measured_step": asdict(step)}
