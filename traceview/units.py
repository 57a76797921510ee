"""Human-readable units shared by rule messages and the text outputs (no dependencies: any layer may import it)."""

from __future__ import annotations


def fmt_ns(ns: float | int | None) -> str:
    """Human time: 1.23 ms, 45.6 us, 789 ns."""
    if ns is None:
        return "-"
    ns = float(ns)
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.0f} ns"


def fmt_bytes(n: float | int | None) -> str:
    """Human size in decimal units (as nsys stats prints MB): 1.23 GB, 4.56 MB, 789 B."""
    if n is None:
        return "-"
    n = float(n)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"
