"""Recipes: the shipped ones load and apply; bad recipes fail with one clear line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import H200, REPO
from typer.testing import CliRunner

from traceview.api import AnalyzeOptions
from traceview.errors import RecipeError
from traceview.recipe import build, load_recipe

SHIPPED = ["default", "llm-decode", "llm-prefill", "training-step", "dgx-spark", "ci-gate"]


def write(tmp_path, text: str, name: str = "r.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_load(name):
    recipe = load_recipe(name)
    assert recipe.name == name and recipe.description
    assert recipe.path.resolve() == REPO / "recipes" / f"{name}.toml"


def test_recipe_settings_reach_the_options():
    spark = load_recipe("dgx-spark")
    assert spark.hardware == "gb10" and spark.targets["bandwidth_share_pct"] == 55.0
    assert spark.quantization == ("nvfp4", "fp8", "int8")
    assert spark.thresholds["timeline.gpu-idle"]["min_gap_ns"] == 20_000  # inherited from llm-decode
    assert spark.phases["decode"][0] == "decode_step"
    options = spark.to_options(AnalyzeOptions(hardware="h200", thresholds={"timeline.gpu-idle": {"min_gap_ns": 1}}))
    assert options.hardware == "h200" and options.recipe is spark  # explicit options win
    assert options.thresholds["timeline.gpu-idle"]["min_gap_ns"] == 1
    assert options.thresholds["memory.low-bandwidth"]["min_share_of_peak"] == 0.55


def test_unknown_sections_are_kept_for_their_owners():
    gate = load_recipe("ci-gate")
    assert "gate" in gate.sections and "alpha" in gate.sections["gate"]


def test_unquoted_rule_tables_and_silence(tmp_path):
    recipe = load_recipe(write(tmp_path, """
        [rules.memcpy.pageable]
        min_bytes = 4096
        [[silence]]
        rules = ["launch.*"]
        names = ["reduce_*"]
        reason = "known"
    """))
    assert recipe.thresholds == {"memcpy.pageable": {"min_bytes": 4096}}
    assert recipe.to_options(AnalyzeOptions()).silence == [("launch.*", "reduce_*")]


@pytest.mark.parametrize("text, message", [
    ('[rules."memcpy.nope"]\nx = 1', "unknown rule id 'memcpy.nope'"),
    ('[rules."memcpy.pageable"]\nmin_byte = 1', "unknown threshold 'min_byte'"),
    ('[rules."memcpy.pageable"]\nmin_bytes = "big"', "min_bytes must be int"),
    ('[rules."memcpy.pageable"]\nmin_bytes = -1', "min_bytes = -1 is out of range"),
    ('[rules."timeline.low-utilization"]\nmax_utilization_pct = 150.0', "max_utilization_pct = 150.0 is out of range"),
    ('[rules."timeline.gpu-idle"]\nmin_gap_ns = true', "min_gap_ns must be int"),
    ('selct = ["memcpy.*"]', "unknown key 'selct'"),
    ('select = ["memcpy.nope*"]', "no rule matches 'memcpy.nope*'"),
    ('[targets]\ndecode_step_ms = -2', "targets.decode_step_ms must be a positive float"),
    ('[targets]\nspeed = 2', "targets: unknown key 'speed'"),
    ('[flowchart]\nquantization = ["fp3"]', "flowchart.quantization must list formats"),
    ('[[silence]]\nrules = ["nope.*"]', "silence[0].rules: no rule matches 'nope.*'"),
    ('hardware = "tpu-v5"', "hardware: unknown GPU 'tpu-v5'"),
    ('extends = "r"', "'extends' loops back"),
    ('name = [', "invalid TOML"),
])
def test_bad_recipes_are_rejected_with_one_line(tmp_path, text, message):
    with pytest.raises(RecipeError) as err:
        load_recipe(write(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_recipe_names_the_known_ones():
    with pytest.raises(RecipeError, match="no such recipe .*llm-decode"):
        load_recipe("llm-decodee")


@settings(max_examples=40, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_percent_thresholds_accept_exactly_0_to_100(value):
    raw = {"rules": {"timeline.low-utilization": {"max_utilization_pct": value}}}
    if 0 <= value <= 100:
        assert build(raw).thresholds["timeline.low-utilization"]["max_utilization_pct"] == value
    else:
        with pytest.raises(RecipeError, match="out of range"):
            build(raw)


def test_cli_bad_recipe_is_one_line_exit_2(tmp_path):
    from traceview.cli import app

    bad = write(tmp_path, '[rules."launch.small-grid"]\nmin_time_share = 2.0')
    result = CliRunner().invoke(app, ["analyze", str(H200 / "h200_baseline.sqlite"), "--recipe", str(bad)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "min_time_share = 2.0 is out of range (0.0..1.0)" in result.stderr
