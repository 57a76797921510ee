"""Where the real traces live (../shared/traces next to the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRACEVIEW_SHARED", REPO.parent / "shared")) / "traces"
H200 = SHARED / "h200"
PUBLIC = SHARED / "public"
ORACLE = SHARED / "oracle_nsys_stats"
NCU = SHARED / "ncu"
SAMPLES = REPO / "sample_traces"
ALL_EXPORTS = sorted(H200.glob("*.sqlite")) + sorted(PUBLIC.glob("*.sqlite"))


def trace_id(path: Path) -> str:
    return path.stem
