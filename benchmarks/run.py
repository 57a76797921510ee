"""Benchmark traceview on large exports and write benchmarks/RESULTS.md.

    python benchmarks/make_big_trace.py            # 1M and 10M kernels into benchmarks/data/
    python benchmarks/run.py                       # measures both, writes benchmarks/RESULTS.md
    python benchmarks/run.py --sizes 1M --timeout 600

Each command runs as its own process; wall time and peak RSS come from ``os.wait4``. Beside
traceview: (a) the floor, a bare ``sqlite3`` CLI GROUP BY over the kernel table, and (b)
``nsys stats --report gpukernsum`` when ``nsys`` is on PATH. Ratios are traceview / floor
and traceview / nsys. The per-step table times the analysis pipeline in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import Run, measure  # noqa: E402

PY = sys.executable
FLOOR_SQL = ("SELECT demangledName, count(*), sum([end] - start), min([end] - start), max([end] - start) "
             "FROM CUPTI_ACTIVITY_KIND_KERNEL GROUP BY demangledName")
STEP_PROFILE = r"""
import importlib, json, resource, sys, time
from traceview import api, pipeline
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
t = time.perf_counter(); trace = api.load(sys.argv[1], columns="analysis")  # as the CLI loads
times, rss = {}, {}
def note(key, s):
    times[key] = time.perf_counter() - s; rss[key] = peak()
    print(json.dumps({"times": times, "rss": rss}), flush=True)
for name in ("kernels", "memcpy", "memset", "api", "nvtx"):
    s = time.perf_counter(); getattr(trace, name); note("load " + name, s)
def timed(result, options):
    note("summaries", start)
    for spec in pipeline.STEPS:
        module, fn = spec.split(":"); s = time.perf_counter()
        getattr(importlib.import_module(module), fn)(result, options)
        note("step " + spec, s)
api.run_steps = timed
start = time.perf_counter(); result = api.analyze(trace)
s = time.perf_counter(); result.to_dict(); note("to_dict", s)
times["total"] = time.perf_counter() - t; note("total", t)
"""


def commands(trace: Path, work: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    """(label, argv, extra env) for one trace; traceview runs as `python -m traceview`."""
    tv = [PY, "-m", "traceview"]
    cache = work / "cache"
    out = [
        ("sqlite3 CLI GROUP BY (floor)", ["sqlite3", "-readonly", str(trace), FLOOR_SQL], {}),
        ("traceview load only (ingest, 5 frames)", [PY, "-c", "import sys, traceview as t; "
                                                 "tr = t.load(sys.argv[1], columns='analysis'); "
                                                 "[getattr(tr, n) for n in ('kernels','memcpy','memset','api','nvtx')]",
                                                 str(trace)], {}),
        ("traceview analyze --format json", tv + ["analyze", str(trace), "--format", "json", "-o",
                                                  str(work / "a.json")], {}),
        ("traceview analyze --format json (sqlite3 reader)", tv + ["analyze", str(trace), "--format", "json", "-o",
                                                                   str(work / "b.json")],
         {"TRACEVIEW_READER": "sqlite3"}),
        ("traceview analyze --cache-dir (cold: fills cache)", tv + ["analyze", str(trace), "--format", "json", "-o",
                                                                    str(work / "c.json"), "--cache-dir", str(cache)], {}),
        ("traceview analyze --cache-dir (warm)", tv + ["analyze", str(trace), "--format", "json", "-o",
                                                       str(work / "d.json"), "--cache-dir", str(cache)], {}),
        ("traceview compare FILE FILE", tv + ["compare", str(trace), str(trace), "-o", str(work / "cmp.txt")], {}),
        ("traceview report (HTML)", tv + ["report", str(trace), "-o", str(work / "report.html")], {}),
    ]
    if shutil.which("nsys"):
        out.insert(1, ("nsys stats --report gpukernsum", ["nsys", "stats", "--report", "gpukernsum", "--format", "csv",
                                                          "--force-overwrite", "true", "-o", str(work / "nsys"),
                                                          str(trace)], {}))
    return out


SQLITE3_READER_MAX_KERNELS = 2_000_000  # beyond this the Python-tuple reader only shows it is slow


def run_size(trace: Path, timeout: float, skip: set[str], max_rss: float, repeat: int = 1) -> dict:
    """Every command on ``trace``, ``repeat`` rounds (each round runs every command once, so a slow
    spell of the shared machine hits all commands alike); a row holds the median wall time."""
    kernels = int(subprocess.run(["sqlite3", "-readonly", str(trace), "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL"],
                                 capture_output=True, text=True).stdout.strip() or 0)
    if kernels > SQLITE3_READER_MAX_KERNELS:
        skip = skip | {"(sqlite3 reader)"}
    runs: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="tv-bench-") as tmp:
        todo = [c for c in commands(trace, Path(tmp)) if not any(s in c[0] for s in skip)]
        for round_ in range(repeat):
            for label, argv, env in todo:
                print(f"  {label} (round {round_ + 1}/{repeat}) ...", file=sys.stderr, flush=True)
                if "(cold" in label:  # every round's cold run starts from an empty cache
                    shutil.rmtree(Path(tmp) / "cache", ignore_errors=True)
                run = measure(argv, env, timeout, max_rss)
                runs.setdefault(label, []).append(run)
                print(f"    {_status(run)} {run.wall_s:.1f} s, {run.peak_rss_mib:.0f} MiB", file=sys.stderr)
        rows = [_row(label, argv, env, runs[label]) for label, argv, env in todo]
        prof = measure([PY, "-c", STEP_PROFILE, str(trace)], None, timeout, max_rss)
    last = (prof.stdout.strip().splitlines() or ["{}"])[-1]  # one JSON line per finished part
    steps = json.loads(last) if last.startswith("{") else {}
    return {"trace": str(trace), "size_bytes": trace.stat().st_size, "kernels": kernels, "rows": rows,
            "steps": steps.get("times", {}), "steps_rss": steps.get("rss", {}), "steps_status": _status(prof)}


def _status(run: Run) -> str:
    if run.timed_out:
        return "killed (over --timeout or --max-rss-mib)"
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["?"])[-1]
        return f"exit {run.returncode}: {last[:160]}"
    return "ok"


def _row(label: str, argv: list[str], env: dict[str, str], runs: list[Run]) -> dict:
    shown = " ".join(f"{k}={v}" for k, v in env.items()) + (" " if env else "")
    shown += " ".join(Path(a).name if a.startswith("/") and i == 0 else a for i, a in enumerate(argv))
    walls = sorted(r.wall_s for r in runs)
    bad = [_status(r) for r in runs if _status(r) != "ok"]
    return {"label": label, "command": shown.replace(PY, "python"), "wall_s": round(statistics.median(walls), 2),
            "walls_s": [round(r.wall_s, 2) for r in runs], "peak_rss_mib": round(max(r.peak_rss_mib for r in runs)),
            "status": bad[0] if bad else "ok"}


def machine() -> dict:
    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "not installed"

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    import connectorx
    import polars

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem, "os": platform.platform(),
            "python": platform.python_version(), "polars": polars.__version__, "connectorx": connectorx.__version__,
            "sqlite3": version(["sqlite3", "--version"]), "nsys": version(["nsys", "--version"]),
            "load_before": os.getloadavg()}


def _kept(out: Path) -> str:
    """Sections of the existing RESULTS.md that other benchmark scripts own (kept verbatim)."""
    from report_md import kept_sections

    return kept_sections(out.read_text()) if out.is_file() else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M", help="labels of benchmarks/data/<source>_<label>.sqlite")
    parser.add_argument("--source", default="h200_baseline")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    parser.add_argument("--max-rss-mib", type=float, default=12_000, help="kill a command above this RSS")
    parser.add_argument("--skip", default="", help="comma-separated label substrings to skip")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every command; rows show the median")
    parser.add_argument("--render-only", action="store_true", help="rewrite RESULTS.md from data/results.json")
    args = parser.parse_args()
    if args.render_only:
        from report_md import render

        saved = json.loads((HERE / "data" / "results.json").read_text())
        args.out.write_text(render(saved["machine"], saved["results"], saved.get("command", "python benchmarks/run.py"),
                                   _kept(args.out)))
        return 0
    info = machine()
    skip = {s for s in args.skip.split(",") if s}
    results = []
    for label in args.sizes.split(","):
        trace = HERE / "data" / f"{args.source}_{label}.sqlite"
        if not trace.is_file():
            print(f"{trace}: missing; run benchmarks/make_big_trace.py first", file=sys.stderr)
            return 2
        print(f"{trace.name}:", file=sys.stderr)
        results.append(run_size(trace, args.timeout, skip, args.max_rss_mib, max(1, args.repeat)))
    info["load_after"] = os.getloadavg()
    (HERE / "data").mkdir(exist_ok=True)
    command = " ".join(["python", "benchmarks/run.py", *sys.argv[1:]])
    (HERE / "data" / "results.json").write_text(json.dumps({"machine": info, "results": results, "command": command},
                                                           indent=2))
    from report_md import render

    args.out.write_text(render(info, results, command, _kept(args.out)))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    started = time.time()
    raise SystemExit(main())
