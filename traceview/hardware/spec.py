"""Hardware description types: per-SM limits and a GPU specification, each value cited."""

from __future__ import annotations

from dataclasses import dataclass, field

from traceview.errors import TraceviewError


class HardwareError(TraceviewError):
    """A GPU name or key that is not in the table, or a device the trace does not describe."""


@dataclass(frozen=True)
class SmLimits:
    """Per-SM resource limits of one compute capability (sizes in bytes).

    ``register_alloc_unit`` is registers per warp; ``shared_mem_per_sm`` is the largest
    configurable shared-memory carveout; ``shared_mem_carveouts`` lists the carveouts the
    driver can pick from.
    """

    max_warps_per_sm: int
    max_blocks_per_sm: int
    max_threads_per_block: int
    registers_per_sm: int
    max_registers_per_thread: int
    register_alloc_unit: int
    shared_mem_per_sm: int
    max_shared_mem_per_block_optin: int
    shared_mem_alloc_unit: int
    reserved_shared_mem_per_block: int
    warp_size: int = 32
    max_registers_per_block: int = 65536
    sub_partitions: int = 4
    shared_mem_carveouts: tuple[int, ...] = ()


@dataclass(frozen=True)
class GpuSpec:
    """One GPU: identity, throughput peaks, per-SM limits, and where each value came from."""

    key: str
    name: str
    compute_capability: str
    sm_count: int
    dram_bandwidth_bytes_per_s: float
    memory_bytes: int
    l2_bytes: int
    peak_flops: dict[str, float]
    limits: SmLimits
    sources: dict[str, str] = field(default_factory=dict)
    origin: str = "table"
    patterns: tuple[str, ...] = ()

    def source(self, field_name: str) -> str:
        """Citation for a field (``"sm_count"``, ``"limits.max_warps_per_sm"``, ...)."""
        if field_name in self.sources:
            return self.sources[field_name]
        if field_name.startswith("limits.") and "limits" in self.sources:
            return self.sources["limits"]
        if field_name.startswith("peak_flops") and "peak_flops" in self.sources:
            return self.sources["peak_flops"]
        return f"hardware table entry {self.key!r} ({self.origin})"

    def evidence_source(self, field_name: str) -> str:
        """``"hardware: <name> <field> (<citation>)"``, the form findings use."""
        return f"hardware: {self.name} {field_name} ({self.source(field_name)})"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description (limits flattened under ``limits``)."""
        from dataclasses import asdict

        d = asdict(self)
        d["limits"]["shared_mem_carveouts"] = list(self.limits.shared_mem_carveouts)
        d["patterns"] = list(self.patterns)
        return d
