"""Error rates of the regression gate on traces derived from the real H200 runs.

Derived pairs come from ``h200_baseline.sqlite`` and ``h200_baseline_rerun.sqlite`` (the
same program run twice). Each item's instance durations are resampled with replacement
(the observed within-run noise); pairs across the two files also carry the real
run-to-run shift. A slowdown of 2 %, 5 % or 10 % is injected into one kernel of the
candidate (its instances multiplied, the device total updated). Every pair goes through
``traceview.compare.gate.judge``, the exact function ``traceview compare`` uses, on the
aligned duration arrays (no SQLite files are written).

    python benchmarks/gate_error_rates.py --pairs 300            # the numbers in docs/compare.md
    python benchmarks/gate_error_rates.py --pairs 50 --naive     # also the gate without run noise

Reported: false failures (the gate fails an unchanged pair) and, per injected size and
kernel, detections (the gate fails and names that kernel).
"""

from __future__ import annotations

import argparse
import os
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from traceview.api import load  # noqa: E402
from traceview.compare.align import AlignedItem, align, trace_groups  # noqa: E402
from traceview.compare.gate import judge  # noqa: E402
from traceview.compare.settings import GateSettings  # noqa: E402

H200 = Path(os.environ.get("TRACEVIEW_SHARED", REPO.parent / "shared")) / "traces" / "h200"  # as tests/paths.py
SIZES = (0.02, 0.05, 0.10)


def source_items(h200: Path = H200) -> list[AlignedItem]:
    """Items of baseline vs rerun: baseline_runs[0] is the baseline run, candidate the rerun."""
    base = trace_groups(load(h200 / "h200_baseline.sqlite"))
    rerun = trace_groups(load(h200 / "h200_baseline_rerun.sqlite"))
    return align(base, rerun).items


def _resample(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return arr if arr.size < 2 else rng.choice(arr, size=arr.size, replace=True)


def derive_run(items: list[AlignedItem], side: str, rng: np.random.Generator,
               inject: tuple[str, float] | None = None) -> dict[str, np.ndarray]:
    """One derived run: every item resampled from ``side`` ("baseline" or "rerun"); the device
    total is its memory-op part plus the derived kernels' totals (and any injected slowdown)."""
    pick = (lambda it: it.baseline_runs[0]) if side == "baseline" else (lambda it: it.candidate)
    run = {it.key: _resample(pick(it), rng) for it in items if it.kind != "device"}
    if inject is not None:
        run[f"kernel:0:{inject[0]}"] = run[f"kernel:0:{inject[0]}"] * (1.0 + inject[1])
    for dev in (it for it in items if it.kind == "device"):
        kernels = [it for it in items if it.kind == "kernel" and it.device_id == dev.device_id]
        memory_part = float(pick(dev).sum()) - sum(float(pick(k).sum()) for k in kernels)
        run[dev.key] = np.array([memory_part + sum(float(run[k.key].sum()) for k in kernels)])
    return run


def pair_items(items: list[AlignedItem], base: dict[str, np.ndarray], cand: dict[str, np.ndarray]) -> list[AlignedItem]:
    return [replace(it, baseline_runs=[base[it.key]], candidate=cand[it.key]) for it in items]


def rate(hits: int, n: int) -> dict[str, float | int]:
    return {"hits": hits, "n": n, "rate": hits / n if n else 0.0}


def unchanged_rates(items: list[AlignedItem], settings: GateSettings, pairs: int, seed: int) -> dict[str, dict]:
    """False failures on unchanged pairs: within one run, and across the two real runs (both ways)."""
    rng = np.random.default_rng(seed)
    out = {}
    for label, sides in (("same run (baseline vs baseline)", ("baseline", "baseline")),
                         ("across runs (baseline vs rerun)", ("baseline", "rerun")),
                         ("across runs (rerun vs baseline)", ("rerun", "baseline"))):
        fails = sum(judge(pair_items(items, derive_run(items, sides[0], rng), derive_run(items, sides[1], rng)),
                          settings).verdict == "fail" for _ in range(pairs))
        out[label] = rate(fails, pairs)
    return out


def detection_rates(items: list[AlignedItem], settings: GateSettings, pairs: int, seed: int,
                    kernels: list[str] | None = None, sizes: tuple[float, ...] = SIZES) -> dict[str, dict]:
    """Per kernel and size: the gate fails and names the kernel (baseline resample vs slowed rerun)."""
    rng = np.random.default_rng(seed)
    names = kernels or [it.baseline_name for it in items if it.kind == "kernel"]
    out: dict[str, dict] = {}
    for name in names:
        out[name] = {}
        for size in sizes:
            hits = 0
            for _ in range(pairs):
                cand = derive_run(items, "rerun", rng, inject=(name, size))
                result = judge(pair_items(items, derive_run(items, "baseline", rng), cand), settings)
                named = any(r.item.baseline_name == name for r in result.having("regression"))
                hits += result.verdict == "fail" and named
            out[name][f"{size:.0%}"] = rate(hits, pairs)
    return out


def run(pairs: int, seed: int = 0, settings: GateSettings | None = None,
        kernels: list[str] | None = None) -> dict:
    settings = settings or GateSettings()
    items = source_items()
    kernels_ = [it for it in items if it.kind == "kernel"]
    instances = {it.baseline_name: int(it.baseline_runs[0].size) for it in kernels_}
    share = {it.baseline_name: 100.0 * float(it.baseline_runs[0].sum()) / it.cost_basis_ns for it in kernels_}
    return {"pairs": pairs, "seed": seed, "instances": instances, "share_of_kernel_time_pct": share,
            "min_cost_pct": settings.min_cost_pct,
            "unchanged": unchanged_rates(items, settings, pairs, seed),
            "injected": detection_rates(items, settings, pairs, seed + 1, kernels)}


def to_markdown(results: dict, title: str) -> str:
    lines = [f"#### {title}", "", "| unchanged pairs | false failures |", "|---|---|"]
    lines += [f"| {k} | {v['hits']}/{v['n']} ({v['rate']:.1%}) |" for k, v in results["unchanged"].items()]
    sizes = list(next(iter(results["injected"].values())))
    lines += ["", "| kernel slowed | instances | share of kernel time | "
              + " | ".join(f"detected at +{s}" for s in sizes) + " |", "|---|---|---|" + "---|" * len(sizes)]
    for name, by_size in results["injected"].items():
        share = results["share_of_kernel_time_pct"][name]
        cells = []
        for size, v in by_size.items():
            below = share * float(size.rstrip("%")) / 100.0 < results["min_cost_pct"]
            cells.append(f"{v['hits']}/{v['n']} ({v['rate']:.0%})" + (" (below min cost)" if below else ""))
        lines.append(f"| `{name}` | {results['instances'][name]} | {share:.1f}% | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300, help="derived pairs per condition")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--naive", action="store_true", help="also run the gate without the run-noise term")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    started = time.perf_counter()
    results = {"gate": run(args.pairs, args.seed)}
    print(to_markdown(results["gate"], "traceview compare defaults"))
    if args.naive:
        naive = GateSettings(run_noise_scale=0.0, run_noise_floor_pct=0.0)
        results["naive"] = run(args.pairs, args.seed, naive)
        print(to_markdown(results["naive"], "without the run-to-run noise term (instance tests only)"))
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
