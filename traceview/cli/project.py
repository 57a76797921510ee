"""`traceview project TRACE --hardware gb10`: deployment what-if for a traced decode step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from traceview import api
from traceview.cli.app import OutputFormat, app, emit, guarded, progress


def _table(data: dict[str, Any]) -> list[list[str]]:
    return [[c["config"], str(c["nodes"]), f"{c['step_ns'] / 1e3:.1f} us", f"{c['tokens_per_s']:.1f}",
             f"{c['weights_per_node_bytes'] / 2**30:.2f} GiB", "yes" if c["fits"] else "NO", c["limited_by"]]
            for c in data["configs"]]


HEAD = ["config", "nodes", "step time", "tokens/s", "weights/node", "fits", "limited by"]


def to_text(data: dict[str, Any]) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Projected decode on {data['target']} (ESTIMATE)", title_justify="left")
    for h in HEAD:
        table.add_column(h)
    for row in _table(data):
        table.add_row(*[Text(c) for c in row])
    console = Console(width=140, record=True, file=open("/dev/null", "w"), color_system=None)  # noqa: SIM115
    console.print(table)
    return console.export_text() + "Assumptions:\n" + "\n".join(f"  - {a}" for a in data["assumptions"]) + "\n"


def to_markdown(data: dict[str, Any]) -> str:
    rows = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)] + ["| " + " | ".join(r) + " |" for r in _table(data)]
    return (f"## Projected decode on {data['target']} (estimate)\n\n" + "\n".join(rows) + "\n\n**Assumptions**\n\n"
            + "\n".join(f"- {a}" for a in data["assumptions"]) + "\n")


@app.command()
@guarded
def project(
    trace: Annotated[Path, typer.Argument(help="nsys SQLite export with decode-step NVTX ranges")],
    hardware: Annotated[str | None, typer.Option("--hardware", help="Target GPU (traceview hw list); default gb10")] = None,
    nodes: Annotated[str | None, typer.Option("--nodes", help="Node counts to tabulate (default 1,2,4)")] = None,
    tp: Annotated[int | None, typer.Option("--tp", min=1, help="Only this tensor-parallel size")] = None,
    pp: Annotated[int | None, typer.Option("--pp", min=1, help="Only this pipeline-parallel size")] = None,
    link: Annotated[str | None, typer.Option("--link", help="Interconnect (roce200, nvlink4, pcie5, ...)")] = None,
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="Sequences decoded together (default 1)")] = None,
    microbatches: Annotated[int | None, typer.Option("--microbatches", min=1, help="PP micro-batches (default 1)")] = None,
    bandwidth_share: Annotated[float | None, typer.Option("--bandwidth-share", min=0.05, max=1.0,
                                                          help="Achievable share of peak DRAM bandwidth")] = None,
    weights_gb: Annotated[float | None, typer.Option("--weights-gb", help="Model weights (GB) for the fit check")] = None,
    ncu: Annotated[list[Path] | None, typer.Option("--ncu", help="Nsight Compute CSV for measured bytes")] = None,
    recipe: Annotated[str | None, typer.Option("--recipe", help="Recipe whose [projection] gives defaults")] = None,
    format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Project a traced decode step onto other hardware, node counts and TP/PP layouts (an estimate)."""
    from traceview.analyses import deployment, projection
    from traceview.cli.analyze import build_options

    options = build_options(recipe, None, ncu, None, None)
    conf = dict(getattr(options.recipe, "sections", {}).get("projection", {})) if options.recipe else {}
    hardware = hardware or conf.get("hardware") or "gb10"
    node_counts = ([int(n) for n in nodes.split(",") if n.strip()] if nodes else [int(n) for n in conf.get("nodes", [1, 2, 4])])
    with progress(f"analyzing {trace.name}"):
        result = api.analyze(api.load(trace, columns="analysis"), options=options)
        step = deployment.measured_step(result)
    target = deployment.target_for(hardware, bandwidth_share or conf.get("bandwidth_share"))
    link_key = link or conf.get("link") or deployment.default_link(hardware)
    data = projection.project(step, target, deployment.link_named(link_key), nodes=sorted(set(node_counts)),
                              batch=batch or int(conf.get("batch", 1)),
                              microbatches=microbatches or int(conf.get("microbatches", 1)), tp=tp, pp=pp,
                              weights_bytes_total=weights_gb * 1e9 if weights_gb else None)
    if format is OutputFormat.json:
        emit(json.dumps(data, indent=2), output)
    elif format is OutputFormat.markdown:
        emit(to_markdown(data), output)
    else:
        emit(to_text(data), output)
