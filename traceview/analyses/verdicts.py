"""One bound verdict per evidence tier (Nsight Compute, GPU metrics, analytic, heuristic).

Each function takes one kernel's row (a dict; the caller loops over kernel names, never over
launches) and returns a ``Verdict`` or None when its evidence is missing. Thresholds follow
Nsight Compute's Speed-of-Light guidance: a unit above 60% of its peak is the limiter; when
neither the SM nor the memory system reaches that, the kernel is latency-bound (too little
parallelism, stalls, launch overhead or a tail).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BUSY_PCT = 60.0          # a unit above this share of its peak limits the kernel (ncu SOL guidance)
ANALYTIC_BUSY = 0.5      # achieved/peak share that makes an analytic verdict confident
SHORT_NS = 5_000         # kernels shorter than this are dominated by launch and ramp-up
FLOPS_PEAK_KEYS = ("fp32", "tf32", "fp16", "bf16", "fp8", "fp4", "fp64", "int8")


@dataclass(slots=True)
class Peaks:
    """Peaks of one device and their citations."""

    name: str
    dram_bw: float | None
    dram_source: str
    flops: dict[str, float]
    flops_source: str
    sm_count: int | None
    sm_source: str

    def flops_for(self, dtype: str | None) -> tuple[float | None, str]:
        key = dtype if dtype in self.flops else "fp32"
        return self.flops.get(key), key


@dataclass(slots=True)
class Verdict:
    cls: str
    tier: str
    confidence: float
    reason: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def ev(name: str, value: Any, unit: str, source: str) -> dict[str, Any]:
    """An evidence entry (same keys as ``traceview.rules.Evidence``)."""
    return {"name": name, "value": value, "unit": unit, "source": source}


def _roofline(flops: float | None, nbytes: float | None, peak_flops: float | None, peak_bw: float | None,
              source: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not flops or not nbytes or not peak_flops or not peak_bw:
        return {}, []
    ai, ridge = flops / nbytes, peak_flops / peak_bw
    side = "memory" if ai < ridge else "compute"
    extra = {"arithmetic_intensity": ai, "ridge_point": ridge, "roofline_side": side}
    return extra, [ev("arithmetic intensity", round(ai, 3), "FLOP/byte", source),
                   ev("ridge point", round(ridge, 2), "FLOP/byte", f"peak FLOP/s / peak DRAM bandwidth ({source})")]


def ncu_verdict(row: dict[str, Any], peaks: Peaks | None, used: dict[str, str],
                trace_avg_ns: float | None = None) -> Verdict | None:
    """Measured: Nsight Compute SOL throughputs, DRAM bytes, FLOPs, occupancy.

    Achieved bandwidth and FLOP/s use the trace's average duration (the real run, with its
    concurrency); Nsight Compute's own rate (kernels serialized) is kept as evidence.
    """
    sm, mem = row.get("sm_pct"), row.get("mem_pct")
    if sm is None and mem is None:
        return None
    sm, mem = sm or 0.0, mem or 0.0
    src = lambda key: f"ncu: {used.get(key, key)}"  # noqa: E731
    evidence = [ev("SM throughput", round(sm, 2), "% of peak", src("sm_pct")),
                ev("memory throughput", round(mem, 2), "% of peak", src("mem_pct"))]
    units = {"DRAM": row.get("dram_pct"), "L2": row.get("l2_pct"), "L1/TEX": row.get("l1_pct")}
    for label, key in (("DRAM", "dram_pct"), ("L2", "l2_pct"), ("L1/TEX", "l1_pct")):
        if units[label] is not None:
            evidence.append(ev(f"{label} throughput", round(units[label], 2), "% of peak", src(key)))
    busiest = max((u for u in units if units[u] is not None), key=lambda u: units[u] or 0, default="memory")
    if units["DRAM"] is not None and units["DRAM"] >= 0.8 * (units[busiest] or 0):
        busiest = "DRAM"  # DRAM traffic also passes L2 (and L1): when DRAM is nearly as busy, it limits
    blocks, sm_count = row.get("blocks"), (peaks.sm_count if peaks else None)
    if max(sm, mem) >= BUSY_PCT:
        cls = "memory" if mem >= sm else "compute"
        reason = (f"memory throughput {mem:.0f}% of peak ({busiest} busiest) vs SM {sm:.0f}%" if cls == "memory"
                  else f"SM throughput {sm:.0f}% of peak vs memory {mem:.0f}%")
        conf = 0.9
    elif blocks and sm_count and blocks < sm_count:
        cls, conf = "latency", 0.9
        reason = f"neither pipe busy (SM {sm:.0f}%, memory {mem:.0f}%); {blocks} blocks for {sm_count} SMs"
    else:
        cls, conf = "latency", 0.75
        reason = f"neither pipe busy (SM {sm:.0f}%, memory {mem:.0f}% of peak): stalls, occupancy, tail or launch"
    extra: dict[str, Any] = {"bytes_per_launch": row.get("dram_bytes"), "bytes_source": src("dram_bytes"),
                             "ncu_dram_bandwidth_bytes_per_s": row.get("dram_bw"),
                             "memory_unit": busiest if cls == "memory" else None}
    if row.get("dram_bytes") and trace_avg_ns:
        extra["achieved_bandwidth_bytes_per_s"] = row["dram_bytes"] / (trace_avg_ns * 1e-9)
        extra["achieved_bandwidth_source"] = f"{src('dram_bytes')} / trace average duration"
    for key, label, unit in (("dram_bw", "DRAM bandwidth", "bytes/s"), ("dram_bytes", "DRAM bytes per launch", "bytes"),
                             ("achieved_occ_pct", "achieved occupancy", "%"),
                             ("theoretical_occ_pct", "theoretical occupancy", "%"), ("waves", "waves per SM", "waves")):
        if row.get(key) is not None:
            evidence.append(ev(label, round(row[key], 3), unit, src(key)))
    flops = sum(row.get(k) or 0.0 for k in ("fp32_flops", "fp64_flops", "fp16_flops")) or None
    if flops:
        extra["flops_per_launch"] = flops
        secs = (trace_avg_ns or row.get("duration_ns") or 0) * 1e-9
        extra["achieved_flops_per_s"] = flops / secs if secs else None
        evidence.append(ev("FLOPs per launch (FFMA x2 + FADD + FMUL, fp32/fp64/fp16)", round(flops), "FLOP",
                           src("fp32_flops")))
    peak_bw = row.get("peak_dram_bw") or (peaks.dram_bw if peaks else None)
    peak_fl = row.get("peak_fp32_flops") or (peaks.flops_for("fp32")[0] if peaks else None)
    roof, roof_ev = _roofline(flops, row.get("dram_bytes"), peak_fl, peak_bw, "ncu: FLOPs / DRAM bytes")
    extra |= roof
    extra["peak_flops_per_s"], extra["peak_bandwidth_bytes_per_s"] = peak_fl, peak_bw
    extra["metrics_used"] = sorted({v for k, v in used.items()})
    return Verdict(cls, "measured", conf, reason + f" (Nsight Compute, {row.get('ncu_launches')} launch(es))",
                   evidence + roof_ev, extra)


def gpu_metrics_verdict(row: dict[str, Any], peaks: Peaks | None, sources: dict[str, str],
                        table: str) -> Verdict | None:
    """Measured: GPU metrics samples attributed to this kernel alone."""
    if row.get("sm_active") is None:
        return None
    src = lambda key: f"gpu metrics: {sources.get(key, key)} ({table}, {row['samples']} samples)"  # noqa: E731
    dram = (row.get("dram_read") or 0.0) + (row.get("dram_write") or 0.0)
    active, issue = row["sm_active"], row.get("sm_issue") or 0.0
    tensor = row.get("tensor_active") or 0.0
    evidence = [ev(label, round(row[key], 2), "% of peak", src(key)) for key, label in
                (("sm_active", "SM active"), ("sm_issue", "SM issue"), ("tensor_active", "tensor active"),
                 ("dram_read", "DRAM read throughput"), ("dram_write", "DRAM write throughput"),
                 ("warps_in_flight", "warps in flight")) if row.get(key) is not None]
    if dram >= BUSY_PCT:
        cls, conf, reason = "memory", 0.7, f"DRAM read+write {dram:.0f}% of peak"
    elif max(issue, tensor) >= BUSY_PCT:
        cls, conf, reason = "compute", 0.7, f"SM issue {issue:.0f}%, tensor {tensor:.0f}% of peak"
    elif active < 50:
        cls, conf, reason = "latency", 0.7, f"SMs active only {active:.0f}% of the time: too few blocks or a tail"
    elif issue >= 40 and dram < 30:
        cls, conf = "compute", 0.5
        reason = f"SMs busy issuing ({issue:.0f}%), DRAM {dram:.0f}%: on-chip pipes or L1/shared memory limit"
    else:
        cls, conf = "latency", 0.6
        reason = f"SMs resident ({active:.0f}%) but issue {issue:.0f}%, DRAM {dram:.0f}%: stalls or low occupancy"
    extra: dict[str, Any] = {"gpu_metrics_samples": row["samples"], "memory_unit": "DRAM" if cls == "memory" else None}
    if peaks and peaks.dram_bw:
        extra["achieved_bandwidth_bytes_per_s"] = dram / 100.0 * peaks.dram_bw
        extra["achieved_bandwidth_source"] = f"{src('dram_read')} + DRAM Write Throughput, x peak bandwidth"
    return Verdict(cls, "measured", conf, reason + " (GPU metrics)", evidence, extra)


def analytic_verdict(row: dict[str, Any], work: dict[str, Any] | None, peaks: Peaks | None) -> Verdict | None:
    """Analytic: known bytes/FLOPs per launch vs peaks; grid smaller than the GPU; very short kernels."""
    avg_ns, blocks = row["avg_ns"], row.get("blocks")
    sm_count = peaks.sm_count if peaks else None
    evidence = [ev("average duration", round(avg_ns), "ns", "trace: CUPTI_ACTIVITY_KIND_KERNEL end - start")]
    extra: dict[str, Any] = {}
    verdict = _work_verdict(work, avg_ns, peaks, blocks, evidence, extra) if work else None
    if verdict:
        return verdict
    if blocks and sm_count and blocks < sm_count:
        evidence += [ev("blocks per launch", blocks, "blocks", "trace: CUPTI_ACTIVITY_KIND_KERNEL.gridX*gridY*gridZ"),
                     ev("SM count", sm_count, "SMs", peaks.sm_source if peaks else "")]
        return Verdict("latency", "analytic", 0.7, f"{blocks} blocks for {sm_count} SMs: at most "
                       f"{100 * blocks / sm_count:.0f}% of the SMs have work, neither pipe can saturate",
                       evidence, extra)
    if avg_ns < SHORT_NS:
        return Verdict("latency", "analytic", 0.5, f"{avg_ns / 1e3:.1f} us per launch: launch overhead and "
                       "ramp-up dominate", evidence, extra)
    return None


def _work_verdict(work: dict[str, Any], avg_ns: float, peaks: Peaks | None, blocks: int | None,
                  evidence: list[dict[str, Any]], extra: dict[str, Any]) -> Verdict | None:
    nbytes, flops, exact = work.get("bytes"), work.get("flops"), bool(work.get("exact"))
    secs = avg_ns * 1e-9
    peak_bw = peaks.dram_bw if peaks else None
    peak_fl, fl_key = peaks.flops_for(work.get("dtype")) if peaks else (None, "fp32")
    bw_frac = fl_frac = 0.0
    if nbytes:
        bw = nbytes / secs
        extra |= {"bytes_per_launch": nbytes, "bytes_source": work["work_source"],
                  "achieved_bandwidth_bytes_per_s": bw, "peak_bandwidth_bytes_per_s": peak_bw,
                  "achieved_bandwidth_source": f"{work['work_source']} / trace average duration"}
        evidence += [ev("bytes per launch" + ("" if exact else " (lower bound)"), nbytes, "bytes",
                        f"{work['work_source']}; {work['note']}"),
                     ev("achieved bandwidth", round(bw), "bytes/s", "bytes per launch / average duration")]
        if peak_bw:
            bw_frac = bw / peak_bw
            evidence.append(ev("DRAM bandwidth peak", peak_bw, "bytes/s", peaks.dram_source if peaks else ""))
    if flops:
        fl = flops / secs
        extra |= {"flops_per_launch": flops, "achieved_flops_per_s": fl, "peak_flops_per_s": peak_fl}
        evidence.append(ev("achieved FLOP/s", round(fl), "FLOP/s", f"{work['work_source']} / average duration"))
        if peak_fl:
            fl_frac = fl / peak_fl
            evidence.append(ev(f"{fl_key} peak", peak_fl, "FLOP/s", peaks.flops_source if peaks else ""))
    roof, roof_ev = _roofline(flops, nbytes, peak_fl, peak_bw, work["work_source"])
    extra |= roof
    evidence += roof_ev
    share = f"bandwidth {100 * bw_frac:.0f}% of peak, FLOP/s {100 * fl_frac:.0f}% of peak"
    if max(bw_frac, fl_frac) >= ANALYTIC_BUSY and (exact or bw_frac >= fl_frac):
        cls = "memory" if bw_frac >= fl_frac else "compute"
        return Verdict(cls, "analytic", 0.8 if exact else 0.6, share, evidence, extra)
    if not exact:
        return None
    sm_count = peaks.sm_count if peaks else None
    if blocks and sm_count and blocks < sm_count:
        return Verdict("latency", "analytic", 0.75, f"{share}; {blocks} blocks for {sm_count} SMs", evidence, extra)
    if roof:
        return Verdict(roof["roofline_side"], "analytic", 0.55, f"{share}; {roof['roofline_side']} side of the "
                       f"roofline (intensity {roof['arithmetic_intensity']:.2f} vs ridge {roof['ridge_point']:.1f})",
                       evidence, extra)
    return None


def heuristic_verdict(family: str, usual_class: str, why: str) -> Verdict:
    """Heuristic: the kernel family's usual class, labeled as a guess."""
    conf = {"communication": 0.8, "unknown": 0.0}.get(usual_class, 0.3)
    return Verdict(usual_class, "heuristic", conf, f"guess from the name: {family} ({why})",
                   [ev("kernel family", family, "", "heuristic: kernel name pattern (traceview.analyses.families)")])
