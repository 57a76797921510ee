"""Bandwidth accounting: memcpy/memset throughput by direction and memory kind vs the link or
DRAM they run over, pageable vs pinned host memory, and the achieved DRAM bandwidth of
memory-bound kernels (from ``bound``).

Link peaks (per direction, theoretical) come from the hardware spec when it carries them
(``pcie_bandwidth_bytes_per_s`` / ``nvlink_bandwidth_bytes_per_s``), else from the link
standard the GPU generation uses (``LINKS``; the trace does not record the link).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions

LARGE_COPY = 1 << 20  # copies below 1 MiB are latency-dominated; their throughput says little
PCIE_X16 = {3: 15.75e9, 4: 31.5e9, 5: 63.0e9, 6: 121.0e9}  # per direction, after 128b/130b (gen3-5) encoding
PCIE_SOURCE = "PCI Express Base Specification: Gen{gen} x16 = {gbs:.1f} GB/s per direction"
# compute capability major -> (PCIe generation, NVLink GB/s per direction per GPU, whitepaper)
LINKS = {7: (3, 150e9, "NVIDIA Tesla V100 whitepaper: NVLink 2.0, 6 links x 25 GB/s per direction"),
         8: (4, 300e9, "NVIDIA A100 whitepaper: NVLink 3.0, 12 links x 25 GB/s per direction"),
         9: (5, 450e9, "NVIDIA H100 whitepaper: NVLink 4.0, 18 links x 25 GB/s per direction"),
         10: (5, 900e9, "NVIDIA Blackwell architecture technical brief: NVLink 5.0, 1.8 TB/s bidirectional"),
         12: (5, None, "")}
C2C = (450e9, "NVIDIA Grace Hopper superchip whitepaper: NVLink-C2C 900 GB/s bidirectional")
REFERENCE = ["DGX Spark (GB10, 273 GB/s LPDDR5x): a decode phase typically reaches 55-60% of 273 GB/s; "
             "a contention floor around 80-90 GB/s when CPU and GPU share the memory"]


def link_peaks(spec: Any) -> dict[str, tuple[float | None, str, str]]:
    """Per copy direction: (peak bytes/s per direction, link label, citation)."""
    dram_src = spec.evidence_source("dram_bandwidth_bytes_per_s")
    dram = (spec.dram_bandwidth_bytes_per_s, "DRAM (read + write: 2 x bytes)", dram_src)
    major = int(str(spec.compute_capability).split(".")[0])
    gen, nvlink, nv_src = LINKS.get(major, (4, None, ""))
    host: tuple[float | None, str, str] = (PCIE_X16[gen], f"PCIe Gen{gen} x16",
                                           PCIE_SOURCE.format(gen=gen, gbs=PCIE_X16[gen] / 1e9) +
                                           f" (assumed for compute capability {spec.compute_capability})")
    if getattr(spec, "pcie_bandwidth_bytes_per_s", None):
        host = (spec.pcie_bandwidth_bytes_per_s, "PCIe", spec.evidence_source("pcie_bandwidth_bytes_per_s"))
    name = spec.name.upper()
    if "GH200" in name or "GB200" in name:
        host = (C2C[0], "NVLink-C2C", C2C[1])
    if "GB10" in name or "SPARK" in name:
        host = (spec.dram_bandwidth_bytes_per_s, "unified LPDDR5x memory", dram_src)
    if "PCIE" in name or getattr(spec, "nvlink_bandwidth_bytes_per_s", None) == 0:
        nvlink = None
    peer = (nvlink, "NVLink", nv_src) if nvlink else (host[0], host[1] + " (peer over PCIe)", host[2])
    return {"HtoD": host, "DtoH": host, "DtoD": dram, "PtoP": peer,
            "memset": (spec.dram_bandwidth_bytes_per_s, "DRAM (write)", dram_src)}


def _direction(op: pl.Expr) -> pl.Expr:
    return (pl.when(op.str.contains("HtoD")).then(pl.lit("HtoD")).when(op.str.contains("DtoH")).then(pl.lit("DtoH"))
            .when(op.str.contains("PtoP")).then(pl.lit("PtoP")).when(op.str.contains("DtoD")).then(pl.lit("DtoD"))
            .when(op.str.contains("memset")).then(pl.lit("memset")).otherwise(pl.lit("other")))


def copy_table(memcpy: pl.DataFrame, memset: pl.DataFrame) -> pl.DataFrame:
    """Per direction and memory kinds: copies, bytes, time, throughput (all and >= 1 MiB copies).

    DtoD copies read and write DRAM, so their DRAM traffic is twice their bytes. Grouped on the
    operation and memory kinds only (direction and host memory follow from them), the DtoD doubling
    applied to the few groups: doubling commutes exactly with the sums, divisions and medians.
    """
    cols = ["operation", "src_kind", "dst_kind", "bytes", "duration"]
    sets = memset.select("operation", pl.lit(None, pl.String).alias("src_kind"), pl.col("mem_kind").alias("dst_kind"),
                         "bytes", "duration")
    large = pl.col("bytes") >= LARGE_COPY
    out = pl.concat([memcpy.select(cols), sets]).group_by("operation", "src_kind", "dst_kind").agg(
        pl.len().alias("count"), pl.col("bytes").sum().alias("total_bytes"), pl.col("duration").sum().alias("total_ns"),
        (pl.col("bytes").sum() * 1e9 / pl.col("duration").sum()).alias("achieved_bytes_per_s"),
        large.sum().alias("large_count"),
        (pl.col("bytes").filter(large).sum() * 1e9 / pl.col("duration").filter(large).sum())
        .fill_nan(None).alias("large_bytes_per_s"),
        (pl.col("bytes") * 1e9 / pl.col("duration")).filter(pl.col("duration") > 0).median()
        .fill_nan(None).alias("median_bytes_per_s"))
    direction = pl.col("direction")
    host = (pl.when(direction == "HtoD").then(pl.col("src_kind"))
            .when(direction == "DtoH").then(pl.col("dst_kind")).otherwise(None))
    traffic = pl.when(direction == "DtoD").then(2.0).otherwise(1.0)
    rates = ["achieved_bytes_per_s", "large_bytes_per_s", "median_bytes_per_s"]
    out = out.with_columns(_direction(pl.col("operation")).alias("direction")).with_columns(
        host.alias("host_memory"), *(pl.col(c) * traffic for c in rates))
    return out.select("direction", "operation", "src_kind", "dst_kind", "host_memory", pl.exclude(
        "direction", "operation", "src_kind", "dst_kind", "host_memory")).sort("total_ns", descending=True)


def pageable_vs_pinned(table: pl.DataFrame) -> dict[str, Any]:
    """Per host direction: throughput of large copies from pageable vs pinned memory."""
    out: dict[str, Any] = {}
    for direction in ("HtoD", "DtoH"):
        rows = {r["host_memory"]: r for r in table.filter(pl.col("direction") == direction).iter_rows(named=True)}
        page, pin = rows.get("Pageable"), rows.get("Pinned")
        if not page:
            continue
        entry = {"pageable_bytes_per_s": page["large_bytes_per_s"], "pageable_bytes": page["total_bytes"],
                 "pageable_ns": page["total_ns"], "pageable_large_copies": page["large_count"]}
        if pin:
            entry["pinned_bytes_per_s"] = pin["large_bytes_per_s"]
            if entry["pageable_bytes_per_s"] and entry["pinned_bytes_per_s"]:  # copies >= 1 MiB on both sides
                entry["pinned_speedup"] = entry["pinned_bytes_per_s"] / entry["pageable_bytes_per_s"]
        out[direction] = entry
    return out


def enrich(result: AnalysisResult, options: AnalyzeOptions) -> None:
    """Pipeline step: ``extra["memory_bandwidth"]``."""
    frames = result.frames or {"memcpy": result.trace.memcpy, "memset": result.trace.memset}
    memcpy, memset = frames["memcpy"], frames["memset"]
    out: dict[str, Any] = {"copies": [], "pageable_vs_pinned": {}, "memory_bound_kernels": [],
                           "reference": REFERENCE}
    spec = _spec(result, options)
    peaks = link_peaks(spec) if spec else {}
    if memcpy.height or memset.height:
        table = copy_table(memcpy, memset)
        rows = []
        for r in table.iter_rows(named=True):  # one row per direction x memory kinds
            peak, link, source = peaks.get(r["direction"], (None, "", ""))
            rate = r["large_bytes_per_s"] or r["achieved_bytes_per_s"]
            rows.append(r | {"link": link, "peak_bytes_per_s": peak, "peak_source": source,
                             "pct_of_peak": 100.0 * rate / peak if peak and rate else None})
        out["copies"] = rows
        out["pageable_vs_pinned"] = pageable_vs_pinned(table)
    if spec:
        host = peaks["HtoD"]
        out["link"] = {"host": {"name": host[1], "bytes_per_s": host[0], "source": host[2]},
                       "peer": {"name": peaks["PtoP"][1], "bytes_per_s": peaks["PtoP"][0], "source": peaks["PtoP"][2]},
                       "dram_bytes_per_s": spec.dram_bandwidth_bytes_per_s}
    out["memory_bound_kernels"] = _memory_bound_kernels(result)
    result.extra["memory_bandwidth"] = out


def _spec(result: AnalysisResult, options: AnalyzeOptions) -> Any:
    from traceview.hardware import HardwareError, gpu_spec_for_device

    devices = result.trace.device_ids
    for candidate in (None, options.hardware):
        try:
            return gpu_spec_for_device(result.trace, devices[0], candidate) if devices else None
        except HardwareError:
            continue
    return None


def _memory_bound_kernels(result: AnalysisResult) -> list[dict[str, Any]]:
    details = result.extra.get("kernel_details", {})
    rows = []
    for k in result.kernels.select("name", "total_ns", "time_pct").iter_rows(named=True):
        b = details.get(k["name"], {}).get("bound", {})
        if b.get("class") == "memory" and b.get("achieved_bandwidth_bytes_per_s"):
            rows.append({"name": k["name"], "time_pct": k["time_pct"], "tier": b["tier"],
                         "achieved_bytes_per_s": b["achieved_bandwidth_bytes_per_s"],
                         "pct_of_peak": b.get("bandwidth_pct_of_peak"), "source": b.get("bytes_source")})
    return rows
