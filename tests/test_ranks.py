"""Ranks on one clock: skew and stragglers, from one multi-GPU file and from split rank files."""

from __future__ import annotations

import shutil
import sqlite3

import polars as pl
import pytest

import traceview
from paths import H200
from traceview.analyses import ranks
from traceview.analyses.ranks import RankAlignmentError

NCCL_TP = H200 / "h200x2_nccl_tp_serial.sqlite"
SESSION_START = 1795902524443387462  # TARGET_INFO_SESSION_START_TIME.utcEpochNs of NCCL_TP


@pytest.fixture(scope="module")
def nccl_trace():
    return traceview.load(NCCL_TP)


@pytest.fixture(scope="module")
def device_skew(nccl_trace):
    return ranks.collective_skew(ranks.ranks_of_trace(nccl_trace))


def rank_file(tmp: str, keep_device: int, shift_ns: int, clock_error_ns: int = 0):
    """One process's view of the real 2-GPU run: only ``keep_device``'s GPU activity, with the
    profiler started ``shift_ns`` later (timestamps shifted, session start moved)."""
    path = f"{tmp}/rank{keep_device}.sqlite"
    shutil.copyfile(NCCL_TP, path)
    con = sqlite3.connect(path)
    for table in ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY", "CUPTI_ACTIVITY_KIND_MEMSET"):
        con.execute(f"DELETE FROM {table} WHERE deviceId != ?", (keep_device,))
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        cols = {r[1] for r in con.execute(f'PRAGMA table_info("{table}")')}
        if {"start", "end"} <= cols:
            con.execute(f'UPDATE "{table}" SET start = start - ?, "end" = "end" - ?', (shift_ns, shift_ns))
    con.execute("UPDATE TARGET_INFO_SESSION_START_TIME SET utcEpochNs = utcEpochNs + ?", (shift_ns + clock_error_ns,))
    con.commit()
    con.close()
    return traceview.load(path)


def test_session_start(nccl_trace):
    assert ranks.session_start_ns(nccl_trace) == SESSION_START


def test_devices_as_ranks_name_the_straggler(device_skew):
    assert device_skew.height == 199  # 196 all-reduce + all-gather + reduce-scatter + broadcast
    top = ranks.stragglers(device_skew).row(0, named=True)
    assert top["rank"] == 0 and top["last_pct"] > 95  # GPU 0 arrives last; GPU 1 waits inside its kernels
    assert 1_000 < top["med_lateness_ns"] < 20_000
    per_step = ranks.step_skew(device_skew)
    assert per_step.height == 24 and (per_step.get_column("collectives") == 8).all()


def test_split_rank_files_align_on_session_start(tmp_path, device_skew):
    r0 = rank_file(str(tmp_path), 0, 0)
    r1 = rank_file(str(tmp_path), 1, 123_456_789)
    aligned = ranks.align_ranks([r0, r1])
    assert aligned.select("rank", "file_index", "device_id").unique().sort("rank").rows() == [(0, 0, 0), (1, 1, 1)]
    assert aligned.filter(pl.col("rank") == 1).get_column("offset_ns").unique().to_list() == [123_456_789]
    skew = ranks.collective_skew(aligned)
    assert skew.select("operation", "seq", "skew_ns", "last_rank").equals(
        device_skew.select("operation", "seq", "skew_ns", "last_rank"))


def test_collective_alignment_corrects_clock_error(tmp_path, device_skew):
    r0 = rank_file(str(tmp_path), 0, 0)
    r1 = rank_file(str(tmp_path), 1, 5_000_000, clock_error_ns=2_000_000)  # node clocks 2 ms apart
    off = ranks.collective_skew(ranks.align_ranks([r0, r1]))
    assert ranks.stragglers(off).row(0, named=True)["rank"] == 1  # a 2 ms clock error names the wrong rank
    fixed = ranks.collective_skew(ranks.align_ranks([r0, r1], method="collective"))
    assert ranks.stragglers(fixed).row(0, named=True)["rank"] == 0
    diff = (fixed.get_column("skew_ns") - device_skew.get_column("skew_ns")).abs()
    assert diff.median() < 1_000


def test_rank_files_without_collectives():
    base, rerun = (traceview.load(H200 / f) for f in ("h200_baseline.sqlite", "h200_baseline_rerun.sqlite"))
    aligned = ranks.align_ranks([base, rerun])
    assert aligned.height == 0
    assert ranks.session_start_ns(rerun) - ranks.session_start_ns(base) == 4_761_607_867  # TARGET_INFO_SESSION_START_TIME of both files
    with pytest.raises(RankAlignmentError, match="no collective"):
        ranks.align_ranks([base, rerun], method="collective")
    with pytest.raises(RankAlignmentError, match="unknown alignment"):
        ranks.align_ranks([base], method="ntp")


def test_rank_skew_rule(device_skew):
    fired = traceview.analyze(traceview.load(NCCL_TP))
    found = [f for f in fired.findings if f["rule_id"] == "nccl.rank-skew"]
    assert len(found) == 1 and found[0]["subject"]["rank"] == 0 and found[0]["subject"]["device_id"] == 0
    assert "rank 0 (GPU 0)" in found[0]["subject"]["name"]
    # the stand-in kernels of h200x2_tp_serial do not wait for each other: no consistent straggler
    quiet = traceview.analyze(traceview.load(H200 / "h200x2_tp_serial.sqlite"))
    assert [f for f in quiet.findings if f["rule_id"] == "nccl.rank-skew"] == []
    assert quiet.extra["communication"]["skew"]["stragglers"][0]["last_pct"] < 75
