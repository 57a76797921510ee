"""Unfused kernel chains on a stream: elementwise/normalization runs and GEMM -> softmax -> GEMM.

Both finders read one ``StreamView`` (numpy: the kernels' rows in stream order, each one's
family and whether it starts its stream) and gather the other columns only at the rows they
keep, so no stream-ordered copy of the kernel frame is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from traceview.analyses import derived, families, streams
from traceview.analyses.llm import EW_FAMILIES, GEMM_FAMILIES


def _in_families(family: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Per value of ``family`` (indices into ``families.FAMILY_NAMES``), whether it is one of ``names``
    (a table lookup: ``np.isin`` sorts)."""
    table = np.zeros(len(families.FAMILY_NAMES), dtype=bool)
    table[[families.FAMILY_NAMES.index(n) for n in names]] = True
    return table[family]


@dataclass(frozen=True)
class StreamView:
    """The kernels in stream order (device, stream, start; ``streams.group_order``): ``rows`` (row in
    the kernel frame), ``first`` (the stream's first kernel) and ``family`` (index into
    ``families.FAMILY_NAMES``) per position; ``codes`` per kernel row (``derived.encode`` of the
    names, a null name one past the last) and ``names`` (the names the codes stand for)."""

    rows: np.ndarray
    first: np.ndarray
    family: np.ndarray
    codes: np.ndarray
    names: pl.Series

    @classmethod
    def build(cls, kernels: pl.DataFrame, distinct: pl.Series | None = None, code: np.ndarray | None = None) -> StreamView:
        """``distinct`` and ``code``: the names and codes when already built."""
        if distinct is None or code is None:
            codes, distinct = derived.encode(kernels.get_column("name"))
            code = codes.fill_null(distinct.len()).to_numpy()
        first = np.zeros(kernels.height, dtype=bool)
        rows = np.zeros(0, dtype=np.int64)
        if kernels.height:
            number = streams.group_numbers(kernels, list(streams.STREAM)).to_numpy()
            rows = streams.group_order(kernels, number)  # stream after stream, in number order
            counts = np.bincount(number)
            first[(np.cumsum(counts) - counts)[counts > 0]] = True
        unknown = families.FAMILY_NAMES.index(families.UNKNOWN.name)
        table = np.append(families.family_index(distinct).to_numpy(), np.uint8(unknown))  # null name: last
        return cls(rows, first, table[code[rows]], code, distinct)

    def decoded(self, codes: np.ndarray, name: str) -> pl.Series:
        """The names of ``codes`` (null for one past the last)."""
        code = pl.Series(name, codes)
        return pl.select(derived.decoded(pl.when(code < self.names.len()).then(code), self.names).alias(name)).to_series()


def column(kernels: pl.DataFrame, name: str, rows: np.ndarray) -> np.ndarray:
    """``kernels[name]`` at ``rows`` as numpy (the columns read here are never null: ingest drops such rows)."""
    return kernels.get_column(name).to_numpy()[rows]


def _runs(kernels: pl.DataFrame, view: StreamView, member: np.ndarray, max_gap_ns: int,
          min_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of consecutive ``member`` kernels on a stream, each starting within ``max_gap_ns`` of
    the previous one's end, ``min_length`` or more: ``(rows, lengths, at)``, the runs' kernel rows
    one after the other, each run's length and its offset in ``rows``."""
    members = np.flatnonzero(member)
    rows = view.rows[members]
    breaks = np.diff(members, prepend=-2) != 1  # a run ends where a non-member or another stream comes
    breaks |= view.first[members]
    breaks[1:] |= column(kernels, "start", rows[1:]) - column(kernels, "end", rows[:-1]) > max_gap_ns
    heads = np.flatnonzero(breaks)
    lengths = np.diff(heads, append=len(members))
    keep = lengths >= min_length
    if not keep.all():
        rows, lengths = rows[np.repeat(keep, lengths)], lengths[keep]
    at = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=at[1:])
    return rows, lengths, at


def _sequence_key(digits: np.ndarray, lengths: np.ndarray, at: np.ndarray) -> np.ndarray | None:
    """Per run (``lengths`` of ``digits`` from ``at``, digits >= 1), one integer that is equal for two
    runs exactly when their digit sequences are: the digits of a number in base max digit + 1.
    None when the longest run's number may not fit 63 bits."""
    if len(lengths) == 0:
        return None
    base = int(digits.max()) + 1
    if base ** int(lengths.max()) >= 1 << 63:
        return None
    place = np.arange(len(digits)) - np.repeat(at, lengths)
    powers = np.array([base ** i for i in range(int(lengths.max()))], dtype=np.int64)
    return np.add.reduceat(digits * powers[place], at)


def _run_groups(codes: np.ndarray, lengths: np.ndarray, at: np.ndarray) -> pl.Series:
    """One group key per run, equal for runs of the same code sequence: ``_sequence_key`` (code c as
    digit c + 1), else the list of codes (a list hashes several times slower)."""
    key = _sequence_key(codes.astype(np.int64) + 1, lengths, at)
    return pl.Series("_chain", key) if key is not None else _lists(pl.Series("_chain", codes), lengths)


def _lists(values: pl.Series, lengths: np.ndarray) -> pl.Series:
    """``values`` cut into lists of ``lengths``, one after the other (no pyarrow: its first
    conversion from numpy takes 0.3 s)."""
    group = pl.Series("_list", np.repeat(np.arange(len(lengths)), lengths))
    return pl.DataFrame([group, values]).group_by("_list", maintain_order=True).agg(values.name).get_column(values.name)


def elementwise_chains(kernels: pl.DataFrame, min_length: int = 2, max_gap_ns: int = 50_000, *,
                       view: StreamView | None = None) -> pl.DataFrame:
    """Chains of >= ``min_length`` elementwise/normalization kernels back to back on a stream
    (each starting within ``max_gap_ns`` of the previous one's end). ``view``:
    ``StreamView.build(kernels)`` when already built.

    One row per distinct chain (names in order): occurrences, total_ns, fused_estimate_ns (the
    longest member per occurrence: a fused kernel makes one pass over the data), saving_ns.
    """
    view = StreamView.build(kernels) if view is None else view
    rows, lengths, at = _runs(kernels, view, _in_families(view.family, EW_FAMILIES), max_gap_ns,
                              min_length)
    durations = column(kernels, "duration", rows)
    through = np.concatenate([[0], np.cumsum(durations)])  # a run's total: a difference of two prefix sums
    runs = pl.DataFrame([
        _run_groups(view.codes[rows], lengths, at), pl.Series("_run", np.arange(len(at), dtype=np.int64)),
        pl.Series("total_ns", through[at + lengths] - through[at]),
        pl.Series("max_ns", np.maximum.reduceat(durations, at) if len(at) else durations),
        derived.take(kernels.get_column("device_id"), rows[at])])
    chains = runs.group_by("_chain").agg(  # one row per distinct chain of name codes
        pl.col("_run").first(), pl.len().alias("occurrences"), pl.col("total_ns").sum(),
        pl.col("max_ns").sum().alias("fused_estimate_ns"), pl.col("device_id").unique().sort().alias("device_ids"))
    chains = chains.with_columns(_chain_names(view, rows, lengths, at, chains.get_column("_run").to_numpy()))
    chains = chains.with_columns(chain=pl.col("kernels").list.join(" -> "))
    if chains.get_column("chain").n_unique() < chains.height:  # names with " -> " in them made two chains one
        chains = chains.group_by("chain").agg(
            pl.col("kernels").first(), pl.col("occurrences", "total_ns", "fused_estimate_ns").sum(),
            pl.col("device_ids").flatten().unique().sort())
    return (chains.select("chain", "kernels", "occurrences", "total_ns", "fused_estimate_ns", "device_ids")
            .with_columns(saving_ns=pl.col("total_ns") - pl.col("fused_estimate_ns"))
            .sort("saving_ns", descending=True))


def _chain_names(view: StreamView, rows: np.ndarray, lengths: np.ndarray, at: np.ndarray,
                 runs: np.ndarray) -> pl.Series:
    """Per run in ``runs``, the list of its kernels' names."""
    n = lengths[runs]
    starts = np.cumsum(n) - n
    positions = np.repeat(at[runs] - starts, n) + np.arange(n.sum())
    return _lists(view.decoded(view.codes[rows[positions]], "kernels"), n)


def attention_chains(kernels: pl.DataFrame, max_between: int = 3, *, view: StreamView | None = None) -> pl.DataFrame:
    """GEMM -> softmax -> GEMM on one stream (attention computed unfused), allowing up to
    ``max_between`` elementwise kernels (scale, mask, dropout) on each side of the softmax.
    ``view``: ``StreamView.build(kernels)`` when already built.

    One row per distinct sequence: occurrences, softmax_ns, total_ns (GEMMs + softmax),
    threads (softmax grid x block: elements touched if one thread per element), softmax name.
    """
    view = StreamView.build(kernels) if view is None else view
    soft, prev, nxt = _between_gemms(view, max_between)
    shape = ["grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z"]
    hits = pl.DataFrame([
        view.decoded(view.codes[soft], "name"), view.decoded(view.codes[prev], "prev_n"),
        view.decoded(view.codes[nxt], "next_n"),
        *(derived.take(kernels.get_column("duration"), r).alias(a) for r, a in ((soft, "duration"),
                                                                                 (prev, "prev_d"), (nxt, "next_d"))),
        *derived.take_columns(kernels, shape, soft)])
    threads = (pl.col("grid_x") * pl.col("grid_y") * pl.col("grid_z") * pl.col("block_x") * pl.col("block_y")
               * pl.col("block_z"))
    return (hits.with_columns(seq=pl.concat_str("prev_n", "name", "next_n", separator=" -> "),
                              threads=threads, total=pl.col("prev_d") + pl.col("duration") + pl.col("next_d"))
            .group_by("seq").agg(pl.len().alias("occurrences"), pl.col("duration").sum().alias("softmax_ns"),
                                 pl.col("total").sum().alias("total_ns"), pl.col("threads").max().alias("threads"),
                                 pl.col("name").first().alias("softmax"))
            .sort("softmax_ns", descending=True))


def _between_gemms(view: StreamView, max_between: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kernel rows of the softmax kernels whose nearest major (not elementwise/copy) kernels before
    and after on their stream are GEMMs at most ``max_between`` kernels away, and of those GEMMs."""
    soft = np.flatnonzero(view.family == families.FAMILY_NAMES.index("softmax"))
    major = np.flatnonzero(~_in_families(view.family, (*EW_FAMILIES, "copy")))  # softmax among them
    at = np.searchsorted(major, soft)
    ok = (at > 0) & (at + 1 < len(major))
    soft, at = soft[ok], at[ok]
    prev, nxt = major[at - 1], major[at + 1]
    stream = np.cumsum(view.first[:nxt.max(initial=0) + 1])  # stream number per position, up to the last needed
    ok = ((stream[prev] == stream[soft]) & (stream[nxt] == stream[soft]) & (soft - prev <= max_between + 1)
          & (nxt - soft <= max_between + 1) & _in_families(view.family[prev], GEMM_FAMILIES)
          & _in_families(view.family[nxt], GEMM_FAMILIES))
    return view.rows[soft[ok]], view.rows[prev[ok]], view.rows[nxt[ok]]
