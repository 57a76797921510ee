"""compare's JSON, Markdown and JUnit outputs, validated (JUnit parsed as XML) on the real H200 pair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace

import numpy as np
import pytest

import traceview
from traceview.compare import outputs

from paths import H200

BASE, RERUN, REGRESSED = (H200 / f"h200_{n}.sqlite" for n in ("baseline", "baseline_rerun", "regressed"))
STATS_KEYS = {"instances", "total_ns", "median_ns"}


@pytest.fixture(scope="module")
def regressed():
    return traceview.compare(BASE, REGRESSED)


def test_json_contract(regressed):
    data = json.loads(outputs.dumps(regressed))
    assert data["verdict"] == "fail" and data["exit_code"] == 1
    for key in ("regressions", "improvements", "added", "removed", "changed", "allowed", "end_to_end", "items"):
        assert isinstance(data[key], list), key
    for item in data["regressions"]:
        assert STATS_KEYS <= set(item["baseline"]) and STATS_KEYS <= set(item["candidate"])
        assert item["status"] == "regression" and item["change_pct"] > 5
        assert item["p_value"] is None or (item["p_adjusted"] < 0.01 and len(item["ci_pct"]) == 2)
    reduce = next(i for i in data["regressions"] if i["name"] == "reduce_small_grid")
    assert reduce["baseline"]["total_ns"] == 22522797 and reduce["candidate"]["total_ns"] == 89759347
    assert reduce["ci_pct"][0] < reduce["change_pct"] < reduce["ci_pct"][1]
    assert 0 < reduce["p_value"] < 1e-6                     # tiny p-values survive the rounding
    lo, hi = reduce["median_ratio_ci"]
    assert lo <= reduce["median_ratio"] <= hi and 3.9 < reduce["median_ratio"] < 4.1
    (changed,) = data["changed"]
    assert (changed["baseline_name"], changed["candidate_name"], changed["match"]) == (
        "sgemm_tile64x64", "sgemm_tile128x128", "family")
    assert [i["kind"] for i in data["end_to_end"]][0] == "device"
    assert data["baseline"]["gpus"] == data["candidate"]["gpus"] == ["NVIDIA H200"]


def test_json_is_deterministic():
    a = outputs.to_dict(traceview.compare(BASE, RERUN))
    b = outputs.to_dict(traceview.compare(BASE, RERUN))
    assert a == b and a["verdict"] == "pass" and a["regressions"] == []


def test_markdown_tables(regressed):
    md = outputs.to_markdown(regressed)
    assert md.startswith("## :x: traceview compare: FAIL")
    tables = [line for line in md.splitlines() if line.startswith("|")]
    widths = {line.count(" | ") for line in tables if "---" not in line}
    assert tables and all(line.endswith("|") for line in tables)
    assert "| reduce_small_grid |" in md and "| sgemm_tile64x64 | sgemm_tile128x128 | family |" in md
    assert "### Changed kernels (renamed or retuned)" in md and len(widths) >= 2


def test_markdown_escapes_cells():
    assert outputs.md_escape("void k<float>(a|b)`x`\n") == "void k&lt;float&gt;(a\\|b)\\`x\\` "


def _strange(result):
    """The same comparison with a kernel renamed to characters XML and Markdown must escape."""
    evil = 'void k<int, "a&b">(x|y)\x01 ]]> </failure>'
    res = next(r for r in result.results if r.item.candidate_name == "reduce_small_grid")
    res.item = replace(res.item, candidate_name=evil, baseline_name=evil)
    return evil


def test_junit_parses_and_fails_only_regressions(regressed):
    root = ET.fromstring(outputs.to_junit(regressed))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    compared = [c for c in cases if c.find("skipped") is None]
    assert len(compared) == len(regressed.results)
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {outputs.label(r) for r in regressed.regressions}
    assert int(suite.get("failures")) == len(failed) and int(suite.get("tests")) == len(cases)
    assert {"reduce_small_grid", "gelu_inplace", "decode_step"} <= failed
    reduce = next(c for c in cases if c.get("name") == "reduce_small_grid")
    assert reduce.get("classname") == "traceview.compare.kernel"
    assert float(reduce.get("time")) == pytest.approx(89759347 / 1e9)
    assert "+298.5%" in reduce.find("failure").get("message")


def test_junit_and_markdown_escape_everything():
    result = traceview.compare(BASE, REGRESSED)
    evil = _strange(result)
    root = ET.fromstring(outputs.to_junit(result))
    names = [c.get("name") for c in root.iter("testcase")]
    assert evil.replace("\x01", "?") in names
    md = outputs.to_markdown(result)
    assert "&lt;int" in md and "<int" not in md and "(x\\|y)" in md


def test_text_report(regressed):
    text = outputs.to_text(regressed)
    assert text.splitlines()[0].startswith("traceview compare: FAIL: ")
    assert "End-to-end" in text and "Kernel regressions" in text and "instances 96 -> 192" in text
    assert "\x1b[" not in text


def test_cli_formats_and_step_summary(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("previous step\n")
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    out = tmp_path / "gate.xml"
    proc = subprocess.run([sys.executable, "-m", "traceview", "compare", str(BASE), str(REGRESSED), "--format", "junit",
                           "-o", str(out)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert ET.parse(out).getroot().tag == "testsuites"
    text = summary.read_text()
    assert text.startswith("previous step\n## :x: traceview compare: FAIL") and "gelu_inplace" in text


def test_outputs_of_a_passing_comparison():
    result = traceview.compare(BASE, BASE)
    assert outputs.summary_line(result).startswith("traceview compare: PASS")
    root = ET.fromstring(outputs.to_junit(result))
    assert root.find("testsuite").get("failures") == "0"
    assert np.isfinite([r.stats.change_pct for r in result.results]).all()
