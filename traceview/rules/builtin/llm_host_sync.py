"""llm.host-sync-per-token: a device-to-host copy or synchronization in every decode step."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin.llm_common import decode_or_na, us
from traceview.rules.registry import rule


@dataclass(frozen=True, slots=True)
class Params:
    min_step_share: float = 0.8   # fraction of decode steps that must contain a blocking call or D2H copy


@rule(id="llm.host-sync-per-token", title="Host synchronization in every decode step", category="llm",
      severity=Severity.medium, params=Params)
def host_sync_per_token(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Looks inside each decode step (NVTX range) for blocking host calls (stream/device/context
    synchronize, synchronous copies) and device-to-host copies the step launched; fires when at
    least ``min_step_share`` of the steps have one, the signature of a sampler running on the host.

    ## Why it matters
    A host sync per token drains the GPU queue every step: the CPU cannot enqueue step N+1 while
    step N runs, so launch latency and the copy land on the critical path of every token.

    ## How to fix
    Sample on the GPU and keep the token there (feed it to the next step's embedding directly);
    if the host needs the token, copy it asynchronously into pinned memory and read it one step
    later; capture the step in a CUDA graph.

    ## Parameters
    - ``min_step_share``: share of decode steps with a blocking call or D2H copy to fire.

    The estimated gain is the median blocked host time per step times the number of steps.
    """
    decode = decode_or_na(ctx, "llm.host-sync-per-token")
    if isinstance(decode, NotApplicable):
        return decode
    sync, steps = decode["host_sync"], decode["steps"]
    share = sync["steps_with_sync"] / max(steps, 1)
    if share < p.min_step_share:
        return iter(())
    per_token = sync["median_sync_ns"]
    calls = ", ".join(sync["calls"]) or "a device-to-host copy"
    return iter([Finding(
        rule_id="llm.host-sync-per-token", severity=Severity.medium, title="Host synchronization in every decode step",
        message=(f"{sync['steps_with_sync']} of {steps} '{decode['phase']}' steps ({share:.0%} >= "
                 f"{p.min_step_share:.0%}) block the host ({calls}; median {sync['median_d2h_bytes']:.0f} B copied "
                 f"to the host): {us(per_token)} per token"),
        subject={"kind": "nvtx", "name": decode["phase"]},
        evidence=(Evidence("steps with a blocking call or D2H copy", sync["steps_with_sync"], "steps", sync["source"]),
                  Evidence("decode steps", steps, "steps", "trace: NVTX_EVENTS"),
                  Evidence("median blocked host time per step", per_token, "ns",
                           "trace: CUPTI_ACTIVITY_KIND_RUNTIME end - start of the blocking calls"),
                  Evidence("median bytes copied to the host per step", sync["median_d2h_bytes"], "B",
                           "trace: CUPTI_ACTIVITY_KIND_MEMCPY.bytes (copyKind DtoH)")),
        estimated_gain_ns=float(per_token * sync["steps_with_sync"]),
        recommendation="Sample on the GPU and keep the token on the device, or copy it asynchronously to pinned "
                       "memory and consume it one step later; then capture the step in a CUDA graph.")])
