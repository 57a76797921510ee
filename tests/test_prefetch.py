"""Trace.prefetch: frames load in a background thread, each exactly once, equal to a plain load;
a failure in the background surfaces on the caller's own access, as a one-line error."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from paths import H200, PUBLIC
from polars.testing import assert_frame_equal

import traceview
from traceview.errors import CorruptExport, NoCudaActivity
from traceview.ingest import tables

NAMES = ("kernels", "memcpy", "memset", "api", "nvtx")


def test_prefetched_frames_load_once_and_equal_plain_loads(monkeypatch) -> None:
    path = H200 / "h200x2_nccl_tp_serial.sqlite"
    plain = traceview.load(path, columns="analysis")
    expected = {n: getattr(plain, n) for n in NAMES}
    calls: dict[str, int] = {}
    gate = threading.Event()
    for name in NAMES:
        real = getattr(tables, f"read_{name}")

        def counted(conn, info, _real=real, _name=name, **kw):
            calls[_name] = calls.get(_name, 0) + 1
            if _name == "api":
                gate.wait(10)  # the caller asks for `api` while the background thread is still reading it
            return _real(conn, info, **kw)

        counted.__name__ = f"read_{name}"
        monkeypatch.setattr(tables, f"read_{name}", counted)
    trace = traceview.load(path, columns="analysis")
    thread = trace.prefetch("memcpy", "memset", "api", "nvtx")
    kernels = trace.kernels  # the caller's own load runs beside the background one
    timer = threading.Timer(0.2, gate.set)
    timer.start()
    got = {n: getattr(trace, n) for n in NAMES}
    thread.join(10)
    timer.cancel()
    assert not thread.is_alive() and calls == dict.fromkeys(NAMES, 1)
    assert got["kernels"] is kernels
    for name in NAMES:
        assert_frame_equal(got[name], expected[name], check_exact=True)


def test_a_background_failure_surfaces_on_access(tmp_path: Path, monkeypatch) -> None:
    def broken(conn, info, **kw):
        raise ValueError("bad value")

    broken.__name__ = "read_api"
    monkeypatch.setattr(tables, "read_api", broken)
    trace = traceview.load(H200 / "h200_baseline.sqlite")
    trace.prefetch("api").join(10)
    with pytest.raises(CorruptExport, match=r"api: a value has the wrong type"):
        _ = trace.api


@pytest.mark.parametrize("path", [H200 / "h200_baseline.sqlite", PUBLIC / "GindaChen__nsys-ai__h100_2gpu_1s.sqlite"],
                         ids=lambda p: p.stem)
def test_analyze_with_prefetch_equals_serial_loads(path: Path) -> None:
    """analyze prefetches the other frames while the kernels load; its JSON equals an analysis
    of a trace whose frames were all loaded first, one by one."""
    serial = traceview.load(path, columns="analysis")
    for name in NAMES:
        getattr(serial, name)
    expected = traceview.analyze(serial).to_dict()
    got = traceview.analyze(traceview.load(path, columns="analysis")).to_dict()
    expected["trace"].pop("load_seconds", None)
    got["trace"].pop("load_seconds", None)
    assert got == expected


def test_close_waits_for_the_background_reader(monkeypatch) -> None:
    """Closing the trace while a prefetch reads must not free the connection under it (that was
    a segfault): close joins the thread, which stops before its next frame."""
    real = tables.read_api

    def slow(conn, info, **kw):
        time.sleep(0.3)
        return real(conn, info, **kw)

    slow.__name__ = "read_api"
    monkeypatch.setattr(tables, "read_api", slow)
    trace = traceview.load(H200 / "h200x2_nccl_tp_serial.sqlite")
    thread = trace.prefetch("api", "nvtx")
    time.sleep(0.05)  # the thread is inside read_api
    started = time.perf_counter()
    trace.close()
    assert not thread.is_alive() and time.perf_counter() - started > 0.1
    assert "api" in trace.__dict__ and "nvtx" not in trace.__dict__


def test_analyze_that_raises_leaves_nothing_reading(monkeypatch) -> None:
    """analyze raising on a bad --device after the prefetch started, inside ``with``: the
    context exit waits for the background reads (the case that crashed)."""
    with traceview.load(H200 / "h200x2_nccl_tp_serial.sqlite") as trace:
        with pytest.raises(NoCudaActivity, match="no GPU activity on device 7"):
            traceview.analyze(trace, device=7)
        threads = list(trace._prefetching)
    assert threads and not any(t.is_alive() for t in threads)
