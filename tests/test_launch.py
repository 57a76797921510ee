"""Launch analysis and the launch/occupancy/tile rules on the real H200 and public traces."""

from __future__ import annotations

import pytest
from paths import H200, PUBLIC

import traceview
from traceview.analyses.launch import launch_shapes, wave_stats
from traceview.analyses.tiles import parse_tile, smaller_tiles
from traceview.api import AnalyzeOptions

LAUNCH_KEYS = {"grid", "block", "threads_per_block", "registers_per_thread", "shared_mem_bytes",
               "active_blocks_per_sm", "theoretical_occupancy", "occupancy_limiter", "waves", "tail_fraction"}
RULES = ["launch.*", "occupancy.*", "tile.*"]


def _analyze(name: str, hardware: str | None = None, folder=H200):
    trace = traceview.load(folder / name)
    return traceview.analyze(trace, options=AnalyzeOptions(hardware=hardware, select=RULES))


@pytest.fixture(scope="module")
def baseline():
    return _analyze("h200_baseline.sqlite")


@pytest.fixture(scope="module")
def regressed():
    return _analyze("h200_regressed.sqlite")


@pytest.fixture(scope="module")
def baseline_gb10():
    return _analyze("h200_baseline.sqlite", hardware="gb10")


def _launch(result, name):
    return result.extra["kernel_details"][name]["launch"]


def _fired(result, rule_id):
    return {f["subject"]["name"] for f in result.findings if f["rule_id"] == rule_id}


def test_every_kernel_gets_a_launch_entry_in_json(baseline):
    data = baseline.to_dict()
    for kernel in data["kernels"]:
        assert LAUNCH_KEYS <= kernel["launch"].keys(), kernel["name"]
    assert data["hardware"]["devices"][0]["key"] == "h200"
    assert data["hardware"]["devices"][0]["sources"]["sm_count"] == "trace: TARGET_INFO_GPU.smCount"


def test_shapes_are_grouped_from_the_kernel_frame(baseline_trace):
    shapes = launch_shapes(baseline_trace.kernels)
    assert shapes.get_column("instances").sum() == baseline_trace.kernels.height
    sgemm = shapes.filter(shapes["name"] == "sgemm_tile64x64").row(0, named=True)
    assert (sgemm["blocks"], sgemm["threads_per_block"], sgemm["shared_mem_bytes"]) == (1024, 256, 8448)


def test_baseline_launch_values(baseline):
    sgemm = _launch(baseline, "sgemm_tile64x64")
    assert (sgemm["occupancy_limiter"], sgemm["active_blocks_per_sm"], sgemm["theoretical_occupancy"]) == ("registers", 4, 0.5)
    assert sgemm["waves"] == pytest.approx(1024 / 528)  # README: 1.94 waves
    hog = _launch(baseline, "smem_hog_stencil")
    assert (hog["occupancy_limiter"], hog["active_blocks_per_sm"], hog["theoretical_occupancy"]) == ("shared_memory", 1, 0.125)
    tail = _launch(baseline, "tail_heavy_iter")
    assert (tail["slots_per_wave"], tail["full_waves"], tail["tail_blocks"]) == (264, 1, 11)
    assert tail["tail_fraction"] == pytest.approx(1 - 11 / 264)
    assert _launch(baseline, "reduce_small_grid")["small_grid"] is True
    assert _launch(baseline, "scale_odd_block")["block_multiple_of_warp"] is False


def test_regressed_big_tile_runs_in_less_than_one_wave(regressed):
    launch = _launch(regressed, "sgemm_tile128x128")
    assert launch["waves"] < 1 and launch["full_waves"] == 0
    assert launch["tile"]["text"] == "128x128"


def test_small_grid_fires_and_not(baseline, baseline_gb10):
    fired = _fired(baseline, "launch.small-grid")
    assert {"reduce_small_grid", "layernorm_rows"} <= fired
    assert not fired & {"stream_triad", "gemv_bf16_decode", "sgemm_tile64x64"}
    assert "layernorm_rows" not in _fired(baseline_gb10, "launch.small-grid")  # 64 blocks fill 48 SMs


def test_tail_effect_fires_and_not(baseline, baseline_gb10):
    assert _fired(baseline, "launch.tail-effect") == {"tail_heavy_iter"}
    assert "sgemm_tile64x64" in _fired(baseline_gb10, "launch.tail-effect")  # 1024 blocks at 192 per wave


def test_block_size_fires_and_not(baseline):
    assert _fired(baseline, "launch.block-size") == {"scale_odd_block"}


def test_occupancy_limited_fires_and_not(baseline):
    found = {f["subject"]["name"]: f for f in baseline.findings if f["rule_id"] == "occupancy.limited"}
    assert set(found) == {"sgemm_tile64x64", "smem_hog_stencil"}
    assert "registers" in found["sgemm_tile64x64"]["title"]
    assert "shared memory" in found["smem_hog_stencil"]["title"]
    assert "48 per thread" in found["sgemm_tile64x64"]["recommendation"]


def test_tile_oversized_fires_and_not(regressed, baseline):
    found = [f for f in regressed.findings if f["rule_id"] == "tile.oversized"]
    assert [f["subject"]["name"] for f in found] == ["sgemm_tile128x128"]
    assert "128x64" in found[0]["recommendation"]
    assert not _fired(baseline, "tile.oversized")  # sgemm_tile64x64: 1.94 waves, small tail


def test_findings_cite_sources_and_rank_by_gain(baseline):
    mine = [f for f in baseline.findings if f["rule_id"].split(".")[0] in {"launch", "occupancy", "tile"}]
    assert mine
    for f in mine:
        assert f["evidence"] and all(e["source"] for e in f["evidence"])
        sources = " ".join(e["source"] for e in f["evidence"])
        assert "CUPTI_ACTIVITY_KIND_KERNEL.gridX" in sources and ("hardware:" in sources)
    gains = [f["estimated_gain_ns"] for f in baseline.findings]
    assert gains == sorted(gains, reverse=True)
    assert baseline.findings[0]["subject"]["name"] == "reduce_small_grid"


def test_what_if_gb10(baseline_gb10):
    hw = baseline_gb10.extra["hardware"]
    assert hw["what_if"] == "gb10" and "GB10" in hw["note"]
    assert _launch(baseline_gb10, "stream_triad")["sm_count"] == 48
    assert _launch(baseline_gb10, "stream_triad")["what_if"] is True
    hog = [f for f in baseline_gb10.findings if f["rule_id"] == "occupancy.limited"
           and f["subject"]["name"] == "smem_hog_stencil"]
    assert hog and "cannot run" in hog[0]["message"] and hog[0]["severity"] == "high"


def test_several_shapes_and_devices():
    result = _analyze("h200x2_tp_serial.sqlite")
    launch = _launch(result, "gemv_bf16_decode")
    shapes = launch["launch_shapes"]
    assert {s["device_id"] for s in shapes} == {0, 1}
    assert launch["total_ns"] == max(s["total_ns"] for s in shapes)


def test_trace_without_gpu_info_is_not_applicable_unless_hardware_given():
    result = _analyze("GindaChen__nsys-ai__h100_2gpu_1s.sqlite", folder=PUBLIC)
    skipped = {s["rule_id"]: s["reason"] for s in result.extra["rules_not_applicable"]}
    assert "TARGET_INFO_GPU" in skipped["launch.small-grid"]
    assert any("TARGET_INFO_GPU" in w for w in result.warnings)
    with_hw = _analyze("GindaChen__nsys-ai__h100_2gpu_1s.sqlite", hardware="h100-sxm", folder=PUBLIC)
    assert with_hw.extra["hardware"]["devices"][0]["key"] == "h100-sxm"
    assert any("launch" in d for d in with_hw.extra["kernel_details"].values())


def test_wave_stats():
    assert wave_stats(275, 132, 2)["tail_blocks"] == 11
    assert wave_stats(264, 132, 2)["tail_fraction"] == 0.0
    assert wave_stats(16, 132, 16)["full_waves"] == 0


@pytest.mark.parametrize("name,text", [
    # names as they appear in the real traces in ../shared/traces (h200, AI-Profiler A100 export, kineto)
    ("sgemm_tile128x128", "128x128"),
    ("ampere_sgemm_32x32_sliced1x4_tn", "32x32"),
    ("ampere_scudnn_128x32_relu_small_nn_v1", "128x32"),
    ("void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_256x64_16x4_nn_align4>(T1::Params)", "256x64x16"),
    ("void cutlass_cudnn::Kernel<cutlass_tensorop_s1688fprop_optimized_tf32_128x64_16x6_nhwc>(T1::Params)", "128x64x16"),
    (("sm80_xmma_dgrad_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nhwc_tilesize128x128x16_stage4_warpsize2x2x1_g1_"
      "tensor16x8x8_execute_kernel_cudnn_infer"), "128x128x16"),
    (("_ZN19cutlass_cudnn_train6KernelINS_4conv6kernel23ImplicitGemmConvolutionINS1_11threadblock22ImplicitGemm"
      "MultistageINS_4gemm9GemmShapeILi64ELi128ELi32EEE"), "64x128x32"),
    # spellings from the issue
    ("volta_sgemm_tilesize64x256x8_nn", "64x256x8"),
    ("ampere_s16816gemm_fp16_128x64_ldg8_f2f_stages_64x3_nn", "128x64"),
    ("tile64x64", "64x64"),
])
def test_parse_tile(name, text):
    assert parse_tile(name).text == text


@pytest.mark.parametrize("name", ["stream_triad", "gemv_bf16_decode", "ncclDevKernel_AllReduce_Sum_f32_RING_LL",
                                  "void at::native::reduce_kernel<(int)512, (int)1>(T3)"])
def test_no_tile_in_plain_names(name):
    assert parse_tile(name) is None


def test_smaller_tiles_largest_first():
    assert [t.text for t in smaller_tiles(parse_tile("sgemm_tile128x128"))][:3] == ["128x64", "64x128", "64x64"]


def test_unknown_hardware_is_a_one_line_cli_error():
    from typer.testing import CliRunner

    from traceview.cli import app

    result = CliRunner().invoke(app, ["analyze", str(H200 / "h200_baseline.sqlite"), "--hardware", "h20"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "unknown GPU 'h20'" in result.output
