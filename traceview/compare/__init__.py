"""Baseline vs candidate comparison: the statistically sound CI regression gate.

``align`` matches items, ``stats`` is the statistical core, ``gate`` decides,
``outputs`` renders text, JSON, Markdown and JUnit XML. Use ``traceview.compare(...)``
(the function in ``traceview.api``); this package stays light to import.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"Comparison": "traceview.compare.comparison", "GateSettings": "traceview.compare.settings",
            "AllowEntry": "traceview.compare.settings", "load_settings": "traceview.compare.settings"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'traceview.compare' has no attribute {name!r}")
