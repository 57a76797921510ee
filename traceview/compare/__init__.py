"""Baseline vs candidate comparison: the statistically sound CI regression gate.

``align`` matches items, ``stats`` is the statistical core, ``gate`` decides,
``outputs`` renders text, JSON, Markdown and JUnit XML.
"""

from traceview.compare.comparison import Comparison
from traceview.compare.settings import AllowEntry, GateSettings, load_settings

__all__ = ["AllowEntry", "Comparison", "GateSettings", "load_settings"]
