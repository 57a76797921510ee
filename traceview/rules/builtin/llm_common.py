"""Shared helpers of the llm.* rules: they read ``extra["llm"]`` (traceview.analyses.llm_report)."""

from __future__ import annotations

from typing import Any

from traceview.rules.base import NotApplicable, RuleContext

DECODE_SRC = "trace: NVTX_EVENTS ranges of the decode phase; kernels joined by CUPTI_ACTIVITY_KIND_RUNTIME.correlationId"


def llm_data(ctx: RuleContext) -> dict[str, Any]:
    return ctx.result.extra.get("llm") or {}


def decode_or_na(ctx: RuleContext, rule_id: str) -> dict[str, Any] | NotApplicable:
    decode = llm_data(ctx).get("decode")
    if not decode:
        return NotApplicable(rule_id, "no decode-step NVTX ranges (a range named like decode/token/generate, "
                                      "repeated; set [phases] decode in the recipe)")
    return decode


def us(ns: float) -> str:
    return f"{ns / 1e3:.1f} us"
