"""Nsight Compute CSV exports (raw and details pages) and their join to trace kernels."""

from __future__ import annotations

import csv
import subprocess
import sys

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paths import H200, NCU
from traceview.analyses.ncu_join import match_launches
from traceview.errors import InputError
from traceview.ingest.ncu import NcuExportError, read_ncu, read_ncu_csv, unit_factor

RAW, DETAILS = NCU / "ncu_baseline_raw.csv", NCU / "ncu_baseline_details.csv"
MiB = 1 << 20


@pytest.fixture(scope="module")
def raw():
    return read_ncu_csv(RAW)


def _raw_rows() -> list[dict[str, str]]:
    with RAW.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows[1:]  # row 0 is the units row


def test_raw_page_one_row_per_launch_in_order(raw):
    rows = _raw_rows()
    assert raw.launches.height == len(rows) == 34
    assert raw.launches.get_column("kernel_name").to_list() == [r["Kernel Name"] for r in rows]
    gemv = raw.launches.filter(pl.col("kernel_name") == "gemv_bf16_decode").row(0, named=True)
    assert (gemv["grid_x"], gemv["grid_y"], gemv["block_x"]) == (1024, 1, 256)


def test_raw_units_are_applied(raw):
    rows = _raw_rows()
    first = raw.launches.row(0, named=True)
    assert first["duration_ns"] == pytest.approx(float(rows[0]["gpu__time_duration.sum"]) * 1e3)  # unit row: us
    tbps = float(rows[0]["dram__bytes.sum.per_second"])  # unit row: Tbyte/s
    assert first["dram_bw"] == pytest.approx(tbps * 1e12)


def test_measured_bytes_and_flops_match_the_program(raw):
    """README: gemv streams 128 MiB bf16 per call, stream_triad 768 MiB; sgemm is N=2048 (2 N^3 FLOPs)."""
    by = raw.launches.group_by("kernel_name").agg(pl.col("dram_bytes").mean(), pl.col("fp32_flops").mean())
    get = {r["kernel_name"]: r for r in by.iter_rows(named=True)}
    assert get["gemv_bf16_decode"]["dram_bytes"] == pytest.approx(128 * MiB, rel=0.05)
    assert get["stream_triad"]["dram_bytes"] == pytest.approx(768 * MiB, rel=0.05)
    assert get["sgemm_tile64x64"]["fp32_flops"] == pytest.approx(2 * 2048**3, rel=0.01)


def test_peaks_from_ncu_match_the_trace(raw):
    peak_bw = raw.launches.get_column("peak_dram_bw").mean()
    assert peak_bw == pytest.approx(4814304000000.0, rel=0.01)  # TARGET_INFO_GPU.memoryBandwidth of the H200 traces
    assert raw.metrics["sm_pct"] == "sm__throughput.avg.pct_of_peak_sustained_elapsed"
    assert raw.metrics["mem_pct"] == "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed"


def test_details_page_agrees_with_raw_page(raw):
    details = read_ncu_csv(DETAILS)
    assert details.launches.height == raw.launches.height
    both = raw.launches.join(details.launches, on="ncu_id", suffix="_d")
    for col in ("sm_pct", "mem_pct", "dram_pct", "achieved_occ_pct", "theoretical_occ_pct"):
        diff = (both.get_column(col) - both.get_column(f"{col}_d")).abs().max()
        assert diff < 0.01, col  # details rounds to 2 decimals
    assert (both.get_column("duration_ns") - both.get_column("duration_ns_d")).abs().max() < 10  # ns
    assert details.metrics["sm_pct"] == "GPU Speed Of Light Throughput: Compute (SM) Throughput"


def test_raw_and_details_merge_per_launch():
    merged = read_ncu([RAW, DETAILS])
    assert merged.launches.height == 34
    assert merged.launches.get_column("fp32_flops").null_count() == 0  # from raw
    assert len(merged.files) == 2


def test_join_by_name_and_shape(baseline_result):
    matched, unmatched = match_launches(read_ncu_csv(RAW).launches, baseline_result.kernel_shapes)
    assert matched.height == 34 and unmatched.height == 0


def test_shape_mismatch_stays_unmatched():
    import traceview

    regressed = traceview.analyze(traceview.load(H200 / "h200_regressed.sqlite"))
    matched, unmatched = match_launches(read_ncu_csv(RAW).launches, regressed.kernel_shapes)
    # regressed: reduce_small_grid runs 4 blocks (ncu profiled 16), sgemm_tile64x64 is gone
    assert sorted(unmatched.get_column("kernel_name").unique().to_list()) == ["reduce_small_grid", "sgemm_tile64x64"]
    assert matched.height + unmatched.height == 34


@pytest.mark.parametrize("content,needle", [
    ("hello world\n", "not an Nsight Compute CSV"),
    ('"ID","Kernel Name"\n"0","k"\n', "missing column"),
    ('"ID","Kernel Name","Grid Size","Block Size","foo"\n"","","","",""\n"0","k","(1, 1, 1)","(32, 1, 1)","1"\n',
     "no throughput metrics"),
    ('"ID","Kernel Name","Grid Size","Block Size","sm__throughput.avg.pct_of_peak_sustained_elapsed"\n', "no profiled"),
])
def test_bad_csv_is_a_one_line_input_error(tmp_path, content, needle):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(NcuExportError, match=needle) as info:
        read_ncu_csv(path)
    assert isinstance(info.value, InputError) and info.value.exit_code == 2


def test_cli_bad_ncu_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01 not a csv")
    for arg in (str(bad), str(tmp_path / "missing.csv"), str(H200 / "h200_baseline.sqlite")):
        proc = subprocess.run([sys.executable, "-m", "traceview", "analyze", str(H200 / "h200_baseline.sqlite"),
                               "--ncu", arg], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("traceview: error:") and "Traceback" not in proc.stderr


@given(st.sampled_from(["", "K", "M", "G", "T"]), st.sampled_from(["byte", "byte/s", "byte/cycle", "hz"]))
def test_unit_prefixes(prefix, base):
    scale = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[prefix]
    assert unit_factor(prefix + base) == scale
    assert unit_factor("us", time_to_ns=True) == 1e3 and unit_factor("ms", time_to_ns=True) == 1e6
