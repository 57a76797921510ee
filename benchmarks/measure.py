"""Wall time and peak RSS of one child process (``os.wait4`` returns the child's own rusage)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    cmd: list[str]
    returncode: int
    wall_s: float
    peak_rss_mib: float
    stdout: str
    stderr: str
    timed_out: bool = False


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:")), 0.0)
    except OSError:
        return 0.0


def measure(cmd: list[str], env: dict[str, str] | None = None, timeout_s: float | None = None,
            max_rss_mib: float | None = None) -> Run:
    """Run ``cmd`` to completion (killed after ``timeout_s`` or above ``max_rss_mib``). Peak RSS is the child's
    ``ru_maxrss`` (KiB on Linux): its own process, including its threads; worker processes
    it waits for count only as the largest single one, so multi-process runs understate."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            over_time = timeout_s is not None and time.perf_counter() - t0 > timeout_s
            over_mem = max_rss_mib is not None and _rss_mib(proc.pid) > max_rss_mib  # protect a shared machine
            if (over_time or over_mem) and not timed_out:
                os.kill(proc.pid, signal.SIGKILL)
                timed_out = True
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(cmd, proc.returncode, wall, usage.ru_maxrss / 1024, out.read(), err.read(), timed_out)
