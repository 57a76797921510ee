"""nccl.low-bus-bandwidth: communication far below the link's bandwidth."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin import nccl_common as nc
from traceview.rules.registry import rule

BW_SOURCE = ("nccl-tests busbw (algbw x 2(n-1)/n all-reduce, (n-1)/n all-gather/reduce-scatter) over sizes from "
             "NCCL NVTX payloads or CUPTI_ACTIVITY_KIND_MEMCPY.bytes")
SMALL_MESSAGE = 1 << 20


@dataclass(frozen=True)
class LowBusBandwidthParams:
    max_link_pct: float = 25.0     # fire when bus bandwidth < this % of the link's peak per direction
    min_total_ns: int = 100_000    # ignore operations with less total time


@rule(id="nccl.low-bus-bandwidth", title="Low bus bandwidth", category="nccl", severity=Severity.medium,
      params=LowBusBandwidthParams)
def low_bus_bandwidth(ctx: RuleContext, p: LowBusBandwidthParams) -> Iterable[Finding] | NotApplicable:
    """What it does: per device and operation with known sizes (NCCL NVTX payloads, peer-copy
    bytes), compares the nccl-tests bus bandwidth to the peak of the link between the GPUs
    (NVLink generation from the GPU model, PCIe, RoCE).

    Why it matters: bus bandwidth is comparable across operations and rank counts; far below
    the link peak, the transfer is latency-bound (small messages) or takes a slower path
    (P2P disabled, traffic through host memory or PCIe instead of NVLink).

    How to fix: small messages: batch or fuse them (bucket gradients, one all-reduce per
    several layers), use LL/LL128 protocols or NVLS, capture in CUDA graphs. Large messages:
    check the topology (``nvidia-smi topo -m``), that P2P is enabled (``NCCL_P2P_DISABLE`` unset,
    ``NCCL_P2P_LEVEL``), and NCCL_DEBUG=INFO for the transport actually used.

    Parameters: ``max_link_pct`` (25.0 % of link peak), ``min_total_ns`` (100000).
    """
    comm = nc.report(ctx, "nccl.low-bus-bandwidth")
    if isinstance(comm, NotApplicable):
        return comm
    if not comm["bandwidth"]:
        return NotApplicable("nccl.low-bus-bandwidth", "no message sizes known (no NCCL NVTX payload, no peer copy)")
    if comm["link"] is None:
        return NotApplicable("nccl.low-bus-bandwidth", "the link between the GPUs is unknown (GPU model not listed)")
    return [_finding(comm["link"], row, nc.active_ns(comm, row["device_id"])) for row in comm["bandwidth"]
            if row["total_ns"] >= p.min_total_ns and row["link_pct"] is not None and row["link_pct"] < p.max_link_pct]


def _finding(link: dict, row: dict, active: int) -> Finding:
    d, op = row["device_id"], row["operation"]
    small = (row["med_bytes"] or 0) < SMALL_MESSAGE
    # Reaching the link's peak would take link_pct% of the time: the rest is the gain.
    gain = row["total_ns"] * (1 - row["link_pct"] / 100.0)
    why = (f"median message {row['med_bytes'] / 1024:.0f} KiB: latency-bound" if small
           else f"median message {row['med_bytes'] / 2**20:.1f} MiB: a slower path than {link['name']}?")
    return Finding(
        rule_id="nccl.low-bus-bandwidth", severity=nc.severity(gain / max(active, 1)),
        title=f"GPU {d} {op}: {row['busbw'] / 1e9:.1f} GB/s bus bandwidth, {row['link_pct']:.1f}% of {link['name']}",
        message=(f"{row['count']} {op} on GPU {d} move {row['bytes'] / 2**20:.1f} MiB in {nc.ms(row['total_ns'])}: "
                 f"{row['busbw'] / 1e9:.1f} GB/s bus bandwidth against {link['bytes_per_s'] / 1e9:.0f} GB/s per "
                 f"direction ({row['link_pct']:.1f}%; {why})."),
        subject={**nc.device_subject(d), "name": f"GPU {d} {op}", "operation": op},
        evidence=(Evidence("bus bandwidth", round(row["busbw"]), "B/s", BW_SOURCE),
                  Evidence("link peak per direction", link["bytes_per_s"], "B/s", f"hardware: {link['source']}"),
                  Evidence("median message size", row["med_bytes"], "B", BW_SOURCE),
                  Evidence("time", row["total_ns"], "ns", "trace: kernel/memcpy durations")),
        estimated_gain_ns=gain,
        recommendation=("Batch or fuse small transfers (fewer, larger messages; CUDA graphs; NVLS/LL protocols)."
                        if small else "Check the GPU topology and that NCCL uses P2P over NVLink "
                        "(nvidia-smi topo -m, NCCL_DEBUG=INFO, NCCL_P2P_LEVEL)."),
    )
