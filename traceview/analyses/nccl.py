"""NCCL collectives and peer-to-peer copies: what each device spends on communication.

Collective kernels are parsed from their names (``ncclDevKernel_AllReduce_Sum_f32_RING_LL``,
``ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t``, ``ncclAllReduceRingLLKernel_sum_f32``, ...);
peer-to-peer memcpy (``[CUDA memcpy PtoP]``, and DtoD between two devices) counts as
communication too. NCCL's own NVTX ranges (domain ``NCCL``) are joined to the kernels
through the CUDA API launch (correlation id) for the NCCL call and, where the range
carries a payload, the message size. ``enrich`` is the pipeline step that writes
``extra["communication"]`` (see docs/communication.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from traceview.analyses import hostcalls

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions
    from traceview.model.trace import Trace

OPERATIONS = ("AllReduce", "AllGather", "ReduceScatter", "Broadcast", "Reduce", "SendRecv", "AllToAll",
              "Send", "Recv", "Generic")
ALGORITHMS = ("COLLNET_DIRECT", "COLLNET_CHAIN", "NVLS_TREE", "NVLS", "TREE", "RING", "PAT", "COLLNET")
PROTOCOLS = ("LL128", "LL", "SIMPLE")
REDUCTIONS = ("PreMulSum", "SumPostDiv", "Sum", "Prod", "MinMax", "Min", "Max", "Avg")
# Legacy C type names (NCCL <= 2.18) -> the short names NCCL 2.19+ puts in kernel names.
DTYPE_ALIASES = {
    "int8_t": "i8", "uint8_t": "u8", "int32_t": "i32", "uint32_t": "u32", "int64_t": "i64", "uint64_t": "u64",
    "half": "f16", "float": "f32", "double": "f64", "nv_bfloat16": "bf16", "bfloat16": "bf16",
    "nv_fp8_e4m3": "f8e4m3", "nv_fp8_e5m2": "f8e5m2", "i8": "i8", "u8": "u8", "i32": "i32", "u32": "u32",
    "i64": "i64", "u64": "u64", "f16": "f16", "f32": "f32", "f64": "f64", "bf16": "bf16",
    "f8e4m3": "f8e4m3", "f8e5m2": "f8e5m2",
}
# NCCL API call (NVTX range text in domain NCCL) -> kernel operation.
NCCL_CALLS = {"ncclAllReduce": "AllReduce", "ncclAllGather": "AllGather", "ncclReduceScatter": "ReduceScatter",
              "ncclBroadcast": "Broadcast", "ncclBcast": "Broadcast", "ncclReduce": "Reduce", "ncclSend": "SendRecv",
              "ncclRecv": "SendRecv", "ncclAllToAll": "AllToAll"}
PEER_COPY = "PeerCopy"  # operation label of peer-to-peer memcpy rows
_LEGACY = re.compile(r"^nccl(?P<op>AllReduce|AllGather|ReduceScatter|Broadcast|Reduce|SendRecv)"
                     r"(?P<algo>Ring|Tree|CollNet)?(?P<proto>LL128|LL|Simple)?Kernel(?:_(?P<red>[a-z]+)_(?P<dt>\w+))?$")
_MODERN = re.compile(r"^nccl\w*?Kernel_(?P<rest>\w+)$")
_OP = re.compile(r"^(%s)(?=_|$)" % "|".join(sorted(OPERATIONS, key=len, reverse=True)))


@dataclass(frozen=True, slots=True)
class NcclKernel:
    """What an NCCL kernel name says; a field the name does not carry is None."""

    operation: str | None
    algorithm: str | None = None
    protocol: str | None = None
    reduction: str | None = None
    dtype: str | None = None


def _take(rest: str, options: tuple[str, ...]) -> tuple[str | None, str]:
    m = re.search(r"(?:^|_)(%s)(?=_|$)" % "|".join(options), rest)
    if not m:
        return None, rest
    return m.group(1), rest[:m.start(1)] + rest[m.end(1):]


def parse_nccl_kernel(name: str) -> NcclKernel:
    """Operation, algorithm, protocol, reduction op and data type from an NCCL kernel name."""
    base = name.split("(", 1)[0].strip()
    legacy = _LEGACY.match(base)
    if legacy:
        algo, proto, red, dt = legacy.group("algo", "proto", "red", "dt")
        return NcclKernel(legacy.group("op"), algo.upper() if algo else None, proto.upper() if proto else None,
                          red.capitalize() if red else None, DTYPE_ALIASES.get(dt or "", dt))
    modern = _MODERN.match(base)
    op = _OP.match(modern.group("rest")) if modern else None
    if not modern or not op:
        return NcclKernel(None)
    rest = modern.group("rest")[op.end():]
    algo, rest = _take(rest, ALGORITHMS)
    proto, rest = _take(rest, PROTOCOLS)
    red, rest = _take(rest, REDUCTIONS)
    dt = re.sub(r"_+", "_", rest).strip("_") or None
    return NcclKernel(op.group(1), algo, proto, red, DTYPE_ALIASES.get(dt or "", dt))


def _parsed_names(names: pl.Series) -> pl.DataFrame:
    """One row per distinct kernel name with its parsed fields (a loop over names, not events)."""
    rows = [(n, *(getattr(parse_nccl_kernel(n), f) for f in NcclKernel.__slots__)) for n in names.unique().to_list()]
    schema = {"name": pl.String, **{f: pl.String for f in NcclKernel.__slots__}}
    return pl.DataFrame(rows, schema=schema, orient="row")


def collectives(kernels: pl.DataFrame) -> pl.DataFrame:
    """NCCL kernels with parsed fields: device_id, stream_id, start, end, duration, correlation_id,
    global_pid, name, operation, algorithm, protocol, reduction, dtype (one row per kernel)."""
    nccl = kernels.filter(pl.col("is_nccl"))
    cols = ["device_id", "stream_id", "start", "end", "duration", "correlation_id", "global_pid", "name"]
    out = nccl.select(cols).join(_parsed_names(nccl.get_column("name")), on="name", how="left")
    return out.with_columns(pl.col("operation").fill_null("Other")).sort("start")


def is_peer_copy() -> pl.Expr:
    """PtoP copies, and DtoD copies whose source and destination are different devices."""
    between = (pl.col("src_device_id").is_not_null() & pl.col("dst_device_id").is_not_null()
               & (pl.col("src_device_id") != pl.col("dst_device_id")))
    return (pl.col("copy_kind") == 10) | ((pl.col("copy_kind") == 8) & between)


def peer_copies(memcpy: pl.DataFrame) -> pl.DataFrame:
    """Peer-to-peer copies: device_id, stream_id, start, end, duration, bytes, src/dst device."""
    return memcpy.filter(is_peer_copy()).select(
        "device_id", "stream_id", "start", "end", "duration", "bytes", "src_device_id", "dst_device_id",
        "correlation_id", "global_pid")


def communication(kernels: pl.DataFrame, memcpy: pl.DataFrame, trace: Trace | None = None) -> pl.DataFrame:
    """All communication activity: collectives plus peer copies (operation ``PeerCopy``).

    Columns: device_id, stream_id, start, end, duration, correlation_id, global_pid, kind
    (collective|peer_copy), operation, algorithm, protocol, reduction, dtype, bytes (peer
    copies), nccl_call and message_bytes (from NCCL's NVTX ranges when ``trace`` is given).
    """
    coll = collectives(kernels)
    if trace is not None:
        coll = nccl_calls(trace, coll)
    else:
        coll = coll.with_columns(nccl_call=pl.lit(None, pl.String), message_bytes=pl.lit(None, pl.Int64))
    coll = coll.drop("name").with_columns(kind=pl.lit("collective"), bytes=pl.lit(None, pl.Int64))
    peer = peer_copies(memcpy).drop("src_device_id", "dst_device_id").with_columns(
        kind=pl.lit("peer_copy"), operation=pl.lit(PEER_COPY), message_bytes=pl.lit(None, pl.Int64),
        **{c: pl.lit(None, pl.String) for c in ("algorithm", "protocol", "reduction", "dtype", "nccl_call")})
    return pl.concat([coll, peer.select(coll.columns)]).sort("start")


def compute(kernels: pl.DataFrame) -> pl.DataFrame:
    """Compute: every kernel that is not an NCCL kernel (device_id, stream_id, start, end, duration,
    correlation_id, global_pid)."""
    return kernels.filter(~pl.col("is_nccl")).select(
        "device_id", "stream_id", "start", "end", "duration", "correlation_id", "global_pid")


def _payload_bytes(trace: Trace) -> pl.DataFrame:
    """NCCL NVTX ranges that carry a message size: (start, global_tid, message_bytes).

    Reads an integer payload (``uint64Value``/``int64Value``) or a JSON payload with the
    ``Message size [bytes]`` entry of NCCL's payload schema; empty when neither is there.
    """
    info, t = trace.info, "NVTX_EVENTS"
    exprs = [f"t.{c}" for c in ("uint64Value", "int64Value") if info.has(t, c)]
    if info.has(t, "jsonText"):
        exprs.append("CASE WHEN instr(t.jsonText, 'Message size [bytes]') > 0 "
                     "THEN substr(t.jsonText, instr(t.jsonText, 'Message size [bytes]') + 20) END")
    if not exprs or not info.has(t, "globalTid"):
        return pl.DataFrame(schema={"start": pl.Int64, "global_tid": pl.Int64, "message_bytes": pl.Int64})
    from traceview.ingest.sqlite import read_frame

    sql = (f"SELECT t.start, t.globalTid, {', '.join(exprs)} FROM {t} AS t WHERE t.eventType IN (59, 60, 70, 71) "
           f"AND ({' OR '.join(e + ' IS NOT NULL' for e in exprs)})")
    schema = {"start": pl.Int64, "global_tid": pl.Int64, **{f"p{i}": pl.String for i in range(len(exprs))}}
    raw = read_frame(trace.connection, sql, schema)
    values = [pl.col(f"p{i}").str.extract(r"(\d+)", 1).cast(pl.Int64, strict=False) for i in range(len(exprs))]
    return raw.select("start", "global_tid", pl.coalesce(values).alias("message_bytes")).drop_nulls("message_bytes")


def nccl_calls(trace: Trace, coll: pl.DataFrame) -> pl.DataFrame:
    """``coll`` plus ``nccl_call`` (e.g. ``ncclAllReduce``) and ``message_bytes`` from NCCL's NVTX ranges.

    A kernel's launch (CUDA API call with the same correlation id) lies inside its NCCL
    call range, or, for grouped calls, inside ``ncclGroupEnd``: then the k-th launch of an
    operation in that group takes the k-th call range of that operation since the previous
    ``ncclGroupEnd`` on the same thread.
    """
    none = coll.with_columns(nccl_call=pl.lit(None, pl.String), message_bytes=pl.lit(None, pl.Int64))
    nvtx = trace.nvtx.filter(pl.col("domain") == "NCCL")
    if nvtx.height == 0 or trace.api.height == 0 or coll.height == 0:
        return none
    calls = (nvtx.filter(pl.col("text").is_in(list(NCCL_CALLS)))
             .select("start", "end", "global_tid", pl.col("text").alias("nccl_call"),
                     pl.col("text").replace_strict(NCCL_CALLS, default=None).alias("operation"))
             .join(_payload_bytes(trace), on=["start", "global_tid"], how="left").sort("start"))
    ends = nvtx.filter(pl.col("text") == "ncclGroupEnd").select(
        "global_tid", pl.col("start").alias("g_start"), pl.col("end").alias("g_end")).sort("g_start")
    launches = (coll.with_row_index("_row")
                .join(trace.api.select("correlation_id", "pid", pl.col("start").alias("launch"), "global_tid"),
                      left_on=["correlation_id", hostcalls.PID_OF_GLOBAL],
                      right_on=["correlation_id", "pid"], how="inner")
                .select("_row", "operation", "launch", "global_tid").sort("launch"))
    direct = (launches.join_asof(calls, left_on="launch", right_on="start", by=["global_tid", "operation"],
                                 check_sortedness=False)
              .filter(pl.col("launch") <= pl.col("end")).select("_row", "nccl_call", "message_bytes"))
    grouped = _grouped_calls(launches.join(direct.select("_row"), on="_row", how="anti"), calls, ends)
    matched = pl.concat([direct, grouped])
    return coll.with_row_index("_row").join(matched, on="_row", how="left").drop("_row")


def _grouped_calls(launches: pl.DataFrame, calls: pl.DataFrame, ends: pl.DataFrame) -> pl.DataFrame:
    """Match launches made inside ``ncclGroupEnd`` to the calls of that group, in order per operation."""
    if launches.height == 0 or ends.height == 0:
        return pl.DataFrame(schema={"_row": pl.UInt32, "nccl_call": pl.String, "message_bytes": pl.Int64})
    ends = ends.with_columns(group=pl.int_range(pl.len()).over("global_tid"))
    in_group = (launches.join_asof(ends, left_on="launch", right_on="g_start", by="global_tid",
                                check_sortedness=False)
                .filter(pl.col("launch") <= pl.col("g_end")))
    calls_g = calls.join_asof(ends.select("global_tid", "g_start", "group"), left_on="start", right_on="g_start",
                              by="global_tid", strategy="forward", check_sortedness=False).drop_nulls("group")
    key = ["global_tid", "group", "operation"]
    in_group = in_group.with_columns(k=pl.int_range(pl.len()).over(key))
    calls_g = calls_g.with_columns(k=pl.int_range(pl.len()).over(key))
    return in_group.join(calls_g, on=[*key, "k"], how="inner").select("_row", "nccl_call", "message_bytes")


def stream_roles(comm: pl.DataFrame, comp: pl.DataFrame) -> pl.DataFrame:
    """Per (device_id, stream_id): comm_ns, compute_ns, collectives, compute_kernels, and
    ``shared`` = the stream runs both collectives and compute (so they serialize)."""
    c = comm.filter(pl.col("kind") == "collective").group_by("device_id", "stream_id").agg(
        pl.col("duration").sum().alias("comm_ns"), pl.len().alias("collectives"))
    k = comp.group_by("device_id", "stream_id").agg(
        (pl.col("end") - pl.col("start")).sum().alias("compute_ns"), pl.len().alias("compute_kernels"))
    out = c.join(k, on=["device_id", "stream_id"], how="full", coalesce=True).fill_null(0)
    return out.with_columns(shared=(pl.col("collectives") > 0) & (pl.col("compute_kernels") > 0)).sort(
        "device_id", "stream_id")


def collective_summary(comm: pl.DataFrame) -> pl.DataFrame:
    """Per device, stream, operation, algorithm, protocol, reduction, dtype: count, total/avg/max ns,
    message bytes (sum of known sizes; peer copies use their byte count) and sized_count."""
    keys = ["device_id", "stream_id", "operation", "algorithm", "protocol", "reduction", "dtype"]
    size = pl.coalesce(pl.col("message_bytes"), pl.col("bytes")) if "message_bytes" in comm.columns else pl.col("bytes")
    return (comm.with_columns(_size=size).group_by(keys)
            .agg(pl.len().alias("count"), pl.col("duration").sum().alias("total_ns"),
                 pl.col("duration").mean().alias("avg_ns"), pl.col("duration").max().alias("max_ns"),
                 pl.col("_size").sum().alias("bytes"), pl.col("_size").is_not_null().sum().alias("sized_count"))
            .with_columns(bytes=pl.when(pl.col("sized_count") > 0).then(pl.col("bytes")))
            .sort(["device_id", "total_ns"], descending=[False, True]))


def enrich(result: AnalysisResult, options: AnalyzeOptions) -> None:
    """Pipeline step: ``extra["communication"]`` for traces with more than one device or any
    communication; nothing for a single GPU that never communicates."""
    from traceview.analyses.comm_report import build_report

    kernels, memcpy = result.frames["kernels"], result.frames["memcpy"]
    if len(result.trace.device_ids) < 2 and not kernels.get_column("is_nccl").any() and \
            memcpy.filter(is_peer_copy()).height == 0:
        return  # one GPU, no collectives, no peer copies: build_report would return None (after a scan of every row)
    report = build_report(result)
    if report is not None:
        result.extra["communication"] = report


