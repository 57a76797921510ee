"""``Comparison``: comparability checks first, then alignment and the gate's judgement."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traceview.compare.align import Alignment, Unmatched, align, trace_groups
from traceview.compare.gate import ItemResult, Judgement, judge
from traceview.compare.settings import GateSettings
from traceview.errors import IncomparableTraces, NoCudaActivity
from traceview.model.trace import Trace

EXIT_CODES = {"pass": 0, "fail": 1}


@dataclass(slots=True)
class Comparison:
    """The result of ``traceview.compare``. ``to_dict`` is the JSON contract (docs/compare.md)."""

    baselines: list[Path]
    candidate: Path
    settings: GateSettings
    judgement: Judgement
    alignment: Alignment
    gpus: dict[str, list[str | None]]
    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.judgement.verdict

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def results(self) -> list[ItemResult]:
        return self.judgement.results

    @property
    def regressions(self) -> list[ItemResult]:
        return self.judgement.having("regression")

    @property
    def improvements(self) -> list[ItemResult]:
        return self.judgement.having("improvement")

    @property
    def allowed(self) -> list[ItemResult]:
        return self.judgement.having("allowed")

    @property
    def changed(self) -> list[ItemResult]:
        """Kernels matched under another name (renamed or retuned, e.g. a new tile size)."""
        return [r for r in self.results if r.item.kind == "kernel" and r.item.match != "name"]

    @property
    def added(self) -> list[Unmatched]:
        return self.alignment.added

    @property
    def removed(self) -> list[Unmatched]:
        return self.alignment.removed

    @property
    def notes(self) -> list[str]:
        return self.warnings + self.judgement.notes

    def to_dict(self) -> dict[str, Any]:
        from traceview.compare.outputs import to_dict

        return to_dict(self)


def gpu_models(trace: Trace) -> list[str | None]:
    """GPU model per device that ran something (None where the export does not say)."""
    names = {int(r["id"]): r["name"] for r in trace.gpus.iter_rows(named=True)}
    return [names.get(d) for d in trace.device_ids]


def _describe(models: list[str | None]) -> str:
    return ", ".join(f"{n} x {m}" for m, n in sorted(Counter(models).items(), key=str)) or "no GPU"


def check_gpus(baselines: list[Trace], candidate: Trace, settings: GateSettings) -> tuple[list[str], list[str]]:
    """(problems, warnings) about GPU model and count."""
    problems: list[str] = []
    warnings: list[str] = []
    cand = gpu_models(candidate)
    for base in baselines:
        models = gpu_models(base)
        if len(models) != len(cand) or (None not in models + cand and sorted(models) != sorted(cand)):  # type: ignore[type-var]
            problems.append(f"different GPUs: baseline {base.path.name} ran on {_describe(models)}, "
                            f"candidate {candidate.path.name} on {_describe(cand)}")
        elif None in models + cand:
            warnings.append(f"GPU model not recorded in {base.path.name} or {candidate.path.name}; not checked")
    if problems and settings.allow_gpu_mismatch:
        return [], warnings + [p + " (allowed by the recipe)" for p in problems]
    return problems, warnings


def check_workload(alignment: Alignment, settings: GateSettings) -> tuple[list[str], list[str]]:
    """(problems, warnings) about workload shape: NVTX ranges and counts, kernel overlap."""
    problems = list(alignment.nvtx_mismatches)
    if alignment.kernel_overlap_pct < settings.min_kernel_overlap_pct:
        problems.append(f"only {alignment.kernel_overlap_pct:.1f}% of the baseline's kernel time matches candidate "
                        f"kernels (min_kernel_overlap_pct = {settings.min_kernel_overlap_pct:g})")
    if problems and settings.allow_workload_change:
        return [], [p + " (allowed by the recipe)" for p in problems]
    return problems, []


def _require_kernels(trace: Trace) -> None:
    if trace.kernels.height == 0:
        raise NoCudaActivity(f"{trace.path}: no CUDA kernel activity to compare: was CUDA tracing enabled? "
                             "(nsys profile -t cuda)")


def _incomparable(problems: list[str], hint: str) -> IncomparableTraces:
    return IncomparableTraces(f"incomparable traces: {'; '.join(problems)} ({hint})")


def run_comparison(baselines: list[Trace], candidate: Trace, settings: GateSettings,
                   today: dt.date | None = None) -> Comparison:
    """Check comparability (exit 2 unless the recipe allows a mismatch), align, judge."""
    for trace in [*baselines, candidate]:
        _require_kernels(trace)
    problems, warnings = check_gpus(baselines, candidate, settings)
    if problems:
        raise _incomparable(problems, "set allow_gpu_mismatch = true in the recipe's [gate] to compare anyway")
    groups = [trace_groups(t, with_nvtx=settings.compare_nvtx) for t in baselines]
    alignment = align(groups[0], trace_groups(candidate, with_nvtx=settings.compare_nvtx), groups[1:])
    problems, more = check_workload(alignment, settings)
    if problems:
        raise _incomparable(problems, "set allow_workload_change = true in the recipe's [gate] to compare anyway")
    judgement = judge(alignment.items, settings, today)
    return Comparison([t.path for t in baselines], candidate.path, settings, judgement, alignment,
                      {"baseline": gpu_models(baselines[0]), "candidate": gpu_models(candidate)}, warnings + more)
