"""Pipeline step: run the selected rules and store ranked findings on the result."""

from __future__ import annotations

from typing import TYPE_CHECKING

from traceview.rules.base import RuleContext
from traceview.rules.registry import run_rules

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions


def enrich(result: AnalysisResult, options: AnalyzeOptions) -> None:
    ctx = RuleContext(trace=result.trace, result=result, options=options)
    findings, skipped = run_rules(ctx, select=options.select, ignore=options.ignore,
                                  thresholds=options.thresholds, silence=options.silence)
    result.findings = [f.to_dict() for f in findings]
    result.extra["rules_not_applicable"] = [{"rule_id": s.rule_id, "reason": s.reason} for s in skipped]
