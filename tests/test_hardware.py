"""Hardware table, trace-derived specs and the `hw` CLI, checked against real TARGET_INFO_GPU rows."""

from __future__ import annotations

import json

import pytest
from paths import H200, PUBLIC
from typer.testing import CliRunner

import traceview
from traceview.cli import app
from traceview.errors import TraceviewError
from traceview.hardware import HardwareError, cc_table, find_gpu, gpu_spec_for_device, list_gpus

REQUIRED = {"gb10", "h200", "h100-sxm", "h100-pcie", "a100-40gb", "a100-80gb", "l40s", "rtx4090", "rtx5090",
            "b200", "gb200", "v100"}
CITED_FIELDS = ("compute_capability", "sm_count", "dram_bandwidth_bytes_per_s", "memory_bytes", "l2_bytes",
                "peak_flops", "limits")
# exports whose TARGET_INFO_GPU carries per-SM limits, one per compute capability
TRACED_LIMITS = {
    "9.0": H200 / "h200_baseline.sqlite",
    "8.6": PUBLIC / "GindaChen__nsys-ai__mock.sqlite",
    "8.0": PUBLIC / "hpcgroup__pipit__saxpy-mpi-cuda_nsys_perlmutter0.sqlite",
    "7.0": PUBLIC / "trixi-gpu__TrixiCUDA.jl__profile_report1.sqlite",
}


def test_table_has_required_gpus_each_value_cited():
    gpus = {g.key: g for g in list_gpus()}
    assert REQUIRED <= gpus.keys()
    for gpu in gpus.values():
        assert gpu.sm_count > 0 and gpu.dram_bandwidth_bytes_per_s > 0 and gpu.l2_bytes > 0, gpu.key
        assert gpu.compute_capability in cc_table(), gpu.key
        for field in CITED_FIELDS:
            assert not gpu.source(field).startswith("hardware table entry"), (gpu.key, field)  # a real citation


def test_gb10_is_dgx_spark():
    gb10 = find_gpu("gb10")
    assert (gb10.compute_capability, gb10.sm_count) == ("12.1", 48)
    assert gb10.dram_bandwidth_bytes_per_s == 273e9
    assert gb10.memory_bytes == 128 * 2**30
    assert find_gpu("NVIDIA GB10").key == "gb10"


@pytest.mark.parametrize("name,key", [("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100-sxm"),
                                      ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
                                      ("NVIDIA A100-SXM4-80GB", "a100-80gb"), ("Tesla V100-SXM2-16GB", "v100"),
                                      ("NVIDIA GB200", "gb200"), ("NVIDIA B200", "b200"), ("H100_PCIE", "h100-pcie")])
def test_find_gpu_by_device_name(name, key):
    assert find_gpu(name).key == key


def test_unknown_gpu_is_one_line_error_with_close_keys():
    with pytest.raises(HardwareError) as err:
        find_gpu("h20")
    assert isinstance(err.value, TraceviewError) and err.value.exit_code == 2
    message = str(err.value)
    assert "\n" not in message and "h200" in message


@pytest.mark.parametrize("cc", sorted(TRACED_LIMITS))
def test_cc_table_matches_traced_device_limits(cc):
    """The per-cc limits equal what the driver reported in real captures (TARGET_INFO_GPU)."""
    row = traceview.load(TRACED_LIMITS[cc]).gpus.row(0, named=True)
    assert row["compute_capability"] == cc
    limits = cc_table()[cc]
    assert limits.max_warps_per_sm == row["max_warps_per_sm"]
    assert limits.max_blocks_per_sm == row["max_blocks_per_sm"]
    assert limits.registers_per_sm == row["max_registers_per_sm"]
    assert limits.shared_mem_per_sm == row["max_shared_mem_per_sm"]
    assert limits.max_shared_mem_per_block_optin == row["max_shared_mem_per_block_optin"]


def test_trace_values_win_over_the_table(baseline_trace):
    spec = gpu_spec_for_device(baseline_trace, 0)
    row = baseline_trace.gpus.row(0, named=True)
    assert spec.key == "h200" and spec.origin == "trace+table"
    assert spec.dram_bandwidth_bytes_per_s == row["memory_bandwidth_bytes_per_s"] != find_gpu("h200").dram_bandwidth_bytes_per_s
    assert spec.sm_count == row["sm_count"] == 132
    assert spec.source("dram_bandwidth_bytes_per_s") == "trace: TARGET_INFO_GPU.memoryBandwidth"
    assert spec.source("limits.max_warps_per_sm") == "trace: TARGET_INFO_GPU.maxWarpsPerSm"
    assert spec.peak_flops == find_gpu("h200").peak_flops  # not in the trace: from the table


def test_gpu_missing_from_table_falls_back_to_compute_capability():
    trace = traceview.load(PUBLIC / "GindaChen__nsys-ai__mock.sqlite")  # GeForce RTX 3080, not in the table
    spec = gpu_spec_for_device(trace, 0)
    assert "compute-capability fallback" in spec.origin
    assert (spec.compute_capability, spec.sm_count, spec.limits.max_warps_per_sm) == ("8.6", 68, 48)
    assert "8.6" in spec.source("limits")


def test_table_fills_what_the_trace_lacks():
    trace = traceview.load(PUBLIC / "openhackathons-org__gpubootcamp__jacobi_memcpy_nvlink_report.CONVERTED.sqlite")
    assert trace.gpus.row(0, named=True)["sm_count"] is None  # nsys 2020.5 left smCount NULL
    spec = gpu_spec_for_device(trace, 0)
    assert (spec.key, spec.sm_count, spec.compute_capability) == ("v100", 80, "7.0")
    assert "whitepaper" in spec.source("sm_count")


def test_no_target_info_needs_override():
    trace = traceview.load(PUBLIC / "GindaChen__nsys-ai__h100_2gpu_1s.sqlite")  # TARGET_INFO_GPU removed
    with pytest.raises(HardwareError, match="--hardware"):
        gpu_spec_for_device(trace, 0)
    spec = gpu_spec_for_device(trace, 0, override="h100-sxm")
    assert spec.sm_count == 132 and "what-if" in spec.origin


def test_cli_hw_list_and_show():
    runner = CliRunner()
    listed = runner.invoke(app, ["hw", "list"])
    assert listed.exit_code == 0
    assert all(key in listed.stdout for key in REQUIRED)
    shown = runner.invoke(app, ["hw", "show", "gb10", "--format", "json"])
    assert shown.exit_code == 0
    data = json.loads(shown.stdout)
    assert data["sm_count"] == 48 and data["limits"]["max_warps_per_sm"] == 48 and data["sources"]["sm_count"]
    traced = runner.invoke(app, ["hw", "show", "--trace", str(H200 / "h200_baseline.sqlite")])
    assert traced.exit_code == 0 and "trace: TARGET_INFO_GPU.smCount" in traced.stdout


def test_cli_hw_show_unknown_is_one_line_exit_2():
    result = CliRunner().invoke(app, ["hw", "show", "not-a-gpu"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "unknown GPU" in result.output
