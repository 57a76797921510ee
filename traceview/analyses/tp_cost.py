"""Tensor-parallel cost model: per step, all-reduce time against compute, bus bandwidth against
the link, and what-ifs (communication fully overlapped; the same step on another link).

Bus bandwidth follows nccl-tests (doc/PERFORMANCE.md in NVIDIA/nccl-tests): algbw = S / t with
S the nccl-tests size; busbw = algbw x 2(n-1)/n for all-reduce, x (n-1)/n for all-gather,
reduce-scatter and all-to-all, x 1 for broadcast, reduce, send/recv and peer copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True, slots=True)
class Link:
    """An interconnect: peak bytes/s per direction for one GPU, and where the number comes from."""

    key: str
    name: str
    bytes_per_s: float
    source: str


LINKS: dict[str, Link] = {link.key: link for link in (
    Link("nvlink2", "NVLink 2 (V100 SXM2)", 150e9, "NVIDIA Tesla V100 datasheet: NVLink 300 GB/s (bidirectional)"),
    Link("nvlink3", "NVLink 3 (A100 SXM)", 300e9, "NVIDIA A100 datasheet: NVLink 600 GB/s (bidirectional)"),
    Link("nvlink4", "NVLink 4 (H100/H200 SXM)", 450e9,
         "NVIDIA H100/H200 datasheets: NVLink 900 GB/s bidirectional per GPU"),
    Link("nvlink5", "NVLink 5 (B200)", 900e9, "NVIDIA Blackwell datasheet: NVLink 1.8 TB/s bidirectional per GPU"),
    Link("pcie3", "PCIe 3.0 x16", 15.75e9, "PCIe 3.0 spec: 8 GT/s x 16 lanes, 128b/130b encoding"),
    Link("pcie4", "PCIe 4.0 x16", 31.5e9, "PCIe 4.0 spec: 16 GT/s x 16 lanes, 128b/130b encoding"),
    Link("pcie5", "PCIe 5.0 x16", 63e9, "PCIe 5.0 spec: 32 GT/s x 16 lanes, 128b/130b encoding"),
    Link("roce200", "200 Gb/s RoCE (DGX Spark ConnectX-7)", 25e9,
         "NVIDIA DGX Spark datasheet: ConnectX-7 200 Gb/s = 25 GB/s per direction"),
    Link("roce400", "400 Gb/s RoCE/InfiniBand NDR", 50e9, "ConnectX-7 400 Gb/s = 50 GB/s per direction"),
)}
# GPU name fragment -> link between GPUs of one node (first match wins; PCIe cards first).
_GPU_LINKS = (("H100 PCIe", "pcie5"), ("PCIE", "pcie4"), ("GB10", "roce200"), ("H100", "nvlink4"),
              ("H200", "nvlink4"), ("H800", "nvlink4"), ("B200", "nvlink5"), ("B100", "nvlink5"),
              ("A100", "nvlink3"), ("A800", "nvlink3"), ("V100", "nvlink2"))
BUS_FACTOR = {"AllReduce": "2(n-1)/n", "AllGather": "(n-1)/n", "ReduceScatter": "(n-1)/n", "AllToAll": "(n-1)/n"}


def link_for_gpu(gpu_name: str | None) -> Link | None:
    """The usual GPU-to-GPU link of a GPU model (e.g. NVIDIA H200 -> NVLink 4); None if unknown."""
    if not gpu_name:
        return None
    upper = gpu_name.upper()
    for fragment, key in _GPU_LINKS:
        if fragment.upper() in upper:
            return LINKS[key]
    return None


def bus_factor(operation: pl.Expr, n: int) -> pl.Expr:
    """nccl-tests bus-bandwidth factor for ``n`` ranks."""
    n = max(n, 1)
    return (pl.when(operation == "AllReduce").then(2.0 * (n - 1) / n)
            .when(operation.is_in(["AllGather", "ReduceScatter", "AllToAll"])).then((n - 1) / n)
            .otherwise(1.0))


def size_factor(operation: pl.Expr, n: int) -> pl.Expr:
    """nccl-tests size S over NCCL's per-rank message size (all-gather/reduce-scatter: x n)."""
    return pl.when(operation.is_in(["AllGather", "ReduceScatter"])).then(float(max(n, 1))).otherwise(1.0)


def bandwidth(comm: pl.DataFrame, n_ranks: int | None, link: Link | None) -> pl.DataFrame:
    """Per sized communication (collectives with a message size, peer copies): algbw and busbw
    (bytes/s) and ``link_pct`` = busbw as a percent of the link's peak per direction. With
    ``n_ranks`` unknown (None) only operations whose factors do not depend on it are kept."""
    size = pl.coalesce(pl.col("message_bytes"), pl.col("bytes")) if "message_bytes" in comm.columns else pl.col("bytes")
    known = pl.lit(True) if n_ranks else ~pl.col("operation").is_in([*BUS_FACTOR, "ReduceScatter"])
    n_ranks = n_ranks or 1
    out = (comm.with_columns(size_bytes=size)
           .filter(pl.col("size_bytes").is_not_null() & (pl.col("duration") > 0) & known)
           .with_columns(algbw=pl.col("size_bytes") * size_factor(pl.col("operation"), n_ranks) * 1e9
                         / pl.col("duration"))
           .with_columns(busbw=pl.col("algbw") * bus_factor(pl.col("operation"), n_ranks)))
    pct = pl.col("busbw") * 100.0 / link.bytes_per_s if link else pl.lit(None, pl.Float64)
    return out.with_columns(link_pct=pct)


def bandwidth_summary(bw: pl.DataFrame) -> pl.DataFrame:
    """Per device and operation: count, bytes, time, busbw (total bytes-weighted) and link_pct."""
    return (bw.group_by("device_id", "operation")
            .agg(pl.len().alias("count"), pl.col("size_bytes").sum().alias("bytes"),
                 pl.col("duration").sum().alias("total_ns"), pl.col("size_bytes").median().alias("med_bytes"),
                 ((pl.col("busbw") * pl.col("duration")).sum() / pl.col("duration").sum()).alias("busbw"),
                 ((pl.col("link_pct") * pl.col("duration")).sum() / pl.col("duration").sum()).alias("link_pct"))
            .sort("device_id", "operation"))


def step_costs(step_figures: pl.DataFrame, attributed_comm: pl.DataFrame) -> pl.DataFrame:
    """Per (step range_id, device_id): step_ns (GPU window), allreduce_count, allreduce_ns,
    compute_ns, comm_ns, exposed_ns, algorithm (most frequent all-reduce algorithm_protocol)."""
    ar = (attributed_comm.filter(pl.col("operation") == "AllReduce").drop_nulls("range_id")
          .with_columns(algo=pl.concat_str(pl.col("algorithm").fill_null("?"), pl.col("protocol").fill_null("?"),
                                           separator="_"))
          .group_by("range_id", "device_id")
          .agg(pl.len().alias("allreduce_count"), pl.col("duration").sum().alias("allreduce_ns"),
               pl.col("algo").mode().sort().first().alias("algorithm")))
    return (step_figures.join(ar, on=["range_id", "device_id"], how="left")
            .with_columns(pl.col("allreduce_count").fill_null(0), pl.col("allreduce_ns").fill_null(0),
                          step_ns=pl.col("end") - pl.col("start"),
                          compute_ns=pl.col("compute_only_ns") + pl.col("overlapped_ns"))
            .sort("range_id", "device_id"))


def what_if(steps: pl.DataFrame, current: Link | None) -> pl.DataFrame:
    """Per device, medians over steps, and the what-ifs: ``overlapped_step_ns`` (all communication
    hidden behind compute) and ``step_ns_on_<link>`` (exposed communication rescaled by the ratio
    of link bandwidths, a first-order model that ignores latency differences)."""
    med = steps.group_by("device_id").agg(
        pl.len().alias("steps"), *[pl.col(c).median().alias(c) for c in
                                   ("step_ns", "allreduce_count", "allreduce_ns", "compute_ns", "comm_ns",
                                    "exposed_ns")],
        pl.col("algorithm").drop_nulls().mode().sort().first().alias("algorithm"))
    med = med.with_columns(
        exposed_pct_of_step=pl.when(pl.col("step_ns") > 0).then(pl.col("exposed_ns") * 100.0 / pl.col("step_ns")),
        overlapped_step_ns=pl.col("step_ns") - pl.col("exposed_ns"))
    if current is not None:
        med = med.with_columns(*[
            (pl.col("step_ns") - pl.col("exposed_ns") + pl.col("exposed_ns") * current.bytes_per_s / link.bytes_per_s)
            .alias(f"step_ns_on_{key}") for key, link in LINKS.items()])
    return med.sort("device_id")
