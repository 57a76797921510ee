"""Findings (ranked by estimated gain) and the optimization flowchart as plain text lines, shared by
the terminal and Markdown reports. Input is the JSON contract dict."""

from __future__ import annotations

from typing import Any

from traceview.report.safe import printable
from traceview.units import fmt_ns as _ns


def _value(value: Any, unit: str) -> str:
    if isinstance(value, float):
        value = f"{value:,.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:,}"
    return f"{value} {unit}".strip()


def evidence_text(evidence: list[dict[str, Any]], limit: int = 4) -> str:
    """``name = value unit [source]; ...`` for the first ``limit`` items."""
    return "; ".join(f"{e.get('name')} = {_value(e.get('value'), e.get('unit') or '')} [{e.get('source')}]"
                     for e in evidence[:limit])


def finding_blocks(data: dict[str, Any], top: int | None = None) -> list[dict[str, str]]:
    """One block per finding, best estimated gain first: rank, head, evidence, fix."""
    out = []
    for i, f in enumerate((data.get("findings") or [])[:top], start=1):
        out.append({
            "rank": str(i),
            "head": printable(f"[{f['severity']}] {f['rule_id']}  gain ~{_ns(f.get('estimated_gain_ns'))}  "
                              f"{f['message']}"),
            "evidence": printable(evidence_text(f.get("evidence") or [])),
            "fix": printable(f.get("recommendation") or ""),
        })
    return out


def target_line(fc: dict[str, Any]) -> str:
    checks = fc.get("targets") or []
    if not checks:
        return "no performance target set (recipe [targets])"
    parts = []
    for c in checks:
        measured = "not measurable" if c["measured"] is None else f"{c['measured']:.4g} {c['unit']}"
        verdict = {True: "met", False: "NOT met", None: "unknown"}[c["met"]]
        parts.append(f"{c['metric']} target {c['target']:g}: measured {measured} -> {verdict} [{c['source']}]")
    overall = {True: "all targets met", False: "target missed", None: "target not measurable"}[fc.get("target_met")]
    return printable(f"{overall}: " + "; ".join(parts))


def flowchart_steps(fc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per kernel: ``title`` and ``steps`` [{text, actions[]}] along its path (decisions with evidence)."""
    labels = fc.get("nodes") or {}
    out = []
    for k in fc.get("kernels") or []:
        tier = f"/{k['bound_tier']}" if k.get("bound_tier") else ""
        decisions = {d["node"]: d for d in k.get("decisions", [])}
        steps = []
        for node in k["path"]:
            text = labels.get(node, node)
            if node in decisions:
                d = decisions[node]
                ev = evidence_text(d.get("evidence") or [], limit=2)
                text += f" -> {d['outcome']}" + (f"  ({ev})" if ev else "")
            steps.append({"text": printable(text),
                          "actions": [printable(a["text"]) for a in k.get("actions", []) if a["node"] == node]})
        out.append({"title": printable(f"{k['name']}  ({k['time_pct']:.1f}% of GPU time, bound: {k['bound']}{tier})"),
                    "steps": steps})
    return out


def flowchart_tree(fc: dict[str, Any]) -> list[str]:
    """The flowchart as an indented tree: one branch per kernel, its path, decisions and actions."""
    lines = [f"Target: {target_line(fc)}"]
    for kernel in flowchart_steps(fc):
        lines.append(kernel["title"])
        for i, step in enumerate(kernel["steps"]):
            branch, cont = ("└─ ", "   ") if i == len(kernel["steps"]) - 1 else ("├─ ", "│  ")
            lines.append("  " + branch + step["text"])
            lines += [f"  {cont}  * {a}" for a in step["actions"]]
    return lines
