"""timeline.low-utilization: time windows in which a GPU is busy less than a threshold."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from traceview.analyses import derived, windows
from traceview.rules import timeline_data as td
from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.registry import rule


@dataclass(frozen=True, slots=True)
class Params:
    window_ns: int = 1_000_000            # window length
    max_utilization_pct: float = 50.0     # windows busy less than this are low
    min_windows: int = 3                  # report a device with at least this many low windows
    long_gap_ns: int = 100_000            # idle gaps this long belong to timeline.gpu-idle, not here


def low_spans(low: pl.DataFrame) -> pl.DataFrame:
    """Runs of consecutive low windows per device: device_id, start, end, windows, fragmented_idle_ns."""
    runs = low.with_columns(run=(pl.col("win").diff().over("device_id").fill_null(2) != 1).cum_sum().over("device_id"))
    return runs.group_by("device_id", "run").agg(
        pl.col("start").min(), (pl.col("start") + pl.col("length")).max().alias("end"), pl.len().alias("windows"),
        pl.col("fragmented_idle_ns").sum()).sort("fragmented_idle_ns", descending=True)


@rule(id="timeline.low-utilization", title="Low GPU utilization windows", category="timeline",
      severity=Severity.low, params=Params)
def low_utilization(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    Cuts each GPU's active time into ``window_ns`` windows and finds the windows where the GPU was
    busy (kernels, copies, memsets) less than ``max_utilization_pct`` of the time because its
    work came in short bursts with short gaps between them. Idle gaps of ``long_gap_ns`` or more
    are left to ``timeline.gpu-idle``, so the two rules never count the same idle time. Reports a
    device with at least ``min_windows`` such windows and its worst spans.

    ## Why it matters
    Fragmented activity (kernels separated by tens of microseconds) hides from per-kernel tables:
    every kernel looks fine, yet the GPU is busy a fraction of the time. It is the signature of a
    host-bound loop (Python overhead, per-op dispatch, small kernels).

    ## How to fix
    Batch more work per launch (larger batches, fused kernels), capture the loop in a CUDA graph
    or with ``torch.compile(mode="reduce-overhead")``, and move per-step host logic off the
    critical path.

    ## Parameters
    - ``window_ns``: window length.
    - ``max_utilization_pct``: utilization below which a window is low.
    - ``min_windows``: low windows a device needs before it is reported.
    - ``long_gap_ns``: idle gaps at least this long are excluded (reported by timeline.gpu-idle).

    The estimated gain is the idle time in low windows outside long gaps.
    """
    intervals = derived.merged_activity(ctx.result)  # same first start and last end per device as the activity
    if intervals.height == 0:
        return NotApplicable("timeline.low-utilization", "no GPU activity")
    if windows.window_count(intervals, p.window_ns) > windows.MAX_WINDOWS:  # e.g. one corrupt far-off timestamp
        return NotApplicable("timeline.low-utilization", f"GPU activity spans more than {windows.MAX_WINDOWS:,} "
                             f"windows of {td.human_ns(p.window_ns)}")
    low, totals = windows.fragmented_windows(intervals, p.window_ns, p.long_gap_ns, p.max_utilization_pct)
    per_device = totals.join(
        low.group_by("device_id").agg(pl.len().alias("low"), pl.col("fragmented_idle_ns").sum(),
                                      pl.col("utilization_pct").mean().alias("mean_pct")), on="device_id"
    ).filter(pl.col("low") >= p.min_windows).sort("device_id")
    origin = (ctx.trace.time_bounds or (0, 0))[0]
    return _findings(p, per_device, low_spans(low), origin)


def _findings(p: Params, per_device: pl.DataFrame, spans: pl.DataFrame, origin: int) -> Iterator[Finding]:
    src = f"derived: busy time per {td.human_ns(p.window_ns)} window from {td.SRC_KERNEL}, memcpy and memset"
    for d in per_device.iter_rows(named=True):
        dev = int(d["device_id"])
        worst = spans.filter(pl.col("device_id") == dev).head(3)
        span_text = "; ".join(f"{td.human_ns(s['end'] - s['start'])} at +{td.human_ns(s['start'] - origin)}"
                              for s in worst.iter_rows(named=True))
        yield Finding(
            rule_id="timeline.low-utilization", severity=Severity.low,
            title=f"GPU {dev} below {p.max_utilization_pct:.0f}% busy in {d['low']} windows",
            message=(f"GPU {dev} was busy on average {d['mean_pct']:.1f}% (< {p.max_utilization_pct:.0f}%) in {d['low']} of "
                     f"{d['total']} {td.human_ns(p.window_ns)} windows, with {td.human_ns(d['fragmented_idle_ns'])} idle "
                     f"in gaps shorter than {td.human_ns(p.long_gap_ns)}; worst spans: {span_text}"),
            subject={"kind": "device", "name": f"GPU {dev}", "device_id": dev,
                     "spans": [{"start": s["start"], "end": s["end"], "windows": s["windows"]}
                               for s in worst.iter_rows(named=True)]},
            evidence=(Evidence("low windows", d["low"], "count", src),
                      Evidence("windows", d["total"], "count", src),
                      Evidence("mean utilization of low windows", round(d["mean_pct"], 2), "%", src),
                      Evidence("idle in short gaps", d["fragmented_idle_ns"], "ns", src)),
            estimated_gain_ns=float(d["fragmented_idle_ns"]),
            recommendation=("Launch more work per step (batching, fusion), capture the loop in a CUDA graph "
                            "(torch.compile mode='reduce-overhead'), and take per-step host logic off the critical path."),
        )
