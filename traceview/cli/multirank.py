"""`traceview analyze DIR/` or several files: per-rank reports plus the cross-rank view."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from traceview import api
from traceview.cli.app import OutputFormat, emit
from traceview.errors import InputError
from traceview.report.safe import printable as _safe


def _progress_bar(total_hint: int) -> tuple[AbstractContextManager[Any], Any]:
    """A rich progress bar over files on stderr (only on a terminal), and its callback."""
    if not sys.stderr.isatty():
        return nullcontext(), None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("analyzing rank files"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.description}"), console=Console(stderr=True), transient=True)
    task = bar.add_task("", total=total_hint)
    return bar, lambda done, total, path: bar.update(task, completed=done, total=total, description=Path(path).name)


def analyze_ranks(paths: list[Path], options: api.AnalyzeOptions, *, format: OutputFormat, output: Path | None,
                  top: int, device: int | None, html: Path | None, jobs: int | None, scheduler: str | None,
                  cache_dir: Path | None) -> None:
    if html is not None:
        raise InputError("--html takes one trace; run `traceview analyze FILE --html OUT` per rank")
    bar, callback = _progress_bar(len(paths))
    with bar:
        result = api.analyze_many(paths, device=device, top=top if format is not OutputFormat.text else None,
                                  options=options, workers=jobs, scheduler=scheduler, cache_dir=cache_dir,
                                  progress=callback)
    data = result.to_dict()
    if format is OutputFormat.json:
        from traceview.report.jsonout import dumps

        emit(dumps(data), output)
        return
    emit(to_text(data, top, markdown=format is OutputFormat.markdown), output)


def _table(rows: list[dict[str, Any]], cols: list[str], markdown: bool) -> list[str]:
    if not rows:
        return ["(none)"]
    cells = [[_safe(str(r.get(c, ""))) for c in cols] for r in rows]
    if markdown:
        out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        return out + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return [fmt.format(*cols)] + [fmt.format(*row) for row in cells]


def to_text(data: dict[str, Any], top: int = 15, markdown: bool = False) -> str:
    """The cross-rank view, then each rank's own report."""
    from traceview.report.markdown import to_markdown
    from traceview.report.terminal import to_text as rank_text

    cross = data["cross_rank"]
    h = "## " if markdown else ""
    lines = [f"{'# ' if markdown else ''}Cross-rank view ({len(data['ranks'])} ranks)", ""]
    lines += [f"{h}Per rank", *_table(cross["per_rank"], ["rank", "device_id", "gpu_busy_ns", "window_ns",
                                                          "nccl_ns", "nccl_kernels", "path"], markdown), ""]
    lines += [f"{h}Top kernels over all ranks", *_table(cross["top_kernels"][:top], [
        "name", "instances", "total_ns", "ranks", "min_rank_ns", "max_rank_ns", "max_rank"], markdown), ""]
    lines += [f"{h}Slowest rank per step", *_table(cross["steps"][:top], [
        "step", "slowest_rank", "max_ns", "median_ns", "spread_ns"], markdown), ""]
    if cross.get("stragglers"):
        lines += [f"{h}Collective stragglers", *_table(cross["stragglers"], [
            "rank", "file_rank", "device_id", "last_count", "last_pct", "med_lateness_ns", "wait_caused_ns"], markdown), ""]
    for rank in data["ranks"]:
        lines += [f"{h}Rank {rank['rank']}: {_safe(rank['path'])}", ""]
        body = to_markdown(rank["report"], top) if markdown else rank_text(rank["report"], top)
        lines += [body, ""]
    return "\n".join(lines)
