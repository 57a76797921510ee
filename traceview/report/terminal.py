"""Readable terminal report (rich tables) built from the JSON contract dict."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from traceview.analyses.launch import launch_cells
from traceview.report.bound_text import HEADERS as BOUND_HEADERS
from traceview.report.bound_text import bound_lines, bound_rows
from traceview.report.safe import printable
from traceview.units import fmt_bytes, fmt_ns  # noqa: F401  (re-exported)


def _table(title: str, columns: list[tuple[str, str]], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", expand=False)
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*[Text(printable(c)) for c in row])  # Text(): trace strings are never markup
    return table


def header(data: dict[str, Any]) -> Text:
    t = data["trace"]
    gpus = ", ".join(f"[{g['id']}] {g['name'] or 'unknown GPU'}" + (f" ({g['sm_count']} SMs)" if g.get("sm_count") else "")
                     for g in t["gpus"])
    lines = [
        f"traceview {data['traceview_version']}  {t['path']}",
        f"nsys {t['nsys_version'] or 'unknown'}, export schema {t['schema_version'] or 'unknown'}, "
        f"duration {fmt_ns(t['duration_ns'])}",
        f"GPUs: {gpus or 'none'}",
    ]
    return Text("\n".join(printable(line) for line in lines))


def render(data: dict[str, Any], top: int = 15) -> Group:
    parts: list[Any] = [header(data)]
    for w in data.get("warnings", []):
        parts.append(Text(f"warning: {printable(w)}", style="yellow"))
    parts.append(_table("GPU utilization", [("device", "right"), ("busy", "right"), ("idle", "right"),
                                            ("utilization", "right")],
                        [[d["id"], fmt_ns(d["busy_ns"]), fmt_ns(d["idle_ns"]), f"{d['utilization_pct']:.1f}%"]
                         for d in data["devices"]]))
    parts.append(_table("Top kernels by total time", [("time %", "right"), ("total", "right"), ("instances", "right"),
                                                       ("avg", "right"), ("med", "right"), ("min", "right"),
                                                       ("max", "right"), ("blocks x thr", "right"),
                                                       ("occ", "right"), ("waves", "right"), ("name", "left")],
                        [[f"{k['time_pct']:.1f}", fmt_ns(k["total_ns"]), k["instances"], fmt_ns(k["avg_ns"]),
                          fmt_ns(k["med_ns"]), fmt_ns(k["min_ns"]), fmt_ns(k["max_ns"]),
                          *launch_cells(k.get("launch")), k["name"]]
                         for k in data["kernels"][:top]]))
    if (data.get("hardware") or {}).get("note"):
        parts.append(Text(f"note: {data['hardware']['note']}", style="cyan"))
    if data["memory_ops"]:
        parts.append(_table("Memory operations", [("time %", "right"), ("total", "right"), ("count", "right"),
                                                  ("bytes", "right"), ("avg", "right"), ("operation", "left")],
                            [[f"{m['time_pct']:.1f}", fmt_ns(m["total_ns"]), m["count"], fmt_bytes(m["total_bytes"]),
                              fmt_ns(m["avg_ns"]), m["operation"]] for m in data["memory_ops"]]))
    if data["api_calls"]:
        parts.append(_table("CUDA API calls", [("time %", "right"), ("total", "right"), ("calls", "right"),
                                               ("name", "left")],
                            [[f"{a['time_pct']:.1f}", fmt_ns(a["total_ns"]), a["count"], a["name"]]
                             for a in data["api_calls"][:top]]))
    if data["nvtx_ranges"]:
        parts.append(_table("NVTX ranges", [("time %", "right"), ("total", "right"), ("instances", "right"),
                                            ("avg", "right"), ("style", "left"), ("range", "left")],
                            [[f"{n['time_pct']:.1f}", fmt_ns(n["total_ns"]), n["instances"], fmt_ns(n["avg_ns"]),
                              n["style"], n["name"]] for n in data["nvtx_ranges"][:top]]))
    if bound_rows(data, top):
        parts.append(_table("Bottlenecks (bound class per kernel)", [(h, "left" if h in ("bound", "evidence", "name")
                                                                     else "right") for h in BOUND_HEADERS],
                            bound_rows(data, top)))
        parts.extend(Text(line) for line in bound_lines(data))
    parts.extend(findings_part(data, top))
    return Group(*parts)


def findings_part(data: dict[str, Any], top: int) -> list[Any]:
    """Findings ranked by estimated gain, with evidence, then the optimization flowchart tree."""
    from traceview.report.findings_text import finding_blocks, flowchart_tree

    blocks = finding_blocks(data, top)
    out: list[Any] = [Text(f"Findings, ranked by estimated gain ({len(data.get('findings') or [])} total)",
                           style="bold")]
    for b in blocks:
        out.append(Text(f"{b['rank']:>3}. {b['head']}\n     evidence: {b['evidence']}\n     fix: {b['fix']}"))
    if not blocks:
        out.append(Text("  none"))
    if data.get("flowchart"):
        out.append(Text("Optimization flowchart", style="bold"))
        out.append(Text("\n".join(flowchart_tree(data["flowchart"]))))
    return out


def to_text(data: dict[str, Any], top: int = 15, width: int = 160) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115
    console.print(render(data, top))
    return console.export_text()
