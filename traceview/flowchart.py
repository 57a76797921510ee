"""The optimization flowchart, as data: capture -> identify the longest-running kernels ->
bottleneck type? -> (compute-bound: raise arithmetic intensity, then batch size and occupancy |
memory-bound: quantize, then fuse | latency | communication | unknown: measure with ncu) ->
re-profile and validate -> target met? -> deploy or loop.

``walk`` follows ``CHART`` for each of the top kernels: decisions call a named decider, actions a
named advisor (``traceview.flowchart_advice``). The pipeline step ``enrich`` stores the result as
the JSON key ``flowchart`` {target, targets, target_met, nodes, kernels: [{name, bound, path,
decisions, actions}]}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from traceview import targets as tg
from traceview.analyses import derived
from traceview.flowchart_advice import ADVISORS, KernelView


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    label: str
    kind: str                                   # step | decision | action | end
    next: str | None = None                     # step/action: the following node
    decide: str | None = None                   # decision: name in DECIDERS
    branches: Mapping[str, str] = field(default_factory=dict)   # decision outcome -> node id
    advise: str | None = None                   # name in flowchart_advice.ADVISORS


CHART: tuple[Node, ...] = (
    Node("capture", "Capture a profile (nsys)", "step", next="longest"),
    Node("longest", "Identify the longest-running kernels", "step", next="bottleneck", advise="identify"),
    Node("bottleneck", "Bottleneck type?", "decision", decide="bound", branches={
        "compute": "compute.intensity", "memory": "memory.quantize", "latency": "latency.parallelism",
        "communication": "comm.overlap", "unknown": "unknown.measure"}),
    Node("compute.intensity", "Compute-bound (prefill-like): increase arithmetic intensity", "action",
         next="compute.batch", advise="intensity"),
    Node("compute.batch", "Optimize batch size and occupancy", "action", next="reprofile", advise="occupancy"),
    Node("memory.quantize", "Memory-bound (decode-like): reduce bytes per operation: quantize", "action",
         next="memory.fuse", advise="quantize"),
    Node("memory.fuse", "Fuse kernels to eliminate intermediate writes", "action", next="reprofile", advise="fuse"),
    Node("latency.parallelism", "Latency-bound: expose more parallelism", "action", next="reprofile",
         advise="parallelism"),
    Node("comm.overlap", "Communication-bound: overlap or shrink communication", "action", next="reprofile",
         advise="communication"),
    Node("unknown.measure", "Bound unknown: measure it with Nsight Compute", "action", next="reprofile",
         advise="unknown"),
    Node("reprofile", "Re-profile and validate", "step", next="target", advise="reprofile"),
    Node("target", "Target met?", "decision", decide="target", branches={
        "yes": "deploy", "no": "loop", "unmeasured": "measure-target", "unset": "set-target"}),
    Node("deploy", "Deploy", "end"),
    Node("loop", "Loop: back to the longest-running kernels", "end"),
    Node("measure-target", "Target not measurable in this trace: add the NVTX phase ranges it needs", "end"),
    Node("set-target", "No target set: add [targets] to the recipe to decide deploy or loop", "end"),
)
NODES: dict[str, Node] = {n.id: n for n in CHART}

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions


@dataclass(slots=True)
class Walk:
    """Shared inputs of one flowchart run."""

    checks: list[dict[str, Any]]


def decide_bound(k: KernelView, w: Walk) -> tuple[str, list[dict[str, Any]]]:
    b = k.bound
    cls = b.get("class") if b.get("class") in NODES["bottleneck"].branches else "unknown"
    if not b:
        return "unknown", [{"name": "bound", "value": None, "unit": "",
                            "source": "no bound classification for this kernel (kernels[].bound absent)"}]
    head = [{"name": "bound", "value": cls, "unit": "",
             "source": f"kernels[].bound ({b.get('tier')}, confidence {b.get('confidence')}): {b.get('reason')}"}]
    return cls, head + list(b.get("evidence", []) or [])[:4]


def decide_target(k: KernelView, w: Walk) -> tuple[str, list[dict[str, Any]]]:
    if not w.checks:
        return "unset", []
    met = tg.verdict(w.checks)
    evidence = [{"name": c["metric"], "value": c["measured"], "unit": c["unit"],
                 "source": f"target {c['target']:g}: {c['source']}"} for c in w.checks]
    return ("unmeasured" if met is None else "yes" if met else "no"), evidence


DECIDERS: dict[str, Callable[[KernelView, Walk], tuple[str, list[dict[str, Any]]]]] = {
    "bound": decide_bound, "target": decide_target}


def walk(k: KernelView, w: Walk) -> dict[str, Any]:
    """Follow the chart from ``capture`` for one kernel: path, decisions with evidence, actions."""
    path: list[str] = []
    decisions: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    node: Node | None = NODES["capture"]
    while node is not None and node.id not in path:
        path.append(node.id)
        if node.advise:
            actions += [{"node": node.id, "text": text} for text in ADVISORS[node.advise](k)]
        if node.kind == "decision" and node.decide:
            outcome, evidence = DECIDERS[node.decide](k, w)
            decisions.append({"node": node.id, "outcome": outcome, "evidence": evidence})
            node = NODES[node.branches[outcome]]
        else:
            node = NODES[node.next] if node.next else None
    return {"name": k.name, "short_name": k.short_name, "bound": k.bound.get("class", "unknown"),
            "bound_tier": k.bound.get("tier"), "total_ns": k.total_ns, "time_pct": k.time_pct,
            "path": path, "decisions": decisions, "actions": actions}


def _hardware_by_device(result: AnalysisResult) -> dict[int, dict[str, Any]]:
    hw = result.extra.get("hardware") or {}
    by_dev = {int(d["device_id"]): d for d in hw.get("devices", []) if isinstance(d, dict) and "device_id" in d}
    for g in result.gpus:
        by_dev.setdefault(int(g["id"]), {"name": g.get("name"), "compute_capability": g.get("compute_capability")})
    return by_dev


def kernel_views(result: AnalysisResult, top: int, formats: tuple[str, ...]) -> list[KernelView]:
    """The ``top`` kernels by total time with what the advisors read."""
    neigh = derived.neighbours(result)  # shared with timeline.launch-bound
    details = result.extra.get("kernel_details", {})
    hardware = _hardware_by_device(result)
    views = []
    for row in result.kernels.head(top).iter_rows(named=True):
        devices = row.get("device_ids") or [0]
        near = neigh.filter(pl.col("name") == row["name"]) if neigh is not None else pl.DataFrame()
        views.append(KernelView(
            name=row["name"], short_name=row.get("short_name") or row["name"], total_ns=float(row["total_ns"]),
            instances=int(row["instances"]), time_pct=float(row["time_pct"]), details=details.get(row["name"], {}),
            hardware=hardware.get(int(devices[0]), {}), neighbours=near, formats=formats,
            findings=[f for f in result.findings if f.get("subject", {}).get("name") == row["name"]]))
    return views


def build(result: AnalysisResult, recipe: Any = None) -> dict[str, Any]:
    """The flowchart for the top kernels (``recipe.flowchart_top``, default 5) and the target verdict."""
    checks = tg.check_targets(result, recipe)
    top = getattr(recipe, "flowchart_top", 5) if recipe is not None else 5
    formats = tuple(getattr(recipe, "quantization", ()) or ()) if recipe is not None else ()
    w = Walk(checks=checks)
    return {"target": checks[0] if checks else None, "targets": checks, "target_met": tg.verdict(checks),
            "nodes": {n.id: n.label for n in CHART},
            "edges": [[n.id, to] for n in CHART for to in ([n.next] if n.next else list(n.branches.values()))],
            "kernels": [walk(k, w) for k in kernel_views(result, top, formats)]}


def enrich(result: AnalysisResult, options: AnalyzeOptions) -> None:
    """Pipeline step (after the rule engine): ``result.extra["flowchart"]``."""
    result.extra["flowchart"] = build(result, options.recipe)
