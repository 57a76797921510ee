"""Thread-block tile shapes (M x N [x K]) parsed from GEMM/convolution kernel names.

Recognized spellings (first match wins):

- cuBLAS/cuDNN xmma and sm90 kernels: ``..._tilesize128x128x64_...``, ``tilesize64x256x8``
- CUTLASS templates (demangled or mangled): ``GemmShape<128, 128, 32>``, ``GemmShapeILi128ELi128ELi32E``
- CUTLASS library names: ``cutlass_80_tensorop_s16816gemm_f16_128x128_32x3_nn`` (tile 128x128, K 32, 3 stages)
- cuBLAS classic: ``ampere_s16816gemm_fp16_128x64_ldg8_...``, ``ampere_sgemm_128x32_nn``
- hand-written: ``tile64x64``, ``sgemm_tile128x128``
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tilesize", re.compile(r"tilesize(\d+)x(\d+)(?:x(\d+))?", re.IGNORECASE)),
    ("cutlass-template", re.compile(r"GemmShape\s*<\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*>")),
    ("cutlass-mangled", re.compile(r"GemmShapeILi(\d+)ELi(\d+)ELi(\d+)E")),
    ("cutlass-library", re.compile(r"(?:gemm|dgrad|wgrad|fprop|conv)\w*?_(\d+)x(\d+)_(\d+)x(\d+)(?=_|$)", re.IGNORECASE)),
    ("gemm-name", re.compile(r"(?:gemm|scudnn|conv)\w*?_(\d+)x(\d+)(?=_|$)", re.IGNORECASE)),
    ("tile", re.compile(r"tile_?(\d+)x(\d+)(?:x(\d+))?(?![\dx])", re.IGNORECASE)),
)
_MIN_DIM, _MAX_DIM = 8, 1024


@dataclass(frozen=True)
class Tile:
    """A block tile: ``m`` x ``n`` output elements per thread block (``k`` when the name says)."""

    m: int
    n: int
    k: int | None = None
    stages: int | None = None
    pattern: str = ""

    @property
    def area(self) -> int:
        return self.m * self.n

    @property
    def text(self) -> str:
        return f"{self.m}x{self.n}" + (f"x{self.k}" if self.k else "")

    def to_dict(self) -> dict[str, object]:
        return {"m": self.m, "n": self.n, "k": self.k, "stages": self.stages, "text": self.text,
                "pattern": self.pattern}


def parse_tile(name: str) -> Tile | None:
    """The block tile encoded in a kernel name, or None when the name has none."""
    for label, pattern in _PATTERNS:
        match = pattern.search(name)
        if match is None:
            continue
        groups = [int(g) if g else None for g in match.groups()]
        m, n = groups[0], groups[1]
        if m is None or n is None or not (_MIN_DIM <= m <= _MAX_DIM and _MIN_DIM <= n <= _MAX_DIM):
            continue
        k = groups[2] if len(groups) > 2 else None
        stages = groups[3] if len(groups) > 3 else None
        return Tile(m=m, n=n, k=k, stages=stages, pattern=label)
    return None


def smaller_tiles(tile: Tile, min_dim: int = 16) -> list[Tile]:
    """Halvings of a tile's M and/or N (largest area first), each dimension >= ``min_dim``."""
    out: set[tuple[int, int]] = set()
    for m_div in (1, 2, 4):
        for n_div in (1, 2, 4):
            if m_div == n_div == 1:
                continue
            m, n = tile.m // m_div, tile.n // n_div
            if m >= min_dim and n >= min_dim:
                out.add((m, n))
    ranked = sorted(out, key=lambda mn: (-mn[0] * mn[1], -min(mn), -mn[0]))
    return [Tile(m=m, n=n, k=tile.k, pattern="halved") for m, n in ranked]
