"""Bytes and FLOPs per kernel launch for the analytic evidence tier.

Two sources, best first:

* a **sidecar file** the user writes (TOML or JSON), exact by definition::

      # bytes and FLOPs moved/executed by ONE launch of the kernel
      [kernels.gemv_bf16_decode]
      bytes = 134217728
      flops = 134217728
      dtype = "bf16"          # optional: which peak FLOP/s applies (default: from the name, else fp32)

  Keys are exact kernel names or globs (``"*gemv*"``); the first match in file order wins.
* **recognized** elementwise kernels (gelu, relu, scale, axpy, ...): one element per thread
  (grid x block), element size from the name (bf16/fp16 2 B, fp8 1 B, fp64 8 B, else an
  assumed 4 B), reads + writes from the name (in-place 2, triad/axpy 3, else 2). Grids sized
  to a multiple of the SM count are taken for grid-stride loops and not sized. The result is a
  lower bound on the bytes a launch moves, and says so.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import polars as pl

from traceview.errors import InputError

WORK_SCHEMA = {"name": pl.String, "bytes": pl.Float64, "flops": pl.Float64, "dtype": pl.String,
               "work_source": pl.String, "exact": pl.Boolean, "note": pl.String}
ELEMENTWISE = r"(?i)elementwise|gelu|relu|silu|swish|sigmoid|tanh|scale|axpy|triad|bias_add|\badd\b|\bmul\b|dropout"
DTYPES = (("fp8", r"(?i)fp8|e4m3|e5m2", 1), ("bf16", r"(?i)bf16|bfloat16", 2), ("fp16", r"(?i)fp16|half|\bh\d", 2),
          ("fp64", r"(?i)fp64|double|\bd(gemm|axpy)", 8), ("fp32", r"(?i)fp32|float|sgemm|saxpy", 4))


class WorkFileError(InputError):
    """A sidecar work file that cannot be read."""


def dtype_of(name: str) -> tuple[str | None, int | None]:
    """(dtype, element bytes) named in a kernel name, or (None, None)."""
    import re

    for dtype, pattern, size in DTYPES:
        if re.search(pattern, name):
            return dtype, size
    return None, None


def load_sidecar(path: str | Path) -> list[dict[str, Any]]:
    """Entries ``{pattern, bytes, flops, dtype}`` in file order; one-line errors on bad input."""
    path = Path(path)
    if not path.is_file():
        raise WorkFileError(f"{path}: no such work file")
    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WorkFileError(f"{path}: cannot parse work file ({str(exc).splitlines()[0]})") from exc
    kernels = doc.get("kernels") if isinstance(doc, dict) else None
    if not isinstance(kernels, dict) or not kernels:
        raise WorkFileError(f"{path}: expected a [kernels.<name>] table with bytes and/or flops per launch")
    out = []
    for pattern, entry in kernels.items():
        if not isinstance(entry, dict) or not ({"bytes", "flops"} & set(entry)):
            raise WorkFileError(f"{path}: kernels.{pattern} needs bytes and/or flops (per launch)")
        for key in ("bytes", "flops"):
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise WorkFileError(f"{path}: kernels.{pattern}.{key} must be a non-negative number, got {value!r}")
        out.append({"pattern": str(pattern), "bytes": entry.get("bytes"), "flops": entry.get("flops"),
                     "dtype": entry.get("dtype")})
    return out


def sidecar_work(names: list[str], entries: list[dict[str, Any]], source: str) -> pl.DataFrame:
    """Work per kernel name from sidecar entries (first matching pattern wins; loops over names)."""
    from fnmatch import fnmatchcase

    rows = []
    for name in names:
        entry = next((e for e in entries if e["pattern"] == name or fnmatchcase(name, e["pattern"])), None)
        if entry is not None:
            rows.append({"name": name, "bytes": entry["bytes"], "flops": entry["flops"],
                         "dtype": entry["dtype"] or dtype_of(name)[0], "work_source": f"sidecar: {source}",
                         "exact": True, "note": f"per launch, from {source} [kernels.{entry['pattern']}]"})
    return pl.DataFrame(rows, schema=WORK_SCHEMA)


def recognized_work(shapes: pl.DataFrame, sm_count: int | None) -> pl.DataFrame:
    """Lower-bound bytes of recognizable elementwise kernels from their launch shape (one row per name)."""
    threads = (pl.col("grid_x") * pl.col("grid_y") * pl.col("grid_z") * pl.col("block_x") * pl.col("block_y")
               * pl.col("block_z"))
    blocks = pl.col("grid_x") * pl.col("grid_y") * pl.col("grid_z")
    frame = shapes.filter(pl.col("name").str.contains(ELEMENTWISE))
    if sm_count:
        frame = frame.filter((blocks % sm_count) != 0)
    frame = frame.sort("total_ns", descending=True).unique(subset="name", keep="first", maintain_order=True)
    rows = []
    for r in frame.with_columns(threads.alias("threads")).iter_rows(named=True):  # one row per kernel name
        dtype, size = dtype_of(r["name"])
        accesses = 3 if any(w in r["name"].lower() for w in ("triad", "axpy")) else 2
        assumed = "" if size else " (element size assumed 4 B: the name names no dtype)"
        size = size or 4
        rows.append({"name": r["name"], "bytes": float(r["threads"] * size * accesses), "flops": None,
                     "dtype": dtype or "fp32", "work_source": "trace: grid x block (CUPTI_ACTIVITY_KIND_KERNEL)",
                     "exact": False,
                     "note": f"lower bound: {r['threads']} threads x 1 element x {size} B x {accesses} accesses "
                             f"(elementwise, no grid-stride loop assumed){assumed}"})
    return pl.DataFrame(rows, schema=WORK_SCHEMA)


def kernel_work(shapes: pl.DataFrame, sidecar: str | Path | None, sm_count: int | None) -> pl.DataFrame:
    """Work per kernel name: sidecar entries first, then recognized kernels."""
    names = shapes.get_column("name").unique().to_list()
    parts = []
    if sidecar:
        parts.append(sidecar_work(names, load_sidecar(sidecar), Path(sidecar).name))
    parts.append(recognized_work(shapes, sm_count))
    return pl.concat(parts, how="vertical").unique(subset="name", keep="first", maintain_order=True)
