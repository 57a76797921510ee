"""Render benchmark results (benchmarks/run.py) as benchmarks/RESULTS.md."""

from __future__ import annotations

import time
from typing import Any

FLOOR = "sqlite3 CLI GROUP BY (floor)"
NSYS = "nsys stats --report gpukernsum"


def _ratio(value: float, base: dict | None) -> str:
    if base is None or base["status"] != "ok" or not base["wall_s"]:
        return "n/a"
    return f"{value / base['wall_s']:.2f}x"


def _size_section(res: dict[str, Any]) -> list[str]:
    rows = {r["label"]: r for r in res["rows"]}
    floor, nsys = rows.get(FLOOR), rows.get(NSYS)
    lines = [f"## {res['kernels']:,} kernels ({res['size_bytes'] / 1e9:.2f} GB)", "",
             f"Trace: `{res['trace'].split('/benchmarks/')[-1]}`", "",
             "| what | wall s | peak RSS MiB | / sqlite3 floor | / nsys stats | status |",
             "|---|---:|---:|---:|---:|---|"]
    for r in res["rows"]:
        ok = r["status"] == "ok"
        lines.append(f"| {r['label']} | {r['wall_s']:.2f} | {r['peak_rss_mib']} | "
                     f"{_ratio(r['wall_s'], floor) if ok else '-'} | {_ratio(r['wall_s'], nsys) if ok else '-'} | "
                     f"{r['status']} |")
    lines += ["", "<details><summary>commands</summary>", ""]
    lines += [f"- {r['label']}: `{r['command']}`" for r in res["rows"]]
    lines += ["", "</details>", ""]
    if res["steps"]:
        rss = res.get("steps_rss", {})
        total = res["steps"].get("total") or sum(v for k, v in res["steps"].items())
        lines += ["Where the time and memory go (one process, `traceview.pipeline` steps timed one by one; "
                  f"profile status: {res['steps_status']}; a killed profile lists the parts that finished):", "",
                  "| part | s | share | peak RSS so far MiB |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {v:.2f} | {100 * v / total:.0f}% | {rss.get(k, '')} |" for k, v in res["steps"].items()]
        lines.append("")
    else:
        lines += [f"Step profile: {res['steps_status']}", ""]
    return lines


def _targets(results: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, checked on the largest trace measured."""
    res = max(results, key=lambda r: r["kernels"])
    rows = {r["label"]: r for r in res["rows"]}
    floor, nsys = rows.get(FLOOR), rows.get(NSYS)
    analyze = rows.get("traceview analyze --format json")
    if not analyze or not floor:
        return []
    lines = [f"## Targets (issue 8) on {res['kernels']:,} kernels", ""]
    if analyze["status"] != "ok":
        return lines + [f"- `traceview analyze` did not finish: {analyze['status']}", ""]
    ratio = analyze["wall_s"] / floor["wall_s"]
    lines.append(f"- analyze within 3x the bare SQLite scan: {ratio:.1f}x -> {'met' if ratio <= 3 else 'NOT met'}")
    if nsys and nsys["status"] == "ok":
        faster = analyze["wall_s"] < nsys["wall_s"]
        lines.append(f"- faster than `nsys stats --report gpukernsum` ({nsys['wall_s']:.1f} s): "
                     f"{'met' if faster else 'NOT met'} ({analyze['wall_s']:.1f} s)")
    lines.append(f"- peak RSS {analyze['peak_rss_mib']:,} MiB for a {res['size_bytes'] / 2**20:,.0f} MiB export")
    return lines + [""]


NOTES = """## Reading these numbers

- The ingest reader (`traceview.ingest.fastread`, connectorx in native threads over rowid
  ranges, read-only URI) is what `analyze` vs `analyze (sqlite3 reader)` compares; the reader
  alone is compared by `python benchmarks/readers.py FILE` (10M kernels, 14 columns, 2 cores:
  sqlite3 + fetchmany 30.7 s, ADBC 10.4 s, DuckDB sqlite scanner 6.7 s, connectorx 3.9 s).
- The kernel frame's load peak is the Arrow result plus the start-order sort (exports are not
  in start order by rowid; the sort gathers one column at a time). `validate.clean`'s duplicate
  check hashes only rows that share their start with a neighbour.
- At 10M most of the time and memory is after ingest: the rules engine (`timeline_data.calls`:
  every API call classified, with its NVTX range and next call, kept for the run), `llm_report`
  and the summaries (per-device interval union, duration medians). Those are the next targets.
- The per-step table says which pipeline steps dominate time and memory; peak RSS includes
  memory polars' allocator (jemalloc) keeps for reuse for a few seconds after a free.
- Wall times on this shared machine are upper bounds (see the load averages above).
"""


KEPT_SECTIONS = ("html-report", "gate-error-rates")  # written by bench_html.py / gate_error_rates.py


def kept_sections(old: str) -> str:
    """The ``<!-- NAME:begin -->`` ... ``<!-- NAME:end -->`` sections other scripts own, verbatim."""
    out = []
    for name in KEPT_SECTIONS:
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if begin in old and end in old:
            out.append(old[old.index(begin): old.index(end) + len(end)])
    return "\n\n".join(out)


def render(info: dict[str, Any], results: list[dict[str, Any]], command: str, keep: str = "") -> str:
    """RESULTS.md text; ``keep`` (``kept_sections`` of the old file) is appended unchanged."""
    lines = ["# Benchmarks: large exports", "",
             f"Produced by `{command}` on {time.strftime('%Y-%m-%d %H:%M %Z')} (traces from "
             "`python benchmarks/make_big_trace.py`: the real `h200_baseline.sqlite` replicated in SQL with shifted "
             "timestamps and unique correlation ids; kernels, CUDA API calls, copies, memsets and NVTX ranges grow "
             "together).", "",
             "## Machine", "",
             f"- CPU: {info['cpu']}, {info['cores']} cores; memory {info['memory_mib']:,} MiB; {info['os']}",
             f"- Python {info['python']}, polars {info['polars']}, connectorx {info['connectorx']}",
             f"- sqlite3 {info['sqlite3']}",
             f"- nsys: {info['nsys']}",
             f"- load average before / after: {', '.join(f'{x:.1f}' for x in info['load_before'])} / "
             f"{', '.join(f'{x:.1f}' for x in info['load_after'])} (other jobs shared this 2-core machine: "
             "wall times are upper bounds)", "",
             "Ratios divide the row's wall time by the floor's (a bare `sqlite3` GROUP BY over the kernel table) "
             "and by `nsys stats --report gpukernsum`'s. Peak RSS is the process's own maximum resident set "
             "(`os.wait4`).", ""]
    lines += _targets(results)
    for res in results:
        lines += _size_section(res)
    lines.append(NOTES)
    if keep:
        lines += [keep, ""]
    return "\n".join(lines) + "\n"
