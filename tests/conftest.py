"""Shared fixtures: the real traces in ../shared/traces (read-only) and sample_traces/."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from paths import ALL_EXPORTS, H200, SAMPLES, SHARED  # noqa: E402


def pytest_configure(config):
    if not (SHARED / "h200" / "h200_baseline.sqlite").exists():
        raise pytest.UsageError(f"real traces not found at {SHARED}: check out next to shared/ "
                                "or set TRACEVIEW_SHARED to the folder that holds traces/")


@pytest.fixture(scope="session")
def baseline_path() -> Path:
    return H200 / "h200_baseline.sqlite"


@pytest.fixture(scope="session")
def baseline_trace(baseline_path):
    import traceview

    return traceview.load(baseline_path)


@pytest.fixture(scope="session")
def baseline_result(baseline_trace):
    import traceview

    return traceview.analyze(baseline_trace)


def _digest(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def traces_are_left_alone():
    """Fail the session if any test changed a trace it was given."""
    paths = ALL_EXPORTS + sorted(SAMPLES.glob("*.sqlite"))
    before = _digest(paths)
    yield
    assert _digest(paths) == before, "a test modified a trace file"
