"""``load(columns="analysis")`` leaves out the model columns no analysis reads
(``model.columns.NOT_ANALYZED``): checked against the source and against the full load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

import traceview
from traceview.model.columns import NOT_ANALYZED
from tests.paths import H200, PUBLIC

PACKAGE = Path(traceview.__file__).parent
READERS = {"ingest", "model"}  # the only places that may name the left-out columns


def test_no_analysis_reads_a_left_out_column() -> None:
    left_out = sorted({c for cols in NOT_ANALYZED.values() for c in cols})
    pattern = re.compile(r"\b(" + "|".join(left_out) + r")\b")
    readers = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if p.relative_to(PACKAGE).parts[0] not in READERS and pattern.search(p.read_text())]
    assert readers == [], f"these modules read a column that load(columns='analysis') leaves out: {readers}"


@pytest.mark.parametrize("path", [H200 / "h200_baseline.sqlite", H200 / "h200x2_nccl_tp_serial.sqlite",
                                  PUBLIC / "hpcgroup__pipit__saxpy-mpi-cuda_nsys_perlmutter0.sqlite",
                                  PUBLIC / "GindaChen__nsys-ai__h100_2gpu_1s.sqlite"], ids=lambda p: p.stem)
def test_projected_load_gives_the_same_analysis(path: Path) -> None:
    full, projected = traceview.load(path), traceview.load(path, columns="analysis")
    for name, skipped in NOT_ANALYZED.items():
        whole, narrow = getattr(full, name), getattr(projected, name)
        assert skipped <= set(whole.columns) and not skipped & set(narrow.columns)
        assert_frame_equal(whole.drop(sorted(skipped)), narrow)
    assert traceview.analyze(projected).to_dict() == traceview.analyze(full).to_dict()


def test_projected_frames_are_cached_apart(tmp_path: Path) -> None:
    path = H200 / "h200_baseline.sqlite"
    narrow = traceview.load(path, cache_dir=tmp_path, columns="analysis").kernels
    cached = traceview.load(path, cache_dir=tmp_path).kernels  # the full frame, not the cached narrow one
    assert "context_id" in cached.columns and "context_id" not in narrow.columns
    assert_frame_equal(traceview.load(path, cache_dir=tmp_path, columns="analysis").kernels, narrow)


def test_unknown_projection_is_refused() -> None:
    with pytest.raises(ValueError, match="columns must be"):
        traceview.load(H200 / "h200_baseline.sqlite", columns="some")
