"""The report's sections, in page order. Each takes the result's JSON dict (or the result,
for the timeline) and returns a ``Section`` or ``None`` when it has nothing to show.

Keys written by other analyses (``launch``, ``bound``, ``roofline``, ``flowchart``,
``phases``, the comparison) are read through ``traceview.report.extras``, which tolerates
their absence.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traceview.report import extras, figures, timeline_view
from traceview.report.htmlparts import (
    Cell,
    Section,
    cell,
    esc,
    fmt_ns,
    fmt_value,
    generic_table,
    plot_div,
    table,
)

if TYPE_CHECKING:
    from traceview.api import AnalysisResult


def ranked_findings(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Findings by estimated gain, largest first (ties keep the engine's order)."""
    return sorted(data.get("findings") or [], key=lambda f: -(f.get("estimated_gain_ns") or 0))


def _subject(f: dict[str, Any]) -> str:
    subject = f.get("subject") or {}
    return f"{subject.get('kind', '')}: {subject.get('name', '')}".strip(": ")


def _fact(label: str, value: str) -> str:
    return f'<div class="tv-fact"><b>{esc(label)}</b><span>{esc(value)}</span></div>'


def _gpu_text(gpus: list[dict[str, Any]]) -> str:
    counts = Counter((g.get("name") or "unknown GPU", g.get("sm_count"), g.get("compute_capability")) for g in gpus)
    parts = []
    for (name, sms, cc), n in counts.items():
        detail = ", ".join(x for x in (f"{sms} SMs" if sms else "", f"CC {cc}" if cc else "") if x)
        parts.append(f"{n} \u00d7 {name}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts) or "none"


def header(data: dict[str, Any]) -> str:
    trace = data["trace"]
    util = ", ".join(f"GPU {d['id']}: {d['utilization_pct']:.1f}%" for d in data.get("devices", [])) or "\u2013"
    kernels = data.get("kernels", [])
    facts = [
        _fact("GPUs", _gpu_text(trace.get("gpus") or [])),
        _fact("nsys / schema", f"{trace.get('nsys_version') or '?'} / {trace.get('schema_version') or '?'}"),
        _fact("duration", fmt_ns(trace.get("duration_ns"))),
        _fact("GPU utilization", util),
        _fact("kernel launches", f"{sum(k.get('instances') or 0 for k in kernels):,} ({len(kernels):,} kernels)"),
        _fact("findings", str(len(data.get("findings") or []))),
    ]
    found = ranked_findings(data)
    if found:
        f = found[0]
        top = (f'<div class="tv-top" id="tv-top-finding"><b>Top finding:</b> {esc(f.get("title"))} '
               f'<span class="tv-mono">[{esc(f.get("rule_id"))}]</span> on {esc(_subject(f))} '
               f'\u2014 est. gain {esc(fmt_ns(f.get("estimated_gain_ns")))}</div>')
    else:
        top = '<div class="tv-top" id="tv-top-finding">No findings: no rule fired on this trace.</div>'
    name = Path(str(trace.get("path"))).name
    return (f'<header class="tv-head"><h1>traceview report: {esc(name)}</h1>'
            f'<div class="tv-sub">{esc(trace.get("path"))} \u00b7 traceview {esc(data.get("traceview_version"))}'
            f'</div><div class="tv-facts">{"".join(facts)}</div>{top}</header>')


def _evidence_html(f: dict[str, Any]) -> str:
    items = "".join(
        f"<li>{esc(e.get('name'))} = <b>{esc(fmt_value(str(e.get('unit') or ''), e.get('value')))}</b> "
        f"{esc(e.get('unit') or '')} <span class=\"tv-src\">({esc(e.get('source'))})</span></li>"
        for e in f.get("evidence") or [])
    evidence = f'<details class="tv-ev"><summary>evidence</summary><ul>{items}</ul></details>' if items else ""
    rec = f.get("recommendation")
    rec_html = f"<div><b>Fix:</b> {esc(rec)}</div>" if rec else ""
    return (f"<b>{esc(f.get('title'))}</b><div>{esc(f.get('message'))}</div>{rec_html}{evidence}")


def findings(data: dict[str, Any]) -> Section:
    found = ranked_findings(data)
    skipped = data.get("rules_not_applicable") or []
    skipped_html = ""
    if skipped:
        skipped_html = ('<details class="tv-ev"><summary>rules that could not run on this trace '
                        f"({len(skipped)})</summary>{generic_table('tv-rules-na', skipped)}</details>")
    if not found:
        return Section("findings", "Findings", '<p id="tv-no-findings">No findings: no rule fired on this trace.'
                       f"</p>{skipped_html}")
    rows = []
    for i, f in enumerate(found, 1):
        sev = str(f.get("severity") or "info")
        rows.append([Cell(str(i), i), Cell(f'<span class="tv-sev tv-sev-{esc(sev)}">{esc(sev)}</span>'),
                     Cell(f'<span class="tv-mono">{esc(f.get("rule_id"))}</span>'),
                     Cell(_evidence_html(f)), esc(_subject(f)), cell("estimated_gain_ns", f.get("estimated_gain_ns"))])
    html = table("tv-findings", ["#", "severity", "rule", "finding", "subject", "est. gain"], rows, {0, 5},
                 "ranked by estimated gain (what fixing it could save)")
    return Section("findings", "Findings", html + skipped_html)


def timeline(result: AnalysisResult, max_events: int) -> Section | None:
    bounds = result.trace.time_bounds
    frames = result.frames or {}
    if bounds is None:
        return None
    view = timeline_view.build(frames, result.trace.nvtx, bounds[0], max_events)
    if view.total_events == 0:
        return None
    note = ""
    if view.aggregated:
        note = (f'<p class="tv-note" id="tv-timeline-note">This trace has {view.total_events:,} GPU and NVTX events; '
                f"above {max_events:,} the timeline merges them into time bins of {fmt_ns(view.bin_ns)} per row "
                "(hover shows the number of events in a bin; zooming does not re-bin).</p>")
    if view.dropped_nvtx_threads:
        note += (f'<p class="tv-note">NVTX ranges of {view.dropped_nvtx_threads} more threads are not drawn '
                 f"(the {timeline_view.NVTX_MAX_THREADS} threads with most ranges are).</p>")
    return Section("timeline", "Timeline", note + plot_div("tv-fig-timeline"),
                   {"tv-fig-timeline": figures.timeline(view)})


def kernels(data: dict[str, Any]) -> Section | None:
    rows = data.get("kernels") or []
    if not rows:
        return None
    headers = ["kernel", "instances", "total", "avg", "med", "min", "max", "time %", "devices"]
    keys = ["instances", "total_ns", "avg_ns", "med_ns", "min_ns", "max_ns", "time_pct", "device_ids"]
    body = [[Cell(f'<span class="tv-mono">{esc(k.get("name"))}</span>')] + [cell(key, k.get(key)) for key in keys]
            for k in rows[:500]]
    caption = f"{len(rows):,} kernels" + (" (first 500)" if len(rows) > 500 else "")
    html = plot_div("tv-fig-kernels") + table("tv-kernels", headers, body, range(1, 8), caption)
    return Section("kernels", "Top kernels", html, {"tv-fig-kernels": figures.top_kernels(rows)})


def roofline(data: dict[str, Any]) -> Section | None:
    points, ceilings, peak_bw = extras.roofline_points(data)
    bounds = extras.bound_rows(data)
    if not points and not bounds:
        return None
    figs, html = {}, ""
    if points:
        figs["tv-fig-roofline"] = figures.roofline(points, ceilings, peak_bw)
        html += plot_div("tv-fig-roofline")
    else:
        html += ('<p class="tv-muted" id="tv-no-roofline">No kernel has both a FLOP count and a byte count, so there '
                 "is no roofline; Nsight Compute metrics (<code>--ncu FILE</code>) supply both.</p>")
    if bounds:
        html += table("tv-bounds", ["kernel", "time %", "class", "tier", "confidence", "reason", "evidence"],
                      [[Cell(f'<span class="tv-mono">{esc(b["kernel"])}</span>'), cell("time_pct", b["time_pct"]),
                        esc(b["class"]), esc(b["tier"]), cell("confidence", b["confidence"]), esc(b["reason"]),
                        Cell(f'<span class="tv-src">{esc(b["evidence"])}</span>')] for b in bounds],
                      {1, 4}, "bottleneck class per kernel and the tier of its evidence (measured > analytic > "
                      "heuristic)")
    return Section("roofline", "Roofline and bottlenecks", html, figs)


def occupancy(data: dict[str, Any]) -> Section | None:
    rows = extras.launch_rows(data)
    if not rows:
        return None
    html = plot_div("tv-fig-occupancy") + generic_table("tv-launch", [r["raw"] for r in rows], "launch analysis")
    return Section("occupancy", "Occupancy and waves", html, {"tv-fig-occupancy": figures.occupancy(rows)})


def flowchart(data: dict[str, Any]) -> Section | None:
    chart = extras.flowchart_graph(data)
    if chart is None:
        return None
    html = plot_div("tv-fig-flowchart") + extras.flowchart_html(data.get("flowchart") or {})
    return Section("flowchart", "Optimization flowchart", html, {"tv-fig-flowchart": figures.flowchart(chart)})


PHASE_COLUMNS = [("name", "phase"), ("instances", "instances"), ("wall_ns", "wall time"),
                 ("avg_wall_ns", "avg wall"), ("kernel_launches", "kernels"), ("kernel_ns", "GPU kernel time"),
                 ("achieved_bytes_per_s", "achieved B/s"), ("bandwidth_pct_of_peak", "% of peak BW"),
                 ("class_share_pct", "bound share (% of GPU time)"), ("top_kernels", "top kernels")]


def phases(data: dict[str, Any]) -> Section | None:
    rows, value_key, source = extras.phase_rows(data)
    if not rows:
        return None
    top = sorted(rows, key=lambda r: -(r.get(value_key) or 0))[:25] if value_key else []
    series = [(value_key, value_key.removesuffix("_ns").replace("_", " "))]
    if value_key == "wall_ns" and any("kernel_ns" in r for r in rows):
        series = [("wall_ns", "wall time (NVTX range)"), ("kernel_ns", "GPU time of its kernels")]
    figs = {"tv-fig-phases": figures.ranked_bars(top, series, "Time per phase (NVTX range)")} if top else {}
    known = [(k, label) for k, label in PHASE_COLUMNS if any(k in r for r in rows)]
    if value_key == "wall_ns" and len(known) >= 4:
        body = [[Cell(f'<span class="tv-mono">{esc(r.get("name"))}</span>')]
                + [cell(k, r.get(k)) for k, _ in known[1:]] for r in rows]
        numeric = {i for i, (k, _) in enumerate(known) if k not in ("name", "class_share_pct", "top_kernels")}
        tbl = table("tv-phases", [label for _, label in known], body, numeric, "per NVTX phase")
    else:
        tbl = generic_table("tv-phases", rows)
    html = f'<p class="tv-muted">{esc(source)}</p>' + (plot_div("tv-fig-phases") if figs else "") + tbl
    return Section("phases", "Phases (NVTX)", html, figs)


def _gate_table(items: list[dict[str, Any]]) -> str:
    """The gate's table: one row per compared item (end-to-end first), as `traceview compare` prints it."""
    rows = []
    for it in items:
        name = it.get("name")
        if it.get("baseline_name") and it.get("baseline_name") != name:
            name = f"{it['baseline_name']} \u2192 {name}"
        base, cand = it.get("baseline") or {}, it.get("candidate") or {}
        ci = it.get("ci_pct")
        rows.append([esc(it.get("kind")), Cell(f'<span class="tv-mono">{esc(name)}</span>'),
                     cell("device_id", it.get("device_id")), cell("total_ns", base.get("total_ns")),
                     cell("total_ns", cand.get("total_ns")), cell("change_pct", it.get("change_pct")),
                     esc(f"[{ci[0]:+.1f}%, {ci[1]:+.1f}%]" if isinstance(ci, list) and len(ci) == 2
                         and None not in ci else "\u2013"),
                     cell("p", it.get("p_adjusted")), esc(it.get("status"))])
    headers = ["kind", "item", "device", "baseline total", "candidate total", "change", "CI", "p (adj.)", "status"]
    return table("tv-cmp-items", headers, rows, {2, 3, 4, 5, 7}, "every compared item")


def comparison(comp: dict[str, Any] | None) -> Section | None:
    if not comp:
        return None
    verdict = str(comp.get("verdict") or "unknown")
    cls = {"pass": "tv-pass", "fail": "tv-fail"}.get(verdict.lower(), "tv-other")
    base = (comp.get("baseline") or {}).get("paths") or []
    html = (f'<p><span class="tv-verdict {cls}" id="tv-verdict">gate verdict: {esc(verdict.upper())}</span> '
            f'<span class="tv-muted">baseline: {esc(", ".join(map(str, base)))}</span></p>')
    notes = comp.get("notes") or []
    if notes:
        html += "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
    figs = {}
    deltas = extras.comparison_deltas(comp)
    if deltas:
        figs["tv-fig-compare"] = figures.change_bars(deltas, "Per-kernel change vs the baseline")
        html += plot_div("tv-fig-compare")
    items = comp.get("items")
    if isinstance(items, list) and items:
        html += _gate_table(items)
    for key in ("added", "removed") if items else ("regressions", "improvements", "changed", "added", "removed"):
        entries = comp.get(key) or []
        if isinstance(entries, list) and entries:
            html += f"<h3>{esc(key)} ({len(entries)})</h3>" + generic_table(f"tv-cmp-{key}", entries)
    return Section("comparison", "Comparison with the baseline", html, figs)


def details(data: dict[str, Any]) -> Section:
    parts = ["<h3>Memory operations</h3>", generic_table("tv-memops", data.get("memory_ops") or []),
             "<h3>CUDA API calls</h3>", generic_table("tv-api", data.get("api_calls") or [])]
    warnings = data.get("warnings") or []
    if warnings:
        parts.insert(0, "<h3>Warnings</h3><ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")
    return Section("details", "Details", "".join(parts))


def footer(data: dict[str, Any]) -> str:
    return (f"Generated by traceview {esc(data.get('traceview_version'))} from {esc(data['trace'].get('path'))}. "
            "This file is self-contained: it loads nothing from the network.")
