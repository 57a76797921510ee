"""LLM-inference rules and what-ifs on the real H200 traces (issue 11)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import traceview
from traceview.analyses import projection
from traceview.analyses.deployment import link_named, measured_step, target_for

from paths import H200, NCU, PUBLIC

NCU_RAW = NCU / "ncu_baseline_raw.csv"


def analyze(name: str, **options):
    folder = PUBLIC if "__" in name else H200
    return traceview.analyze(traceview.load(folder / name), options=traceview.AnalyzeOptions(**options))


@pytest.fixture(scope="module")
def baseline():
    return analyze("h200_baseline.sqlite", ncu=[NCU_RAW])


@pytest.fixture(scope="module")
def tp_serial():
    return analyze("h200x2_tp_serial.sqlite")


def ids(result, rule_id):
    return [f for f in result.findings if f["rule_id"] == rule_id]


def skipped(result):
    return {s["rule_id"] for s in result.extra["rules_not_applicable"]}


def test_host_sync_per_token_fires_for_the_per_step_d2h_copy(baseline):
    (f,) = ids(baseline, "llm.host-sync-per-token")
    assert f["subject"]["name"] == "decode_step"
    assert "24 of 24" in f["message"] and "cuMemcpyDtoH_v2" in f["message"]
    median = next(e["value"] for e in f["evidence"] if e["name"].startswith("median blocked"))
    api = baseline.trace.api.filter(baseline.trace.api["name"] == "cuMemcpyDtoH_v2")
    assert median == pytest.approx(float(api["duration"].median()), rel=0.05)  # the sampler's synchronous copy


def test_host_sync_per_token_quiet_without_decode_steps():
    r = analyze("NVIDIA__Fuser__df8f397_report1.sqlite")
    assert not ids(r, "llm.host-sync-per-token") and "llm.host-sync-per-token" in skipped(r)


def test_unfused_elementwise_names_layernorm_gelu_chain(baseline):
    (f,) = ids(baseline, "llm.unfused-elementwise")
    assert f["subject"]["chain"] == ["layernorm_rows", "gelu_inplace"]
    # fused estimate = the longer member (layernorm) per occurrence; saving = the gelu time
    gelu = baseline.kernels.filter(baseline.kernels["name"] == "gelu_inplace")["total_ns"][0]
    assert f["estimated_gain_ns"] == gelu


def test_unfused_elementwise_does_not_fire_on_tp_trace(tp_serial):
    assert not ids(tp_serial, "llm.unfused-elementwise")


def test_unfused_attention_not_applicable_without_softmax(baseline):
    assert "llm.unfused-attention" in skipped(baseline) and not ids(baseline, "llm.unfused-attention")


def test_unfused_attention_fires_on_cublas_gemm_softmax_gemm():
    """The public 2 x H100 trace computes attention as cuBLAS GEMM -> softmax_warp_forward -> GEMM."""
    r = analyze("GindaChen__nsys-ai__h100_2gpu_1s.sqlite")
    found = ids(r, "llm.unfused-attention")
    assert found, r.extra["rules_not_applicable"]
    top = found[0]
    assert "softmax_warp_forward" in top["subject"]["name"]
    assert top["subject"]["sequence"].count("gemm") >= 2
    softmax_ns = next(e["value"] for e in top["evidence"] if e["name"] == "softmax time")
    assert top["estimated_gain_ns"] == softmax_ns > 0


def test_unfused_attention_quiet_when_softmax_is_not_between_gemms():
    r = analyze("openhackathons-org__AI-Profiler__baseline_nvtx.CONVERTED.sqlite")  # MNIST: log_softmax at the end
    assert not ids(r, "llm.unfused-attention")


def test_no_cuda_graphs_fires_on_tp_decode_not_on_baseline(baseline, tp_serial):
    (f,) = ids(tp_serial, "llm.no-cuda-graphs")
    d = tp_serial.extra["llm"]["decode"]
    assert d["launches_per_step"] == 24 and d["graphed_steps"] == 0
    assert f["estimated_gain_ns"] == pytest.approx(d["gap_ns_per_step"] * 24)
    assert not ids(baseline, "llm.no-cuda-graphs")  # long kernels keep the GPU busy: gaps are 2% of a step


def test_decode_small_batch(baseline, tp_serial):
    (f,) = ids(tp_serial, "llm.decode-small-batch")
    assert "gemv_bf16_decode" in f["message"]
    assert not ids(baseline, "llm.decode-small-batch")  # reduce_small_grid dominates the baseline step


def test_kv_cache_pressure_quiet_by_default_fires_with_recipe_threshold(baseline):
    assert not ids(baseline, "llm.kv-cache-pressure")
    r = analyze("h200_baseline.sqlite", thresholds={"llm.kv-cache-pressure": {"max_share": 0.001}})
    (f,) = ids(r, "llm.kv-cache-pressure")
    weights = next(e["value"] for e in f["evidence"] if e["name"] == "weights-like bytes")
    assert weights == baseline.trace.memcpy.filter(baseline.trace.memcpy["operation"] == "[CUDA memcpy HtoD]")[
        "bytes"].sum()


def test_quantization_whatif_from_gemv_bytes(baseline):
    d = baseline.extra["llm"]["decode"]
    gemv = next(k for k in d["kernels"] if k["name"] == "gemv_bf16_decode")
    assert gemv["launches_per_step"] == 4 and "ncu" in gemv["bytes_source"]
    assert gemv["bytes_per_launch"] == pytest.approx(128 * 2**20, rel=0.06)  # 128 MiB bf16 per call
    q = {x["format"]: x for x in d["quantization"]}
    step, w = d["gpu_ns_per_step"], gemv["ns_per_step"]
    assert q["fp8"]["projected_step_ns"] == pytest.approx(step - w + w * 0.5)
    assert q["nvfp4"]["projected_step_ns"] == pytest.approx(step - w + w * 4.5 / 16)
    assert q["fp8"]["projected_weight_bytes_per_step"] == pytest.approx(gemv["bytes_per_step"] * 0.5)


def test_projection_arithmetic_by_hand():
    step = projection.DecodeStep(step_ns=1_000_000, weight_ns=800_000, weight_bytes=2e9, weight_bytes_source="x",
                                 host_ns=10_000, allreduces_per_step=64, allreduce_bytes=16_384,
                                 allreduce_overhead_ns=5_000, source_bw=4e12, others=[(200_000, "latency", None)])
    target = projection.Target("T", dram_bytes_per_s=273e9, memory_bytes=128e9, achievable_share=0.5, source="s")
    link = projection.Link("roce200", 25e9, 5_000, "s")
    one = projection.project_config(step, target, link)
    weight = 2e9 / (0.5 * 273e9) * 1e9
    assert one["step_ns"] == pytest.approx(weight + 200_000 + 10_000)
    assert one["tokens_per_s"] == pytest.approx(1e9 / one["step_ns"])
    tp2 = projection.project_config(step, target, link, tp=2)
    ar = 5_000 + 2 * 1 * 5_000 + 2 * 1 / 2 * 16_384 / 25e9 * 1e9  # ring all-reduce, n = 2
    assert tp2["breakdown_ns"]["all-reduce"] == pytest.approx(64 * ar)
    assert tp2["step_ns"] == pytest.approx(weight / 2 + 100_000 + 64 * ar + 10_000)
    pp2 = projection.project_config(step, target, link, pp=2, microbatches=4)
    assert pp2["pipeline_bubble"] == pytest.approx(1 / 5)
    assert pp2["tokens_per_s"] == pytest.approx(1e9 / pp2["step_ns"] * 2 * 4 / 5)
    big = projection.project_config(step, target, link, weights_bytes_total=200e9)
    assert not big["fits"] and big["limited_by"] == "memory capacity"
    assert projection.project_config(step, target, link, tp=2, weights_bytes_total=200e9)["fits"]


def test_tp_trace_feeds_measured_allreduce_cost(tp_serial):
    step = measured_step(tp_serial)
    per_dev = tp_serial.extra["communication"]["steps"]["per_device"]
    dev = tp_serial.extra["llm"]["decode"]["device_id"]
    row = next(r for r in per_dev if r["device_id"] == dev)
    assert step.allreduces_per_step == 8 == round(row["allreduce_count"])
    assert step.allreduce_bytes == 32768  # the partial sums copied to the peer
    assert step.allreduce_overhead_ns == pytest.approx(row["comm_ns"] / 8 - 32768 / 450e9 * 1e9)
    table = projection.project(step, target_for("gb10", None), link_named("roce200"), nodes=[1, 2, 4])
    assert [c["config"] for c in table["configs"]] == ["single node", "TP2", "PP2", "TP4", "PP4"]
    assert any("tensor-parallel over 2 GPUs" in a for a in table["assumptions"])


def test_project_cli_prints_table_with_assumptions():
    proc = subprocess.run([sys.executable, "-m", "traceview", "project", str(H200 / "h200_baseline.sqlite"),
                           "--hardware", "gb10", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["estimate"] is True and data["target"].startswith("NVIDIA GB10")
    assert [c["nodes"] for c in data["configs"]] == [1, 2, 2, 4, 4]
    assert any("55-60%" in a for a in data["assumptions"])
    bad = subprocess.run([sys.executable, "-m", "traceview", "project", str(PUBLIC / "GindaChen__nsys-ai__mock.sqlite")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no decode-step NVTX ranges" in bad.stderr and "Traceback" not in bad.stderr


def test_html_report_shows_the_projection_table(baseline):
    from traceview.report.html import render_html

    page = render_html(baseline)
    assert 'id="tv-llm-projection"' in page and "Deployment projection on NVIDIA GB10" in page
    proj = baseline.extra["llm"]["projection"]
    assert [c["config"] for c in proj["configs"]] == ["single node", "TP2", "PP2", "TP4", "PP4"]
    for c in proj["configs"]:
        assert f"{c['tokens_per_s']:.1f}" in page
