"""Wall time and peak RSS of one child process (``os.wait4`` returns the child's own rusage)."""

from __future__ import annotations

import os
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


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` to completion. Peak RSS is the child's ``ru_maxrss`` (KiB on Linux),
    which covers its own threads; grandchildren (e.g. worker processes) are reported by
    the child only if it waits for them, which ``multiprocessing`` pools do."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(cmd, proc.returncode, wall, usage.ru_maxrss / 1024, out.read(), err.read())
