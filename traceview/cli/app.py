"""The typer application object and the error guard every command uses."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import typer

from traceview.errors import TraceviewError

app = typer.Typer(
    name="traceview",
    help="Answers from NVIDIA Nsight Systems traces (nsys export --type sqlite).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

F = TypeVar("F", bound=Callable[..., Any])


class OutputFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise."""
    from traceview.report.safe import printable

    first_line = " ".join(printable(message, limit=1000).split()) or "error"  # no escapes from trace strings
    print(f"traceview: error: {first_line}", file=sys.stderr)
    return typer.Exit(code=code)


def guarded(fn: F) -> F:
    """Turn every error into one stderr line and a non-zero exit; never a traceback.

    Set TRACEVIEW_DEBUG=1 to see the traceback of an unexpected error.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except TraceviewError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except MemoryError:
            raise fail("out of memory while analyzing; try --device or a smaller capture window") from None
        except Exception as exc:  # the outermost layer: report, don't crash
            if os.environ.get("TRACEVIEW_DEBUG"):
                raise
            raise fail(f"internal error ({type(exc).__name__}: {exc}); rerun with TRACEVIEW_DEBUG=1 "
                       "and report it") from None

    return wrapper  # type: ignore[return-value]


def progress(message: str) -> AbstractContextManager[Any]:
    """A spinner on stderr while loading, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def emit(content: str, output: Path | None) -> None:
    """Write to ``output`` atomically, or to stdout."""
    if output is None:
        sys.stdout.write(content if content.endswith("\n") else content + "\n")
        return
    from traceview.report.writer import write_atomic

    write_atomic(output, content)
