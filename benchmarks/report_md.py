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
             "| what | wall s (median) | runs s | peak RSS MiB | / sqlite3 floor | / nsys stats | status |",
             "|---|---:|---|---:|---:|---:|---|"]
    for r in res["rows"]:
        ok = r["status"] == "ok"
        walls = ", ".join(f"{w:.1f}" for w in r.get("walls_s", [r["wall_s"]]))
        lines.append(f"| {r['label']} | {r['wall_s']:.2f} | {walls} | {r['peak_rss_mib']} | "
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
    lines.append(f"- analyze within 3x the bare SQLite scan: {ratio:.1f}x -> {'met' if ratio <= 3 else 'NOT met'}"
                 f"{_per_round(analyze, floor)}")
    if nsys and nsys["status"] == "ok":
        faster = analyze["wall_s"] < nsys["wall_s"]
        lines.append(f"- faster than `nsys stats --report gpukernsum` ({nsys['wall_s']:.1f} s): "
                     f"{'met' if faster else 'NOT met'} ({analyze['wall_s']:.1f} s){_per_round(analyze, nsys)}")
    lines.append(f"- peak RSS {analyze['peak_rss_mib']:,} MiB for a {res['size_bytes'] / 2**20:,.0f} MiB export")
    return lines + [""]


def _per_round(row: dict[str, Any], base: dict[str, Any]) -> str:
    """The ratio in each round (both commands ran minutes apart in the same round), when there
    were several: the machine's load drifts between rounds more than within one."""
    walls, bases = row.get("walls_s", []), base.get("walls_s", [])
    if len(walls) < 2 or len(walls) != len(bases):
        return ""
    ratios = sorted(w / b for w, b in zip(walls, bases))
    each = ", ".join(f"{w / b:.2f}x" for w, b in zip(walls, bases))
    return f"; per round {each} (median {ratios[len(ratios) // 2]:.2f}x)"


NOTES = """## Reading these numbers

- Ingest (`traceview.ingest.btree`, `fastread`): integer columns of large tables are decoded
  straight from the table's b-tree pages by a small C extension (`traceview/ingest/_btree.c`,
  read-only mmap, threads over consecutive subtrees); tables with text columns (NVTX) and
  anything unusual go through connectorx (one native thread per rowid range), then the
  `sqlite3` reader. `duration`/`pid`/`tid` are computed in polars instead of read, string ids
  become names by one gather from an id-indexed lookup column, name regexes run once per
  distinct name, and the CLI loads only the columns an analysis reads (`load(path,
  columns="analysis")`: 20 kernel columns, 5 API columns). `analyze` vs `analyze (sqlite3
  reader)` compares the readers; the readers alone: `python benchmarks/readers.py FILE`.
- What bounded the load before the page reader: every value SQLite hands over costs ~50 ns
  (a C loop over `sqlite3_step`/`sqlite3_column_int64` reads the 20 kernel columns of 10M
  rows in 10-15 s on one core, connectorx in 13.9 s of CPU). Decoding the pages directly
  costs a few ns a value: the same 20 columns in ~2 s on 2 cores, about half of it the kernel
  zeroing fresh memory (this VM takes ~4.6 us a page fault).
- `analyze` reads the copy, API and NVTX frames in a background thread while the kernels load
  and are summarized (`Trace.prefetch`); the step profile above loads them one by one, so its
  parts add up to more than the analyze wall time.
- The steps share derived frames built once per analysis (`traceview.analyses.derived`: name
  codes, a (pid, correlation id) call index, merged GPU activity, stream order), group on
  integer keys (`traceview.analyses.keys`) and gather narrow columns; none keeps a copy of the
  kernel frame. Per-step times are in the table above; results are byte-identical to the
  unoptimized pipeline (checked on every real trace and on the 1M and 10M exports).
- Peak RSS includes memory polars' allocator keeps for reuse after a free.
- Wall times on this shared machine are upper bounds (see the load averages above); the same
  command varies by about +-2 s at 10M kernels from run to run, and the floor itself measured
  5.0-8.9 s across sessions. Four runs of this benchmark on 2026-12-01 with the same analysis
  gave analyze/floor medians of 3.1x, 3.2x, 2.7x and 2.4x: under other jobs' load a 2-thread
  program slows more than the single-threaded floor (the per-round ratios show it).
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
             "and by `nsys stats --report gpukernsum`'s, both medians of the same rounds. Peak RSS is the "
             "process's own maximum resident set (`os.wait4`), the largest over the rounds.", ""]
    lines += _targets(results)
    for res in results:
        lines += _size_section(res)
    lines.append(NOTES)
    if keep:
        lines += [keep, ""]
    return "\n".join(lines) + "\n"
