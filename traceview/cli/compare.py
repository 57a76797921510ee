"""`traceview compare BASELINE CANDIDATE`: the CI regression gate (exit 0 pass, 1 regression, 2 error)."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from traceview import api
from traceview.cli.app import app, emit, guarded, progress
from traceview.errors import InputError


class CompareFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"
    junit = "junit"


def baseline_runs(directory: Path | None, baseline: Path) -> list[Path]:
    """Every *.sqlite in ``directory`` except ``baseline`` itself, sorted."""
    if directory is None:
        return []
    if not directory.is_dir():
        raise InputError(f"{directory}: --baseline-dir is not a directory")
    runs = [p for p in sorted(directory.glob("*.sqlite")) if p.resolve() != baseline.resolve()]
    if not runs:
        raise InputError(f"{directory}: no other baseline exports (*.sqlite) in --baseline-dir")
    return runs


def append_step_summary(markdown: str) -> None:
    """Append to $GITHUB_STEP_SUMMARY when GitHub Actions sets it."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")


@app.command()
@guarded
def compare(
    baseline: Annotated[Path, typer.Argument(help="baseline nsys SQLite export")],
    candidate: Annotated[Path, typer.Argument(help="candidate nsys SQLite export")],
    recipe: Annotated[str | None, typer.Option("--recipe", help="Recipe name or TOML file; its [gate] section")] = None,
    format: Annotated[CompareFormat, typer.Option("--format", "-f", help="Output format")] = CompareFormat.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Practical threshold, % of an item")] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", help="Significance level (family-wise)")] = None,
    baseline_dir: Annotated[Path | None, typer.Option("--baseline-dir",
                                                       help="More baseline runs, to learn noise")] = None,
) -> None:
    """Compare a candidate trace with a baseline: exit 0 if no statistically and practically
    significant regression, 1 if there is one, 2 on an error or incomparable traces."""
    from traceview.compare import outputs

    with progress(f"comparing {candidate.name} with {baseline.name}"):
        result = api.compare(baseline, candidate, recipe, baselines=baseline_runs(baseline_dir, baseline),
                             alpha=alpha, threshold_pct=threshold)
    render = {CompareFormat.json: outputs.dumps, CompareFormat.markdown: outputs.to_markdown,
              CompareFormat.junit: outputs.to_junit, CompareFormat.text: outputs.to_text}[format]
    emit(render(result), output)
    append_step_summary(outputs.to_markdown(result))
    raise typer.Exit(code=result.exit_code)
