"""The typed ``Trace`` model: metadata plus lazily loaded, typed polars frames."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from traceview.ingest import tables
from traceview.ingest.detect import ExportInfo

if TYPE_CHECKING:
    from traceview.cache import FrameCache


class Trace:
    """One Nsight Systems export. Frames load on first access, each with one SQL query.

    Attributes: ``path``, ``info`` (versions, tables and columns). Frames (see
    ``traceview.model.columns`` for their schemas): ``kernels``, ``memcpy``, ``memset``,
    ``api``, ``nvtx``, ``gpus``, ``threads``, ``processes``; ``skip`` names model columns a
    frame leaves out (``load(path, columns="analysis")``).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, info: ExportInfo,
                 skip: Mapping[str, frozenset[str]] | None = None) -> None:
        self.path = path
        self.skip = dict(skip or {})  # frame name -> model columns left out (see ``columns.NOT_ANALYZED``)
        self.info = info
        self._conn = conn
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}  # one per frame: frames load in parallel, each once
        self._frames: dict[str, pl.DataFrame] = {}  # loaded frames: a second load (another thread) reuses them
        self._prefetching: list[threading.Thread] = []  # joined by ``close``: never close under a reader
        self._closing = False
        self.warnings: list[str] = []  # anomalies found while loading (rows skipped, degraded schema)
        self.cache: FrameCache | None = None  # optional Parquet cache of loaded frames (traceview.cache)

    def _load(self, reader: Callable[[sqlite3.Connection, ExportInfo], pl.DataFrame]) -> pl.DataFrame:
        from traceview.ingest.validate import clean, read_checked

        name = reader.__name__.removeprefix("read_")
        skip = {"skip": self.skip[name]} if self.skip.get(name) else {}
        stored = "-".join([name, *sorted(self.skip.get(name, ()))])  # a projected frame is cached apart
        with self._locks.setdefault(stored, threading.Lock()):
            if stored in self._frames:
                return self._frames[stored]
            cached = self.cache.get(stored) if self.cache is not None else None
            if cached is not None:
                self._frames[stored] = cached
                return cached
            frame = read_checked(self._conn, self.info, reader, self.path, self.warnings, **skip)
            frame, notes = clean(name, frame, str(self.path))
            self.warnings.extend(notes)
            if self.cache is not None and not notes:  # traceview.cache: never hide a warning
                self.cache.put(stored, frame)
                if self.cache.warning and self.cache.warning not in self.warnings:
                    self.warnings.append(self.cache.warning)
            self._frames[stored] = frame
            return frame

    def prefetch(self, *names: str) -> threading.Thread:
        """Load the frames ``names`` (e.g. ``"api"``) in a background thread while the caller works
        on others: reading releases the GIL, and an analysis of the kernels uses about one core of
        two. A frame asked for meanwhile waits for that load; an error surfaces there, on the
        caller's own access (the background load then is retried and raises)."""

        def load() -> None:
            for name in names:
                if self._closing:
                    return
                try:
                    getattr(self, name)
                except Exception:  # noqa: BLE001 - the caller's own access raises it
                    return

        thread = threading.Thread(target=load, name=f"traceview-prefetch-{'-'.join(names)}", daemon=True)
        self._prefetching.append(thread)
        thread.start()
        return thread

    @property
    def connection(self) -> sqlite3.Connection:
        """The read-only connection, for analyses that aggregate in SQL."""
        return self._conn

    @cached_property
    def kernels(self) -> pl.DataFrame:
        return self._load(tables.read_kernels)

    @cached_property
    def memcpy(self) -> pl.DataFrame:
        return self._load(tables.read_memcpy)

    @cached_property
    def memset(self) -> pl.DataFrame:
        return self._load(tables.read_memset)

    @cached_property
    def api(self) -> pl.DataFrame:
        return self._load(tables.read_api)

    @cached_property
    def nvtx(self) -> pl.DataFrame:
        return self._load(tables.read_nvtx)

    @cached_property
    def gpus(self) -> pl.DataFrame:
        return self._load(tables.read_gpus)

    @cached_property
    def threads(self) -> pl.DataFrame:
        return self._load(tables.read_threads)

    @cached_property
    def processes(self) -> pl.DataFrame:
        return self._load(tables.read_processes)

    @property
    def nsys_version(self) -> str | None:
        return self.info.nsys_version

    @property
    def schema_version(self) -> str | None:
        return self.info.schema_version

    def table_row_count(self, table: str) -> int | None:
        if not self.info.has(table):
            return None
        with self._lock:
            return int(self._conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])

    @cached_property
    def device_ids(self) -> list[int]:
        """Devices with GPU activity (kernels, copies, memsets), sorted."""
        ids: set[int] = set()
        for frame in (self.kernels, self.memcpy, self.memset):
            ids.update(int(x) for x in frame.get_column("device_id").drop_nulls().unique().to_list())
        return sorted(ids)

    @cached_property
    def time_bounds(self) -> tuple[int, int] | None:
        """(first start, last end) over all activity and API/NVTX events, ns."""
        frames = [f for f in (self.kernels, self.memcpy, self.memset, self.api, self.nvtx) if f.height]
        if not frames:
            return None
        lo = min(int(f.get_column("start").min()) for f in frames)  # type: ignore[arg-type]
        hi = max(int(f.get_column("end").max()) for f in frames)  # type: ignore[arg-type]
        return lo, hi

    def close(self) -> None:
        """Close the connection, after any ``prefetch`` still reading from it has stopped."""
        self._closing = True
        for thread in self._prefetching:
            thread.join()
        self._conn.close()

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Trace({str(self.path)!r}, nsys={self.nsys_version}, schema={self.schema_version})"
