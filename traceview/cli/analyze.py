"""`traceview analyze TRACE`: summaries (and later findings) for one export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from traceview import api
from traceview.cli.app import OutputFormat, app, emit, guarded, progress


@app.command()
@guarded
def analyze(
    trace: Annotated[Path, typer.Argument(help="nsys SQLite export (nsys export --type sqlite)")],
    format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format")] = OutputFormat.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows in the top-N tables")] = 15,
    device: Annotated[int | None, typer.Option("--device", help="Only this GPU (device id)")] = None,
) -> None:
    """Summarize kernels, memory operations, CUDA API calls, NVTX ranges and GPU utilization."""
    with progress(f"loading {trace.name}"):
        result = api.analyze(api.load(trace), device=device, top=top if format is not OutputFormat.text else None)
        data = result.to_dict()
    if format is OutputFormat.json:
        from traceview.report.jsonout import dumps

        emit(dumps(data), output)
    elif format is OutputFormat.markdown:
        from traceview.report.markdown import to_markdown

        emit(to_markdown(data, top), output)
    else:
        from traceview.report.terminal import to_text

        emit(to_text(data, top), output)
