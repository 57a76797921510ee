"""nccl.serialized-on-compute-stream: collectives on the compute stream can never overlap it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin import nccl_common as nc
from traceview.rules.registry import rule

STREAM_SOURCE = "trace: CUPTI_ACTIVITY_KIND_KERNEL.streamId of NCCL and compute kernels"


@dataclass(frozen=True)
class SerializedParams:
    min_comm_ns: int = 50_000   # ignore streams with less collective time than this


@rule(id="nccl.serialized-on-compute-stream", title="Collectives on the compute stream", category="nccl",
      severity=Severity.medium, params=SerializedParams)
def serialized(ctx: RuleContext, p: SerializedParams) -> Iterable[Finding] | NotApplicable:
    """What it does: finds CUDA streams that run both NCCL collective kernels and compute kernels.

    Why it matters: work on one stream runs in order, so a collective on the compute stream
    cannot overlap any compute of that stream: its whole duration is on the critical path.

    How to fix: issue collectives on a dedicated communication stream (PyTorch process groups
    do this by default; custom NCCL code should create one) and synchronize with events only
    where the result is consumed. In tensor-parallel inference the next layer needs the
    all-reduce, so pair the stream split with work that does not (micro-batches, async TP).

    Parameters: ``min_comm_ns`` (50000): ignore streams with less collective time.
    """
    comm = nc.report(ctx, "nccl.serialized-on-compute-stream")
    if isinstance(comm, NotApplicable):
        return comm
    if not any(s["collectives"] for s in comm["streams"]):
        return NotApplicable("nccl.serialized-on-compute-stream", "no NCCL collective kernels")
    return [_finding(s, nc.active_ns(comm, s["device_id"])) for s in comm["streams"]
            if s["shared"] and s["comm_ns"] >= p.min_comm_ns]


def _finding(s: dict, active: int) -> Finding:
    d, sid = s["device_id"], s["stream_id"]
    return Finding(
        rule_id="nccl.serialized-on-compute-stream", severity=nc.severity(s["comm_ns"] / max(active, 1)),
        title=f"GPU {d} stream {sid}: {s['collectives']} collectives serialized with compute",
        message=(f"Stream {sid} of GPU {d} runs {s['collectives']} NCCL collectives ({nc.ms(s['comm_ns'])}) and "
                 f"{s['compute_kernels']} compute kernels ({nc.ms(s['compute_ns'])}): in-order execution means "
                 "none of that communication can overlap this stream's compute."),
        subject={"kind": "stream", "name": f"GPU {d} stream {sid}", "device_id": d, "stream_id": sid},
        evidence=(Evidence("collectives on stream", s["collectives"], "kernels", STREAM_SOURCE),
                  Evidence("collective time on stream", s["comm_ns"], "ns", STREAM_SOURCE),
                  Evidence("compute kernels on stream", s["compute_kernels"], "kernels", STREAM_SOURCE),
                  Evidence("compute time on stream", s["compute_ns"], "ns", STREAM_SOURCE)),
        estimated_gain_ns=float(min(s["comm_ns"], s["compute_ns"])),
        recommendation=("Issue the collectives on a dedicated communication stream and wait on an event only "
                        "where the result is consumed; give them independent compute to overlap with."),
    )
