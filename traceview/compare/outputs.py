"""Render a Comparison: JSON dict, rich text, Markdown (pull-request comment) and JUnit XML."""

from __future__ import annotations

import io
import json
import math
import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from traceview import __version__
from traceview.units import fmt_ns

if TYPE_CHECKING:
    from traceview.compare.align import Unmatched
    from traceview.compare.comparison import Comparison
    from traceview.compare.gate import ItemResult

XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
STATUS_MARK = {"regression": "REGRESSION", "improvement": "improved", "allowed": "allowed", "unchanged": "ok"}


def _num(value: Any) -> Any:
    """JSON-safe numbers: NaN/inf -> None, whole floats -> int, others to 12 significant digits
    (exact ns totals, tiny p-values kept)."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else float(f"{value:.12g}")
    if isinstance(value, tuple | list):
        return [_num(v) for v in value]
    return value


def fmt_pct(pct: float | None) -> str:
    return "-" if pct is None else f"{pct:+.1f}%"


def fmt_p(p: float | None) -> str:
    return "-" if p is None else (f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}")


def fmt_ci(ci: tuple[float, float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:+.1f}%, {ci[1]:+.1f}%]"


def label(r: ItemResult) -> str:
    """Item name as shown to people: renamed kernels show both names, kernels their GPU."""
    name = r.item.candidate_name
    if r.item.baseline_name != name:
        name = f"{r.item.baseline_name} -> {name}"
    if r.item.kind == "kernel" and r.item.device_id:
        name += f" [GPU {r.item.device_id}]"
    return name


def item_dict(r: ItemResult) -> dict[str, Any]:
    s, it = r.stats, r.item
    allowed = r.allowed_by
    return {
        "kind": it.kind, "name": it.candidate_name, "baseline_name": it.baseline_name,
        "candidate_name": it.candidate_name, "device_id": it.device_id, "match": it.match, "status": r.status,
        "baseline": {"runs": s.baseline_runs, "instances": _num(s.baseline_instances),
                     "total_ns": _num(s.baseline_total), "median_ns": _num(s.baseline_median)},
        "candidate": {"instances": s.candidate_instances, "total_ns": _num(s.candidate_total),
                      "median_ns": _num(s.candidate_median)},
        "change_pct": _num(s.change_pct), "delta_ns": _num(s.delta_ns), "ci_pct": _num(s.ci_pct),
        "p_value": _num(s.p_value), "p_adjusted": _num(r.p_adjusted), "p_value_mwu": _num(s.p_mwu),
        "p_value_noise": _num(s.p_noise), "median_ratio": _num(s.median_ratio),
        "median_ratio_ci": _num(s.median_ratio_ci), "run_noise_sd": _num(s.noise_sd), "method": s.method,
        "significant": r.significant, "practical": r.practical, "min_cost_ns": _num(r.min_cost_ns),
        "explains_pct": _num(r.explains_pct), "launch_change": it.launch_change,
        "allowed": None if allowed is None else {"pattern": allowed.pattern, "reason": allowed.reason,
                                                 "expires": allowed.expires.isoformat()},
        "notes": list(r.notes),
    }


def unmatched_dict(u: Unmatched) -> dict[str, Any]:
    return {"kind": u.kind, "name": u.name, "device_id": u.device_id, "instances": u.instances,
            "total_ns": _num(u.total_ns), "launch": u.launch}


def to_dict(c: Comparison) -> dict[str, Any]:
    """The JSON contract of ``traceview compare --format json`` (docs/compare.md)."""
    s = c.settings
    items = [item_dict(r) for r in c.results]
    by_status = lambda status: [d for d in items if d["status"] == status]  # noqa: E731
    return {
        "traceview_version": __version__,
        "verdict": c.verdict,
        "exit_code": c.exit_code,
        "baseline": {"paths": [str(p) for p in c.baselines], "gpus": c.gpus["baseline"]},
        "candidate": {"path": str(c.candidate), "gpus": c.gpus["candidate"]},
        "settings": {"alpha": s.alpha, "correction": s.correction, "threshold_pct": s.threshold_pct,
                     "min_cost_pct": s.min_cost_pct, "bootstrap_resamples": s.bootstrap_resamples, "seed": s.seed,
                     "run_noise_scale": s.run_noise_scale, "run_noise_floor_pct": s.run_noise_floor_pct},
        "kernel_overlap_pct": _num(c.alignment.kernel_overlap_pct),
        "end_to_end": [d for d in items if d["kind"] in ("device", "nvtx")],
        "regressions": by_status("regression"),
        "improvements": by_status("improvement"),
        "allowed": by_status("allowed"),
        "changed": [d for d in items if d["kind"] == "kernel" and d["match"] != "name"],
        "added": [unmatched_dict(u) for u in c.added],
        "removed": [unmatched_dict(u) for u in c.removed],
        "items": items,
        "notes": list(c.notes),
    }


def dumps(c: Comparison) -> str:
    return json.dumps(to_dict(c), indent=2)


def summary_line(c: Comparison) -> str:
    names = ", ".join(label(r) for r in c.regressions)
    if c.verdict == "fail":
        return f"traceview compare: FAIL: {len(c.regressions)} regression(s): {names}"
    extra = f", {len(c.allowed)} allowed regression(s)" if c.allowed else ""
    return f"traceview compare: PASS: no regression ({len(c.improvements)} improvement(s){extra})"


def _row(r: ItemResult) -> list[str]:
    s = r.stats
    return [label(r), fmt_ns(s.baseline_total), fmt_ns(s.candidate_total), fmt_pct(s.change_pct), fmt_ci(s.ci_pct),
            fmt_p(r.p_adjusted), STATUS_MARK[r.status]]


COLUMNS = ["item", "baseline", "candidate", "change", "CI", "p (adj.)", "status"]


def _sections(c: Comparison) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, columns, rows) of every table, end-to-end first; shared by text and Markdown."""
    kernels = [r for r in c.results if r.item.kind == "kernel"]
    out = [("End-to-end (GPU time per device, NVTX ranges)", COLUMNS, [_row(r) for r in c.results if r.end_to_end])]
    for title, status in (("Kernel regressions", "regression"), ("Allowed regressions", "allowed"),
                          ("Kernel improvements", "improvement")):
        rows = [_row(r) + [fmt_pct(r.explains_pct)] for r in kernels if r.status == status]
        out.append((title, COLUMNS + ["share of GPU-time change"], rows))
    out.append(("Changed kernels (renamed or retuned)", ["baseline", "candidate", "matched by", "change", "status"],
                [[r.item.baseline_name, r.item.candidate_name, r.item.match, fmt_pct(r.stats.change_pct),
                  STATUS_MARK[r.status]] for r in c.changed]))
    for title, group in (("Added", c.added), ("Removed", c.removed)):
        out.append((f"{title} kernels and ranges", ["kind", "name", "instances", "time"],
                    [[u.kind, u.name, str(u.instances), fmt_ns(u.total_ns)] for u in group]))
    return [s for s in out if s[2]]


def _item_notes(c: Comparison) -> list[str]:
    shown = [r for r in c.results if r.status != "unchanged" or r.item.match in ("family", "launch shape")]
    return [f"{label(r)}: {n}" for r in shown for n in r.notes]


def to_text(c: Comparison) -> str:
    """Rich tables, rendered to plain text (no colour codes) for CI logs."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=io.StringIO(), width=160, color_system=None, record=True)
    console.print(Text(summary_line(c)))
    for title, columns, rows in _sections(c):
        table = Table(title=title, title_justify="left")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*[Text(v) for v in row])
        console.print(table)
    for note in c.notes + _item_notes(c):
        console.print(Text(f"note: {note}"))
    return console.export_text()


def md_escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace("`", "\\`").replace("\n", " ").replace("\r", " "))


def to_markdown(c: Comparison) -> str:
    """A pull-request comment / GitHub step summary."""
    icon = ":x:" if c.verdict == "fail" else ":white_check_mark:"
    lines = [f"## {icon} {md_escape(summary_line(c))}", ""]
    for title, columns, rows in _sections(c):
        lines += [f"### {md_escape(title)}", "", "| " + " | ".join(columns) + " |",
                  "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in rows]
        lines.append("")
    notes = c.notes + _item_notes(c)
    if notes:
        lines += ["<details><summary>Notes</summary>", ""] + [f"- {md_escape(n)}" for n in notes] + ["", "</details>"]
    s = c.settings
    lines += ["", f"<sub>traceview {__version__}: alpha {s.alpha:g} ({s.correction}), threshold {s.threshold_pct:g}%, "
                  f"min cost {s.min_cost_pct:g}% of kernel time, {len(c.baselines)} baseline run(s)</sub>", ""]
    return "\n".join(lines)


def _xml(text: Any) -> str:
    return XML_INVALID.sub("?", str(text))


def _failure_text(r: ItemResult) -> str:
    s = r.stats
    return (f"{label(r)}: {fmt_pct(s.change_pct)} ({fmt_ns(s.baseline_total)} -> {fmt_ns(s.candidate_total)}), "
            f"CI {fmt_ci(s.ci_pct)}, p (adj.) {fmt_p(r.p_adjusted)}")


def to_junit(c: Comparison) -> str:
    """JUnit XML: one test case per compared item, regressions as failures (ElementTree escapes)."""
    suites = ET.Element("testsuites", name="traceview compare")
    suite = ET.SubElement(suites, "testsuite", name="traceview.compare", tests=str(len(c.results) + len(c.added)
                          + len(c.removed)), failures=str(len(c.regressions)), errors="0",
                          skipped=str(len(c.added) + len(c.removed)))
    props = ET.SubElement(suite, "properties")
    baselines = ", ".join(map(str, c.baselines))
    for key, value in (("verdict", c.verdict), ("candidate", c.candidate), ("baselines", baselines)):
        ET.SubElement(props, "property", name=key, value=_xml(value))
    for r in c.results:
        case = ET.SubElement(suite, "testcase", classname=f"traceview.compare.{r.item.kind}", name=_xml(label(r)),
                             time=f"{r.stats.candidate_total / 1e9:.9f}")
        if r.status == "regression":
            failure = ET.SubElement(case, "failure", type="regression", message=_xml(_failure_text(r)))
            failure.text = _xml("\n".join([_failure_text(r), *r.notes]))
        elif r.notes:
            ET.SubElement(case, "system-out").text = _xml("\n".join([_failure_text(r), *r.notes]))
    for kind, group in (("added", c.added), ("removed", c.removed)):
        for u in group:
            case = ET.SubElement(suite, "testcase", classname=f"traceview.compare.{kind}", name=_xml(u.name))
            message = f"{kind} {u.kind}: {u.instances} instances, {fmt_ns(u.total_ns)}"
            ET.SubElement(case, "skipped", message=_xml(message))
    if c.notes:
        ET.SubElement(suite, "system-out").text = _xml("\n".join(c.notes))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
