"""HTML report size and open time in headless Chromium; writes the "HTML report" section of
benchmarks/RESULTS.md (between its markers; the rest of the file is kept).

    python benchmarks/bench_html.py                 # H200 baseline, 2-GPU TP trace, public 9k-kernel trace
    python benchmarks/bench_html.py --large         # also benchmarks/data/h200_baseline_{1M,10M}.sqlite if built

Per trace: analysis and render time (in this process), report size, and the time from
navigation to "every plot rendered" (the page's own marker, read from performance.now())
in a fresh browser (cold: new profile, nothing compiled yet) and in a warm one (median of
the next loads in the same browser). Measured, never asserted: see tests/test_html.py for
the functional checks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from chromium import Browser, find_chromium
from paths import H200, PUBLIC

import traceview
from traceview.report.html import write_html

BEGIN, END = "<!-- html-report:begin -->", "<!-- html-report:end -->"
TRACES = [H200 / "h200_baseline.sqlite", H200 / "h200x2_tp_serial.sqlite",
          PUBLIC / "openhackathons-org__AI-Profiler__baseline_nvtx.CONVERTED.sqlite"]
LARGE = [HERE / "data" / f"h200_baseline_{n}.sqlite" for n in ("1M", "10M")]


def rendered_ms(b: Browser) -> float:
    return float(json.loads(b.evaluate("document.getElementById('tv-selftest').textContent"))["ms"])


def measure(trace: Path, out_dir: Path, warm_runs: int) -> dict:
    t0 = time.perf_counter()
    result = traceview.analyze(traceview.load(trace))
    t1 = time.perf_counter()
    html = write_html(result, out_dir / f"{trace.stem}.html")
    t2 = time.perf_counter()
    with Browser(timeout_s=120) as b:
        load = b.open(html)
        cold = rendered_ms(b)
        fcp = b.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null")
        errors = load.console_errors + load.exceptions
        warm = []
        for _ in range(warm_runs):
            b.open(html)
            warm.append(rendered_ms(b))
    events = sum(result.frames[k].height for k in ("kernels", "memcpy", "memset")) + result.trace.nvtx.height
    return {"trace": trace.name, "events": events, "analyze_s": t1 - t0, "render_s": t2 - t1,
            "bytes": html.stat().st_size, "cold_ms": cold, "first_paint_ms": fcp,
            "warm_ms": statistics.median(warm) if warm else None, "errors": errors}


def plotly_floor(out_dir: Path, warm_runs: int) -> dict:
    """The same measurement for a page holding only plotly.js: the cost no report can avoid."""
    from plotly.offline import get_plotlyjs

    page = out_dir / "plotly_only.html"
    page.write_text(f"<!DOCTYPE html><html><body><script>{get_plotlyjs()}</script><script>"
                    "document.getElementById('tv-selftest') || document.body.insertAdjacentHTML('beforeend', "
                    "'<pre id=\"tv-selftest\"></pre>');"
                    "document.getElementById('tv-selftest').textContent = JSON.stringify({ms: performance.now()});"
                    "document.body.setAttribute('data-tv-done', '1');</script></body></html>", encoding="utf-8")
    with Browser(timeout_s=120) as b:
        b.open(page)
        cold = rendered_ms(b)
        warm = []
        for _ in range(warm_runs):
            b.open(page)
            warm.append(rendered_ms(b))
    return {"trace": "(page with plotly.js only)", "events": 0, "analyze_s": 0.0, "render_s": 0.0,
            "bytes": page.stat().st_size, "cold_ms": cold, "first_paint_ms": None,
            "warm_ms": statistics.median(warm) if warm else None, "errors": []}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    chromium = subprocess.run([find_chromium() or "chromium", "--version"], capture_output=True, text=True,
                              check=False).stdout
    load = os.getloadavg()[0]
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {chromium.strip()}, "
            f"load average {load:.1f} at the start")


def section(rows: list[dict], info: str, command: str) -> str:
    intro = (f"`{command}` on {info}. Open time: navigation to the page's own \"every plot rendered\" "
             "marker (`performance.now()`), in headless Chromium (`--headless --no-sandbox --disable-gpu`). "
             "Cold = first load in a fresh browser profile (includes compiling the 4.8 MB plotly.js); "
             "warm = median of the next loads in the same browser. Size limit for the H200 baseline: 5 MB.")
    lines = [BEGIN, "## HTML report", "", intro, "",
             "| trace | events | analyze | render | size | first paint | open, cold | open, warm | console errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        fcp = f"{r['first_paint_ms'] / 1000:.2f} s" if r["first_paint_ms"] else "n/a"
        warm = f"{r['warm_ms'] / 1000:.2f} s" if r["warm_ms"] is not None else "n/a"
        lines.append(f"| {r['trace']} | {r['events']:,} | {r['analyze_s']:.2f} s | {r['render_s']:.2f} s | "
                     f"{r['bytes'] / 1e6:.2f} MB ({r['bytes'] / 2**20:.2f} MiB) | {fcp} | "
                     f"{r['cold_ms'] / 1000:.2f} s | {warm} | {len(r['errors'])} |")
    lines += ["", END]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "# Benchmark results\n\n") + text + "\n"
    path.write_text(new, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also the 1M and 10M traces make_big_trace.py builds")
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    traces = TRACES + ([t for t in LARGE if t.exists()] if args.large else [])
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [plotly_floor(Path(tmp), args.warm_runs)] + [measure(t, Path(tmp), args.warm_runs) for t in traces]
    for r in rows:
        print(json.dumps(r))
    command = " ".join(["python benchmarks/bench_html.py", *sys.argv[1:]])
    write_section(args.out, section(rows, info, command))
    print(f"wrote the HTML report section of {args.out}")


if __name__ == "__main__":
    main()
