"""Bound classification, phases and copy bandwidth as short rows/lines for the terminal and
Markdown reports (from the JSON contract dict; nothing is computed here but shares)."""

from __future__ import annotations

from typing import Any

HEADERS = ["time %", "bound", "evidence", "conf", "bandwidth", "% of peak BW", "name"]


def _gbs(value: float | None) -> str:
    return "-" if not value else f"{value / 1e9:,.0f} GB/s"


def bound_rows(data: dict[str, Any], top: int) -> list[list[Any]]:
    """One row per top kernel: share, class, tier, confidence, achieved bandwidth, name."""
    rows = []
    for k in data.get("kernels", [])[:top]:
        b = k.get("bound")
        if not b:
            continue
        pct = b.get("bandwidth_pct_of_peak")
        unit = b.get("memory_unit")
        cls = b["class"] + (f" ({unit})" if unit and unit != "DRAM" else "")
        rows.append([f"{k['time_pct']:.1f}", cls, b["tier"], f"{b['confidence']:.2f}",
                     _gbs(b.get("achieved_bandwidth_bytes_per_s")), "-" if pct is None else f"{pct:.0f}%", k["name"]])
    return rows


def bound_lines(data: dict[str, Any]) -> list[str]:
    """Summary lines: kernel time by class, decode floors, pageable vs pinned copies."""
    kernels = [k for k in data.get("kernels", []) if k.get("bound")]
    if not kernels:
        return []
    total = sum(k["total_ns"] for k in kernels) or 1
    by_class: dict[str, float] = {}
    tiers: dict[str, int] = {}
    for k in kernels:
        by_class[k["bound"]["class"]] = by_class.get(k["bound"]["class"], 0) + k["total_ns"]
        tiers[k["bound"]["tier"]] = tiers.get(k["bound"]["tier"], 0) + 1
    shares = ", ".join(f"{c} {100 * ns / total:.0f}%" for c, ns in sorted(by_class.items(), key=lambda x: -x[1]))
    evidence = ", ".join(f"{n} {t}" for t, n in sorted(tiers.items()))
    lines = [f"Kernel time by bound: {shares} (evidence: {evidence})"]
    for p in data.get("phases") or []:
        floor = p.get("weight_streaming_floor")
        coverage = p.get("bytes_coverage_pct") or 0.0
        if p.get("is_decode") and floor and floor.get("floor_pct_of_measured") and coverage >= 50.0:
            lines.append(f"Phase {p['name']}: {p['instances']} x {floor['measured_gpu_ns'] / 1e3:,.0f} us GPU, "
                         f"{floor['bytes_per_instance'] / 1e6:,.0f} MB per instance; weight-streaming floor "
                         f"{floor['floor_ns'] / 1e3:,.0f} us = {floor['floor_pct_of_measured']:.0f}% of the measured time")
        elif p.get("is_decode"):
            lines.append(f"Phase {p['name']}: {p['instances']} instances; bytes known for {coverage:.0f}% of its kernel "
                         "time: pass --ncu (or --work) for the weight-streaming floor")
    for direction, pp in ((data.get("memory_bandwidth") or {}).get("pageable_vs_pinned") or {}).items():
        if pp.get("pinned_speedup"):
            lines.append(f"{direction} copies from pageable memory run at {_gbs(pp['pageable_bytes_per_s'])} vs "
                         f"{_gbs(pp['pinned_bytes_per_s'])} pinned ({pp['pinned_speedup']:.1f}x)")
    return lines
