"""Theoretical occupancy: active blocks per SM from a launch shape and the SM's allocation rules.

Follows the CUDA occupancy calculator (``cuda_occupancy.h``): registers are allocated per warp
in units of ``register_alloc_unit`` and per SM sub-partition; shared memory per block is rounded
up to ``shared_mem_alloc_unit`` after adding the per-block system reserve. Without an explicit
carveout the largest one is assumed (what ``cuOccupancyMaxActiveBlocksPerMultiprocessor``
answers); with the carveout the launch ran under (the trace's ``sharedMemoryExecuted``) the
per-resource block limits equal Nsight Compute's ``launch__occupancy_limit_*``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from traceview.hardware.spec import SmLimits

LIMITERS = ("warps", "blocks", "registers", "shared_memory")  # tie-break order for `limiter`


@dataclass(frozen=True)
class Occupancy:
    active_blocks_per_sm: int
    active_warps_per_sm: int
    theoretical_occupancy: float       # active warps / max warps per SM
    limiter: str                       # one of LIMITERS, or "invalid-launch"
    block_limits: dict[str, int] = field(default_factory=dict)  # resource -> blocks it allows
    warps_per_block: int = 0
    registers_per_block: int = 0       # allocated
    shared_mem_per_block: int = 0      # allocated, incl. the reserve
    carveout_bytes: int = 0

    @property
    def limiters(self) -> list[str]:
        """Every resource whose limit equals the active block count (ties)."""
        return [r for r in LIMITERS if self.block_limits.get(r) == self.active_blocks_per_sm]


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit if unit > 0 else value


def register_block_limit(limits: SmLimits, warps_per_block: int, registers_per_thread: int) -> tuple[int, int]:
    """(blocks the register file allows, registers allocated per block)."""
    if registers_per_thread <= 0:
        return limits.max_blocks_per_sm, 0
    if registers_per_thread > limits.max_registers_per_thread:
        return 0, 0
    per_warp = _round_up(registers_per_thread * limits.warp_size, limits.register_alloc_unit)
    per_block = per_warp * warps_per_block
    parts = max(limits.sub_partitions, 1)
    assumed = per_warp * _round_up(warps_per_block, parts)  # the hardware's per-block check
    if per_block > limits.max_registers_per_block or assumed > limits.max_registers_per_block:
        return 0, per_block
    warps_per_sm = (limits.registers_per_sm // parts // per_warp) * parts
    return warps_per_sm // warps_per_block, per_block


def shared_mem_block_limit(limits: SmLimits, shared_mem_bytes: int, carveout_bytes: int) -> tuple[int, int]:
    """(blocks the shared-memory carveout allows, bytes allocated per block incl. the reserve)."""
    if shared_mem_bytes > limits.max_shared_mem_per_block_optin:
        return 0, shared_mem_bytes
    allocated = _round_up(shared_mem_bytes + limits.reserved_shared_mem_per_block, limits.shared_mem_alloc_unit)
    if allocated == 0:
        return limits.max_blocks_per_sm, 0
    return carveout_bytes // allocated, allocated


def occupancy(limits: SmLimits, threads_per_block: int, registers_per_thread: int,
              shared_mem_bytes: int, carveout_bytes: int | None = None) -> Occupancy:
    """Active blocks and warps per SM, and the limiting resource, for one launch shape.

    ``shared_mem_bytes`` is static + dynamic shared memory per block; ``carveout_bytes`` the
    shared-memory configuration the launch ran with (default: the largest carveout).
    """
    carveout = int(carveout_bytes) if carveout_bytes else limits.shared_mem_per_sm
    warps_per_block = -(-max(threads_per_block, 0) // limits.warp_size)
    if warps_per_block == 0 or threads_per_block > limits.max_threads_per_block:
        return Occupancy(0, 0, 0.0, "invalid-launch", {}, warps_per_block, carveout_bytes=carveout)
    regs_limit, regs_per_block = register_block_limit(limits, warps_per_block, registers_per_thread)
    smem_limit, smem_per_block = shared_mem_block_limit(limits, shared_mem_bytes, carveout)
    block_limits = {
        "warps": limits.max_warps_per_sm // warps_per_block,
        "blocks": limits.max_blocks_per_sm,
        "registers": regs_limit,
        "shared_memory": smem_limit,
    }
    active = min(block_limits.values())
    limiter = next(r for r in LIMITERS if block_limits[r] == active)
    if active == 0:
        limiter = "invalid-launch" if block_limits["warps"] == 0 else limiter
    active_warps = active * warps_per_block
    return Occupancy(
        active_blocks_per_sm=active, active_warps_per_sm=active_warps,
        theoretical_occupancy=active_warps / limits.max_warps_per_sm, limiter=limiter,
        block_limits=block_limits, warps_per_block=warps_per_block,
        registers_per_block=regs_per_block, shared_mem_per_block=smem_per_block, carveout_bytes=carveout,
    )


def max_registers_for(limits: SmLimits, threads_per_block: int, blocks: int) -> int | None:
    """Most registers per thread that still let ``blocks`` blocks be resident (None if none does)."""
    warps = -(-threads_per_block // limits.warp_size)
    best = None
    for regs in range(1, limits.max_registers_per_thread + 1):
        if register_block_limit(limits, warps, regs)[0] >= blocks:
            best = regs
        else:
            break
    return best


def max_shared_mem_for(limits: SmLimits, blocks: int) -> int | None:
    """Most static + dynamic shared memory per block that still lets ``blocks`` blocks be resident."""
    if blocks <= 0:
        return None
    per_block = (limits.shared_mem_per_sm // blocks) // limits.shared_mem_alloc_unit * limits.shared_mem_alloc_unit
    usable = per_block - limits.reserved_shared_mem_per_block
    return min(usable, limits.max_shared_mem_per_block_optin) if usable > 0 else None

