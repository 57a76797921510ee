"""timeline.launch-bound: short kernels whose launch gaps rival their run time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from traceview.analyses import derived, hostcalls, streams
from traceview.rules import timeline_data as td
from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.registry import rule

GROUP = ["device_id", "stream_id", "name"]


@dataclass(frozen=True, slots=True)
class Params:
    max_kernel_ns: int = 10_000          # kernels at most this long (median) are "short"
    min_gap_to_run_ratio: float = 0.5    # launch gaps at least this share of the run time
    min_launches: int = 16               # launches of one kernel on one stream
    max_launch_gap_ns: int = 20_000      # longer gaps are idle time (timeline.gpu-idle), not launch overhead


def launch_gaps(kernels: pl.DataFrame, calls: pl.DataFrame, keyed: pl.DataFrame | None, p: Params,
                linked: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per device, stream and kernel name: short launches that follow another kernel on the stream
    within ``max_launch_gap_ns``; count, run time, gap time, medians and the median launch-call time.
    ``keyed``: ``hostcalls.keyed_calls(calls, [..., "duration"])``; ``linked``: ``streams.links(kernels)``
    when already built.

    Kernels are grouped by one integer (stream number and name code packed); the launch calls
    are looked up (a merge join on one sorted key) only for the kernels of the groups reported,
    whose call ids are gathered then."""
    linked = streams.links(kernels) if linked is None else linked
    k = _short_launches(kernels, linked, p)
    if keyed is None:  # ids out of range or repeated: every launch joined (a repeated key repeats the kernel)
        k = hostcalls.join_on_call(_with_call_ids(k, kernels),
                                   calls.select("pid", "correlation_id", pl.col("duration").alias("launch_ns")))
        g = k.group_by("_g").agg(*_stats(), pl.col("launch_ns").median().alias("med_launch_ns"))
        return _named(_reported(g, p), kernels)
    g = _candidates_reported(k, p)
    sel = _with_call_ids(k.filter(pl.col("_g").is_in(g.get_column("_g").implode())).select("_g", "_row"), kernels)
    medians = hostcalls.join_keyed(sel.drop("_row"), keyed.select("_call_key", "duration"))
    medians = medians.group_by("_g").agg(pl.col("duration").median().alias("med_launch_ns"))
    return _named(g.join(medians, on="_g", how="left"), kernels)


def _candidates_reported(k: pl.DataFrame, p: Params) -> pl.DataFrame:
    """``_reported`` groups of ``k``: counts and sums of every group first, then the medians (most
    of the cost) only over the rows of the groups with enough launches and gap time."""
    sums = k.group_by("_g").agg(pl.len().alias("count"), pl.col("duration").sum().alias("run_ns"), pl.col("gap_ns").sum())
    wanted = sums.filter((pl.col("count") >= p.min_launches)
                         & (pl.col("gap_ns") >= p.min_gap_to_run_ratio * pl.col("run_ns"))).get_column("_g")
    if wanted.len() < sums.height:
        k = k.filter(pl.col("_g").is_in(wanted.implode()))
    return _reported(k.group_by("_g").agg(*_stats()), p)


def _short_launches(kernels: pl.DataFrame, linked: pl.DataFrame, p: Params) -> pl.DataFrame:
    """The launches with a gap of at most ``max_launch_gap_ns`` after the stream's previous kernel:
    ``duration``, ``_g`` (stream number and name code packed), ``gap_ns``, ``_row`` (kernel row).
    Filtered before the key is built, in one lazy query over the narrow columns."""
    name_code = pl.col("code").cast(pl.UInt64).fill_null((1 << 32) - 1)
    group = (pl.col("stream").cast(pl.UInt64) * (1 << 32) + name_code).alias("_g")
    columns = [kernels.get_column("duration"), *linked.select("stream", "code", "gap_ns")]
    return (pl.DataFrame(columns).lazy().with_row_index("_row")
            .filter(pl.col("gap_ns").is_not_null() & (pl.col("gap_ns") <= p.max_launch_gap_ns))
            .select("duration", group, "gap_ns", pl.col("_row").cast(pl.UInt32)).collect())


def _with_call_ids(k: pl.DataFrame, kernels: pl.DataFrame) -> pl.DataFrame:
    """``k`` with the ``pid`` and ``correlation_id`` of its kernels (``_row``), by numpy gathers."""
    return k.hstack(derived.take_columns(kernels, ["pid", "correlation_id"], k.get_column("_row")))


def _named(g: pl.DataFrame, kernels: pl.DataFrame) -> pl.DataFrame:
    """Groups with their device, stream and name (from one of their kernels), sorted by gap time."""
    names = kernels.select(GROUP).gather(g.get_column("_row"))
    return (g.hstack(names).select(*GROUP, "count", "run_ns", "gap_ns", "med_run_ns", "med_gap_ns", "med_launch_ns")
            .sort("gap_ns", descending=True))


def _stats() -> list[pl.Expr]:
    return [pl.len().alias("count"), pl.col("duration").sum().alias("run_ns"), pl.col("gap_ns").sum().alias("gap_ns"),
            pl.col("duration").median().alias("med_run_ns"), pl.col("gap_ns").median().alias("med_gap_ns"),
            pl.col("_row").first()]


def _reported(g: pl.DataFrame, p: Params) -> pl.DataFrame:
    return g.filter((pl.col("med_run_ns") <= p.max_kernel_ns) & (pl.col("count") >= p.min_launches)
                    & (pl.col("gap_ns") >= p.min_gap_to_run_ratio * pl.col("run_ns"))).sort("gap_ns", descending=True)


@rule(id="timeline.launch-bound", title="Launch-bound stream of short kernels", category="timeline",
      severity=Severity.medium, params=Params)
def launch_bound(ctx: RuleContext, p: Params) -> Iterator[Finding] | NotApplicable:
    """
    ## What it does
    For every kernel on every stream, looks at its short launches (median run time at most
    ``max_kernel_ns``) and the idle gap before each one on that stream (from the previous
    kernel's end, up to ``max_launch_gap_ns``). Reports kernels launched at least
    ``min_launches`` times whose gaps add up to at least ``min_gap_to_run_ratio`` of their run
    time, with the median launch-call time on the host and the kernels next to them on the stream.

    ## Why it matters
    A kernel that runs for 2 us behind a 2 us launch gap leaves the GPU idle half the time: the
    cost is launch overhead (host API call, driver, GPU front end), not the kernel. No kernel
    optimization helps; fewer launches do.

    ## How to fix
    Capture the sequence in a CUDA graph (``torch.cuda.CUDAGraph``, ``torch.compile(mode="reduce-overhead")``,
    vLLM/TensorRT-LLM graph capture) so it launches once; fuse the short kernel into its
    neighbour (an epilogue of the preceding GEMM/normalization, or a fused elementwise chain);
    or batch more work into each launch.

    ## Parameters
    - ``max_kernel_ns``: median run time at or below which a kernel counts as short.
    - ``min_gap_to_run_ratio``: gap time / run time from which the stream counts as launch-bound.
    - ``min_launches``: launches of the kernel on one stream before it is reported.
    - ``max_launch_gap_ns``: gaps longer than this are idle time, not launch overhead.

    The estimated gain is the sum of those launch gaps (what fusion or a graph removes at most).
    """
    kernels = td.frame(ctx, "kernels")
    if kernels.height == 0:
        return NotApplicable("timeline.launch-bound", "no kernels")
    groups = launch_gaps(kernels, td.calls(ctx), td.keyed_calls(ctx), p, td.stream_links(ctx))
    return _findings(groups, td.neighbours(ctx) if groups.height else None)


def _partners(neigh: pl.DataFrame | None, name: str) -> str:
    if neigh is None:
        return ""
    rows = neigh.filter(pl.col("name") == name).group_by("side").head(1).sort("side", descending=True)
    text = [f"{r['neighbour']} runs {r['side']} it {r['count']}/{r['instances']} times" for r in rows.iter_rows(named=True)]
    return "; ".join(text)


def _findings(groups: pl.DataFrame, neigh: pl.DataFrame | None) -> Iterator[Finding]:
    for g in groups.iter_rows(named=True):
        partners = _partners(neigh, g["name"])
        launch = f", launch call median {td.human_ns(g['med_launch_ns'])}" if g["med_launch_ns"] is not None else ""
        evidence = [Evidence("launches", g["count"], "count", td.SRC_KERNEL),
                    Evidence("median run time", g["med_run_ns"], "ns", td.SRC_KERNEL),
                    Evidence("median gap before launch", g["med_gap_ns"], "ns", td.SRC_KERNEL),
                    Evidence("run time", g["run_ns"], "ns", td.SRC_KERNEL),
                    Evidence("gap time", g["gap_ns"], "ns", td.SRC_KERNEL)]
        if g["med_launch_ns"] is not None:
            evidence.append(Evidence("median launch call", g["med_launch_ns"], "ns", td.SRC_API))
        yield Finding(
            rule_id="timeline.launch-bound", severity=Severity.medium,
            title=f"{g['name']} is launch-bound on stream {g['stream_id']}",
            message=(f"{g['count']} launches of {g['name']} on GPU {g['device_id']} stream {g['stream_id']} run "
                     f"{td.human_ns(g['med_run_ns'])} each behind {td.human_ns(g['med_gap_ns'])} launch gaps "
                     f"(gaps {td.human_ns(g['gap_ns'])} vs run {td.human_ns(g['run_ns'])}{launch})"
                     + (f"; neighbours: {partners}" if partners else "")),
            subject={"kind": "kernel", "name": g["name"], "device_id": g["device_id"], "stream_id": g["stream_id"]},
            evidence=tuple(evidence), estimated_gain_ns=float(g["gap_ns"]),
            recommendation=("Capture the sequence in a CUDA graph (torch.compile mode='reduce-overhead', "
                            "torch.cuda.CUDAGraph) or fuse this kernel into its neighbour"
                            + (f" ({partners})" if partners else "") + "."),
        )
