"""Command-line interface: thin typer commands over ``traceview.api``."""

from __future__ import annotations

from traceview.cli import analyze, compare, hw, info, project, report, rules  # noqa: F401  (registers commands)
from traceview.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
