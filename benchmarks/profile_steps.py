"""Time and peak RSS of each part of ``traceview analyze`` in one process (load per frame,
summaries, each ``traceview.pipeline`` step), the per-step table of benchmarks/RESULTS.md.

    python benchmarks/profile_steps.py benchmarks/data/h200_baseline_1M.sqlite
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import STEP_PROFILE  # noqa: E402


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    proc = subprocess.run([sys.executable, "-c", STEP_PROFILE, sys.argv[1]], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        print(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
        return 1
    last = json.loads(lines[-1])
    for key, secs in last["times"].items():
        print(f"{key:<48} {secs:8.2f} s  {last['rss'][key]:>7} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
