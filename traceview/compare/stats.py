"""The statistical core of the regression gate: one item (a kernel, an NVTX range, a device
total) measured in baseline run(s) and in a candidate run.

Two sources of noise are modelled:

* **within a run**: instances of one item differ (launch jitter, caches). The Mann-Whitney U
  test and a seeded bootstrap of the median ratio describe it.
* **between runs**: a whole run is shifted (clocks, CPU load, driver state). Instances of one
  run share that shift, so instance tests alone call run-to-run noise significant (on the
  H200 pair, ``decode_step`` is +7.4 % in the rerun with a U-test p = 9e-5). The shift of an
  item's log total gets a standard deviation ``tau``: learned from several baseline runs
  (``--baseline-dir``), or, with one baseline, a prior ``max(floor, scale * robust CV of the
  item's instances)``. A z-test of the log-total change against that noise gives ``p_noise``.

An item with unchanged instance counts is significant only when both tests agree
(``p = max(p_mwu, p_noise)``, an intersection-union test, valid at level alpha). A changed
count is structural, not sampled: the total then changes with the count and only the
noise test applies. One instance per run and one baseline run: no test (threshold only).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

MAD_TO_SD = 1.4826          # normal-consistent scale of the median absolute deviation
BOOTSTRAP_MAX_N = 5000      # larger samples are subsampled (seeded) for the bootstrap only


@dataclass(frozen=True, slots=True)
class NoiseModel:
    """Run-to-run noise prior: sd of an item's log total = max(floor, scale * robust CV)."""

    scale: float = 0.5          # run shift relative to the within-run spread of instances
    floor: float = 0.005        # smallest run-to-run sd (0.5 %), also for single-instance items
    prior_weight: float = 8.0   # pseudo-runs the prior weighs when several baselines are given


@dataclass(frozen=True, slots=True)
class ItemStats:
    """Baseline vs candidate statistics of one item. Ratios are candidate / baseline."""

    baseline_runs: int
    baseline_instances: float     # mean instances per baseline run
    candidate_instances: int
    baseline_total: float         # mean total ns per baseline run
    candidate_total: float
    baseline_median: float
    candidate_median: float
    change_pct: float             # of the total
    ci_pct: tuple[float, float] | None   # (1 - alpha) interval of change_pct, both noise sources
    p_value: float | None         # the p-value the gate uses (None: threshold only)
    p_mwu: float | None           # Mann-Whitney U, two-sided, instance durations
    p_noise: float | None         # z-test of the log-total change against within + between-run noise
    median_ratio: float
    median_ratio_ci: tuple[float, float] | None  # seeded percentile bootstrap
    noise_sd: float               # sd of one run's log total used by the noise test
    method: str                   # "instances", "count-change", "between-runs", "threshold-only"
    note: str | None = None

    @property
    def delta_ns(self) -> float:
        return self.candidate_total - self.baseline_total


def item_seed(seed: int, key: str) -> int:
    """A per-item seed independent of item order (the same item gets the same bootstrap)."""
    return (seed * 1_000_003 + zlib.crc32(key.encode("utf-8"))) & 0xFFFFFFFF


def robust_cv(values: np.ndarray) -> float:
    """1.4826 * MAD of log durations: the within-run spread, insensitive to outliers."""
    if values.size < 2:
        return 0.0
    logs = np.log(np.maximum(values, 1.0))
    return float(MAD_TO_SD * np.median(np.abs(logs - np.median(logs))))


def _within_var(values: np.ndarray) -> float:
    """Sampling variance of log(total) of one run (delta method: CV^2 / n)."""
    if values.size < 2:
        return 0.0
    mean = float(values.mean())
    return float(values.var(ddof=1)) / (values.size * mean * mean) if mean > 0 else 0.0


def _mwu(a: np.ndarray, b: np.ndarray) -> float:
    if np.array_equal(np.sort(a), np.sort(b)):
        return 1.0
    return float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def bootstrap_median_ratio(base: np.ndarray, cand: np.ndarray, *, level: float, n_boot: int,
                           seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of median(cand) / median(base), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    if base.size > BOOTSTRAP_MAX_N:
        base = rng.choice(base, BOOTSTRAP_MAX_N, replace=False)
    if cand.size > BOOTSTRAP_MAX_N:
        cand = rng.choice(cand, BOOTSTRAP_MAX_N, replace=False)
    mb = np.median(base[rng.integers(0, base.size, size=(n_boot, base.size))], axis=1)
    mc = np.median(cand[rng.integers(0, cand.size, size=(n_boot, cand.size))], axis=1)
    ratios = mc / np.maximum(mb, 1.0)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _run_noise_var(runs: list[np.ndarray], log_totals: np.ndarray, noise: NoiseModel) -> tuple[float, float]:
    """(tau^2, within-run variance) for the baseline runs: prior, or blended with the runs' spread."""
    within = float(np.mean([_within_var(r) for r in runs]))
    tau_prior = max(noise.floor, noise.scale * robust_cv(np.concatenate(runs)))
    k = len(runs)
    if k < 2:
        return tau_prior**2, within
    spread = float(np.var(log_totals, ddof=1))          # includes within-run sampling
    sigma2 = (noise.prior_weight * (tau_prior**2 + within) + (k - 1) * spread) / (noise.prior_weight + k - 1)
    return max(sigma2 - within, noise.floor**2), within


def compare_item(baseline_runs: list[np.ndarray], candidate: np.ndarray, *, key: str, alpha: float,
                 noise: NoiseModel, n_boot: int = 1000, seed: int = 0, with_ci: bool = True) -> ItemStats:
    """Compare one item's instance durations (ns). ``baseline_runs``: one array per baseline run.

    ``with_ci=False`` skips the bootstrap interval of the median ratio (it is reported, never
    decided on); ``median_ratio_ci`` is then None."""
    runs = [np.asarray(r, dtype=np.float64) for r in baseline_runs if len(r)]
    cand = np.asarray(candidate, dtype=np.float64)
    if not runs or cand.size == 0:
        raise ValueError(f"{key}: compare_item needs instances on both sides")
    pooled = np.concatenate(runs)
    totals = np.array([r.sum() for r in runs])
    counts = np.array([r.size for r in runs])
    log_totals = np.log(np.maximum(totals, 1.0))
    base_total, cand_total = float(totals.mean()), float(cand.sum())
    med_b, med_c = float(np.median(pooled)), float(np.median(cand))
    delta = math.log(max(cand_total, 1.0)) - float(log_totals.mean())
    k = len(runs)
    multi = int(counts.min()) >= 2 and cand.size >= 2
    common = dict(baseline_runs=k, baseline_instances=float(counts.mean()), candidate_instances=int(cand.size),
                  baseline_total=base_total, candidate_total=cand_total, baseline_median=med_b,
                  candidate_median=med_c, change_pct=(cand_total / base_total - 1.0) * 100.0 if base_total else 0.0,
                  median_ratio=med_c / med_b if med_b else 1.0)
    if not multi and k < 2:
        return ItemStats(**common, ci_pct=None, p_value=None, p_mwu=None, p_noise=None, median_ratio_ci=None,
                         noise_sd=0.0, method="threshold-only",
                         note="one instance per run: threshold only (pass --baseline-dir to measure its noise)")
    tau2, within_b = _run_noise_var(runs, log_totals, noise)
    var_delta = (tau2 + within_b) / k + tau2 + _within_var(cand)
    sd = math.sqrt(var_delta)
    # One baseline: the prior is taken as known (normal). Several: the variance is estimated, so
    # Student's t with the runs' degrees of freedom plus the prior's pseudo-runs.
    dist = sps.norm if k < 2 else sps.t(noise.prior_weight + k - 1)
    z_crit = float(dist.ppf(1.0 - alpha / 2.0))
    p_noise = float(2.0 * dist.sf(abs(delta) / sd)) if sd > 0 else (0.0 if delta else 1.0)
    ratio = cand_total / base_total if base_total else 1.0
    ci = ((ratio * math.exp(-z_crit * sd) - 1.0) * 100.0, (ratio * math.exp(z_crit * sd) - 1.0) * 100.0)
    if not multi:
        return ItemStats(**common, ci_pct=ci, p_value=p_noise, p_mwu=None, p_noise=p_noise, median_ratio_ci=None,
                         noise_sd=math.sqrt(tau2 + within_b), method="between-runs",
                         note=f"one instance per run: tested against the spread of {k} baseline runs")
    p_mwu = _mwu(pooled, cand)
    med_ci = (bootstrap_median_ratio(pooled, cand, level=1.0 - alpha, n_boot=n_boot, seed=item_seed(seed, key))
              if with_ci else None)
    if np.all(counts == cand.size):
        return ItemStats(**common, ci_pct=ci, p_value=max(p_mwu, p_noise), p_mwu=p_mwu, p_noise=p_noise,
                         median_ratio_ci=med_ci, noise_sd=math.sqrt(tau2 + within_b), method="instances")
    count_b = f"{counts.mean():g}"
    return ItemStats(**common, ci_pct=ci, p_value=p_noise, p_mwu=p_mwu, p_noise=p_noise, median_ratio_ci=med_ci,
                     noise_sd=math.sqrt(tau2 + within_b), method="count-change",
                     note=f"instances {count_b} -> {cand.size} (x{cand.size / counts.mean():.2f}): "
                          f"the total changes with the count")


def holm(p_values: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (monotone, capped at 1), in input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def bonferroni(p_values: list[float]) -> list[float]:
    m = len(p_values)
    return [min(1.0, p * m) for p in p_values]
