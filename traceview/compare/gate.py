"""The verdict: statistics per item, a multiple-comparison correction, practical significance,
the allowlist, then pass/fail. ``judge`` is the whole decision, shared by ``traceview compare``
and the error-rate benchmark (``benchmarks/gate_error_rates.py``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from traceview.compare.align import AlignedItem
from traceview.compare.settings import AllowEntry, GateSettings
from traceview.compare.stats import ItemStats, bonferroni, compare_item, holm

END_TO_END = ("device", "nvtx")


@dataclass(slots=True)
class ItemResult:
    """One compared item with its statistics and what the gate decided about it."""

    item: AlignedItem
    stats: ItemStats
    status: str = "unchanged"           # "regression", "improvement", "allowed" or "unchanged"
    p_adjusted: float | None = None
    significant: bool = False
    practical: bool = False
    min_cost_ns: float = 0.0
    explains_pct: float | None = None   # share of the device's GPU-time change (kernels)
    allowed_by: AllowEntry | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.item.name

    @property
    def end_to_end(self) -> bool:
        return self.item.kind in END_TO_END


@dataclass(slots=True)
class Judgement:
    verdict: str                        # "pass" or "fail"
    results: list[ItemResult]
    notes: list[str] = field(default_factory=list)

    def having(self, status: str) -> list[ItemResult]:
        return [r for r in self.results if r.status == status]


def _adjust(p_values: list[float], method: str) -> list[float]:
    return holm(p_values) if method == "holm" else bonferroni(p_values)


def _decide(r: ItemResult, settings: GateSettings) -> None:
    s = r.stats
    r.min_cost_ns = settings.min_cost_pct / 100.0 * r.item.cost_basis_ns
    r.practical = abs(s.change_pct) >= settings.threshold_pct and abs(s.delta_ns) >= r.min_cost_ns
    if s.p_value is None:
        r.significant = True                      # threshold fallback (the note says so)
    else:
        same_direction = s.method != "instances" or (s.median_ratio - 1.0) * s.change_pct > 0
        r.significant = r.p_adjusted is not None and r.p_adjusted < settings.alpha and same_direction
    if s.note:
        r.notes.append(s.note)
    if r.item.launch_change:
        r.notes.append(f"launch shape changed: {r.item.launch_change}")
    if r.significant and r.practical:
        r.status = "regression" if s.change_pct > 0 else "improvement"


def _apply_allowlist(results: list[ItemResult], allow: tuple[AllowEntry, ...], today: dt.date) -> list[str]:
    notes = [f"allowlist entry {e.pattern!r} expired on {e.expires.isoformat()} and no longer applies "
             f"(reason was: {e.reason})" for e in allow if e.expired(today)]
    for r in results:
        if r.status != "regression":
            continue
        names = (r.item.candidate_name, r.item.baseline_name)
        for entry in allow:
            if not entry.matches(r.item.kind, *names):
                continue
            if entry.expired(today):
                r.notes.append(f"allowlist entry {entry.pattern!r} expired on {entry.expires.isoformat()}")
                continue
            r.status, r.allowed_by = "allowed", entry
            r.notes.append(f"accepted by allowlist {entry.pattern!r} until {entry.expires.isoformat()}: {entry.reason}")
            break
    return notes


def _explain(results: list[ItemResult]) -> None:
    """Each kernel's share of its device's GPU-time change (hierarchy: end-to-end, then kernels)."""
    device_delta = {r.item.device_id: r.stats.delta_ns for r in results if r.item.kind == "device"}
    for r in results:
        total = device_delta.get(r.item.device_id)
        if r.item.kind == "kernel" and total:
            r.explains_pct = 100.0 * r.stats.delta_ns / total


def judge(items: list[AlignedItem], settings: GateSettings, today: dt.date | None = None) -> Judgement:
    """Statistics for every item, Holm/Bonferroni over the tested ones, then the verdict."""
    stats = lambda item, ci: compare_item(item.baseline_runs, item.candidate, key=item.key,  # noqa: E731
                                          alpha=settings.alpha, noise=settings.noise, with_ci=ci,
                                          n_boot=settings.bootstrap_resamples, seed=settings.seed)
    results = [ItemResult(item, stats(item, False)) for item in items]
    tested = [r for r in results if r.stats.p_value is not None]
    for r, p in zip(tested, _adjust([r.stats.p_value for r in tested], settings.correction), strict=True):  # type: ignore[misc]
        r.p_adjusted = p
    for r in results:
        _decide(r, settings)
    notes = _apply_allowlist(results, settings.allow, today or dt.date.today())
    for r in results:      # the bootstrap interval only for what the report lists (it decides nothing)
        if r.stats.p_mwu is not None and (r.status != "unchanged" or r.item.match in ("family", "launch shape")):
            r.stats = stats(r.item, True)
    _explain(results)
    results.sort(key=lambda r: (not r.end_to_end, r.item.kind != "device", -abs(r.stats.delta_ns)))
    verdict = "fail" if any(r.status == "regression" for r in results) else "pass"
    return Judgement(verdict, results, notes)
