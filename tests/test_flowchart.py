"""The optimization flowchart on the real H200 baseline: branches, actions, ncu commands, verdicts."""

from __future__ import annotations

import dataclasses
import sqlite3
import statistics

import pytest
from paths import H200, NCU

import traceview
from traceview import flowchart
from traceview.api import AnalyzeOptions
from traceview.recipe import load_recipe

BASELINE = H200 / "h200_baseline.sqlite"


@pytest.fixture(scope="module")
def result():
    return traceview.analyze(traceview.load(BASELINE))


@pytest.fixture(scope="module")
def measured():
    """The baseline with Nsight Compute evidence (measured bound classes)."""
    return traceview.analyze(traceview.load(BASELINE), options=AnalyzeOptions(ncu=[NCU / "ncu_baseline_raw.csv"]))


def kernel(chart: dict, name: str) -> dict:
    return next(k for k in chart["kernels"] if k["name"] == name)


def texts(k: dict, node: str) -> list[str]:
    return [a["text"] for a in k["actions"] if a["node"] == node]


def with_bound(result, name: str, bound: dict | None):
    """The same analysis with kernel ``name``'s bound replaced (None: removed)."""
    details = {n: dict(d) for n, d in result.extra.get("kernel_details", {}).items()}
    details.setdefault(name, {})
    if bound is None:
        details[name].pop("bound", None)
    else:
        details[name]["bound"] = bound
    return dataclasses.replace(result, extra={**result.extra, "kernel_details": details})


def test_json_contract_and_top_kernels(result):
    chart = result.to_dict()["flowchart"]
    assert {"target", "target_met", "kernels", "nodes"} <= set(chart)
    assert [k["name"] for k in chart["kernels"]] == result.kernels.get_column("name").head(5).to_list()
    for k in chart["kernels"]:
        assert {"name", "bound", "path", "actions"} <= set(k)
        assert k["path"][:3] == ["capture", "longest", "bottleneck"] and "reprofile" in k["path"]
        assert f"ncu -k regex:{k['short_name']} --set full -o {k['short_name']} <app>" in texts(k, "longest")[0]
    assert chart["target"] is None and chart["target_met"] is None
    assert chart["kernels"][0]["path"][-2:] == ["target", "set-target"]


def test_gemv_goes_down_the_memory_branch_with_quantization_and_fusion(measured):
    gemv = kernel(flowchart.build(measured), "gemv_bf16_decode")
    assert gemv["bound"] == "memory" and gemv["bound_tier"] == "measured"
    assert gemv["path"][3:5] == ["memory.quantize", "memory.fuse"]
    decision = gemv["decisions"][0]
    assert decision["outcome"] == "memory" and any(e["source"].startswith("ncu:") for e in decision["evidence"])
    quant = texts(gemv, "memory.quantize")
    ncu_bytes = next(e["value"] for e in measured.extra["kernel_details"]["gemv_bf16_decode"]["bound"]["evidence"]
                     if e["name"] == "DRAM bytes per launch")
    fp8 = next(t for t in quant if t.startswith("FP8"))
    assert "50% fewer bytes" in fp8 and f"{ncu_bytes / 2 / 2**20:.0f} MiB less per launch" in fp8
    assert any("NVFP4 needs Blackwell" in t for t in quant)  # H200 is Hopper: FP8/INT8 advice
    fuse = " ".join(texts(gemv, "memory.fuse"))
    assert "gemv_bf16_decode -> layernorm_rows" in fuse and "96/96" in fuse


def test_branch_logic_with_a_supplied_bound(result):
    for cls, nodes in (("compute", ["compute.intensity", "compute.batch"]), ("latency", ["latency.parallelism"]),
                       ("communication", ["comm.overlap"]), ("memory", ["memory.quantize", "memory.fuse"])):
        chart = flowchart.build(with_bound(result, "gemv_bf16_decode", {"class": cls, "tier": "measured"}))
        assert kernel(chart, "gemv_bf16_decode")["path"][3:3 + len(nodes)] == nodes, cls


def test_missing_bound_degrades_to_measuring_with_ncu(result):
    gemv = kernel(flowchart.build(with_bound(result, "gemv_bf16_decode", None)), "gemv_bf16_decode")
    assert gemv["bound"] == "unknown" and gemv["path"][3] == "unknown.measure"
    assert "ncu -k regex:gemv_bf16_decode --set full -o gemv_bf16_decode <app>" in texts(gemv, "unknown.measure")[0]


@pytest.mark.parametrize("target_ms, met, end", [(0.05, False, "loop"), (0.5, True, "deploy")])
def test_target_verdict_from_the_recipe(result, tmp_path, target_ms, met, end):
    path = tmp_path / "r.toml"
    path.write_text(f'extends = "llm-decode"\n[targets]\ndecode_step_ms = {target_ms}\n')
    chart = flowchart.build(result, load_recipe(path))
    with sqlite3.connect(f"file:{BASELINE}?mode=ro", uri=True) as conn:
        steps = [r[0] for r in conn.execute("SELECT end - start FROM NVTX_EVENTS WHERE text = 'decode_step'")]
    assert chart["target"]["metric"] == "decode_step_ms"
    assert chart["target"]["measured"] == pytest.approx(statistics.median(steps) / 1e6)
    assert chart["target_met"] is met
    assert all(k["path"][-2:] == ["target", end] for k in chart["kernels"])


def test_dgx_spark_recipe_advises_nvfp4(result):
    gemv = kernel(flowchart.build(result, load_recipe("dgx-spark")), "gemv_bf16_decode")
    nvfp4 = texts(gemv, "memory.quantize")[0]
    assert nvfp4.startswith("NVFP4") and "72% fewer bytes" in nvfp4  # 4.5 of 16 bits per value kept


def test_text_and_markdown_render_the_tree(result):
    from traceview.report.markdown import to_markdown
    from traceview.report.terminal import to_text

    data = result.to_dict()
    text = to_text(data, 5)
    assert "Optimization flowchart" in text and "├─ Bottleneck type? -> memory" in text
    md = to_markdown(data, 5)
    assert md.index("## Findings (ranked by estimated gain)") < md.index("## Optimization flowchart")
    assert "3. Bottleneck type? -&gt; memory" in md and "-o gemv\\_bf16\\_decode &lt;app&gt;" in md
