"""Atomic output: write to a temp file in the target directory, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from traceview.errors import OutputError


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def write_atomic(path: str | Path, content: str | bytes) -> None:
    """Replace ``path`` with ``content`` in one step; a failure leaves any old file intact."""
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; name the output file")
    if _is_sqlite(path):
        raise OutputError(f"{path}: is an SQLite database (a trace?); refusing to overwrite it with a report")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)  # a symlink at ``path`` is replaced, never followed
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write ({exc.strerror})") from exc
        raise
