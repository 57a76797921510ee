"""The GPU and compute-capability tables (package TOML data) and name lookup."""

from __future__ import annotations

import difflib
import tomllib
from functools import cache
from importlib import resources
from typing import Any

from traceview.hardware.spec import GpuSpec, HardwareError, SmLimits

CC_GUIDE = ("CUDA C++ Programming Guide, Technical Specifications per Compute Capability "
            "(https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html"
            "#features-and-technical-specifications-technical-specifications-per-compute-capability)")
OCC_RULES = ("CUDA occupancy calculator rules (cuda_occupancy.h): registers per warp in units of 256 "
             "per SM sub-partition; shared memory in units of 128 B (256 B before cc 8.0); "
             "1 KiB reserved per block from cc 8.0")
_LIMIT_FIELDS = {f for f in SmLimits.__dataclass_fields__}


def _read(name: str) -> dict[str, Any]:
    text = resources.files("traceview.hardware").joinpath("data", name).read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def cc_table() -> dict[str, SmLimits]:
    """Per-compute-capability SM limits, keyed by ``"major.minor"``."""
    raw = _read("compute_capabilities.toml")
    defaults = raw.pop("defaults")
    out: dict[str, SmLimits] = {}
    for cc, entry in raw.items():
        values = {**defaults, **entry}
        values["shared_mem_carveouts"] = tuple(k * 1024 for k in values.pop("shared_mem_carveouts_kib"))
        out[cc] = SmLimits(**{k: v for k, v in values.items() if k in _LIMIT_FIELDS})
    return out


def cc_limits(cc: str) -> tuple[SmLimits, str]:
    """Limits for a compute capability and the cc actually used (the nearest lower one if unknown)."""
    table = cc_table()
    if cc in table:
        return table[cc], cc
    known = sorted(table, key=_cc_tuple)
    lower = [k for k in known if _cc_tuple(k) <= _cc_tuple(cc)]
    chosen = lower[-1] if lower else known[0]
    return table[chosen], chosen


def _cc_tuple(cc: str) -> tuple[int, int]:
    major, _, minor = cc.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return 0, 0


@cache
def _gpus() -> tuple[GpuSpec, ...]:
    out = []
    for key, g in _read("gpus.toml")["gpu"].items():
        limits, _ = cc_limits(g["compute_capability"])
        sources = dict(g.get("sources", {}))
        sources.setdefault("limits", f"{CC_GUIDE}, compute capability {g['compute_capability']}; {OCC_RULES}")
        out.append(GpuSpec(
            key=key, name=g["name"], compute_capability=g["compute_capability"],
            sm_count=int(g["sm_count"]), dram_bandwidth_bytes_per_s=float(g["dram_bandwidth_bytes_per_s"]),
            memory_bytes=int(g["memory_bytes"]), l2_bytes=int(g["l2_bytes"]),
            peak_flops={k: float(v) for k, v in g.get("peak_flops", {}).items()},
            limits=limits, sources=sources, origin="table", patterns=tuple(g.get("patterns", ())),
        ))
    return tuple(out)


def list_gpus() -> list[GpuSpec]:
    """Every GPU in the table, in table order."""
    return list(_gpus())


def _norm(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


def match_name(device_name: str) -> GpuSpec | None:
    """The table entry whose longest pattern occurs in a device name (e.g. "NVIDIA H200"), if any."""
    name = _norm(device_name)
    best: tuple[int, GpuSpec] | None = None
    for gpu in _gpus():
        for pattern in gpu.patterns:
            p = _norm(pattern)
            if p and p in name and (best is None or len(p) > best[0]):
                best = (len(p), gpu)
    return best[1] if best else None


def find_gpu(name_or_key: str) -> GpuSpec:
    """A table entry by key ("h200", "gb10") or device name; raises ``HardwareError`` if unknown."""
    wanted = _norm(name_or_key)
    for gpu in _gpus():
        if _norm(gpu.key) == wanted:
            return gpu
    found = match_name(name_or_key) if wanted else None
    if found is not None:
        return found
    keys = [g.key for g in _gpus()]
    close = difflib.get_close_matches(name_or_key.lower(), keys, n=4, cutoff=0.3) or keys
    raise HardwareError(f"unknown GPU {name_or_key!r}; close matches: {', '.join(close)} "
                        "(see `traceview hw list`)")
