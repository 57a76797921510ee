"""Markdown output (for pull-request comments and docs) from the JSON contract dict."""

from __future__ import annotations

from typing import Any

from traceview.analyses.launch import launch_cells
from traceview.report.safe import printable
from traceview.report.bound_text import HEADERS as BOUND_HEADERS
from traceview.report.bound_text import bound_lines, bound_rows
from traceview.report.terminal import fmt_bytes, fmt_ns


def md_escape(text: Any) -> str:
    """Escape a trace string for a Markdown table cell (no HTML, no pipes, no newlines)."""
    s = printable(text)
    for ch, rep in (("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "\\`"),
                    ("*", "\\*"), ("_", "\\_"), ("[", "\\["), ("]", "\\]"), ("@", "&#64;")):
        s = s.replace(ch, rep)
    return " ".join(s.split())


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def to_markdown(data: dict[str, Any], top: int = 15) -> str:
    t = data["trace"]
    gpus = ", ".join(f"{g['id']}: {md_escape(g['name'] or 'unknown')}" for g in t["gpus"])
    parts = [
        f"# traceview report: `{md_escape(t['path'])}`",
        f"nsys {md_escape(t['nsys_version'] or 'unknown')}, schema {md_escape(t['schema_version'] or 'unknown')}, "
        f"duration {fmt_ns(t['duration_ns'])}; GPUs: {gpus}",
        "## GPU utilization",
        md_table(["device", "busy", "idle", "utilization"],
                 [[d["id"], fmt_ns(d["busy_ns"]), fmt_ns(d["idle_ns"]), f"{d['utilization_pct']:.1f}%"]
                  for d in data["devices"]]),
        "## Top kernels",
        md_table(["time %", "total", "instances", "avg", "med", "blocks x thr", "occ", "waves", "name"],
                 [[f"{k['time_pct']:.1f}", fmt_ns(k["total_ns"]), k["instances"], fmt_ns(k["avg_ns"]),
                   fmt_ns(k["med_ns"]), *launch_cells(k.get("launch")), md_escape(k["name"])]
                  for k in data["kernels"][:top]]),
        *([f"_Note: {md_escape(data['hardware']['note'])}_"] if (data.get("hardware") or {}).get("note") else []),
    ]
    if data["memory_ops"]:
        parts += ["## Memory operations",
                  md_table(["time %", "total", "count", "bytes", "operation"],
                           [[f"{m['time_pct']:.1f}", fmt_ns(m["total_ns"]), m["count"], fmt_bytes(m["total_bytes"]),
                             md_escape(m["operation"])] for m in data["memory_ops"]])]
    if data["nvtx_ranges"]:
        parts += ["## NVTX ranges",
                  md_table(["time %", "total", "instances", "style", "range"],
                           [[f"{n['time_pct']:.1f}", fmt_ns(n["total_ns"]), n["instances"], n["style"],
                             md_escape(n["name"])] for n in data["nvtx_ranges"][:top]])]
    if bound_rows(data, top):
        parts += ["## Bottlenecks", md_table(BOUND_HEADERS, [r[:-1] + [md_escape(r[-1])] for r in bound_rows(data, top)]),
                  "\n".join(f"- {md_escape(line)}" for line in bound_lines(data))]
    parts += findings_sections(data, top)
    return "\n\n".join(parts) + "\n"


def findings_sections(data: dict[str, Any], top: int) -> list[str]:
    """Findings ranked by estimated gain (with evidence), then the flowchart tree in a code block."""
    from traceview.report.findings_text import finding_blocks, flowchart_steps, target_line

    blocks = finding_blocks(data, top)
    items = [f"{b['rank']}. {md_escape(b['head'])}  \n   evidence: {md_escape(b['evidence'])}  \n"
             f"   fix: {md_escape(b['fix'])}" for b in blocks]
    out = ["## Findings (ranked by estimated gain)", "\n".join(items) or "None."]
    if data.get("flowchart"):
        out += ["## Optimization flowchart", f"Target: {md_escape(target_line(data['flowchart']))}"]
        for kernel in flowchart_steps(data["flowchart"]):
            lines = [f"{i}. {md_escape(step['text'])}" + "".join(f"\n   - {md_escape(a)}" for a in step["actions"])
                     for i, step in enumerate(kernel["steps"], start=1)]
            out += [f"### {md_escape(kernel['title'])}", "\n".join(lines)]
    return out
