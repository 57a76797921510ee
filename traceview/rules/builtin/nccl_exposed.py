"""nccl.exposed: communication that runs while no compute does costs its full time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin import nccl_common as nc
from traceview.rules.registry import rule


@dataclass(frozen=True)
class ExposedParams:
    min_exposed_pct: float = 5.0     # fire when exposed communication >= this % of the device's active time
    min_exposed_ns: int = 100_000    # and at least this much exposed time


@rule(id="nccl.exposed", title="Exposed communication", category="nccl", severity=Severity.medium,
      params=ExposedParams)
def exposed(ctx: RuleContext, p: ExposedParams) -> Iterable[Finding] | NotApplicable:
    """What it does: per device, measures the time NCCL collectives and peer copies run while no
    compute kernel runs (exposed) against the device's active time (communication or compute).

    Why it matters: exposed communication adds its full duration to every step; overlapped
    communication is free as long as compute is longer.

    How to fix: launch collectives on their own stream and give them independent work to hide
    behind (DDP/FSDP bucketed gradient all-reduce during backward, prefetching the next layer's
    all-gather, micro-batch pipelining, async tensor parallelism); for tensor-parallel decode,
    where the next layer needs the all-reduce result, shrink it instead (fused GEMM+all-reduce,
    NVLS/one-shot all-reduce, fewer TP ranks, CUDA graphs).

    Parameters: ``min_exposed_pct`` (5.0 % of active time), ``min_exposed_ns`` (100000).
    """
    comm = nc.report(ctx, "nccl.exposed")
    if isinstance(comm, NotApplicable):
        return comm
    if not any(d["comm_ns"] for d in comm["devices"]):
        return NotApplicable("nccl.exposed", "no communication on any device")
    out = []
    for dev in comm["devices"]:
        active = dev["exposed_ns"] + dev["overlapped_ns"] + dev["compute_only_ns"]
        share = 100.0 * dev["exposed_ns"] / active if active else 0.0
        if share >= p.min_exposed_pct and dev["exposed_ns"] >= p.min_exposed_ns:
            out.append(_finding(ctx, comm, dev, share, p))
    return out


def _finding(ctx: RuleContext, comm: dict, dev: dict, share: float, p: ExposedParams) -> Finding:
    d, steps = dev["device_id"], comm.get("steps")
    evidence = [
        Evidence("exposed communication", dev["exposed_ns"], "ns", nc.OVERLAP_SOURCE),
        Evidence("overlapped communication", dev["overlapped_ns"], "ns", nc.OVERLAP_SOURCE),
        Evidence("compute only", dev["compute_only_ns"], "ns", nc.OVERLAP_SOURCE),
        Evidence("exposed share of active time", round(share, 1), "%", "exposed / (exposed + overlapped + compute)"),
    ]
    step_note = ""
    per_dev = [s for s in (steps or {}).get("per_device", []) if s["device_id"] == d]
    if per_dev:
        s = per_dev[0]
        evidence.append(Evidence(f"median exposed per {steps['name']}", s["exposed_ns"], "ns",
                                 f"NVTX range {steps['name']}, GPU work launched inside it"))
        step_note = (f" Per {steps['name']} (median of {s['steps']}): {nc.ms(s['exposed_ns'])} exposed of "
                     f"{nc.ms(s['step_ns'])}; fully overlapped the step would take {nc.ms(s['overlapped_step_ns'])}.")
    return Finding(
        rule_id="nccl.exposed", severity=nc.severity(share / 100.0),
        title=f"GPU {d}: {share:.0f}% of active time is exposed communication",
        message=(f"GPU {d} spends {nc.ms(dev['exposed_ns'])} in communication with no compute running "
                 f"({dev['exposed_pct'] or 0:.1f}% of its {nc.ms(dev['comm_ns'])} of communication; {share:.1f}% "
                 f"of its active time; threshold {p.min_exposed_pct}%)."
                 + step_note),
        subject=nc.device_subject(d), evidence=tuple(evidence), estimated_gain_ns=float(dev["exposed_ns"]),
        recommendation=("Overlap communication with independent compute: a dedicated NCCL stream plus work that "
                        "does not depend on the collective (bucketed gradient all-reduce, prefetched all-gather, "
                        "micro-batches). For tensor-parallel decode, make the all-reduce cheaper instead (fused "
                        "GEMM+all-reduce, NVLS, fewer ranks, CUDA graphs)."),
    )
