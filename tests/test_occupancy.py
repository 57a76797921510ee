"""The occupancy calculator against the CUDA occupancy API (occupancy_truth.json) and Nsight Compute."""

from __future__ import annotations

import csv
import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import H200, NCU

from traceview.hardware import cc_table, find_gpu, gpu_spec_for_device, occupancy
from traceview.hardware.occupancy import max_registers_for, max_shared_mem_for

TRUTH = json.loads((H200 / "occupancy_truth.json").read_text())
LIMIT_METRICS = {"warps": "launch__occupancy_limit_warps", "blocks": "launch__occupancy_limit_blocks",
                 "registers": "launch__occupancy_limit_registers",
                 "shared_memory": "launch__occupancy_limit_shared_mem"}


def _ncu_rows() -> list[dict[str, str]]:
    """Data rows of the ncu raw CSV (row 0 names, row 1 units)."""
    with (NCU / "ncu_baseline_raw.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    return [dict(zip(header, r)) for r in rows[2:]]


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _kbytes(text: str) -> int:
    return round(_num(text) * 1000)  # ncu "Kbyte" is 1000 bytes


NCU_ROWS = _ncu_rows()


@pytest.mark.parametrize("entry", TRUTH, ids=[t["kernel"] for t in TRUTH])
def test_matches_cuda_occupancy_api(entry, baseline_trace):
    """cuOccupancyMaxActiveBlocksPerMultiprocessor on the H200, for every kernel in the truth file."""
    spec = gpu_spec_for_device(baseline_trace, 0)
    assert spec.sm_count == entry["sm_count"]
    occ = occupancy(spec.limits, entry["block_threads"], entry["registers_per_thread"],
                    entry["static_smem"] + entry["dynamic_smem"])
    assert occ.active_blocks_per_sm == entry["active_blocks_per_sm"]
    assert occ.theoretical_occupancy == pytest.approx(entry["theoretical_occupancy"], abs=5e-5)


def test_truth_limiters():
    limits = find_gpu("h200").limits
    by_name = {t["kernel"]: t for t in TRUTH}

    def limiter(name: str) -> str:
        t = by_name[name]
        return occupancy(limits, t["block_threads"], t["registers_per_thread"],
                         t["static_smem"] + t["dynamic_smem"]).limiter

    assert limiter("smem_hog_stencil") == "shared_memory"
    assert limiter("sgemm_tile64x64") == "registers"
    assert limiter("sgemm_tile128x128") == "registers"
    assert limiter("stream_triad") == "warps"


@pytest.mark.parametrize("row", NCU_ROWS, ids=[f"{r['ID']}-{r['Kernel Name']}" for r in NCU_ROWS])
def test_block_limits_equal_nsight_compute(row):
    """Per-resource block limits equal launch__occupancy_limit_* under the carveout ncu reports."""
    occ = occupancy(
        find_gpu("h200").limits, int(_num(row["launch__block_size"])), int(_num(row["launch__registers_per_thread"])),
        _kbytes(row["launch__shared_mem_per_block_static"]) + _kbytes(row["launch__shared_mem_per_block_dynamic"]),
        carveout_bytes=_kbytes(row["launch__shared_mem_config_size"]))
    for resource, metric in LIMIT_METRICS.items():
        assert occ.block_limits[resource] == int(_num(row[metric])), resource
    assert occ.shared_mem_per_block == _kbytes(row["launch__shared_mem_per_block_allocated"])
    blocks = int(_num(row["launch__grid_size"]))
    waves = blocks / (int(_num(row["launch__sm_count"])) * occ.active_blocks_per_sm)
    assert round(waves, 2) == pytest.approx(_num(row["launch__waves_per_multiprocessor"]))


def test_trace_carveout_is_the_one_ncu_saw(baseline_trace):
    """CUPTI's sharedMemoryExecuted is the driver's carveout choice (ncu launch__shared_mem_config_size)."""
    traced = (baseline_trace.kernels.group_by("name").agg(pl.col("shared_mem_executed").unique())
              .filter(pl.col("shared_mem_executed").list.len() == 1))
    carveout = {r["name"]: r["shared_mem_executed"][0] for r in traced.iter_rows(named=True)}
    checked = 0
    for row in NCU_ROWS:
        if row["Kernel Name"] in carveout:
            assert carveout[row["Kernel Name"]] == _kbytes(row["launch__shared_mem_config_size"])
            checked += 1
    assert checked >= 8


def test_invalid_launches_fit_nowhere():
    limits = find_gpu("h200").limits
    assert occupancy(limits, 2048, 32, 0).active_blocks_per_sm == 0  # > 1024 threads
    assert occupancy(limits, 256, 32, limits.max_shared_mem_per_block_optin + 1).limiter == "shared_memory"
    assert occupancy(limits, 1024, 255, 0).active_blocks_per_sm == 0  # 255 x 1024 > 64K registers
    gb10 = find_gpu("gb10").limits
    assert occupancy(gb10, 256, 16, 204800).active_blocks_per_sm == 0  # smem_hog_stencil does not fit a GB10


def test_register_and_shared_memory_targets():
    limits = find_gpu("h200").limits
    regs = max_registers_for(limits, 256, 5)
    assert occupancy(limits, 256, regs, 0).active_blocks_per_sm >= 5
    assert occupancy(limits, 256, regs + 1, 0).active_blocks_per_sm < 5
    smem = max_shared_mem_for(limits, 2)
    assert occupancy(limits, 256, 16, smem).active_blocks_per_sm == 2
    assert occupancy(limits, 256, 16, smem + limits.shared_mem_alloc_unit).active_blocks_per_sm == 1


CCS = sorted(cc_table())


@settings(max_examples=300, deadline=None)
@given(cc=st.sampled_from(CCS), threads=st.integers(1, 1024), regs=st.integers(0, 254),
       smem=st.integers(0, 100_000), extra_regs=st.integers(1, 64), extra_smem=st.integers(1, 50_000))
def test_more_resources_never_raise_occupancy(cc, threads, regs, smem, extra_regs, extra_smem):
    limits = cc_table()[cc]
    base = occupancy(limits, threads, regs, smem)
    assert occupancy(limits, threads, min(regs + extra_regs, 255), smem).active_blocks_per_sm <= base.active_blocks_per_sm
    assert occupancy(limits, threads, regs, smem + extra_smem).active_blocks_per_sm <= base.active_blocks_per_sm
    assert base.active_blocks_per_sm == min(base.block_limits.values())
    assert base.active_blocks_per_sm <= limits.max_blocks_per_sm
    assert base.active_warps_per_sm <= limits.max_warps_per_sm
    assert 0.0 <= base.theoretical_occupancy <= 1.0


@settings(max_examples=200, deadline=None)
@given(cc=st.sampled_from(CCS), threads=st.integers(1, 1024), regs=st.integers(0, 255),
       smem=st.integers(0, 60_000), carveout_index=st.integers(0, 9))
def test_a_smaller_carveout_never_raises_occupancy(cc, threads, regs, smem, carveout_index):
    limits = cc_table()[cc]
    carveouts = [c for c in limits.shared_mem_carveouts if c > 0]
    carveout = carveouts[carveout_index % len(carveouts)]
    assert (occupancy(limits, threads, regs, smem, carveout_bytes=carveout).active_blocks_per_sm
            <= occupancy(limits, threads, regs, smem).active_blocks_per_sm)
