"""Kernel families from kernel names (a guess: names are conventions, not contracts).

Each family carries the bound class its kernels usually have, which the heuristic tier of
``traceview.analyses.bound`` reports, labeled as a guess. Patterns are checked in order;
the first match wins (``gemv`` before ``gemm``, ``nccl`` before everything).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    pattern: str          # case-insensitive regex on the demangled name
    usual_class: str      # compute | memory | latency | communication | unknown
    why: str


FAMILIES: tuple[Family, ...] = (
    Family("nccl_collective", r"nccl|cross_device_reduce|custom_?all_?reduce|all_?reduce|all_?gather|reduce_?scatter|sendrecv|all_?to_?all|broadcast_kernel",
           "communication", "collective communication kernel: bound by the link between GPUs"),
    Family("attention", r"flash|fmha|attention|attn|sdpa|\bmha\b|paged_?attention|xformers",
           "compute", "attention kernel: compute-bound for long prefill, memory-bound (KV cache) for decode"),
    Family("gemv", r"gemv|gemvx|matvec|dot_?kernel", "memory",
           "matrix-vector product: streams the whole matrix once, about 1 FLOP per byte"),
    Family("conv", r"conv|winograd|implicit_?gemm|cudnn|fprop", "compute",
           "convolution: usually compute-bound (an implicit GEMM)"),
    Family("gemm", r"gemm|matmul|\bmm_|cutlass|cublas|xmma|wgmma|hgmma|hmma|igmma|qgmma|sm\d+_.*tensorop|dgrad|wgrad",
           "compute", "matrix multiply: high arithmetic intensity when M, N, K are large"),
    Family("normalization", r"layer_?norm|rms_?norm|batch_?norm|group_?norm|instance_?norm|normali[sz]",
           "memory", "normalization: reads and writes each element once with a row reduction"),
    Family("softmax", r"softmax", "memory", "softmax: a row reduction plus an elementwise pass"),
    Family("reduction", r"reduce|reduction|\bsum\b|_sum_|argmax|argmin|topk|\bscan\b|cub::|histogram",
           "memory", "reduction: reads every element once, almost no arithmetic"),
    Family("elementwise", r"elementwise|element_?wise|vectorized|unrolled|gelu|relu|silu|swish|sigmoid|tanh|"
           r"\bexp\b|\badd\b|\bmul\b|scale|triad|axpy|saxpy|daxpy|bias|activation|dropout|cast|stencil",
           "memory", "elementwise: a few FLOPs per element read and written"),
    Family("copy", r"memcpy|copy|transpose|permute|\bcat\b|concat|gather|scatter|index_?select|embedding|fill",
           "memory", "data movement: no arithmetic"),
)
UNKNOWN = Family("unknown", "", "unknown", "no known family in the name")
_BY_NAME = {f.name: f for f in FAMILIES} | {UNKNOWN.name: UNKNOWN}
FAMILY_NAMES: tuple[str, ...] = tuple(_BY_NAME)  # ``family_index`` numbers families in this order


def family_of(name: str) -> Family:
    """The first family whose pattern matches ``name`` (for one name; use ``with_family`` on frames)."""
    frame = with_family(pl.DataFrame({"name": [name]}))
    return _BY_NAME[frame.get_column("family")[0]]


def family_info(family: str) -> Family:
    return _BY_NAME.get(family, UNKNOWN)


def _classify(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    name = pl.col(column).fill_null("")
    expr: pl.Expr = pl.lit(UNKNOWN.name)
    for fam in reversed(FAMILIES):
        expr = pl.when(name.str.contains(f"(?i){fam.pattern}")).then(pl.lit(fam.name)).otherwise(expr)
    classes = {f.name: f.usual_class for f in FAMILIES} | {UNKNOWN.name: UNKNOWN.usual_class}
    return frame.with_columns(expr.alias("family")).with_columns(
        pl.col("family").replace_strict(classes, return_dtype=pl.String).alias("family_class"))


def with_family(frame: pl.DataFrame, column: str = "name") -> pl.DataFrame:
    """Add ``family`` and ``family_class`` columns (vectorized regex chain). The regexes run once
    per distinct name, not once per row (10M launches have a few hundred names)."""
    if frame.height < 10_000 or {"family", "family_class"} & set(frame.columns):
        return _classify(frame, column)
    names = _classify(frame.select(pl.col(column).unique()), column)
    return frame.join(names, on=column, how="left", nulls_equal=True, maintain_order="left")


def family_index(names: pl.Series) -> pl.Series:
    """Per name, its family's position in ``FAMILY_NAMES`` (UInt8): the family of a whole column of
    names costs one gather of small integers (``family_index(names).gather(codes)``)."""
    family = with_family(names.to_frame("name")).get_column("family")
    return family.replace_strict(list(FAMILY_NAMES), list(range(len(FAMILY_NAMES))), return_dtype=pl.UInt8)
