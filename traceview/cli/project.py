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
    hardware: Annotated[str, typer.Option("--hardware", help="Target GPU (traceview hw list)")] = "gb10",
    nodes: Annotated[str, typer.Option("--nodes", help="Node counts to tabulate, e.g. 1,2,4")] = "1,2,4",
    tp: Annotated[int | None, typer.Option("--tp", min=1, help="Only this tensor-parallel size")] = None,
    pp: Annotated[int | None, typer.Option("--pp", min=1, help="Only this pipeline-parallel size")] = None,
    link: Annotated[str | None, typer.Option("--link", help="Interconnect (roce200, nvlink4, pcie5, ...)")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Sequences decoded together")] = 1,
    microbatches: Annotated[int, typer.Option("--microbatches", min=1, help="PP micro-batches in flight")] = 1,
    bandwidth_share: Annotated[float | None, typer.Option("--bandwidth-share", min=0.05, max=1.0,
                                                          help="Achievable share of peak DRAM bandwidth")] = None,
    weights_gb: Annotated[float | None, typer.Option("--weights-gb", help="Model weights (GB) for the fit check")] = None,
    ncu: Annotated[list[Path] | None, typer.Option("--ncu", help="Nsight Compute CSV for measured bytes")] = None,
    format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Project a traced decode step onto other hardware, node counts and TP/PP layouts (an estimate)."""
    from traceview.analyses import deployment, projection

    node_counts = sorted({int(n) for n in nodes.split(",") if n.strip()})
    with progress(f"analyzing {trace.name}"):
        result = api.analyze(api.load(trace), options=api.AnalyzeOptions(ncu=list(ncu or [])))
        step = deployment.measured_step(result)
    target = deployment.target_for(hardware, bandwidth_share)
    data = projection.project(step, target, deployment.link_named(link or deployment.default_link(hardware)),
                              nodes=node_counts, batch=batch, microbatches=microbatches, tp=tp, pp=pp,
                              weights_bytes_total=weights_gb * 1e9 if weights_gb else None)
    if format is OutputFormat.json:
        emit(json.dumps(data, indent=2), output)
    elif format is OutputFormat.markdown:
        emit(to_markdown(data), output)
    else:
        emit(to_text(data), output)
