"""LLM-inference patterns read from the timeline: decode steps, host syncs per token,
unfused elementwise/attention chains, CUDA-graph use.

All functions are pure (frames in, frames/dicts out) and vectorized; loops run over groups
(chains, phases), never over kernel launches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from traceview.analyses import derived, families, hostcalls, phases, streams

EW_FAMILIES = ("elementwise", "normalization")      # re-read and re-write the same activations
GEMM_FAMILIES = ("gemm", "gemv")


def is_weight_stream(kernel: dict[str, Any]) -> bool:
    """A row of ``step_kernel_table``: a memory-bound GEMV/GEMM, i.e. one streaming the weights."""
    return kernel["family"] in GEMM_FAMILIES and kernel["bound_class"] == "memory"
STEP_COLUMNS = ["name", "device_id", "start", "end", "duration", "graph_id", "graph_node_id"]
CHAIN_COLUMNS = ["name", "device_id", "stream_id", "start", "end", "duration",
                 "grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z"]


def decode_ranges(nvtx: pl.DataFrame, pattern: str = phases.DECODE) -> tuple[str | None, pl.DataFrame]:
    """The NVTX range name that marks decode steps (matches ``pattern``, most instances, >= 2)
    and its ranges; (None, empty) when there is none."""
    if nvtx.height == 0:
        return None, nvtx
    named = nvtx.filter(pl.col("name").str.contains(pattern) & ~pl.col("name").str.contains(phases.LIBRARY_DOMAINS))
    counts = named.group_by("name").agg(pl.len().alias("n")).filter(pl.col("n") >= 2).sort(["n", "name"],
                                                                                          descending=[True, False])
    if counts.height == 0:
        return None, nvtx.head(0)
    name = counts.get_column("name")[0]
    return name, nvtx.filter(pl.col("name") == name)


def step_kernels(kernels: pl.DataFrame, api: pl.DataFrame, ranges: pl.DataFrame, *,
                 calls: pl.DataFrame | None = None, points: pl.DataFrame | None = None,
                 codes: pl.Series | None = None) -> pl.DataFrame:
    """Kernels launched inside each step range (by the launching API call): ``step`` = the range's
    start time as the step id, ``code`` (``derived.encode`` of the kernel names: ``codes``) and the
    other ``STEP_COLUMNS``. ``calls`` (``hostcalls.launch_calls(api)``) and ``points``
    (``hostcalls.launch_points(kernels, calls)``) may be passed when already built."""
    if points is None:
        points = hostcalls.launch_points(kernels, hostcalls.launch_calls(api) if calls is None else calls)
    codes = derived.encode(kernels.get_column("name"))[0] if codes is None else codes
    hits = phases.range_hits(points, _one_phase(ranges), "_phase")
    ids = hits.get_column("_id").to_numpy()
    step = hits.get_column("r_start").alias("step")
    if step.is_sorted():  # one thread, one level: launches come in step order; group_by takes the sorted path
        step = step.set_sorted()
    return derived.take_columns(kernels, [c for c in STEP_COLUMNS if c != "name"], ids).with_columns(
        step, derived.take(codes, ids).alias("code"))


def _one_phase(ranges: pl.DataFrame) -> pl.DataFrame:
    """``ranges`` (all of one name) with a constant ``_phase``: ``phases.range_hits`` then carries
    one small integer per hit instead of the name."""
    return ranges.with_columns(pl.lit(0, pl.UInt8).alias("_phase"))


def step_profile(steps: pl.DataFrame, n_steps: int) -> dict[str, Any]:
    """Per-step GPU figures of the kernels launched by the steps (``step_kernels`` output)."""
    per_step = steps.group_by("step").agg(
        pl.len().alias("launches"), pl.col("duration").sum().alias("busy_ns"),
        (pl.col("end").max() - pl.col("start").min()).alias("span_ns"),
        (pl.col("graph_id").is_not_null() | pl.col("graph_node_id").fill_null(0).gt(0)).any().alias("graphed"),
        pl.col("duration").median().alias("median_kernel_ns"))
    gaps = (pl.col("span_ns") - pl.col("busy_ns")).clip(lower_bound=0)
    return {
        "steps": n_steps,
        "launches_per_step": float(per_step.get_column("launches").median() or 0),
        "gpu_ns_per_step": float(per_step.get_column("busy_ns").median() or 0),
        "span_ns_per_step": float(per_step.get_column("span_ns").median() or 0),
        "gap_ns_per_step": float(per_step.select(gaps.median()).item() or 0),
        "median_kernel_ns": float(per_step.get_column("median_kernel_ns").median() or 0),
        "graphed_steps": int(per_step.get_column("graphed").sum()),
    }


def step_kernel_table(steps: pl.DataFrame, n_steps: int, details: dict[str, Any], names: pl.DataFrame) -> pl.DataFrame:
    """Per kernel name in the steps: launches and ns per step, bytes per launch and bound class
    (from ``extra["kernel_details"][name]["bound"]``). ``names``: ``name`` and ``family`` per code."""
    facts = pl.DataFrame(
        [{"name": n, "bytes_per_launch": (d.get("bound") or {}).get("bytes_per_launch"),
          "bytes_source": (d.get("bound") or {}).get("bytes_source"),
          "bound_class": (d.get("bound") or {}).get("class", "unknown")} for n, d in details.items()],
        schema={"name": pl.String, "bytes_per_launch": pl.Float64, "bytes_source": pl.String,
                "bound_class": pl.String})
    table = steps.group_by("code").agg(pl.len().alias("launches"), pl.col("duration").sum().alias("ns"))
    table = table.select(derived.decoded(pl.col("code"), names.get_column("name")).alias("name"),
                         derived.decoded(pl.col("code"), names.get_column("family"))
                         .fill_null(families.family_of("").name).alias("family"), "launches", "ns")
    return (table.join(facts, on="name", how="left")
            .with_columns(launches_per_step=pl.col("launches") / max(n_steps, 1),
                          ns_per_step=pl.col("ns") / max(n_steps, 1))
            .with_columns(bytes_per_step=pl.col("bytes_per_launch") * pl.col("launches_per_step"))
            .sort("ns", descending=True))


def host_syncs_in_steps(api: pl.DataFrame, memcpy: pl.DataFrame, ranges: pl.DataFrame, *,
                        calls: pl.DataFrame | None = None, launch: pl.DataFrame | None = None,
                        copy_points: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per step: blocking host calls issued inside it (synchronize calls, synchronous copies) and
    device-to-host copies it launched. Columns: step, sync_calls, sync_ns, call_names (the distinct
    blocking calls, in no particular order), d2h_copies, d2h_bytes, d2h_ns.
    ``calls``: ``hostcalls.classify_calls(hostcalls.unique_calls(api))``; ``launch``:
    ``hostcalls.launch_calls(api)``; ``copy_points``: ``hostcalls.launch_points(memcpy, launch)``
    (built here when not given)."""
    if calls is None:
        calls = hostcalls.classify_calls(hostcalls.unique_calls(api))
    blocking = calls.filter((pl.col("call_kind") == "sync") | ((pl.col("call_kind") == "copy") & ~pl.col("is_async")))
    step_of = ranges.select("global_tid", pl.col("start").alias("step"), pl.col("end").alias("_end")).sort("step")
    hit = (blocking.sort("start").join_asof(step_of, left_on="start", right_on="step", by="global_tid",
                                            strategy="backward", check_sortedness=False)
           .filter(pl.col("_end").is_not_null() & (pl.col("start") <= pl.col("_end"))))
    syncs = hit.group_by("step").agg(pl.len().alias("sync_calls"), pl.col("duration").sum().alias("sync_ns"),
                                     pl.col("name").unique().alias("call_names"))  # sorting each list: 5x slower
    if copy_points is None:
        copy_points = hostcalls.launch_points(memcpy, hostcalls.launch_calls(api) if launch is None else launch)
    is_d2h = memcpy.get_column("operation") == "[CUDA memcpy DtoH]"
    d2h = phases.range_hits(copy_points.filter(is_d2h.gather(copy_points.get_column("_id"))), _one_phase(ranges),
                            "_phase")
    copies = (derived.take_columns(memcpy, ["bytes", "duration"], d2h.get_column("_id"))
              .with_columns(step=d2h.get_column("r_start")).group_by("step")
              .agg(pl.len().alias("d2h_copies"), pl.col("bytes").sum().alias("d2h_bytes"),
                   pl.col("duration").sum().alias("d2h_ns")))
    all_steps = ranges.select(pl.col("start").alias("step")).unique()
    return (all_steps.join(syncs, on="step", how="left").join(copies, on="step", how="left")
            .with_columns(pl.col("sync_calls", "sync_ns", "d2h_copies", "d2h_bytes", "d2h_ns").fill_null(0))
            .sort("step"))


def stream_order(kernels: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, numbers)``: the kernels' row positions in stream order (device, stream, start;
    stable: equal starts keep their row order, nulls first) and each one's stream number
    (``streams.group_numbers``, ordered by ``streams.group_order``)."""
    if kernels.height == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint32)
    numbers = streams.group_numbers(kernels, list(streams.STREAM)).to_numpy()
    rows = streams.group_order(kernels, numbers)
    return rows, numbers[rows]


def stream_ordered(kernels: pl.DataFrame, names: tuple[pl.Series, pl.Series] | None = None,
                   order: tuple[np.ndarray, np.ndarray] | None = None) -> pl.DataFrame:
    """The kernels in stream order (device, stream, start), narrow: ``code`` (``names``:
    ``derived.encode`` of the kernel names), ``family`` (index into ``families.FAMILY_NAMES``),
    device_id, stream_id, start, end, duration, ``_row`` (row in ``kernels``) and ``_first`` (the
    stream's first kernel): the input of the chain finders. ``order``: ``stream_order(kernels)``
    when already built."""
    codes, distinct = derived.encode(kernels.get_column("name")) if names is None else names
    rows, numbers = stream_order(kernels) if order is None else order
    unknown = families.FAMILY_NAMES.index(families.UNKNOWN.name)
    first = np.ones(len(numbers), dtype=bool)
    first[1:] = numbers[1:] != numbers[:-1]
    code = derived.take(codes, rows).alias("code")
    family = families.family_index(distinct).gather(code).fill_null(unknown).alias("family")  # null name: unknown
    return pl.DataFrame([*(derived.take(kernels.get_column(c), rows) for c in ("device_id", "stream_id", "start", "end",
                                                                        "duration")),
                         pl.Series("_row", rows, dtype=pl.UInt32), code, family, pl.Series("_first", first)])


def _family_in(names: tuple[str, ...]) -> pl.Expr:
    return pl.col("family").is_in([families.FAMILY_NAMES.index(n) for n in names])


def _runs(ordered: pl.DataFrame, member: pl.Expr, max_gap_ns: int, min_length: int = 1) -> pl.DataFrame:
    """Consecutive kernels per (device, stream) where ``member`` holds and each starts within
    ``max_gap_ns`` of the previous one's end, ``min_length`` or more of them: device_id, stream_id,
    ``code`` (list of name codes), length, ``start`` (the first one's), ``total_ns`` and ``max_ns``
    (their durations' sum and maximum). ``ordered``: ``stream_ordered`` (start, end and duration not
    null: ingest drops such rows). A run's rows are adjacent there, so runs are cut by positions
    (numpy), not grouped."""
    m = ordered.select(member.fill_null(False)).to_series().to_numpy()
    start, end = ordered.get_column("start").to_numpy(), ordered.get_column("end").to_numpy()
    breaks = ordered.get_column("_first").to_numpy().copy()
    breaks[1:] |= (m[1:] != m[:-1]) | (start[1:] - end[:-1] > max_gap_ns)
    members = np.flatnonzero(m)
    heads = np.flatnonzero(breaks[members])  # first member of each run, as positions in ``members``
    lengths = np.diff(heads, append=len(members))
    keep = lengths >= min_length
    rows, lengths = members[np.repeat(keep, lengths)], lengths[keep]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    at = offsets[:-1]
    durations = ordered.get_column("duration").to_numpy()[rows]
    codes = derived.take(ordered.get_column("code"), rows)
    key = _sequence_key(codes, lengths, at)
    return pl.DataFrame([*(derived.take(ordered.get_column(c), rows[at]) for c in ("device_id", "stream_id", "start")),
                         pl.Series("code", pl.from_arrow(pa.LargeListArray.from_arrays(pa.array(offsets), codes.to_arrow()))),
                         pl.Series("length", lengths, dtype=pl.UInt32),
                         pl.Series("total_ns", np.add.reduceat(durations, at) if len(at) else durations),
                         pl.Series("max_ns", np.maximum.reduceat(durations, at) if len(at) else durations),
                         *([] if key is None else [pl.Series("_chain", key)])])


def _sequence_key(codes: pl.Series, lengths: np.ndarray, at: np.ndarray) -> np.ndarray | None:
    """Per run (``lengths`` rows of ``codes`` from ``at``), one integer that is equal for two runs
    exactly when their code sequences are: the codes as digits (null 1, code c as c + 2) of a
    number in base max code + 3. None when the longest run's number may not fit 63 bits."""
    if len(lengths) == 0:
        return None
    base = int(codes.max() or 0) + 3
    if base ** int(lengths.max()) >= 1 << 63:
        return None
    digits = codes.cast(pl.Int64).fill_null(-1).to_numpy() + 2
    place = np.arange(len(digits)) - np.repeat(at, lengths)
    return np.add.reduceat(digits * np.power(base, place, dtype=np.int64), at)


def elementwise_chains(kernels: pl.DataFrame, min_length: int = 2, max_gap_ns: int = 50_000, *,
                       ordered: pl.DataFrame | None = None,
                       names: tuple[pl.Series, pl.Series] | None = None) -> pl.DataFrame:
    """Chains of >= ``min_length`` elementwise/normalization kernels back to back on a stream
    (each starting within ``max_gap_ns`` of the previous one's end). ``ordered``:
    ``stream_ordered(kernels, names)`` when already built; ``names``: see ``stream_ordered``.

    One row per distinct chain (names in order): occurrences, total_ns, fused_estimate_ns (the
    longest member per occurrence: a fused kernel makes one pass over the data), saving_ns.
    """
    names = derived.encode(kernels.get_column("name")) if names is None else names
    ordered = stream_ordered(kernels, names) if ordered is None else ordered
    runs = _runs(ordered, _family_in(EW_FAMILIES), max_gap_ns, min_length)
    by_list = "_chain" not in runs.columns  # a list key hashes several times slower than one integer
    chains = (runs.group_by("code" if by_list else "_chain").agg(  # one row per distinct chain of name codes
        *([] if by_list else [pl.col("code").first()]), pl.len().alias("occurrences"), pl.col("total_ns").sum(), pl.col("max_ns").sum().alias("fused_estimate_ns"),
        pl.col("device_id").unique().sort().alias("device_ids"))
        .with_columns(pl.int_range(pl.len()).alias("_c")))
    kernels_of = (chains.select("_c", "code").explode("code")
                  .select("_c", derived.decoded(pl.col("code"), names[1]).alias("kernels"))
                  .group_by("_c", maintain_order=True).agg("kernels"))
    chains = chains.join(kernels_of, on="_c").with_columns(chain=pl.col("kernels").list.join(" -> "))
    if chains.get_column("chain").n_unique() < chains.height:  # names with " -> " in them made two chains one
        chains = chains.group_by("chain").agg(
            pl.col("kernels").first(), pl.col("occurrences", "total_ns", "fused_estimate_ns").sum(),
            pl.col("device_ids").flatten().unique().sort())
    return (chains.select("chain", "kernels", "occurrences", "total_ns", "fused_estimate_ns", "device_ids")
            .with_columns(saving_ns=pl.col("total_ns") - pl.col("fused_estimate_ns"))
            .sort("saving_ns", descending=True))


def attention_chains(kernels: pl.DataFrame, max_between: int = 3, *, ordered: pl.DataFrame | None = None,
                     names: tuple[pl.Series, pl.Series] | None = None) -> pl.DataFrame:
    """GEMM -> softmax -> GEMM on one stream (attention computed unfused), allowing up to
    ``max_between`` elementwise kernels (scale, mask, dropout) on each side of the softmax.
    ``ordered``: ``stream_ordered(kernels, names)`` when already built; ``names``: see ``stream_ordered``.

    One row per distinct sequence: occurrences, softmax_ns, total_ns (GEMMs + softmax),
    threads (softmax grid x block: elements touched if one thread per element), softmax name.
    """
    names = derived.encode(kernels.get_column("name")) if names is None else names
    k = (stream_ordered(kernels, names) if ordered is None else ordered).with_columns(
        _i=pl.int_range(pl.len(), dtype=pl.Int64), _major=~_family_in((*EW_FAMILIES, "copy")))
    # Row of the nearest major (not elementwise/copy) kernel before / after each row, over all rows,
    # then kept only when it lies on the row's own stream (from its first row to its last).
    major_at = pl.when(pl.col("_major")).then(pl.col("_i"))
    last = pl.col("_first").shift(-1).fill_null(True)
    k = k.with_columns(prev_idx=major_at.shift(1).forward_fill(), next_idx=major_at.shift(-1).backward_fill(),
                       _s0=pl.when(pl.col("_first")).then(pl.col("_i")).forward_fill(),
                       _s1=pl.when(last).then(pl.col("_i")).backward_fill())
    soft = k.filter(_family_in(("softmax",)) & (pl.col("prev_idx") >= pl.col("_s0"))
                    & (pl.col("next_idx") <= pl.col("_s1")) & (pl.col("_i") - pl.col("prev_idx") <= max_between + 1)
                    & (pl.col("next_idx") - pl.col("_i") <= max_between + 1))
    cols = {"code": "_n", "duration": "_d", "family": "_f"}
    prev = k.select(pl.col(c).gather(soft.get_column("prev_idx")).alias("prev" + a) for c, a in cols.items())
    nxt = k.select(pl.col(c).gather(soft.get_column("next_idx")).alias("next" + a) for c, a in cols.items())
    gemm = [families.FAMILY_NAMES.index(f) for f in GEMM_FAMILIES]
    hits = pl.concat([soft, prev, nxt], how="horizontal").filter(
        pl.col("prev_f").is_in(gemm) & pl.col("next_f").is_in(gemm))
    shape = ["grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z"]
    hits = hits.hstack(kernels.select(pl.col(shape).gather(hits.get_column("_row")))).with_columns(
        derived.decoded(pl.col(c), names[1]).alias(c.replace("code", "name")) for c in ("code", "prev_n", "next_n"))
    threads = (pl.col("grid_x") * pl.col("grid_y") * pl.col("grid_z") * pl.col("block_x") * pl.col("block_y")
               * pl.col("block_z"))
    return (hits.with_columns(seq=pl.concat_str("prev_n", "name", "next_n", separator=" -> "),
                              threads=threads, total=pl.col("prev_d") + pl.col("duration") + pl.col("next_d"))
            .group_by("seq").agg(pl.len().alias("occurrences"), pl.col("duration").sum().alias("softmax_ns"),
                                 pl.col("total").sum().alias("total_ns"), pl.col("threads").max().alias("threads"),
                                 pl.col("name").first().alias("softmax"))
            .sort("softmax_ns", descending=True))
