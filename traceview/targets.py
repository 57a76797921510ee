"""Performance targets from a recipe (``[targets]``) checked against what the trace measured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from traceview.api import AnalysisResult

# metric -> (phase whose NVTX ranges measure it, unit, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "tokens_per_s": ("decode", "tokens/s", True),
    "decode_step_ms": ("decode", "ms", False),
    "prefill_ms": ("prefill", "ms", False),
    "step_ms": ("step", "ms", False),
    "bandwidth_share_pct": ("decode", "% of peak DRAM bandwidth", True),
}
DEFAULT_PHASES = {"decode": ("decode_step",), "prefill": ("prefill",), "step": ("train_step", "step")}


def phase_median_ns(nvtx: pl.DataFrame, names: tuple[str, ...]) -> tuple[float | None, str, int]:
    """Median duration of the NVTX ranges named ``names`` (the first name that occurs)."""
    for name in names:
        d = nvtx.filter(pl.col("name") == name).get_column("duration")
        if d.len():
            return float(d.median()), name, d.len()  # type: ignore[arg-type]
    return None, names[0] if names else "", 0


def _decode_bandwidth(result: AnalysisResult, names: tuple[str, ...]) -> tuple[float | None, str]:
    for phase in result.extra.get("phases", []) or []:
        if isinstance(phase, dict) and phase.get("name") in names and phase.get("bandwidth_pct_of_peak") is not None:
            return float(phase["bandwidth_pct_of_peak"]), f"derived: phases[{phase['name']}].bandwidth_pct_of_peak"
    return None, "no decode phase with bytes moved (see `phases` in the JSON output)"


def measure(result: AnalysisResult, metric: str, phases: dict[str, tuple[str, ...]],
            tokens_per_step: int) -> tuple[float | None, str]:
    """(measured value in the metric's unit, source) or (None, why not)."""
    phase = METRICS[metric][0]
    names = phases.get(phase) or DEFAULT_PHASES[phase]
    if metric == "bandwidth_share_pct":
        return _decode_bandwidth(result, names)
    median, name, count = phase_median_ns(result.trace.nvtx, names)
    if median is None:
        return None, f"no NVTX range named {', '.join(repr(n) for n in names)} (set [phases] {phase} in the recipe)"
    source = f"trace: NVTX_EVENTS median duration of {count} '{name}' ranges"
    if metric == "tokens_per_s":
        return tokens_per_step * 1e9 / median, f"{source} x tokens_per_step={tokens_per_step}"
    return median / 1e6, source


def check_targets(result: AnalysisResult, recipe: Any) -> list[dict[str, Any]]:
    """One entry per target the recipe sets: {metric, target, measured, unit, met, source}."""
    if recipe is None or not getattr(recipe, "targets", None):
        return []
    tokens = int(recipe.targets.get("tokens_per_step", 1))
    checks = []
    for metric, (_, unit, higher) in METRICS.items():
        if metric not in recipe.targets:
            continue
        target = float(recipe.targets[metric])
        measured, source = measure(result, metric, recipe.phases, tokens)
        met = None if measured is None else (measured >= target if higher else measured <= target)
        checks.append({"metric": metric, "target": target, "measured": measured, "unit": unit, "met": met,
                       "source": source})
    return checks


def verdict(checks: list[dict[str, Any]]) -> bool | None:
    """True when every measurable target is met, False when one is missed, None when none is measurable."""
    measured = [c["met"] for c in checks if c["met"] is not None]
    return None if not measured else all(measured)
