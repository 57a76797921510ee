"""`traceview analyze TRACE`: summaries, launch analysis, bounds, findings for one export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from traceview import api
from traceview.cli.app import OutputFormat, app, emit, guarded, progress


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def build_options(recipe: str | None, hardware: str | None, ncu: list[Path] | None, rules: list[str] | None,
                  ignore: list[str] | None, work: Path | None = None) -> api.AnalyzeOptions:
    """AnalyzeOptions from CLI flags; a recipe supplies defaults that flags override."""
    options = api.AnalyzeOptions()
    if recipe:
        from traceview.recipe import load_recipe

        options = load_recipe(recipe).to_options(options)
    if hardware:
        options.hardware = hardware
    if ncu:
        options.ncu = list(ncu)
    if work:
        options.work = work
    if rules:
        options.select = _split(rules)
    if ignore:
        options.ignore = (options.ignore or []) + (_split(ignore) or [])
    return options


@app.command()
@guarded
def analyze(
    traces: Annotated[list[Path], typer.Argument(
        help="nsys SQLite export (nsys export --type sqlite); several, or a directory of rank files, "
             "give one report per rank plus a cross-rank view")],
    format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format")] = OutputFormat.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows in the top-N tables")] = 15,
    device: Annotated[int | None, typer.Option("--device", help="Only this GPU (device id)")] = None,
    recipe: Annotated[str | None, typer.Option("--recipe", help="Recipe name or TOML file (recipes/)")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", help="What-if GPU from `traceview hw list`")] = None,
    ncu: Annotated[list[Path] | None, typer.Option("--ncu", help="Nsight Compute CSV (--page raw/details)")] = None,
    work: Annotated[Path | None, typer.Option("--work", help="Sidecar TOML/JSON: bytes/FLOPs per kernel launch")] = None,
    rules: Annotated[list[str] | None, typer.Option("--rules", help="Only these rule ids/globs")] = None,
    ignore: Annotated[list[str] | None, typer.Option("--ignore", help="Skip these rule ids/globs")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the HTML report to FILE")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Rank files analyzed in parallel")] = None,
    dask_scheduler: Annotated[str | None, typer.Option(
        "--dask-scheduler", help="Run the per-file work on this Dask scheduler (tcp://HOST:PORT)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Parquet cache of loaded frames (default: $TRACEVIEW_CACHE_DIR; off)")] = None,
) -> None:
    """Summarize kernels, memory operations, CUDA API calls, NVTX ranges and GPU utilization,
    then explain what to fix (findings ranked by estimated gain)."""
    options = build_options(recipe, hardware, ncu, rules, ignore, work)
    if len(traces) > 1 or traces[0].is_dir() or dask_scheduler:
        from traceview.cli.multirank import analyze_ranks

        return analyze_ranks(traces, options, format=format, output=output, top=top, device=device, html=html,
                             jobs=jobs, scheduler=dask_scheduler, cache_dir=cache_dir)
    trace = traces[0]
    with progress(f"analyzing {trace.name}"):
        result = api.analyze(api.load(trace, cache_dir=cache_dir, columns="analysis"), device=device,
                             top=top if format is not OutputFormat.text else None, options=options)
        data = result.to_dict()
    if html is not None:
        from traceview.report.html import write_html

        write_html(result, html)
    if format is OutputFormat.json:
        from traceview.report.jsonout import dumps

        emit(dumps(data), output)
    elif format is OutputFormat.markdown:
        from traceview.report.markdown import to_markdown

        emit(to_markdown(data, top), output)
    else:
        from traceview.report.terminal import to_text

        emit(to_text(data, top), output)
