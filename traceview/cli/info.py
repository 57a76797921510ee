"""`traceview info TRACE`: versions, GPUs, tables and row counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from traceview import api
from traceview.cli.app import OutputFormat, app, emit, guarded


def export_info(trace_path: Path) -> dict:
    trace = api.load(trace_path)
    activity = sorted(t for t in trace.info.tables if t.startswith(("CUPTI_", "NVTX_", "GPU_METRICS", "GENERIC_EVENTS")))
    return {
        "path": str(trace.path),
        "nsys_version": trace.nsys_version,
        "schema_version": trace.schema_version,
        "metadata_table": trace.info.metadata_table,
        "gpus": [{k: g[k] for k in ("id", "name", "sm_count", "compute_capability", "memory_bandwidth_bytes_per_s")}
                 for g in trace.gpus.iter_rows(named=True)],
        "devices_with_activity": trace.device_ids,
        "tables": {t: trace.table_row_count(t) for t in activity},
    }


@app.command()
@guarded
def info(
    trace: Annotated[Path, typer.Argument(help="nsys SQLite export")],
    format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
) -> None:
    """Export version, schema, GPUs, activity tables and their row counts."""
    data = export_info(trace)
    if format is not OutputFormat.text:
        emit(json.dumps(data, indent=2), None)
        return
    lines = [f"{data['path']}", f"  nsys version:   {data['nsys_version'] or 'unknown'}",
             f"  schema version: {data['schema_version'] or 'unknown'} ({data['metadata_table'] or 'no metadata table'})",
             "  GPUs:"]
    lines += [f"    [{g['id']}] {g['name']}  SMs={g['sm_count']}  CC={g['compute_capability']}" for g in data["gpus"]]
    lines += [f"  devices with activity: {data['devices_with_activity']}", "  tables:"]
    lines += [f"    {t:<45} {n:>12,}" for t, n in data["tables"].items()]
    emit("\n".join(lines), None)
