"""Nsight Compute CSV exports: ``ncu --csv --page raw`` (one column per metric, a units row,
one row per profiled launch) and ``ncu --csv --page details`` (one row per section metric).

Both become one frame per profiled launch with the canonical columns of ``LAUNCH_SCHEMA``
(times in ns, bytes, FLOPs, FLOP/s, bytes/s, percentages 0-100). ``NcuExport.metrics`` maps
each canonical column to the ncu metric(s) it came from, so evidence can cite them.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from traceview.errors import InputError


class NcuExportError(InputError):
    """An ``--ncu`` file that is missing or not an Nsight Compute CSV export."""


F64 = pl.Float64
LAUNCH_SCHEMA: dict[str, pl.DataType] = {
    "ncu_id": pl.Int64, "kernel_name": pl.String, "device_id": pl.Int64,
    "grid_x": pl.Int64, "grid_y": pl.Int64, "grid_z": pl.Int64,
    "block_x": pl.Int64, "block_y": pl.Int64, "block_z": pl.Int64,
    "duration_ns": F64, "sm_pct": F64, "mem_pct": F64, "dram_pct": F64, "l1_pct": F64, "l2_pct": F64,
    "tensor_pct": F64, "dram_bw": F64, "dram_bytes": F64, "fp32_flops": F64, "fp64_flops": F64,
    "fp16_flops": F64, "peak_fp32_flops": F64, "peak_dram_bw": F64, "achieved_occ_pct": F64,
    "theoretical_occ_pct": F64, "waves": F64, "source_file": pl.String,
}

# canonical column -> raw-page metric (first one present wins)
RAW_METRICS: dict[str, tuple[str, ...]] = {
    "duration_ns": ("gpu__time_duration.sum",),
    "sm_pct": ("sm__throughput.avg.pct_of_peak_sustained_elapsed",),
    "mem_pct": ("gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed",),
    "dram_pct": ("gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed",
                 "dram__throughput.avg.pct_of_peak_sustained_elapsed"),
    "l1_pct": ("l1tex__throughput.avg.pct_of_peak_sustained_active",),
    "l2_pct": ("lts__throughput.avg.pct_of_peak_sustained_elapsed",),
    "tensor_pct": ("sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed",
                   "sm__inst_executed_pipe_tensor.avg.pct_of_peak_sustained_active"),
    "dram_bw": ("dram__bytes.sum.per_second",),
    "dram_bytes": ("dram__bytes.sum",),
    "achieved_occ_pct": ("sm__warps_active.avg.pct_of_peak_sustained_active",),
    "theoretical_occ_pct": ("sm__maximum_warps_per_active_cycle_pct",),
    "waves": ("launch__waves_per_multiprocessor",),
}
SMSP_CLOCK = "smsp__cycles_elapsed.avg.per_second"
SM_CLOCK = "sm__cycles_elapsed.avg.per_second"
DRAM_CLOCK = "dram__cycles_elapsed.avg.per_second"
DRAM_PEAK = "dram__bytes.sum.peak_sustained"
FFMA_PEAK = "sm__sass_thread_inst_executed_op_ffma_pred_on.sum.peak_sustained"
OP_RATE = "smsp__sass_thread_inst_executed_op_{}_pred_on.sum.per_cycle_elapsed"
FLOP_OPS = {"fp32_flops": ("ffma", "fadd", "fmul"), "fp64_flops": ("dfma", "dadd", "dmul"),
            "fp16_flops": ("hfma", "hadd", "hmul")}

# (section, metric name) on the details page -> canonical column
DETAILS_METRICS: dict[tuple[str, str], str] = {
    ("GPU Speed Of Light Throughput", "Duration"): "duration_ns",
    ("GPU Speed Of Light Throughput", "Compute (SM) Throughput"): "sm_pct",
    ("GPU Speed Of Light Throughput", "Memory Throughput"): "mem_pct",
    ("GPU Speed Of Light Throughput", "DRAM Throughput"): "dram_pct",
    ("GPU Speed Of Light Throughput", "L1/TEX Cache Throughput"): "l1_pct",
    ("GPU Speed Of Light Throughput", "L2 Cache Throughput"): "l2_pct",
    ("Memory Workload Analysis", "Memory Throughput"): "dram_bw",
    ("Occupancy", "Achieved Occupancy"): "achieved_occ_pct",
    ("Occupancy", "Theoretical Occupancy"): "theoretical_occ_pct",
    ("Launch Statistics", "Waves Per SM"): "waves",
}

_PREFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_TIME_NS = {"ns": 1.0, "nsecond": 1.0, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6, "s": 1e9,
            "second": 1e9}


def unit_factor(unit: str | None, *, time_to_ns: bool = False) -> float:
    """Multiplier from an ncu unit to SI (bytes, Hz, FLOP, ...), or to ns for times."""
    unit = (unit or "").strip()
    if unit in _TIME_NS:
        return _TIME_NS[unit] if time_to_ns else _TIME_NS[unit] * 1e-9
    m = re.fullmatch(r"([KMGTPmun]?)(byte|hz|Hz|cycle|inst|flop|sector|warp|block)(.*)", unit)
    if m:
        return _PREFIX[m.group(1)]
    return 1.0


@dataclass(slots=True)
class NcuExport:
    """Profiled launches from one or more ncu CSV files."""

    launches: pl.DataFrame
    metrics: dict[str, str] = field(default_factory=dict)  # canonical column -> ncu metric(s)
    files: list[str] = field(default_factory=list)


def _csv_text(path: Path) -> str:
    """The CSV part of the file (ncu may print ==PROF== lines before the header)."""
    if not path.exists():
        raise NcuExportError(f"{path}: no such file (--ncu expects an `ncu --csv --page raw` export)")
    if path.is_dir():
        raise NcuExportError(f"{path}: is a directory, expected an Nsight Compute CSV export")
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise NcuExportError(f"{path}: cannot read as a text CSV ({type(exc).__name__})") from exc
    start = text.find('"ID",')
    if start < 0:
        raise NcuExportError(f"{path}: not an Nsight Compute CSV export (no \"ID\" header; "
                             "export with `ncu --import R.ncu-rep --csv --page raw`)")
    return text[start:]


def _num(col: str) -> pl.Expr:
    return pl.col(col).str.replace_all(",", "").str.strip_chars().cast(F64, strict=False)


def _shape(col: str, prefix: str) -> list[pl.Expr]:
    """'(32, 32, 1)' -> prefix_x, prefix_y, prefix_z."""
    parts = pl.col(col).str.extract_all(r"\d+")
    return [parts.list.get(i, null_on_oob=True).cast(pl.Int64, strict=False).alias(f"{prefix}_{a}")
            for i, a in enumerate("xyz")]


def _identity(frame: pl.DataFrame, path: Path) -> list[pl.Expr]:
    need = {"ID", "Kernel Name", "Grid Size", "Block Size"}
    if not need <= set(frame.columns):
        missing = ", ".join(sorted(need - set(frame.columns)))
        raise NcuExportError(f"{path}: not an Nsight Compute CSV export (missing column(s) {missing})")
    device = _num("Device").cast(pl.Int64) if "Device" in frame.columns else pl.lit(None, pl.Int64)
    return [_num("ID").cast(pl.Int64).alias("ncu_id"), pl.col("Kernel Name").alias("kernel_name"),
            device.alias("device_id"), *_shape("Grid Size", "grid"), *_shape("Block Size", "block"),
            pl.lit(str(path)).alias("source_file")]


def _raw(frame: pl.DataFrame, path: Path, used: dict[str, str]) -> pl.DataFrame:
    units = frame.row(0, named=True) if frame.height and not (frame["ID"][0] or "").strip() else {}
    body = frame.slice(1) if units else frame
    cols = set(body.columns)

    def val(metric: str, to_ns: bool = False) -> pl.Expr:
        if metric not in cols:
            return pl.lit(None, F64)
        return _num(metric) * unit_factor(units.get(metric), time_to_ns=to_ns)

    exprs = _identity(body, path)
    for canon, names in RAW_METRICS.items():
        name = next((n for n in names if n in cols), None)
        exprs.append((val(name, canon == "duration_ns") if name else pl.lit(None, F64)).alias(canon))
        if name:
            used.setdefault(canon, name)
    for canon, (fma, add, mul) in FLOP_OPS.items():
        if OP_RATE.format(fma) in cols and SMSP_CLOCK in cols:
            per_cycle = 2 * val(OP_RATE.format(fma)) + val(OP_RATE.format(add)).fill_null(0) + val(
                OP_RATE.format(mul)).fill_null(0)
            exprs.append((per_cycle * val(SMSP_CLOCK)).alias(f"_{canon}_rate"))
            used.setdefault(canon, f"(2*{OP_RATE.format(fma)} + {add} + {mul} rates) x {SMSP_CLOCK} x duration")
    exprs.append((2 * val(FFMA_PEAK) * val(SM_CLOCK)).alias("peak_fp32_flops"))
    exprs.append((val(DRAM_PEAK) * val(DRAM_CLOCK)).alias("peak_dram_bw"))
    if FFMA_PEAK in cols:
        used.setdefault("peak_fp32_flops", f"2 x {FFMA_PEAK} x {SM_CLOCK}")
    if DRAM_PEAK in cols:
        used.setdefault("peak_dram_bw", f"{DRAM_PEAK} x {DRAM_CLOCK}")
    out = body.select(exprs)
    for canon in FLOP_OPS:
        rate = f"_{canon}_rate"
        flops = pl.col(rate) * pl.col("duration_ns") * 1e-9 if rate in out.columns else pl.lit(None, F64)
        out = out.with_columns(flops.alias(canon))
    return out


def _details(frame: pl.DataFrame, path: Path, used: dict[str, str]) -> pl.DataFrame:
    keys = pl.DataFrame({"Section Name": [k[0] for k in DETAILS_METRICS],
                         "Metric Name": [k[1] for k in DETAILS_METRICS],
                         "canon": list(DETAILS_METRICS.values())})
    rows = frame.join(keys, on=["Section Name", "Metric Name"], how="inner")
    units = rows.get_column("Metric Unit").fill_null("").unique().to_list()
    factors = {u: unit_factor(u, time_to_ns=True) for u in units}
    rows = rows.with_columns(
        (_num("Metric Value") * pl.col("Metric Unit").fill_null("").replace_strict(factors, return_dtype=F64))
        .alias("value"))
    ident = frame.select(_identity(frame, path)).unique(subset="ncu_id", keep="first", maintain_order=True)
    if rows.height == 0:
        return ident
    wide = rows.with_columns(_num("ID").cast(pl.Int64).alias("ncu_id")).pivot(
        on="canon", index="ncu_id", values="value", aggregate_function="first")
    for (section, name), canon in DETAILS_METRICS.items():
        if canon in wide.columns:
            used.setdefault(canon, f"{section}: {name}")
    return ident.join(wide, on="ncu_id", how="left")


def _finish(frame: pl.DataFrame, used: dict[str, str]) -> pl.DataFrame:
    """Canonical columns and types; DRAM bytes from bandwidth x duration when not exported."""
    frame = frame.with_columns([pl.lit(None, t).alias(c) for c, t in LAUNCH_SCHEMA.items() if c not in frame.columns])
    frame = frame.select([pl.col(c).cast(t) for c, t in LAUNCH_SCHEMA.items()])
    derived = pl.col("dram_bw") * pl.col("duration_ns") * 1e-9
    if frame.get_column("dram_bytes").null_count() and frame.get_column("dram_bw").null_count() < frame.height:
        used.setdefault("dram_bytes", f"{used.get('dram_bw', 'DRAM throughput')} x {used.get('duration_ns', 'duration')}")
    return frame.with_columns(pl.col("dram_bytes").fill_null(derived))


def read_ncu_csv(path: str | Path) -> NcuExport:
    """Parse one ``ncu --csv`` export (raw or details page)."""
    path = Path(path)
    try:
        frame = pl.read_csv(io.StringIO(_csv_text(path)), infer_schema=False, truncate_ragged_lines=True)
    except pl.exceptions.PolarsError as exc:
        raise NcuExportError(f"{path}: malformed CSV ({str(exc).splitlines()[0]})") from exc
    used: dict[str, str] = {}
    if {"Metric Name", "Metric Value", "Section Name"} <= set(frame.columns):
        launches = _details(frame, path, used)
    else:
        launches = _raw(frame, path, used)
    launches = _finish(launches, used).filter(pl.col("ncu_id").is_not_null())
    if launches.height == 0:
        raise NcuExportError(f"{path}: Nsight Compute export lists no profiled kernel launch")
    if not any(k in used for k in ("sm_pct", "mem_pct", "dram_pct")):
        raise NcuExportError(f"{path}: no throughput metrics (profile with --section SpeedOfLight and export "
                             "--page raw or --page details)")
    return NcuExport(launches=launches, metrics=used, files=[str(path)])


def read_ncu(paths: list[str | Path] | list[Path]) -> NcuExport:
    """Parse several exports; a raw and a details export of the same report merge per launch."""
    parts = [read_ncu_csv(p) for p in paths]
    metrics: dict[str, str] = {}
    for part in parts:
        for k, v in part.metrics.items():
            metrics.setdefault(k, v)
    frame = pl.concat([p.launches for p in parts], how="vertical")
    keys = ["ncu_id", "kernel_name", "grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z"]
    merged = frame.group_by(keys, maintain_order=True).agg(
        [pl.col(c).drop_nulls().first() for c in LAUNCH_SCHEMA if c not in keys])
    return NcuExport(launches=merged.select(list(LAUNCH_SCHEMA)), metrics=metrics,
                     files=[f for p in parts for f in p.files])
