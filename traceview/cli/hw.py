"""`traceview hw list` and `traceview hw show NAME`: the hardware table and its sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from traceview.cli.app import OutputFormat, app, emit, guarded
from traceview.hardware import GpuSpec, find_gpu, gpu_spec_for_device, list_gpus

hw_app = typer.Typer(help="The GPU hardware table (SM counts, bandwidth, per-SM limits, with sources).",
                     no_args_is_help=True)
app.add_typer(hw_app, name="hw")


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@hw_app.command("list")
@guarded
def hw_list(format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text) -> None:
    """Every GPU in the table."""
    gpus = list_gpus()
    if format is OutputFormat.json:
        emit(json.dumps([_summary(g) for g in gpus], indent=2), None)
        return
    head = f"{'key':<11} {'name':<44} {'cc':>5} {'SMs':>4} {'DRAM GB/s':>10} {'memory':>10} {'L2':>9}"
    rows = [f"{g.key:<11} {g.name:<44} {g.compute_capability:>5} {g.sm_count:>4} "
            f"{g.dram_bandwidth_bytes_per_s / 1e9:>10,.0f} {g.memory_bytes / 1e9:>8.0f}GB {_fmt_bytes(g.l2_bytes):>9}"
            for g in gpus]
    emit("\n".join([head, *rows, "", "traceview hw show KEY: limits and sources"]), None)


@hw_app.command("show")
@guarded
def hw_show(
    name: Annotated[str | None, typer.Argument(help="table key or GPU name (h200, gb10, 'H100 PCIe')")] = None,
    trace: Annotated[Path | None, typer.Option("--trace", help="show the spec of a traced device instead")] = None,
    device: Annotated[int, typer.Option("--device", help="device id in --trace")] = 0,
    format: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.text,
) -> None:
    """One GPU: throughput peaks, per-SM limits and where every value comes from."""
    if trace is not None:
        from traceview import api

        spec = gpu_spec_for_device(api.load(trace), device, name)
    elif name:
        spec = find_gpu(name)
    else:
        raise typer.BadParameter("give a GPU NAME or --trace PATH")
    if format is OutputFormat.json:
        emit(json.dumps(spec.to_dict(), indent=2), None)
        return
    emit("\n".join(_show_lines(spec)), None)


def _summary(g: GpuSpec) -> dict[str, Any]:
    return {"key": g.key, "name": g.name, "compute_capability": g.compute_capability, "sm_count": g.sm_count,
            "dram_bandwidth_bytes_per_s": g.dram_bandwidth_bytes_per_s, "memory_bytes": g.memory_bytes,
            "l2_bytes": g.l2_bytes}


def _show_lines(g: GpuSpec) -> list[str]:
    lines = [f"{g.name}  [{g.key}]  compute capability {g.compute_capability}  ({g.origin})"]
    for label, fld, text in (
        ("SMs", "sm_count", str(g.sm_count)),
        ("DRAM bandwidth", "dram_bandwidth_bytes_per_s", f"{g.dram_bandwidth_bytes_per_s / 1e9:,.0f} GB/s"),
        ("memory", "memory_bytes", f"{g.memory_bytes / 1e9:,.0f} GB"),
        ("L2", "l2_bytes", _fmt_bytes(g.l2_bytes)),
    ):
        lines.append(f"  {label:<28} {text:<16} {g.source(fld)}")
    if g.peak_flops:
        peaks = ", ".join(f"{k} {v / 1e12:,.1f}" for k, v in g.peak_flops.items())
        lines.append(f"  {'dense peak TFLOP/s':<28} {peaks}")
        lines.append(f"  {'':<28} {g.source('peak_flops')}")
    lines.append("  per-SM limits:")
    limits = g.limits
    for fld in limits.__dataclass_fields__:
        value = getattr(limits, fld)
        text = ", ".join(_fmt_bytes(v) for v in value) if fld == "shared_mem_carveouts" else str(value)
        src = g.sources.get(f"limits.{fld}")
        lines.append(f"    {fld:<32} {text}" + (f"   [{src}]" if src else ""))
    lines.append(f"  limits source: {g.source('limits')}")
    return lines
