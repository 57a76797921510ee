"""GPU metrics samples (``nsys profile --gpu-metrics-devices``), read in SQL.

Two layouts exist:

* newer nsys: ``GPU_METRICS(timestamp, typeId, metricId, value)`` described by
  ``TARGET_INFO_GPU_METRICS(typeId, metricId, metricName, ...)``, one row per metric value;
* nsys 2022.x: ``GENERIC_EVENTS(rawTimestamp, timestamp, typeId, data)`` whose ``data`` is a
  JSON document with one field per metric, described by ``GENERIC_EVENT_TYPES`` (the field
  names) and ``GENERIC_EVENT_SOURCES`` (``"Name": "GpuMetrics"``).

Both become one wide frame, one row per sample: ``device_id, start, end`` (ns; a sample
covers ``[start, end)``, up to the next sample) and one column per canonical metric in
``METRICS`` (percent of peak, 0-100). The pivot happens in SQL (``json_extract`` for the
JSON documents); no Python loop touches a sample.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field

import polars as pl

from traceview.ingest.detect import ExportInfo
from traceview.ingest.sqlite import read_frame

# canonical column -> regex on the nsys metric name (newer names carry a "[Throughput %]" suffix)
METRICS: dict[str, str] = {
    "sm_active": r"^SMs? Active",
    "sm_issue": r"^SM Issue",
    "tensor_active": r"^Tensor (Pipe )?Active",
    "dram_read": r"^DRAM Read (Throughput|Bandwidth)",
    "dram_write": r"^DRAM Write (Throughput|Bandwidth)",
    "warps_in_flight": r"^(Compute )?Warps [Ii]n Flight",
    "gr_active": r"^GR Active",
}
LABELS = {"sm_active": "SM Active", "sm_issue": "SM Issue", "tensor_active": "Tensor Active",
          "dram_read": "DRAM Read Throughput", "dram_write": "DRAM Write Throughput",
          "warps_in_flight": "Compute Warps In Flight", "gr_active": "GR Active"}
GAP_PERIODS = 3  # a gap longer than this many median periods means sampling paused


@dataclass(slots=True)
class GpuMetricSamples:
    """Samples as a wide frame plus where each canonical column came from."""

    samples: pl.DataFrame
    table: str                                          # GPU_METRICS or GENERIC_EVENTS
    sources: dict[str, str] = field(default_factory=dict)  # canonical column -> nsys metric name
    period_ns: float = 0.0                              # median sampling period


def _pick(names: list[str]) -> dict[str, str]:
    """canonical column -> the nsys metric name; a "%" / "Throughput" variant wins over others."""
    out: dict[str, str] = {}
    for canon, pattern in METRICS.items():
        hits = [n for n in names if re.search(pattern, n)]
        hits.sort(key=lambda n: (not ("%" in n or "Throughput" in n), len(n)))
        if hits:
            out[canon] = hits[0]
    return out


def _generic_events_sql(conn: sqlite3.Connection) -> tuple[str, dict[str, str]] | None:
    try:
        sources = {sid: json.loads(data) for sid, data in conn.execute("SELECT sourceId, data FROM GENERIC_EVENT_SOURCES")}
        types = [(tid, json.loads(data)) for tid, sid, data in conn.execute(
            "SELECT typeId, sourceId, data FROM GENERIC_EVENT_TYPES") if sources.get(sid, {}).get("Name") == "GpuMetrics"]
    except (TypeError, ValueError, AttributeError):  # not the JSON nsys writes: no GPU metrics to read
        return None
    if not types:
        return None
    names = sorted({f.get("Name", "") for _, t in types for f in t.get("Fields", [])})
    picked = _pick(names)
    if not picked:
        return None
    cols = ", ".join(
        f"CAST(json_extract(e.data, '$.\"{name}\"') AS REAL) AS {canon}" for canon, name in picked.items())
    ids = ", ".join(str(int(tid)) for tid, _ in types)
    sql = (f"SELECT COALESCE(e.timestamp, e.rawTimestamp) AS ts, e.typeId & 255 AS device_id, {cols} "
           f"FROM GENERIC_EVENTS AS e WHERE e.typeId IN ({ids}) AND json_valid(e.data) ORDER BY device_id, ts")
    return sql, picked


def _gpu_metrics_sql(conn: sqlite3.Connection) -> tuple[str, dict[str, str]] | None:
    rows = conn.execute("SELECT DISTINCT typeId, metricId, metricName FROM TARGET_INFO_GPU_METRICS").fetchall()
    picked = _pick(sorted({str(r[2]) for r in rows}))
    if not picked:
        return None
    cases = []
    for canon, name in picked.items():
        pairs = " OR ".join(f"(g.typeId = {int(t)} AND g.metricId = {int(m)})" for t, m, n in rows if n == name)
        cases.append(f"MAX(CASE WHEN {pairs} THEN g.value END) AS {canon}")
    sql = (f"SELECT g.timestamp AS ts, g.typeId & 255 AS device_id, {', '.join(cases)} FROM GPU_METRICS AS g "
           "GROUP BY g.typeId, g.timestamp ORDER BY device_id, ts")
    return sql, picked


def read_gpu_metrics(conn: sqlite3.Connection, info: ExportInfo) -> GpuMetricSamples | None:
    """The export's GPU metrics samples, or None when it has none."""
    if info.has("GPU_METRICS") and info.has("TARGET_INFO_GPU_METRICS"):
        table, built = "GPU_METRICS", _gpu_metrics_sql(conn)
    elif info.has("GENERIC_EVENTS") and info.has("GENERIC_EVENT_TYPES") and info.has("GENERIC_EVENT_SOURCES"):
        table, built = "GENERIC_EVENTS", _generic_events_sql(conn)
    else:
        return None
    if built is None:
        return None
    sql, picked = built
    schema = {"ts": pl.Int64, "device_id": pl.Int64} | {c: pl.Float64 for c in picked}
    frame = read_frame(conn, sql, schema).drop_nulls("ts")
    if frame.height < 2:
        return None
    frame = frame.with_columns([pl.lit(None, pl.Float64).alias(c) for c in METRICS if c not in frame.columns])
    samples, period = _intervals(frame)
    return GpuMetricSamples(samples=samples, table=table, sources=picked, period_ns=period)


def _intervals(frame: pl.DataFrame) -> tuple[pl.DataFrame, float]:
    """Each sample covers [ts, next ts) on its device; the last one, and ones before a pause,
    cover one median period."""
    nxt = pl.col("ts").shift(-1).over("device_id")
    period = float(frame.with_columns((nxt - pl.col("ts")).alias("gap")).get_column("gap").drop_nulls().median() or 0)
    gap = nxt - pl.col("ts")
    end = pl.when(nxt.is_null() | (gap > GAP_PERIODS * period)).then(pl.col("ts") + int(period)).otherwise(nxt)
    out = frame.with_columns(end.cast(pl.Int64).alias("end")).rename({"ts": "start"})
    return out.select("device_id", "start", "end", *METRICS), period
