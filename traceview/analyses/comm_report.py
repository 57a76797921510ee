"""Assemble ``extra["communication"]`` from the NCCL, overlap, TP-cost and rank analyses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from traceview.analyses import nccl, overlap, ranks, tp_cost

if TYPE_CHECKING:
    from traceview.api import AnalysisResult
    from traceview.model.trace import Trace

COLLECTIVE_KEYS = ["stream_id", "operation", "algorithm", "protocol", "reduction", "dtype", "count", "total_ns",
                   "avg_ns", "max_ns", "bytes", "sized_count"]


def _records(frame: pl.DataFrame, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return list(frame.drop([c for c in drop if c in frame.columns]).iter_rows(named=True))


def current_link(trace: Trace, devices: list[int]) -> tp_cost.Link | None:
    """The GPU-to-GPU link implied by the GPU model of the devices that communicate."""
    names = trace.gpus.filter(pl.col("id").is_in(devices)).get_column("name").drop_nulls().unique().to_list()
    links = {tp_cost.link_for_gpu(n) for n in names} - {None}
    return links.pop() if len(links) == 1 else None


def _devices(comm: pl.DataFrame, segs: pl.DataFrame, streams: pl.DataFrame, devices: list[int]) -> list[dict[str, Any]]:
    figures = overlap.totals(segs)
    summary = nccl.collective_summary(comm.filter(pl.col("kind") == "collective"))
    peers = comm.filter(pl.col("kind") == "peer_copy")
    out = []
    for dev in devices:  # a loop over devices, not events
        row = figures.filter(pl.col("device_id") == dev)
        fig = row.row(0, named=True) if row.height else {}
        st = streams.filter(pl.col("device_id") == dev)
        p = peers.filter(pl.col("device_id") == dev)
        out.append({
            "device_id": dev,
            **{k: fig.get(k, 0) or 0 for k in ("comm_ns", "exposed_ns", "overlapped_ns", "compute_only_ns")},
            "exposed_pct": fig.get("exposed_pct"),
            "comm_streams": sorted(set(st.filter(pl.col("collectives") > 0).get_column("stream_id").to_list())
                                   | set(p.get_column("stream_id").to_list())),
            "compute_streams": st.filter(pl.col("compute_kernels") > 0).get_column("stream_id").to_list(),
            "shared_streams": st.filter(pl.col("shared")).get_column("stream_id").to_list(),
            "collectives": _records(summary.filter(pl.col("device_id") == dev).select(COLLECTIVE_KEYS)),
            "peer_copies": {"count": p.height, "bytes": int(p.get_column("bytes").sum() or 0),
                            "total_ns": int(p.get_column("duration").sum() or 0)},
        })
    return out


def _steps(trace: Trace, activity: pl.DataFrame, comm: pl.DataFrame, segs: pl.DataFrame,
           link: tp_cost.Link | None) -> dict[str, Any] | None:
    name = overlap.step_name(trace.nvtx)
    if name is None:
        return None
    attributed = overlap.attribute(activity, overlap.ranges_named(trace.nvtx, name), trace.api)
    figures = overlap.in_windows(segs, overlap.range_windows(attributed))
    comm_attr = overlap.attribute(comm, overlap.ranges_named(trace.nvtx, name), trace.api)
    per_step = tp_cost.step_costs(figures, comm_attr).rename({"range_id": "step"})
    keys = ["step", "device_id", "step_ns", "allreduce_count", "allreduce_ns", "compute_ns", "comm_ns", "exposed_ns",
            "exposed_pct", "algorithm"]
    return {"name": name, "count": per_step.get_column("step").n_unique(),
            "per_device": _records(tp_cost.what_if(per_step, link)), "per_step": _records(per_step.select(keys))}


def _skew(trace: Trace) -> dict[str, Any] | None:
    aligned = ranks.ranks_of_trace(trace)
    if aligned.get_column("rank").n_unique() < 2:
        return None
    skew = ranks.collective_skew(aligned)
    if skew.height == 0:
        return None
    rank_devices = aligned.select("rank", "device_id").unique()
    return {
        "ranks": "devices", "collectives": skew.height,
        "collective_time_ns": int(aligned.get_column("duration").sum()),
        "med_skew_ns": skew.get_column("skew_ns").median(), "total_wait_ns": int(skew.get_column("wait_ns").sum()),
        "stragglers": _records(ranks.stragglers(skew).join(rank_devices, on="rank", how="left")),
        "per_step": _records(ranks.step_skew(skew)),
    }


def build_report(result: AnalysisResult) -> dict[str, Any] | None:
    """The ``communication`` JSON object, or None for one GPU that never communicates."""
    trace, frames = result.trace, result.frames
    comm = nccl.communication(frames["kernels"], frames["memcpy"], trace)
    comp = nccl.compute(frames["kernels"])
    devices = sorted(set(frames["kernels"].get_column("device_id").drop_nulls().unique().to_list())
                     | set(comm.get_column("device_id").drop_nulls().unique().to_list()))
    if comm.height == 0 and len(trace.device_ids) < 2:
        return None
    comm_devices = sorted(set(comm.get_column("device_id").drop_nulls().to_list()))
    link = current_link(trace, comm_devices or devices)
    n_ranks = len(comm.filter(pl.col("kind") == "collective").get_column("device_id").unique())
    segs = overlap.segments(comm, comp)
    activity = pl.concat([comm.select(comp.columns), comp])
    phases = overlap.phase_overlap(segs, activity, overlap.top_level_phases(trace.nvtx), trace.api)
    bw = tp_cost.bandwidth(comm, n_ranks if n_ranks >= 2 else None, link)
    return {
        "ranks": n_ranks,
        "link": None if link is None else {"key": link.key, "name": link.name, "bytes_per_s": link.bytes_per_s,
                                           "source": link.source},
        "devices": _devices(comm, segs, nccl.stream_roles(comm, comp), devices),
        "streams": _records(nccl.stream_roles(comm, comp)),
        "bandwidth": _records(tp_cost.bandwidth_summary(bw)),
        "phases": _records(phases),
        "steps": _steps(trace, activity, comm, segs, link),
        "skew": _skew(trace) if result.device_filter is None else None,
    }
