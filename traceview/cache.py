"""Optional columnar cache: loaded activity frames as Parquet, so a second analysis of the
same large export skips SQLite.

Off by default; on with ``--cache-dir DIR`` or ``TRACEVIEW_CACHE_DIR=DIR``. Files go only
into that directory (never next to the trace, which may be read-only or shared). Entries
are keyed by a fingerprint of the trace (size, mtime in ns, the 100-byte SQLite header,
whose change counter SQLite bumps on every committed write, and the first and last 64 KiB)
and the traceview version, so a changed file or a new traceview never reads an old entry.
A frame whose loading produced warnings (skipped rows) is not cached, so a cache hit never
hides a warning. An unwritable cache directory degrades to no cache, with one warning.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import polars as pl

CACHE_ENV = "TRACEVIEW_CACHE_DIR"
EDGE_BYTES = 64 * 1024


def fingerprint(path: Path) -> str:
    """Content-and-metadata fingerprint of a trace file plus the traceview version."""
    from traceview import __version__

    st = path.stat()
    h = hashlib.sha256(f"{__version__}|{st.st_size}|{st.st_mtime_ns}".encode())
    with path.open("rb") as fh:
        h.update(fh.read(EDGE_BYTES))
        if st.st_size > EDGE_BYTES:
            fh.seek(max(EDGE_BYTES, st.st_size - EDGE_BYTES))
            h.update(fh.read(EDGE_BYTES))
    return h.hexdigest()[:32]


class FrameCache:
    """Parquet files ``<dir>/<fingerprint>/<frame>.parquet`` for one trace."""

    def __init__(self, root: Path, trace_path: Path) -> None:
        self.root = Path(root)
        self.key = fingerprint(trace_path)
        self.warning: str | None = None
        self._disabled = False

    @classmethod
    def from_setting(cls, cache_dir: str | Path | None, trace_path: Path) -> FrameCache | None:
        """A cache for ``trace_path`` when ``cache_dir`` or $TRACEVIEW_CACHE_DIR is set."""
        where = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or None
        return cls(Path(where), trace_path) if where else None

    def _file(self, name: str) -> Path:
        return self.root / self.key / f"{name}.parquet"

    def get(self, name: str) -> pl.DataFrame | None:
        f = self._file(name)
        if self._disabled or not f.is_file():
            return None
        try:
            return pl.read_parquet(f)
        except (OSError, pl.exceptions.PolarsError):
            return None  # a damaged entry is a miss; put() replaces it

    def put(self, name: str, frame: pl.DataFrame) -> None:
        if self._disabled:
            return
        target = self._file(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            try:
                frame.write_parquet(tmp, compression="lz4", statistics=False)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as exc:
            self._disabled = True
            self.warning = f"cache directory {self.root} is not writable ({exc.strerror}); analyzing without cache"
