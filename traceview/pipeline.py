"""Ordered analysis steps run by ``api.analyze`` after the base summaries.

Each step is ``fn(result: AnalysisResult, options: AnalyzeOptions) -> None`` and adds to
``result.extra`` (new JSON keys, or per-kernel keys under ``extra["kernel_details"][name]``)
or to ``result.findings``. Order matters: later steps read what earlier ones computed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions

STEPS: list[str] = [
    # launch analysis (issue 3), bound classification and phases (issue 4), communication (issue 9)
    # go here, before the rule engine, which reads them.
    "traceview.analyses.launch:enrich",
    "traceview.analyses.bound:enrich",
    "traceview.analyses.memory:enrich",
    "traceview.analyses.phases:enrich",
    "traceview.analyses.nccl:enrich",
    "traceview.analyses.llm_report:enrich",  # decode steps, fusion chains, quantization what-if
    "traceview.rules.engine:enrich",
    "traceview.flowchart:enrich",  # reads bounds, launch analysis and findings
]


def run_steps(result: AnalysisResult, options: AnalyzeOptions) -> None:
    for spec in STEPS:
        module, fn = spec.split(":")
        getattr(importlib.import_module(module), fn)(result, options)
