"""Readers for JSON keys that other analyses add (launch, bound, roofline, flowchart,
phases, comparison). Each returns plain rows for a figure or table, or nothing when the
key is absent; none of them computes a measurement.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from traceview.report.htmlparts import esc

_AI_KEYS = ("arithmetic_intensity", "arithmetic_intensity_flop_per_byte", "ai", "intensity", "flop_per_byte")
_FLOPS_KEYS = ("achieved_flops_per_s", "achieved_flop_per_s", "flops_per_s", "flop_per_s", "achieved_flops",
               "flop_s", "throughput_flops_per_s")
_PEAK_FLOPS_KEYS = ("peak_flops_per_s", "peak_flop_per_s", "peak_flops", "compute_peak_flops_per_s")
_PEAK_BW_KEYS = ("peak_bandwidth_bytes_per_s", "peak_dram_bytes_per_s", "memory_bandwidth_bytes_per_s",
                 "peak_bw_bytes_per_s", "peak_bytes_per_s", "bandwidth_bytes_per_s")


def _num(d: Any, keys: tuple[str, ...]) -> float | None:
    if not isinstance(d, dict):
        return None
    for key in keys:
        v = d.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


def _evidence_num(evidence: Any, words: tuple[str, ...]) -> float | None:
    """A positive number from an evidence list whose name contains all ``words``."""
    for e in evidence if isinstance(evidence, list) else []:
        name = str(e.get("name", "")).lower() if isinstance(e, dict) else ""
        v = e.get("value") if isinstance(e, dict) else None
        if all(w in name for w in words) and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


def _point(name: str, d: dict[str, Any], cls: Any, time_pct: Any) -> dict[str, Any] | None:
    ai = _num(d, _AI_KEYS) or _evidence_num(d.get("evidence"), ("intensity",))
    flops = _num(d, _FLOPS_KEYS) or _evidence_num(d.get("evidence"), ("flop/s",))
    if ai is None or flops is None:
        return None
    return {"name": name, "ai": ai, "flops": flops, "class": cls, "time_pct": time_pct}


def _ceilings(roof: dict[str, Any], points: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """Compute ceilings to draw: the peak the points were judged against, then tensor peaks."""
    ceilings: list[tuple[str, float]] = []
    own = sorted(p["peak"] for p in points if p.get("peak"))
    peaks = (roof.get("ceilings") or {}).get("peak_flops_per_s")
    if own:
        ceilings.append(("peak used for the points", own[len(own) // 2]))
    if isinstance(peaks, dict):
        for key in ("fp32", "bf16", "fp8"):
            v = peaks.get(key)
            if isinstance(v, (int, float)) and v > 0 and not (own and key == "fp32"):
                ceilings.append((f"{key} peak", float(v)))
    elif (v := _num(roof, _PEAK_FLOPS_KEYS)) is not None:
        ceilings.append(("peak", v))
    return ceilings


def roofline_points(data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[tuple[str, float]], float | None]:
    """(points, compute ceilings [(label, FLOP/s)], DRAM bytes/s) from ``roofline`` or per-kernel ``bound``."""
    roof = data.get("roofline") if isinstance(data.get("roofline"), dict) else {}
    pct = {k.get("name"): k.get("time_pct") for k in data.get("kernels") or []}
    points = []
    for p in roof.get("points") or roof.get("kernels") or []:
        if isinstance(p, dict) and (pt := _point(str(p.get("name")), p, p.get("class"),
                                                 p.get("time_pct", pct.get(p.get("name"))))):
            points.append(pt | {"tier": p.get("tier"), "peak": _num(p, _PEAK_FLOPS_KEYS)})
    if not points:
        for k in data.get("kernels") or []:
            bound = k.get("bound")
            if isinstance(bound, dict) and (pt := _point(str(k.get("name")), bound, bound.get("class"),
                                                         k.get("time_pct"))):
                points.append(pt | {"tier": bound.get("tier"), "peak": _num(bound, _PEAK_FLOPS_KEYS)})
    gpus = (data.get("trace") or {}).get("gpus") or [{}]
    peak_bw = (_num(roof.get("ceilings"), ("dram_bandwidth_bytes_per_s",)) or _num(roof, _PEAK_BW_KEYS)
               or _num(gpus[0], _PEAK_BW_KEYS))
    return points, _ceilings(roof, points), peak_bw


def bound_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Bottleneck class per kernel with its evidence tier, confidence and reason."""
    rows = []
    for k in data.get("kernels") or []:
        bound = k.get("bound")
        if not isinstance(bound, dict):
            continue
        ev = bound.get("evidence") if isinstance(bound.get("evidence"), list) else []
        rows.append({"kernel": k.get("short_name") or k.get("name"), "time_pct": k.get("time_pct"),
                     "class": bound.get("class"), "tier": bound.get("tier"), "confidence": bound.get("confidence"),
                     "reason": bound.get("reason"),
                     "evidence": "; ".join(f"{e.get('name')} = {e.get('value')} {e.get('unit') or ''}".strip()
                                           + f" ({e.get('source')})" for e in ev[:4] if isinstance(e, dict))})
    return rows


def _pct(v: Any) -> float | None:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    return float(v) * 100 if v <= 1 else float(v)


def launch_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per kernel launch shape with occupancy (%), waves, limiter, tail fraction."""
    rows = []
    for k in (data.get("kernels") or [])[:40]:
        launches = k.get("launch")
        launches = [launches] if isinstance(launches, dict) else launches if isinstance(launches, list) else []
        for launch in (x for x in launches if isinstance(x, dict)):
            occ = _pct(launch.get("theoretical_occupancy"))
            if occ is None and launch.get("waves") is None:
                continue
            base = str(k.get("short_name") or k.get("name"))
            label = base if len(launches) == 1 else f"{base} {launch.get('grid')}x{launch.get('block')}"
            rows.append({"name": k.get("name"), "label": label, "occupancy_pct": occ or 0.0,
                         "waves": launch.get("waves"), "limiter": launch.get("occupancy_limiter"),
                         "tail_fraction": launch.get("tail_fraction"),
                         "raw": {"kernel": label, **{key: v for key, v in launch.items()}}})
    return rows


def _node_key(node: Any) -> tuple[str, str]:
    if isinstance(node, dict):
        key = node.get("id") or node.get("node") or node.get("name") or node.get("label")
        return str(key), str(node.get("label") or node.get("title") or key)
    return str(node), str(node)


def flowchart_graph(data: dict[str, Any]) -> dict[str, Any] | None:
    """Nodes, edges and per-kernel paths of ``flowchart`` (its own nodes/edges when given)."""
    flow = data.get("flowchart")
    if not isinstance(flow, dict):
        return None
    labels: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    nodes = flow.get("nodes") or []
    for node in nodes.items() if isinstance(nodes, dict) else nodes:  # {id: label} or [id | {id, label}]
        key, label = (str(node[0]), str(node[1])) if isinstance(nodes, dict) else _node_key(node)
        labels.setdefault(key, label)
    for edge in flow.get("edges") or []:
        if isinstance(edge, dict):
            edge = (edge.get("from") or edge.get("source"), edge.get("to") or edge.get("target"))
        if isinstance(edge, (list, tuple)) and len(edge) >= 2:
            edges.append((str(edge[0]), str(edge[1])))
    paths: dict[str, list[str]] = {}
    for k in flow.get("kernels") or []:
        if not isinstance(k, dict):
            continue
        keys = []
        for node in k.get("path") or []:
            key, label = _node_key(node)
            labels.setdefault(key, label)
            keys.append(key)
        edges += list(pairwise(keys))
        paths[str(k.get("name"))] = keys
    if not labels:
        return None
    return {"labels": labels, "edges": list(dict.fromkeys(edges)), "paths": paths,
            "target": flow.get("target"), "target_met": flow.get("target_met")}


def flowchart_html(flow: dict[str, Any]) -> str:
    """Per kernel: the path taken and the next actions (commands such as ``ncu -k ...`` as text)."""
    nodes = flow.get("nodes") if isinstance(flow.get("nodes"), dict) else {}
    rows = []
    for k in flow.get("kernels") or []:
        if not isinstance(k, dict):
            continue
        bound = k.get("bound")
        actions = [a if isinstance(a, str) else str(a.get("text") or a.get("action") or "") if isinstance(a, dict)
                   else str(a) for a in k.get("actions") or []]
        rows.append({"kernel": k.get("name"), "bound": bound.get("class") if isinstance(bound, dict) else bound,
                     "path": " \u2192 ".join(nodes.get(_node_key(n)[0], _node_key(n)[1]) for n in k.get("path") or []),
                     "actions": actions})
    verdict = ""
    if flow.get("target") is not None:
        met = flow.get("target_met")
        verdict = (f"<p>Target: <b>{esc(flow.get('target'))}</b> \u2014 "
                   f"{'met' if met else 'not met' if met is False else 'not decided'}</p>")
    body = "".join(
        f"<tr><td><span class=\"tv-mono\">{esc(r['kernel'])}</span></td><td>{esc(r['bound'])}</td>"
        f"<td>{esc(r['path'])}</td><td><ul class=\"tv-actions\">"
        + "".join(f"<li>{esc(a)}</li>" for a in r["actions"]) + "</ul></td></tr>" for r in rows)
    return (verdict + '<div class="tv-table-wrap"><table class="tv-table" id="tv-flowchart"><thead><tr>'
            '<th data-type="text">kernel</th><th data-type="text">bound</th><th data-type="text">path taken</th>'
            f'<th data-type="text">next actions</th></tr></thead><tbody>{body}</tbody></table></div>')


def phase_rows(data: dict[str, Any]) -> tuple[list[dict[str, Any]], str, str]:
    """Rows, the time key to chart, and where they come from: ``phases`` or the NVTX summary."""
    phases = data.get("phases")
    if isinstance(phases, dict):
        inner = phases.get("phases") if isinstance(phases.get("phases"), list) else None
        phases = inner if inner is not None else [{"name": k, **v} for k, v in phases.items() if isinstance(v, dict)]
    if isinstance(phases, list) and phases and all(isinstance(p, dict) for p in phases):
        keys = [k for k in phases[0] if k.endswith("_ns")]
        preferred = [k for k in ("total_ns", "gpu_ns", "gpu_time_ns", "duration_ns", "wall_ns", "time_ns") if k in keys]
        return phases, (preferred or keys or [""])[0], "Per phase, from the phase analysis (NVTX ranges)."
    ranges = data.get("nvtx_ranges") or []
    return ranges, "total_ns", "NVTX range summary (as nsys stats nvtxsum): wall time per range name."


def comparison_deltas(comp: dict[str, Any], limit: int = 30) -> list[dict[str, Any]]:
    """Per-kernel changes in percent from the gate's items, the costliest changes first."""
    items = comp.get("items")
    if not isinstance(items, list):
        items = [i for key in ("regressions", "improvements", "changed") for i in comp.get(key) or []]
    out = []
    for item in items:
        if not isinstance(item, dict) or item.get("kind", "kernel") != "kernel":
            continue
        change = item.get("change_pct")
        if isinstance(change, (int, float)) and not isinstance(change, bool):
            name = str(item.get("name") or "?")
            if item.get("baseline_name") and item["baseline_name"] != name:
                name = f"{item['baseline_name']} \u2192 {name}"
            out.append({"name": name, "change_pct": float(change), "status": item.get("status"),
                        "cost": abs(item.get("delta_ns") or 0) or abs(change)})
    return sorted(out, key=lambda r: -r["cost"])[:limit]
