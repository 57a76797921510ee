"""The gate's statistical core and alignment, on duration arrays taken from the real H200 traces."""

from __future__ import annotations

import importlib.util
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traceview.api import load
from traceview.compare.align import family, trace_groups
from traceview.compare.gate import judge
from traceview.compare.settings import GateSettings
from traceview.compare.stats import NoiseModel, bonferroni, compare_item, holm

from paths import H200, REPO


@pytest.fixture(scope="module")
def groups():
    return {n: trace_groups(load(H200 / f"h200_{n}.sqlite")) for n in ("baseline", "baseline_rerun", "regressed")}


def durations(groups, run, name):
    return groups[run].kernels[(0, name)].durations


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30))
def test_holm_is_a_valid_step_down(ps):
    adjusted = holm(ps)
    assert all(p <= a <= 1.0 for p, a in zip(ps, adjusted, strict=True))
    assert all(a <= b + 1e-12 for a, b in zip(adjusted, bonferroni(ps), strict=True))
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(adjusted[i] <= adjusted[j] for i, j in zip(order, order[1:], strict=False))
    assert adjusted[order[0]] == min(1.0, ps[order[0]] * len(ps))


def test_holm_known_values():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(min_value=0.01, max_value=100.0))
def test_statistics_do_not_depend_on_the_time_unit(groups, scale):
    base = durations(groups, "baseline", "gemv_bf16_decode")
    cand = durations(groups, "baseline_rerun", "gemv_bf16_decode")
    kw = dict(key="gemv", alpha=0.01, noise=NoiseModel(), n_boot=200)
    a = compare_item([base * 1000], cand * 1000, **kw)
    b = compare_item([base * 1000 * scale], cand * 1000 * scale, **kw)
    assert b.p_mwu == pytest.approx(a.p_mwu) and b.p_noise == pytest.approx(a.p_noise, rel=1e-6)
    assert b.change_pct == pytest.approx(a.change_pct)


def test_item_statistics_on_real_durations(groups):
    reduce = durations(groups, "baseline", "reduce_small_grid")
    same = compare_item([reduce], reduce, key="k", alpha=0.01, noise=NoiseModel())
    assert same.change_pct == 0 and same.p_value == 1.0 and same.median_ratio_ci[0] <= 1 <= same.median_ratio_ci[1]
    slower = compare_item([reduce], durations(groups, "regressed", "reduce_small_grid"), key="k", alpha=0.01,
                          noise=NoiseModel())
    assert slower.method == "instances" and slower.p_value < 1e-6
    assert slower.change_pct == pytest.approx((89759347 / 22522797 - 1) * 100)
    assert 3.9 < slower.median_ratio_ci[0] <= slower.median_ratio <= slower.median_ratio_ci[1] < 4.1
    single = compare_item([durations(groups, "baseline", "stream_triad")],
                          durations(groups, "regressed", "stream_triad"), key="s", alpha=0.01, noise=NoiseModel())
    assert single.method == "threshold-only" and single.p_value is None and "threshold only" in single.note


def test_bootstrap_is_seeded_and_order_independent(groups):
    base, cand = durations(groups, "baseline", "gelu_inplace"), durations(groups, "regressed", "gelu_inplace")
    first = compare_item([base], cand, key="kernel:0:gelu_inplace", alpha=0.01, noise=NoiseModel(), seed=3)
    again = compare_item([base], cand, key="kernel:0:gelu_inplace", alpha=0.01, noise=NoiseModel(), seed=3)
    other = compare_item([base], cand, key="kernel:0:gelu_inplace", alpha=0.01, noise=NoiseModel(), seed=4)
    assert first == again and first.median_ratio_ci != other.median_ratio_ci


def test_run_noise_term_widens_with_the_item_spread(groups):
    """The run-to-run prior scales with the robust CV: decode-like noisy items get a wider test."""
    tight = compare_item([durations(groups, "baseline", "reduce_small_grid")],
                         durations(groups, "baseline_rerun", "reduce_small_grid"), key="a", alpha=0.01,
                         noise=NoiseModel())
    noisy = compare_item([durations(groups, "baseline", "gelu_inplace")],
                         durations(groups, "baseline_rerun", "gelu_inplace"), key="b", alpha=0.01, noise=NoiseModel())
    reduce = durations(groups, "baseline", "reduce_small_grid")
    within = reduce.var(ddof=1) / (reduce.size * reduce.mean() ** 2)
    assert tight.noise_sd == pytest.approx(math.sqrt(0.005**2 + within), rel=1e-9)   # robust CV 0.27 %: the floor
    assert noisy.noise_sd > 5 * tight.noise_sd
    assert noisy.p_mwu < 1e-6 < noisy.p_noise          # within-run test alone would call the rerun different


def test_family_matching_rule():
    assert family("sgemm_tile64x64") == family("sgemm_tile128x128") != family("stream_triad")
    assert family("void gemm<128, 64>(float*)") == "void gemm<#, #>(float*)"


def test_judge_order_and_holm_count(groups):
    from traceview.compare.align import align

    items = align(groups["baseline"], groups["regressed"]).items
    result = judge(items, GateSettings(bootstrap_resamples=200))
    tested = [r for r in result.results if r.stats.p_value is not None]
    smallest = min(tested, key=lambda r: r.stats.p_value)
    assert smallest.p_adjusted == pytest.approx(min(1.0, smallest.stats.p_value * len(tested)))
    reversed_result = judge(list(reversed(items)), GateSettings(bootstrap_resamples=200))
    assert [r.item.key for r in reversed_result.results] == [r.item.key for r in result.results]
    assert [r.stats for r in reversed_result.results] == [r.stats for r in result.results]


def _benchmark():
    spec = importlib.util.spec_from_file_location("gate_error_rates", REPO / "benchmarks" / "gate_error_rates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_error_rates_fast():
    """A small run of benchmarks/gate_error_rates.py (the docs report the full one)."""
    bench = _benchmark()
    fast = GateSettings(bootstrap_resamples=100)
    results = bench.run(pairs=20, seed=7, settings=fast, kernels=["reduce_small_grid"])
    assert all(v["hits"] == 0 for v in results["unchanged"].values()), results["unchanged"]
    detected = results["injected"]["reduce_small_grid"]
    assert detected["2%"]["rate"] == 0.0          # below the 5 % practical threshold: never a regression
    assert detected["10%"]["rate"] == 1.0
