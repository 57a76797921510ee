"""The rule registry and engine: every rule is documented and parameterized; ranking, selection,
silencing and the generated defaults recipe / docs, on the real H200 baseline."""

from __future__ import annotations

import dataclasses
import re

import pytest
from paths import H200, REPO
from typer.testing import CliRunner

import traceview
from traceview.api import AnalyzeOptions
from traceview.errors import RecipeError
from traceview.rules import all_rules, get_rule
from traceview.rules.catalog import defaults_toml, rules_markdown

PUBLIC_IDS = {"memory.low-bandwidth", "launch.small-grid", "launch.tail-effect", "launch.block-size",
              "occupancy.limited", "tile.oversized", "memcpy.pageable", "memcpy.sync", "api.sync",
              "timeline.gpu-idle", "timeline.launch-bound", "timeline.low-utilization", "nccl.exposed", "memset.sync"}
HEADINGS = ("What it does", "Why it matters", "How to fix", "Parameters")


def heading_at(doc: str, heading: str) -> int:
    """Position of a doc heading, written ``## What it does`` or ``What it does:`` at a line start."""
    m = re.search(rf"^(#+ *)?{heading}(:|$)", doc, flags=re.MULTILINE)
    return m.start() if m else -1


def cli(*args: str):
    """Run the CLI in-process (exit code, stdout, stderr)."""
    from traceview.cli import app

    return CliRunner().invoke(app, list(args))


def test_public_rule_ids_are_registered():
    assert PUBLIC_IDS <= {r.id for r in all_rules()}


@pytest.mark.parametrize("r", all_rules(), ids=lambda r: r.id)
def test_every_rule_is_documented_and_parameterized(r):
    assert re.fullmatch(r"[a-z0-9]+(\.[a-z0-9]+(-[a-z0-9]+)*)+", r.id), r.id
    positions = [heading_at(r.doc, h) for h in HEADINGS]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), f"{r.id}: doc headings {positions}"
    assert dataclasses.is_dataclass(r.params)
    defaults = r.params()  # every threshold has a default
    for f in dataclasses.fields(defaults):
        assert f"``{f.name}``" in r.doc or f"`{f.name}`" in r.doc, f"{r.id}: parameter {f.name} undocumented"
    assert r.title and r.category == r.id.split(".")[0]


@pytest.fixture(scope="module")
def baseline():
    return traceview.analyze(traceview.load(H200 / "h200_baseline.sqlite"))


def test_findings_rank_by_estimated_gain_with_small_grid_first(baseline):
    gains = [f["estimated_gain_ns"] for f in baseline.findings]
    assert gains == sorted(gains, reverse=True) and len(gains) >= 8
    first = baseline.findings[0]
    assert (first["rule_id"], first["subject"]["name"]) == ("launch.small-grid", "reduce_small_grid")
    found = {(f["rule_id"], f["subject"].get("nvtx_range") or f["subject"]["name"]) for f in baseline.findings}
    assert {("memcpy.pageable", "load_weights"), ("memcpy.pageable", "extras"), ("memcpy.sync", "decode_step"),
            ("timeline.launch-bound", "gelu_inplace")} <= found
    # every number names its source
    assert all(e["source"] for f in baseline.findings for e in f["evidence"])


def test_select_ignore_and_silence(baseline_trace):
    only = traceview.analyze(baseline_trace, options=AnalyzeOptions(select=["memcpy.*"]))
    assert {f["rule_id"] for f in only.findings} == {"memcpy.pageable", "memcpy.sync"}
    rest = traceview.analyze(baseline_trace, options=AnalyzeOptions(ignore=["memcpy.*", "launch.*"]))
    assert not {f["rule_id"] for f in rest.findings} & {"memcpy.pageable", "launch.small-grid"}
    quiet = traceview.analyze(baseline_trace, options=AnalyzeOptions(silence=[("launch.*", "reduce_*")]))
    assert not any(f["subject"]["name"] == "reduce_small_grid" and f["rule_id"].startswith("launch.")
                   for f in quiet.findings)
    assert any(f["subject"]["name"] == "layernorm_rows" for f in quiet.findings)  # other kernels still reported
    with pytest.raises(RecipeError, match="no rule matches 'memcpy.nope'"):
        traceview.analyze(baseline_trace, options=AnalyzeOptions(select=["memcpy.nope"]))


def test_threshold_overrides_change_the_result(baseline_trace):
    strict = AnalyzeOptions(select=["memcpy.pageable"], thresholds={"memcpy.pageable": {"min_bytes": 32 << 20}})
    found = traceview.analyze(baseline_trace, options=strict).findings
    assert [f["subject"]["nvtx_range"] for f in found] == ["load_weights"]  # the 16 MiB copy drops out


def test_default_recipe_and_docs_are_generated_from_the_registry():
    assert (REPO / "recipes" / "default.toml").read_text().rstrip() == defaults_toml().rstrip(), \
        "recipes/default.toml is stale: run `traceview rules defaults > recipes/default.toml`"
    assert (REPO / "docs" / "rules.md").read_text().rstrip() == rules_markdown().rstrip(), \
        "docs/rules.md is stale: run `traceview rules docs > docs/rules.md`"


def test_rules_cli_lists_shows_and_fails_cleanly():
    listing = cli("rules")
    assert listing.exit_code == 0
    assert {line.split()[0] for line in listing.stdout.splitlines()} == {r.id for r in all_rules()}
    show = cli("rules", "show", "memcpy.pageable")
    assert show.exit_code == 0 and "## Why it matters" in show.stdout and "min_bytes = 1_048_576" in show.stdout
    bad = cli("rules", "show", "memcpy.nope")
    assert bad.exit_code == 2 and bad.stderr.strip() == "traceview: error: unknown rule id 'memcpy.nope' (see `traceview rules`)"
    assert get_rule("api.sync").params().min_idle_ns == 200_000


def test_analyze_text_prints_findings_then_flowchart():
    proc = cli("analyze", str(H200 / "h200_baseline.sqlite"), "--rules", "memcpy.*,timeline.*")
    assert proc.exit_code == 0, proc.output
    out = proc.stdout
    findings, chart = out.index("Findings, ranked by estimated gain"), out.index("Optimization flowchart")
    assert findings < chart
    ranked = re.findall(r"^\s+\d+\. \[\w+\] (\S+)", out[findings:chart], flags=re.MULTILINE)
    assert ranked == ["memcpy.pageable", "memcpy.pageable", "timeline.launch-bound", "memcpy.sync"]
    assert "ncu -k regex:gemv_bf16_decode --set full -o gemv_bf16_decode <app>" in out[chart:]
