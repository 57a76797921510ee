"""`traceview report TRACE -o report.html`: the self-contained HTML report for performance reviews."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from traceview import api
from traceview.cli.analyze import build_options
from traceview.cli.app import app, guarded, progress


@app.command()
@guarded
def report(
    trace: Annotated[Path, typer.Argument(help="nsys SQLite export (nsys export --type sqlite)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write")] = Path("report.html"),
    recipe: Annotated[str | None, typer.Option("--recipe", help="Recipe name or TOML file (recipes/)")] = None,
    ncu: Annotated[list[Path] | None, typer.Option("--ncu", help="Nsight Compute CSV (--page raw/details)")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", help="What-if GPU from `traceview hw list`")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Baseline export: add the comparison view")]
    = None,
    device: Annotated[int | None, typer.Option("--device", help="Only this GPU (device id)")] = None,
) -> None:
    """Write one HTML file that works offline: findings, timeline, top kernels, roofline,
    occupancy, flowchart, phases, and with --baseline the regression gate's comparison."""
    from traceview.report.html import write_html

    options = build_options(recipe, hardware, ncu, None, None)
    with progress(f"analyzing {trace.name}"):
        result = api.analyze(api.load(trace, columns="analysis"), device=device, options=options)
        comparison = None
        if baseline is not None:
            comparison = api.compare(baseline, result.trace, recipe)
        path = write_html(result, output, comparison=comparison)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1e6:.1f} MB)", file=sys.stderr)
