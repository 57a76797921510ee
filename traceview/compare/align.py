"""Match what a baseline and a candidate trace measured: device totals, NVTX ranges by name,
kernels by demangled name, then renamed or retuned kernels by family and launch shape.

Durations leave polars as one numpy array per frame, split at group offsets: no Python
object per event, one loop per group.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from traceview.model.trace import Trace

SHAPE_COLS = ["grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z", "registers_per_thread",
              "static_shared_mem", "dynamic_shared_mem"]
DIGITS = re.compile(r"\d+")


@dataclass(slots=True)
class Group:
    """One kernel (per device), NVTX range or device total in one trace."""

    durations: np.ndarray
    shape: tuple[int, ...] | None = None       # most frequent launch shape (kernels only)

    @property
    def total(self) -> float:
        return float(self.durations.sum())


@dataclass(slots=True)
class TraceGroups:
    """Every comparable item of one trace, keyed (kind, device_id, name)."""

    kernels: dict[tuple[int, str], Group]
    nvtx: dict[str, Group]
    devices: dict[int, Group]
    kernel_time: dict[int, float]            # device -> total kernel ns (the min-cost basis)


@dataclass(slots=True)
class AlignedItem:
    """One item measured on both sides; the statistical core needs only the arrays."""

    kind: str                     # "device", "nvtx" or "kernel"
    device_id: int | None
    baseline_name: str
    candidate_name: str
    baseline_runs: list[np.ndarray]
    candidate: np.ndarray
    cost_basis_ns: float          # baseline kernel time of the device (all devices for NVTX)
    match: str = "name"           # "name", "family", "launch shape" or "device"
    launch_change: str | None = None

    @property
    def name(self) -> str:
        return self.candidate_name

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.device_id}:{self.baseline_name}"


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A kernel or NVTX range found on one side only."""

    kind: str
    name: str
    device_id: int | None
    instances: int
    total_ns: float
    launch: str | None


@dataclass(slots=True)
class Alignment:
    items: list[AlignedItem]
    added: list[Unmatched] = field(default_factory=list)
    removed: list[Unmatched] = field(default_factory=list)
    kernel_overlap_pct: float = 100.0
    nvtx_mismatches: list[str] = field(default_factory=list)


def _split(frame: pl.DataFrame, keys: list[str]) -> list[tuple[tuple, np.ndarray]]:
    """(key tuple, durations) per group of ``keys``; one numpy array sliced at group offsets."""
    if frame.height == 0:
        return []
    frame = frame.sort(keys, maintain_order=True)
    sizes = frame.group_by(keys, maintain_order=True).len()
    durations = frame.get_column("duration").fill_null(0).to_numpy().astype(np.float64)
    ends = np.cumsum(sizes.get_column("len").to_numpy())
    parts = np.split(durations, ends[:-1])
    return list(zip(sizes.select(keys).iter_rows(), parts, strict=True))


def _launch_shapes(kernels: pl.DataFrame) -> dict[tuple[int, str], tuple[int, ...]]:
    """Most frequent launch shape (grid, block, registers, shared memory) per device and name."""
    keys = ["device_id", "name"]
    shapes = (kernels.select(keys + SHAPE_COLS).fill_null(0).group_by(keys + SHAPE_COLS).len()
              .sort(["len", *SHAPE_COLS], descending=[True] + [False] * len(SHAPE_COLS))
              .unique(subset=keys, keep="first"))
    return {(r[0], r[1]): tuple(int(v) for v in r[2:-1]) for r in shapes.iter_rows()}


def trace_groups(trace: Trace, *, with_nvtx: bool = True) -> TraceGroups:
    """Split one trace into its comparable items."""
    kernels = trace.kernels.with_columns(pl.col("device_id").fill_null(0))
    shapes = _launch_shapes(kernels)
    kgroups = {(int(d), str(n)): Group(a, shapes.get((d, n)))
               for (d, n), a in _split(kernels.select("device_id", "name", "duration"), ["device_id", "name"])}
    cols = ["device_id", "duration"]
    activity = pl.concat([f.select(cols) for f in (trace.kernels, trace.memcpy, trace.memset)])
    per_device = activity.group_by(pl.col("device_id").fill_null(0)).agg(pl.col("duration").sum())
    # One value per run: the device total is compared run against run, not instance against instance.
    devices = {int(d): Group(np.array([float(t)])) for d, t in per_device.iter_rows()}
    nvtx: dict[str, Group] = {}
    if with_nvtx and trace.nvtx.height:
        named = trace.nvtx.select(pl.col("name").fill_null("<unnamed>"), "duration")
        nvtx = {str(n): Group(a) for (n,), a in _split(named, ["name"])}
    kernel_time: dict[int, float] = {}
    for (dev, _), g in kgroups.items():
        kernel_time[dev] = kernel_time.get(dev, 0.0) + g.total
    return TraceGroups(kgroups, nvtx, devices, kernel_time)


def family(name: str) -> str:
    """Kernel family: the name with every digit run replaced (tile sizes, versions, template ints)."""
    return DIGITS.sub("#", name)


def describe_shape(shape: tuple[int, ...] | None) -> str | None:
    if shape is None:
        return None
    gx, gy, gz, bx, by, bz, regs, smem_s, smem_d = shape
    return f"grid {gx}x{gy}x{gz}, block {bx}x{by}x{bz}, {regs} regs, {smem_s + smem_d} B smem"


def shape_change(a: tuple[int, ...] | None, b: tuple[int, ...] | None) -> str | None:
    if a is None or b is None or a == b:
        return None
    return f"{describe_shape(a)} -> {describe_shape(b)}"


def _shape_distance(a: Group, b: Group) -> float:
    """How different two launches are: block shape, grid size, registers, instance count."""
    sa, sb = a.shape or (1,) * 9, b.shape or (1,) * 9
    lg = lambda x, y: abs(math.log2(max(x, 1) / max(y, 1)))  # noqa: E731
    grid = lg(sa[0] * sa[1] * sa[2], sb[0] * sb[1] * sb[2])
    block = 0.0 if sa[3:6] == sb[3:6] else 1.0 + lg(sa[3] * sa[4] * sa[5], sb[3] * sb[4] * sb[5])
    return block + grid + lg(sa[6], sb[6]) + lg(a.durations.size, b.durations.size)


def _match_renamed(base: dict[str, Group], cand: dict[str, Group]) -> list[tuple[str, str, str]]:
    """Pairs (baseline name, candidate name, how) among one device's unmatched kernels."""
    pairs: list[tuple[float, str, str]] = sorted(
        (_shape_distance(gb, gc), nb, nc) for nb, gb in base.items() for nc, gc in cand.items()
        if family(nb) == family(nc))
    used_b: set[str] = set()
    used_c: set[str] = set()
    out: list[tuple[str, str, str]] = []
    for _, nb, nc in pairs:
        if nb not in used_b and nc not in used_c:
            used_b.add(nb)
            used_c.add(nc)
            out.append((nb, nc, "family"))
    rest_b = {n: g for n, g in base.items() if n not in used_b}
    rest_c = {n: g for n, g in cand.items() if n not in used_c}
    by_shape: dict[tuple, list[str]] = {}
    for n, g in rest_c.items():
        by_shape.setdefault((g.shape, g.durations.size), []).append(n)
    base_keys = [(g.shape, g.durations.size) for g in rest_b.values()]
    for n, g in rest_b.items():
        key = (g.shape, g.durations.size)
        if g.shape is not None and len(by_shape.get(key, [])) == 1 and base_keys.count(key) == 1:
            out.append((n, by_shape[key][0], "launch shape"))
    return out


def _unmatched(kind: str, name: str, dev: int | None, g: Group) -> Unmatched:
    return Unmatched(kind, name, dev, int(g.durations.size), g.total, describe_shape(g.shape))


def _runs(extra: list[TraceGroups], pick) -> list[np.ndarray]:  # noqa: ANN001
    return [g.durations for g in (pick(t) for t in extra) if g is not None and g.durations.size]


def align_kernels(base: TraceGroups, cand: TraceGroups, extra: list[TraceGroups], out: Alignment) -> None:
    """Kernels per device: same name first, then renamed/retuned ones; the rest are added/removed."""
    matched_time = 0.0
    for dev in sorted({d for d, _ in base.kernels} | {d for d, _ in cand.kernels}):
        b = {n: g for (d, n), g in base.kernels.items() if d == dev}
        c = {n: g for (d, n), g in cand.kernels.items() if d == dev}
        pairs = [(n, n, "name") for n in sorted(b.keys() & c.keys())]
        pairs += _match_renamed({n: g for n, g in b.items() if n not in c}, {n: g for n, g in c.items() if n not in b})
        for nb, nc, how in pairs:
            matched_time += b[nb].total
            runs = [b[nb].durations] + _runs(extra, lambda t, dev=dev, nb=nb: t.kernels.get((dev, nb)))
            out.items.append(AlignedItem("kernel", dev, nb, nc, runs, c[nc].durations,
                                         base.kernel_time.get(dev, 0.0), how, shape_change(b[nb].shape, c[nc].shape)))
        done_b, done_c = {p[0] for p in pairs}, {p[1] for p in pairs}
        out.removed += [_unmatched("kernel", n, dev, g) for n, g in b.items() if n not in done_b]
        out.added += [_unmatched("kernel", n, dev, g) for n, g in c.items() if n not in done_c]
    total = sum(base.kernel_time.values())
    out.kernel_overlap_pct = 100.0 * matched_time / total if total else 0.0


def align(base: TraceGroups, cand: TraceGroups, extra: list[TraceGroups] | None = None) -> Alignment:
    """Everything to compare, end-to-end items first (device totals, NVTX ranges), then kernels."""
    extra = extra or []
    out = Alignment(items=[])
    all_kernel_time = sum(base.kernel_time.values())
    for dev in sorted(base.devices.keys() & cand.devices.keys()):
        runs = [base.devices[dev].durations] + _runs(extra, lambda t, dev=dev: t.devices.get(dev))
        out.items.append(AlignedItem("device", dev, f"GPU time (device {dev})", f"GPU time (device {dev})", runs,
                                     cand.devices[dev].durations, base.kernel_time.get(dev, 0.0), "device"))
    for name in sorted(base.nvtx.keys() | cand.nvtx.keys()):
        gb, gc = base.nvtx.get(name), cand.nvtx.get(name)
        if gb is None or gc is None:
            out.nvtx_mismatches.append(f"NVTX range {name!r} only in the {'candidate' if gb is None else 'baseline'}")
            (out.added if gb is None else out.removed).append(_unmatched("nvtx", name, None, gc or gb))  # type: ignore[arg-type]
            continue
        if gb.durations.size != gc.durations.size:
            out.nvtx_mismatches.append(f"NVTX range {name!r}: {gb.durations.size} -> {gc.durations.size} instances")
        runs = [gb.durations] + _runs(extra, lambda t, name=name: t.nvtx.get(name))
        out.items.append(AlignedItem("nvtx", None, name, name, runs, gc.durations, all_kernel_time))
    align_kernels(base, cand, extra, out)
    return out
