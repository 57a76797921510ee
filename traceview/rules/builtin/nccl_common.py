"""Shared helpers of the nccl.* rules: they read ``extra["communication"]`` (traceview.analyses.comm_report)."""

from __future__ import annotations

from typing import Any

from traceview.rules.base import NotApplicable, RuleContext, Severity

OVERLAP_SOURCE = ("traceview overlap: NCCL kernels and peer copies (CUPTI_ACTIVITY_KIND_KERNEL, "
                  "CUPTI_ACTIVITY_KIND_MEMCPY) against other kernels, per device")


def report(ctx: RuleContext, rule_id: str) -> dict[str, Any] | NotApplicable:
    """The communication report, or why there is none."""
    comm = ctx.result.extra.get("communication")
    if comm is None:
        return NotApplicable(rule_id, "one GPU and no communication (no NCCL kernel, no peer-to-peer copy)")
    return comm


def severity(share: float) -> Severity:
    """From the share (0-1) of the device's active time at stake: high >= 20%, medium >= 5%, else low."""
    return Severity.high if share >= 0.20 else Severity.medium if share >= 0.05 else Severity.low


def active_ns(comm: dict[str, Any], device_id: int) -> int:
    """A device's active time: communication or compute running."""
    for d in comm["devices"]:
        if d["device_id"] == device_id:
            return int(d["exposed_ns"] + d["overlapped_ns"] + d["compute_only_ns"])
    return 0


def device_subject(device_id: int) -> dict[str, Any]:
    return {"kind": "device", "name": f"GPU {device_id}", "device_id": device_id}


def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms"
