"""`traceview compare` on the real H200 traces: the known verdicts, error exits, recipes, allowlist."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import subprocess
import sys

import pytest

import traceview
from traceview.errors import IncomparableTraces, NoCudaActivity, RecipeError

from paths import H200, ORACLE, PUBLIC

BASE, RERUN, REGRESSED = (H200 / f"h200_{n}.sqlite" for n in ("baseline", "baseline_rerun", "regressed"))


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "traceview", "compare", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=env)


def oracle_total(trace: str, report: str, name: str) -> int:
    """Total ns of ``name`` in nsys stats' own CSV (gpukernsum rows summed per name)."""
    with (ORACLE / f"{trace}_{report}.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("Name", r.get("Range")) == name]
    return sum(int(r["Total Time (ns)"]) for r in rows)


@pytest.fixture(scope="module")
def regressed():
    return traceview.compare(BASE, REGRESSED)


def by_name(comparison, name):
    return next(r for r in comparison.results if r.item.candidate_name == name or r.item.baseline_name == name)


@pytest.mark.parametrize("pair", [(BASE, RERUN), (RERUN, BASE), (BASE, BASE), (RERUN, RERUN), (REGRESSED, REGRESSED)],
                         ids=["baseline-rerun", "rerun-baseline", "baseline-self", "rerun-self", "regressed-self"])
def test_noise_and_identity_pass(pair):
    result = traceview.compare(*pair)
    assert result.verdict == "pass" and result.exit_code == 0
    assert result.regressions == []
    if pair[0] == pair[1]:
        assert all(r.stats.change_pct == 0 for r in result.results)


def test_rerun_decode_step_is_noise_not_regression():
    """decode_step is +7.4 % in the rerun and a U-test alone calls it (p < 1e-4): the run-noise
    term is what keeps the gate from failing a plain rerun."""
    result = traceview.compare(BASE, RERUN)
    decode = by_name(result, "decode_step")
    assert decode.stats.change_pct == pytest.approx((2473580 / 2302084 - 1) * 100)
    assert decode.stats.p_mwu < 1e-3 and decode.stats.p_noise > 0.05
    assert decode.status == "unchanged" and not decode.significant


def test_regressed_fails_naming_the_known_changes(regressed):
    assert regressed.verdict == "fail" and regressed.exit_code == 1
    names = {r.item.candidate_name for r in regressed.regressions}
    assert {"reduce_small_grid", "gelu_inplace", "decode_step"} <= names
    reduce = by_name(regressed, "reduce_small_grid")
    assert reduce.stats.baseline_total == oracle_total("h200_baseline", "gpukernsum", "reduce_small_grid")
    assert reduce.stats.candidate_total == oracle_total("h200_regressed", "gpukernsum", "reduce_small_grid")
    assert 3.8 < reduce.stats.candidate_total / reduce.stats.baseline_total < 4.2       # "about 4x"
    assert reduce.p_adjusted < 0.01 and reduce.stats.ci_pct[0] > 250
    assert "grid 16x1x1" in reduce.item.launch_change and "grid 4x1x1" in reduce.item.launch_change
    assert reduce.explains_pct > 90                       # it explains the device's GPU-time regression
    gelu = by_name(regressed, "gelu_inplace")
    assert (gelu.stats.baseline_instances, gelu.stats.candidate_instances) == (96, 192)
    assert gelu.stats.method == "count-change" and "96 -> 192" in gelu.notes[0]
    assert gelu.stats.median_ratio < 1 < gelu.stats.change_pct     # each instance not slower; the total is
    decode = by_name(regressed, "decode_step")
    assert decode.item.kind == "nvtx" and decode.stats.candidate_total == oracle_total("h200_regressed", "nvtxsum",
                                                                                         "decode_step")
    assert decode.status == "regression" and decode.p_adjusted < 0.01


def test_tile_change_is_a_changed_kernel_not_added_or_removed(regressed):
    (changed,) = regressed.changed
    assert (changed.item.baseline_name, changed.item.candidate_name) == ("sgemm_tile64x64", "sgemm_tile128x128")
    assert changed.item.match == "family" and changed.status != "regression"
    assert changed.stats.candidate_total == oracle_total("h200_regressed", "gpukernsum", "sgemm_tile128x128")
    assert regressed.added == [] and regressed.removed == []


def test_hierarchy_end_to_end_first(regressed):
    kinds = [r.item.kind for r in regressed.results]
    assert kinds[0] == "device" and kinds.index("kernel") > max(i for i, k in enumerate(kinds) if k == "nvtx")
    device = regressed.results[0]
    assert device.status == "regression" and device.stats.method == "threshold-only"


def test_baseline_dir_learns_run_noise():
    """With two baseline runs, single-instance items get a between-runs test instead of the threshold."""
    result = traceview.compare(BASE, REGRESSED, baselines=[RERUN])
    extras = by_name(result, "extras")
    assert extras.stats.baseline_runs == 2 and extras.stats.method == "between-runs" and extras.p_adjusted < 0.01
    assert {"reduce_small_grid", "gelu_inplace", "stream_triad"} <= {r.name for r in result.regressions}
    gelu = by_name(result, "gelu_inplace")      # its two baseline runs differ by 11.6 %: measured, not assumed
    assert gelu.stats.noise_sd > by_name(traceview.compare(BASE, REGRESSED), "gelu_inplace").stats.noise_sd
    assert traceview.compare(BASE, BASE, baselines=[RERUN]).verdict == "pass"
    assert traceview.compare(RERUN, BASE, baselines=[BASE]).verdict == "pass"


def test_cli_exit_codes_and_baseline_dir(tmp_path):
    assert run_cli(BASE, RERUN).returncode == 0
    proc = run_cli(BASE, REGRESSED, "--recipe", "ci-gate")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("traceview compare: FAIL") and "reduce_small_grid" in proc.stdout
    assert "sgemm_tile64x64" in proc.stdout and "sgemm_tile128x128" in proc.stdout
    runs = tmp_path / "baselines"
    runs.mkdir()
    shutil.copy(RERUN, runs / "run2.sqlite")
    assert run_cli(BASE, BASE, "--baseline-dir", runs).returncode == 0


def assert_one_line_error(proc, needle):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("traceview: error:") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_cli_errors_exit_2_with_one_line(tmp_path):
    assert_one_line_error(run_cli(BASE, tmp_path / "missing.sqlite"), "no such file")
    assert_one_line_error(run_cli(BASE, PUBLIC / "hpcgroup__pipit__saxpy-mpi-cuda_nsys_perlmutter0.sqlite"),
                          "NVIDIA A100-SXM4-40GB")
    assert_one_line_error(run_cli(BASE, PUBLIC / "Donovoi__ripgrep__report1.sqlite"), "no CUDA kernel activity")
    assert_one_line_error(run_cli(BASE, RERUN, "--alpha", "2"), "alpha")
    assert_one_line_error(run_cli(BASE, RERUN, "--baseline-dir", tmp_path), "no other baseline exports")


def test_incomparable_cases_raise():
    with pytest.raises(IncomparableTraces, match="different GPUs.*A100-SXM4-80GB"):
        traceview.compare(BASE, PUBLIC / "openhackathons-org__AI-Profiler__baseline_nvtx.CONVERTED.sqlite")
    with pytest.raises(IncomparableTraces, match="decode_step': 24 -> 8 instances"):
        traceview.compare(BASE, H200 / "h200_gpumetrics.sqlite")     # the same kernels, a shorter workload
    with pytest.raises(NoCudaActivity):
        traceview.compare(PUBLIC / "Donovoi__ripgrep__report1.sqlite", BASE)
    two_gpus = H200 / "h200x2_tp_serial.sqlite"
    with pytest.raises(IncomparableTraces, match="2 x NVIDIA H200"):
        traceview.compare(BASE, two_gpus)
    assert traceview.compare(two_gpus, two_gpus).verdict == "pass"


def test_recipe_allows_a_workload_change(tmp_path):
    recipe = tmp_path / "gate.toml"
    recipe.write_text("[gate]\nallow_workload_change = true\n")
    result = traceview.compare(BASE, H200 / "h200_gpumetrics.sqlite", recipe=str(recipe))
    assert any("24 -> 8 instances" in n and "allowed by the recipe" in n for n in result.notes)


def test_allowlist_accepts_until_expiry(tmp_path):
    recipe = tmp_path / "allow.toml"
    recipe.write_text(
        "[gate]\n"
        '[[gate.allow]]\npattern = "reduce_small_*"\nreason = "known: 4-block reduction"\nexpires = 2026-06-30\n'
        '[[gate.allow]]\npattern = "gelu_inplace"\nreason = "old"\nexpires = 2020-01-01\n')
    result = traceview.compare(BASE, REGRESSED, recipe=str(recipe), today=dt.date(2026, 6, 1))
    reduce, gelu = by_name(result, "reduce_small_grid"), by_name(result, "gelu_inplace")
    assert reduce.status == "allowed" and reduce.allowed_by.reason == "known: 4-block reduction"
    assert gelu.status == "regression" and any("expired on 2020-01-01" in n for n in gelu.notes)
    assert any("'gelu_inplace' expired" in n for n in result.notes)
    later = traceview.compare(BASE, REGRESSED, recipe=str(recipe), today=dt.date(2026, 7, 1))
    assert by_name(later, "reduce_small_grid").status == "regression"


@pytest.mark.parametrize("body, needle", [
    ("[gate]\nalpah = 0.05\n", "unknown key 'alpah'"),
    ("[gate]\nalpha = 'low'\n", "alpha must be a float"),
    ("[gate]\nthreshold_pct = -1\n", "threshold_pct"),
    ('[[gate.allow]]\npattern = "x"\nreason = "r"\n', "missing ['expires']"),
    ('[[gate.allow]]\npattern = "x"\nreason = "r"\nexpires = "soon"\n', "expires must be a date"),
    ("[gate\n", "invalid TOML"),
])
def test_bad_recipes_are_recipe_errors(tmp_path, body, needle):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(body)
    with pytest.raises(RecipeError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        traceview.compare(BASE, RERUN, recipe=str(recipe))


def test_threshold_and_alpha_overrides():
    strict = traceview.compare(BASE, REGRESSED, threshold_pct=500.0)
    assert strict.verdict == "pass"
    assert traceview.compare(BASE, REGRESSED, alpha=1e-12).settings.alpha == 1e-12
