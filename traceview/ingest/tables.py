"""SQL readers, one per model table. Columns are selected by name (they move between
schema versions); a column an export lacks becomes NULL; an absent table is an empty frame."""

from __future__ import annotations

import sqlite3

import numpy as np
import polars as pl

from traceview.ingest.detect import ExportInfo
from traceview.ingest.fastread import Col, Plan
from traceview.ingest.sqlite import read_frame
from traceview.model import columns as C

KERNEL_TABLE = "CUPTI_ACTIVITY_KIND_KERNEL"
MEMCPY_TABLE = "CUPTI_ACTIVITY_KIND_MEMCPY"
MEMSET_TABLE = "CUPTI_ACTIVITY_KIND_MEMSET"
API_TABLE = "CUPTI_ACTIVITY_KIND_RUNTIME"
NVTX_TABLE = "NVTX_EVENTS"
GPU_TABLE = "TARGET_INFO_GPU"

PID_OF_GLOBAL = "(({0} >> 24) & 16777215)"  # Serialized GlobalId -> pid
TID_OF_GLOBAL = "({0} & 16777215)"
NCCL_PATTERN = r"(?i)nccl"
API_VERSION_SUFFIX = r"_v\d{4}$"  # cudaMemcpy_v3020 -> cudaMemcpy, as nsys stats prints it
NCCL_COLLECTIVE = r"(?i)^nccl(?:Dev)?Kernel_([A-Za-z]+?)(?:_|\(|$)"


# Computed in polars by the fast reader rather than read (same values as the SQL expressions).
DURATION = pl.col("end") - pl.col("start")
PID_OF = lambda col: (pl.col(col) // (1 << 24)) & 16777215  # noqa: E731
TID_OF = lambda col: pl.col(col) & 16777215  # noqa: E731


def _col(info: ExportInfo, table: str, column: str, alias: str, expr: str | None = None,
         derive: pl.Expr | None = None) -> Col:
    """``expr AS alias`` when the column exists, else ``NULL AS alias``."""
    if info.has(table, column):
        return Col(f"{expr or 't.' + column} AS {alias}", alias, expr or f"t.{column}", derive=derive)
    return Col(f"NULL AS {alias}", alias, None)


def _string(info: ExportInfo, table: str, column: str, alias: str) -> Col:
    """Resolve a StringIds reference in SQL (a plain TEXT column is passed through)."""
    if not info.has(table, column):
        return Col(f"NULL AS {alias}", alias, None)
    if info.has("StringIds"):
        return Col(f"CASE WHEN typeof(t.{column}) = 'integer' THEN "
                   f"(SELECT value FROM StringIds WHERE id = t.{column}) ELSE t.{column} END AS {alias}",
                   alias, f"t.{column}", string_of=column)
    return Col(f"t.{column} AS {alias}", alias, f"t.{column}")


def _plan(info: ExportInfo, table: str, items: list[str]) -> Plan:
    """The same read for the fast path (``traceview.ingest.fastread``), ordered by start."""
    return Plan(table, items, order_by=("start",), string_table=info.has("StringIds"))


def _timing(table: str) -> list[str]:
    return [Col("t.start AS start", "start", "t.start"), Col("t.[end] AS [end]", "end", "t.[end]"),
            Col("t.[end] - t.start AS duration", "duration", "t.[end] - t.start", derive=DURATION)]


def _without(items: list[Col], schema: dict[str, pl.DataType], skip: frozenset[str]) -> tuple[list[Col], dict]:
    """The SELECT items and schema less the ``skip`` columns."""
    return [c for c in items if c.alias not in skip], {k: v for k, v in schema.items() if k not in skip}


def read_kernels(conn: sqlite3.Connection, info: ExportInfo, skip: frozenset[str] = frozenset()) -> pl.DataFrame:
    """Kernel launches; ``skip``: model columns to leave out (``columns.NOT_ANALYZED``)."""
    t = KERNEL_TABLE
    if not info.has(t):
        return pl.DataFrame(schema={k: v for k, v in C.KERNELS.items() if k not in skip})
    c = lambda col, alias, expr=None, derive=None: _col(info, t, col, alias, expr, derive)  # noqa: E731
    name_col = "demangledName" if info.has(t, "demangledName") else "shortName"
    items = [
        *_timing(t),
        c("deviceId", "device_id"), c("contextId", "context_id"), c("streamId", "stream_id"),
        c("correlationId", "correlation_id"), c("globalPid", "global_pid"),
        c("globalPid", "pid", PID_OF_GLOBAL.format("t.globalPid"), PID_OF("global_pid")),
        _string(info, t, name_col, "name"), _string(info, t, "shortName", "short_name"),
        c("gridX", "grid_x"), c("gridY", "grid_y"), c("gridZ", "grid_z"),
        c("blockX", "block_x"), c("blockY", "block_y"), c("blockZ", "block_z"),
        c("registersPerThread", "registers_per_thread"),
        c("staticSharedMemory", "static_shared_mem"), c("dynamicSharedMemory", "dynamic_shared_mem"),
        c("sharedMemoryExecuted", "shared_mem_executed"),
        c("localMemoryPerThread", "local_mem_per_thread"), c("localMemoryTotal", "local_mem_total"),
        c("graphId", "graph_id"), c("graphNodeId", "graph_node_id"),
    ]
    schema = {k: v for k, v in C.KERNELS.items() if k not in ("is_nccl", "nccl_collective")}
    items, schema = _without(items, schema, skip)
    select = ", ".join(items)
    frame = read_frame(conn, f"SELECT {select} FROM {t} AS t ORDER BY t.start", schema, plan=_plan(info, t, items))
    frame = frame.with_columns(pl.col("name").fill_null(pl.col("short_name")).fill_null("<unknown>"))
    return frame.with_columns(**_per_distinct_name(frame.get_column("name"), {
        "is_nccl": (pl.col("name").str.contains(NCCL_PATTERN), False, pl.Boolean),
        "nccl_collective": (pl.col("name").str.extract(NCCL_COLLECTIVE, 1), None, pl.String),
    }))


def _per_distinct_name(names: pl.Series, derived: dict[str, tuple[pl.Expr, object, pl.DataType]]) -> dict[str, pl.Expr]:
    """Columns computed from a name by regex, run once per distinct name (a few hundred) rather
    than per row (10M): ``{alias: (expression over "name", value for other names, dtype)}``.
    Only names whose value differs from the default are mapped."""
    distinct = names.unique().to_frame("name")
    out = {}
    for alias, (expr, default, dtype) in derived.items():
        values = distinct.select("name", expr.alias("v"))
        hits = values.filter(pl.col("v").ne_missing(pl.lit(default, dtype)))
        out[alias] = (pl.lit(default, dtype) if hits.height == 0 else pl.col(names.name).replace_strict(
            hits.get_column("name"), hits.get_column("v"), default=pl.lit(default, dtype), return_dtype=dtype))
    return out


def _activity(info: ExportInfo, t: str) -> list[str]:
    c = lambda col, alias, expr=None, derive=None: _col(info, t, col, alias, expr, derive)  # noqa: E731
    return [
        *_timing(t),
        c("deviceId", "device_id"), c("contextId", "context_id"), c("streamId", "stream_id"),
        c("correlationId", "correlation_id"), c("globalPid", "global_pid"),
    ]


def read_memcpy(conn: sqlite3.Connection, info: ExportInfo) -> pl.DataFrame:
    t = MEMCPY_TABLE
    if not info.has(t):
        return pl.DataFrame(schema=C.MEMCPY)
    c = lambda col, alias, expr=None, derive=None: _col(info, t, col, alias, expr, derive)  # noqa: E731
    items = _activity(info, t) + [
        Col("t.bytes AS bytes", "bytes", "t.bytes"), c("copyKind", "copy_kind"),
        Col("NULL AS operation", "operation", None),
        c("srcKind", "src_kind_id"), c("dstKind", "dst_kind_id"),
        c("srcDeviceId", "src_device_id"), c("dstDeviceId", "dst_device_id"),
        c("graphNodeId", "graph_node_id"),
    ]
    select = ", ".join(items)
    schema = {k: C.MEMCPY[k] for k in C.MEMCPY if k not in ("src_kind", "dst_kind", "src_device_id",
                                                              "dst_device_id", "graph_node_id", "throughput_bytes_per_s")}
    schema |= {"src_kind_id": pl.Int64, "dst_kind_id": pl.Int64, "src_device_id": pl.Int64,
               "dst_device_id": pl.Int64, "graph_node_id": pl.Int64}
    frame = read_frame(conn, f"SELECT {select} FROM {t} AS t ORDER BY t.start", schema, plan=_plan(info, t, items))
    kinds = C.MEMORY_KIND_LABELS
    return frame.with_columns(
        operation=pl.col("copy_kind").replace_strict(C.COPY_KIND_LABELS, default="[CUDA memcpy Unknown]",
                                                     return_dtype=pl.String),
        src_kind=pl.col("src_kind_id").replace_strict(kinds, default="Unknown", return_dtype=pl.String),
        dst_kind=pl.col("dst_kind_id").replace_strict(kinds, default="Unknown", return_dtype=pl.String),
        throughput_bytes_per_s=pl.when(pl.col("duration") > 0)
        .then(pl.col("bytes").cast(pl.Float64) * 1e9 / pl.col("duration")).otherwise(None),
    ).select(list(C.MEMCPY))


def read_memset(conn: sqlite3.Connection, info: ExportInfo) -> pl.DataFrame:
    t = MEMSET_TABLE
    if not info.has(t):
        return pl.DataFrame(schema=C.MEMSET)
    c = lambda col, alias, expr=None, derive=None: _col(info, t, col, alias, expr, derive)  # noqa: E731
    items = _activity(info, t) + [
        Col("t.bytes AS bytes", "bytes", "t.bytes"), c("value", "value"), c("memKind", "mem_kind_id"),
        c("graphNodeId", "graph_node_id"),
    ]
    select = ", ".join(items)
    schema = {k: C.MEMSET[k] for k in C.MEMSET if k not in ("mem_kind", "operation", "graph_node_id")}
    schema |= {"mem_kind_id": pl.Int64, "graph_node_id": pl.Int64}
    frame = read_frame(conn, f"SELECT {select} FROM {t} AS t ORDER BY t.start", schema, plan=_plan(info, t, items))
    return frame.with_columns(
        mem_kind=pl.col("mem_kind_id").replace_strict(C.MEMORY_KIND_LABELS, default="Unknown", return_dtype=pl.String),
        operation=pl.lit(C.MEMSET_LABEL),
    ).select(list(C.MEMSET))


def read_api(conn: sqlite3.Connection, info: ExportInfo, skip: frozenset[str] = frozenset()) -> pl.DataFrame:
    """CUDA API calls; ``skip``: model columns to leave out (``columns.NOT_ANALYZED``)."""
    t = API_TABLE
    if not info.has(t):
        return pl.DataFrame(schema={k: v for k, v in C.API.items() if k not in skip})
    c = lambda col, alias, expr=None, derive=None: _col(info, t, col, alias, expr, derive)  # noqa: E731
    items = [
        *_timing(t),
        _string(info, t, "nameId", "raw_name"), c("correlationId", "correlation_id"),
        c("globalTid", "global_tid"), c("globalTid", "pid", PID_OF_GLOBAL.format("t.globalTid"), PID_OF("global_tid")),
        c("globalTid", "tid", TID_OF_GLOBAL.format("t.globalTid"), TID_OF("global_tid")),
        c("returnValue", "return_value"),
    ]
    schema = {k: v for k, v in C.API.items() if k != "name"}
    items, schema = _without(items, schema, skip)
    select = ", ".join(items)
    frame = read_frame(conn, f"SELECT {select} FROM {t} AS t ORDER BY t.start", schema, plan=_plan(info, t, items))
    frame = frame.with_columns(pl.col("raw_name").fill_null("<unknown>"))
    distinct = frame.get_column("raw_name").unique()
    versioned = distinct.filter(distinct.str.contains(API_VERSION_SUFFIX))  # once per distinct name, not per call
    unversioned = versioned.str.replace(API_VERSION_SUFFIX, "")
    name = pl.col("raw_name").replace(versioned, unversioned) if versioned.len() else pl.col("raw_name")
    return frame.with_columns(name=name).select(k for k in C.API if k not in skip)


def read_gpus(conn: sqlite3.Connection, info: ExportInfo) -> pl.DataFrame:
    t = GPU_TABLE
    if not info.has(t):
        return pl.DataFrame(schema=C.GPUS)
    c = lambda col, alias, expr=None, derive=None: _col(info, t, col, alias, expr, derive)  # noqa: E731
    major = "computeMajor" if info.has(t, "computeMajor") else "smMajor"
    minor = "computeMinor" if info.has(t, "computeMinor") else "smMinor"
    select = ", ".join([
        "t.id AS id", c("name", "name"), c("smCount", "sm_count"),
        f"CASE WHEN t.{major} IS NULL THEN NULL ELSE t.{major} || '.' || t.{minor} END AS compute_capability"
        if info.has(t, major) else "NULL AS compute_capability",
        c(major, "cc_major"), c(minor, "cc_minor"),
        c("memoryBandwidth", "memory_bandwidth_bytes_per_s"), c("clockRate", "clock_hz"),
        c("l2CacheSize", "l2_cache_bytes"), c("totalMemory", "total_memory_bytes"),
        c("maxWarpsPerSm", "max_warps_per_sm"), c("maxBlocksPerSm", "max_blocks_per_sm"),
        c("maxRegistersPerSm", "max_registers_per_sm"), c("maxRegistersPerBlock", "max_registers_per_block"),
        c("maxShmemPerSm", "max_shared_mem_per_sm"), c("maxShmemPerBlock", "max_shared_mem_per_block"),
        c("maxShmemPerBlockOptin", "max_shared_mem_per_block_optin"),
        c("maxThreadsPerBlock", "max_threads_per_block"), c("threadsPerWarp", "threads_per_warp"),
        c("busLocation", "bus_location"), c("uuid", "uuid"),
    ])
    frame = read_frame(conn, f"SELECT {select} FROM {t} AS t ORDER BY t.id", C.GPUS)
    # Some exports list one GPU once per VM/process: keep one row per device id.
    return frame.unique(subset="id", keep="first", maintain_order=True)


def read_threads(conn: sqlite3.Connection, info: ExportInfo) -> pl.DataFrame:
    if not info.has("ThreadNames") or not info.has("ThreadNames", "globalTid"):
        return pl.DataFrame(schema=C.THREADS)
    sql = ("SELECT t.globalTid, " + PID_OF_GLOBAL.format("t.globalTid") + ", " + TID_OF_GLOBAL.format("t.globalTid")
           + ", (SELECT value FROM StringIds WHERE id = t.nameId) FROM ThreadNames AS t")
    return read_frame(conn, sql, C.THREADS)


def read_processes(conn: sqlite3.Connection, info: ExportInfo) -> pl.DataFrame:
    if not info.has("PROCESSES", "pid") or not info.has("PROCESSES", "name"):
        return pl.DataFrame(schema=C.PROCESSES)
    return read_frame(conn, "SELECT pid, name FROM PROCESSES", C.PROCESSES)


NVTX_RANGE_TYPES = {59: "PushPop", 60: "StartEnd", 70: "PushPop", 71: "StartEnd"}
NVTX_DOMAIN_CREATE = 75


def read_nvtx(conn: sqlite3.Connection, info: ExportInfo) -> pl.DataFrame:
    """NVTX ranges with nsys stats' naming: ``Domain:Range`` for non-default domains."""
    t = NVTX_TABLE
    if not info.has(t):
        return pl.DataFrame(schema=C.NVTX)
    c = lambda col, alias, expr=None, derive=None: _col(info, t, col, alias, expr, derive)  # noqa: E731
    by_id = (_string(info, t, "textId", "text_by_id") if info.has("StringIds")
             else Col("NULL AS text_by_id", "text_by_id", None))
    items = [*_timing(t), by_id, c("text", "text_inline"), c("domainId", "domain_id"), c("eventType", "event_type"),
             c("globalTid", "global_tid"), c("globalTid", "pid", PID_OF_GLOBAL.format("t.globalTid"), PID_OF("global_tid")),
             c("globalTid", "tid", TID_OF_GLOBAL.format("t.globalTid"), TID_OF("global_tid"))]
    where = f"t.eventType IN ({', '.join(str(k) for k in NVTX_RANGE_TYPES)}) AND t.[end] IS NOT NULL"
    schema = {"start": pl.Int64, "end": pl.Int64, "duration": pl.Int64, "text_by_id": pl.String,
              "text_inline": pl.String, "domain_id": pl.Int64, "event_type": pl.Int64, "global_tid": pl.Int64,
              "pid": pl.Int64, "tid": pl.Int64}
    plan = Plan(t, items, where=where, order_by=("start",), string_table=info.has("StringIds"))
    frame = read_frame(conn, f"SELECT {', '.join(items)} FROM {t} AS t WHERE {where} ORDER BY t.start", schema,
                       plan=plan)
    frame = frame.with_columns(text=pl.coalesce("text_by_id", "text_inline"), proc=pl.col("global_tid") & PROCESS_BITS)
    frame = frame.join(_nvtx_domains(conn, info), on=["domain_id", "proc"], how="left", maintain_order="left")
    frame = frame.with_columns(
        name=pl.when(pl.col("domain").is_not_null())
        .then(pl.col("domain") + ":" + pl.col("text").fill_null(""))
        .otherwise(pl.col("text")),
        style=pl.col("event_type").replace_strict(NVTX_RANGE_TYPES, default="Unknown", return_dtype=pl.String),
    )
    return _with_nesting_level(frame).select(list(C.NVTX))


PROCESS_BITS = 281474959933440  # the process part of a serialized GlobalId


def _nvtx_domains(conn: sqlite3.Connection, info: ExportInfo) -> pl.DataFrame:
    """(domain_id, proc, domain): names of the NVTX domains each process created."""
    t = NVTX_TABLE
    schema = {"domain_id": pl.Int64, "proc": pl.Int64, "domain": pl.String}
    if not (info.has(t, "domainId") and info.has(t, "globalTid")):
        return pl.DataFrame(schema=schema)
    has_text, has_text_id = info.has(t, "text"), info.has(t, "textId") and info.has("StringIds")
    label = {
        (True, True): "coalesce((SELECT value FROM StringIds WHERE id = t.textId), t.text)",
        (True, False): "t.text",
        (False, True): "(SELECT value FROM StringIds WHERE id = t.textId)",
        (False, False): "NULL",
    }[(has_text, has_text_id)]
    sql = (f"SELECT t.domainId, t.globalTid & {PROCESS_BITS}, {label} FROM {t} AS t "
           f"WHERE t.eventType = {NVTX_DOMAIN_CREATE}")
    return read_frame(conn, sql, schema).unique(subset=["domain_id", "proc"], keep="first", maintain_order=True)


def _with_nesting_level(ranges: pl.DataFrame) -> pl.DataFrame:
    """Nesting level per thread (0 = outermost): the number of the thread's ranges that started
    before this one (earlier start, or the same start earlier in the frame) and are still open
    at its start (end after it). Needs the frame start-sorted, as every reader delivers it;
    ranges without both times get no level (``validate.clean`` drops them)."""
    known = (pl.col("start").is_not_null() & pl.col("end").is_not_null()).alias("known")
    rows = ranges.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), known,
                         pl.col("global_tid").fill_null(-1).alias("thread"), "start", "end").filter("known")
    thread, row = rows.get_column("thread").to_numpy(), rows.get_column("row").to_numpy()
    start, end = rows.get_column("start").to_numpy(), rows.get_column("end").to_numpy()
    order = np.argsort(thread, kind="stable")  # each thread's rows together, in start order
    cuts = np.flatnonzero(np.diff(thread[order])) + 1
    levels = np.full(ranges.height, -1, dtype=np.int64)
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(order)]):
        levels[row[order[lo:hi]]] = _levels(start[order[lo:hi]], end[order[lo:hi]])
    return ranges.with_columns(level=pl.when(pl.Series(levels) >= 0).then(pl.Series(levels)))


def _levels(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``_with_nesting_level`` of one thread's ranges in start order: earlier ranges minus those
    that ended by this start, not counting the zero-length ones that start at this instant
    after it (they end 'by' it without having started before it)."""
    position = np.arange(len(start))
    ended = np.searchsorted(np.sort(end), start, side="right")
    zero_length = np.concatenate(([0], np.cumsum(end == start)))
    same_start_end = np.searchsorted(start, start, side="right")
    return position - ended + zero_length[same_start_end] - zero_length[position]
