"""The numpy paths of the LLM analyses (``llm.step_rows``' binary search, per-step figures cut by
positions, ``llm_chains``' stream view) find what plain polars / plain Python finds, on real
traces and on real traces with shuffled rows, streams and names."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import H200, PUBLIC

from traceview import load
from traceview.analyses import families, hostcalls, llm, llm_chains, phases

GINDA = PUBLIC / "GindaChen__nsys-ai__h100_2gpu_1s.sqlite"  # GEMM -> softmax -> GEMM and elementwise chains


@pytest.fixture(scope="module")
def ginda():
    return load(GINDA).kernels


def _points(trace):
    return hostcalls.launch_points(trace.kernels, hostcalls.launch_calls(trace.api))


def _hits(points, ranges):
    hits = phases.range_hits(points, llm._one_phase(ranges), "_phase")
    return sorted(zip(hits.get_column("_id").to_list(), hits.get_column("r_start").to_list()))


@pytest.mark.parametrize("name", ["h200_baseline", "h200x2_tp_serial", "h200x2_nccl_tp_serial"])
def test_step_rows_equal_the_range_join(name) -> None:
    trace = load(H200 / f"{name}.sqlite")
    points = _points(trace)
    _, ranges = llm.decode_ranges(trace.nvtx)
    rows, step = llm.step_rows(points, ranges)
    assert sorted(zip(rows.tolist(), step.tolist())) == _hits(points, ranges) and len(rows) > 0
    if name == "h200_baseline":
        assert llm._searched_rows(points, ranges) is not None  # one thread, one level: the binary search


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 30)), min_size=1, max_size=30),
       st.lists(st.tuples(st.integers(0, 1500), st.sampled_from([7, 8])), max_size=80))
def test_searched_rows_equal_the_range_join(gaps_and_lengths, launches) -> None:
    """Ranges one after the other on thread 7 (touching, empty or apart), launches on threads 7 and 8."""
    starts, ends, t = [], [], 0
    for gap, length in gaps_and_lengths:
        t += gap + (1 if starts else 0)  # distinct starts: ranges of one level
        starts.append(t)
        t += length
        ends.append(t)
    ranges = pl.DataFrame({"start": starts, "end": ends, "global_tid": [7] * len(starts), "level": [0] * len(starts)})
    launches = sorted(launches)
    points = pl.DataFrame({"_id": range(len(launches)), "host_t": [h for h, _ in launches],
                           "global_tid": [g for _, g in launches]},
                          schema={"_id": pl.UInt32, "host_t": pl.Int64, "global_tid": pl.Int64})
    found = llm._searched_rows(points, ranges)
    assert found is not None
    assert sorted(zip(found[0].tolist(), found[1].tolist())) == _hits(points, ranges)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2**40), min_size=1, max_size=9), min_size=1, max_size=30))
def test_segment_medians_equal_polars(segments) -> None:
    values = np.array([v for s in segments for v in s], dtype=np.int64)
    lengths = np.array([len(s) for s in segments])
    heads = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    plain = (pl.DataFrame({"g": np.repeat(np.arange(len(segments)), lengths), "v": values})
             .group_by("g", maintain_order=True).agg(pl.col("v").median()).get_column("v").to_numpy())
    assert np.array_equal(llm._segment_medians(values, heads, lengths), plain)


@pytest.mark.parametrize("name", ["h200_baseline", "h200x2_tp_serial"])
def test_step_profile_equals_a_plain_group_by(name) -> None:
    trace = load(H200 / f"{name}.sqlite")
    _, ranges = llm.decode_ranges(trace.nvtx)
    rows, step = llm.step_rows(_points(trace), ranges)
    rows, step = llm.on_device(trace.kernels, rows, step, llm.busiest_device(trace.kernels, rows))
    steps = trace.kernels[rows].with_columns(step=pl.Series(step))
    per = steps.group_by("step").agg(pl.len().alias("n"), pl.col("duration").sum().alias("busy"),
                                     (pl.col("end").max() - pl.col("start").min()).alias("span"),
                                     pl.col("duration").median().alias("med"))
    ours = llm.step_profile(trace.kernels, rows, step, ranges.height)
    assert ours["launches_per_step"] == per.get_column("n").median() > 0
    assert ours["gpu_ns_per_step"] == per.get_column("busy").median()
    assert ours["span_ns_per_step"] == per.get_column("span").median()
    assert ours["gap_ns_per_step"] == per.select((pl.col("span") - pl.col("busy")).clip(0).median()).item()
    assert ours["median_kernel_ns"] == per.get_column("med").median()


def _streams(kernels: pl.DataFrame) -> list[dict[str, list]]:
    """Per (device, stream), in stream order (start, then row), the kernels' columns as lists."""
    k = families.with_family(kernels.with_row_index("_r")).sort(["device_id", "stream_id", "start", "_r"])
    return [part.to_dict(as_series=False) for part in k.partition_by(["device_id", "stream_id"], maintain_order=True)]


def _plain_elementwise(kernels: pl.DataFrame, min_length: int, max_gap_ns: int) -> dict[tuple, tuple]:
    chains: dict[tuple, list] = {}
    for s in _streams(kernels):
        run: list[int] = []
        for i in [*range(len(s["_r"])), None]:
            if i is not None and s["family"][i] in llm.EW_FAMILIES and run and s["start"][i] - s["end"][run[-1]] <= max_gap_ns:
                run.append(i)
                continue
            if len(run) >= min_length:
                c = chains.setdefault(tuple(s["name"][j] for j in run), [0, 0, 0, set()])
                durations = [s["duration"][j] for j in run]
                c[0], c[1], c[2] = c[0] + 1, c[1] + sum(durations), c[2] + max(durations)
                c[3].add(s["device_id"][run[0]])
            run = [i] if i is not None and s["family"][i] in llm.EW_FAMILIES else []
    return {k: (n, total, fused, sorted(devices)) for k, (n, total, fused, devices) in chains.items()}


def _plain_attention(kernels: pl.DataFrame, max_between: int) -> dict[str | None, tuple]:
    between = (*llm.EW_FAMILIES, "copy")
    found: dict[str | None, list] = {}
    for s in _streams(kernels):
        fam, n = s["family"], len(s["family"])
        for i in (i for i in range(n) if fam[i] == "softmax"):
            j, k = i - 1, i + 1
            while j >= 0 and fam[j] in between:
                j -= 1
            while k < n and fam[k] in between:
                k += 1
            if j < 0 or k >= n or i - j > max_between + 1 or k - i > max_between + 1 \
                    or fam[j] not in llm.GEMM_FAMILIES or fam[k] not in llm.GEMM_FAMILIES:
                continue
            names = [s["name"][j], s["name"][i], s["name"][k]]
            seq = None if None in names else " -> ".join(names)
            shape = [s[c][i] for c in ("grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z")]
            threads = None if None in shape else int(np.prod(shape))
            c = found.setdefault(seq, [0, 0, 0, [], s["name"][i]])
            c[0], c[1] = c[0] + 1, c[1] + s["duration"][i]
            c[2] += s["duration"][j] + s["duration"][i] + s["duration"][k]
            c[3] += [] if threads is None else [threads]
    return {k: (n, soft, total, max(threads, default=None), name) for k, (n, soft, total, threads, name) in found.items()}


def _check_chains(kernels: pl.DataFrame, min_length: int, max_gap_ns: int, max_between: int) -> None:
    view = llm_chains.StreamView.build(kernels)
    ours = llm_chains.elementwise_chains(kernels, min_length, max_gap_ns, view=view)
    assert {tuple(r["kernels"]): (r["occurrences"], r["total_ns"], r["fused_estimate_ns"], r["device_ids"])
            for r in ours.iter_rows(named=True)} == _plain_elementwise(kernels, min_length, max_gap_ns)
    attention = llm_chains.attention_chains(kernels, max_between, view=view)
    assert {r["seq"]: (r["occurrences"], r["softmax_ns"], r["total_ns"], r["threads"], r["softmax"])
            for r in attention.iter_rows(named=True)} == _plain_attention(kernels, max_between)


def test_chains_equal_plain_python_on_real_traces(ginda) -> None:
    _check_chains(ginda, 2, 50_000, 3)
    assert llm_chains.attention_chains(ginda).height > 0 and llm_chains.elementwise_chains(ginda).height > 0
    for name in ("h200_baseline", "h200x2_tp_serial"):
        _check_chains(load(H200 / f"{name}.sqlite").kernels, 2, 50_000, 3)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.sampled_from([0, 2_000, 50_000, 10**9]), st.integers(0, 5))
def test_chains_equal_plain_python_on_shuffled_traces(ginda, seed, min_length, max_gap_ns, max_between) -> None:
    """Rows shuffled, kernels moved to random streams, some renamed (or unnamed) from the trace's names."""
    rng = np.random.default_rng(seed)
    n = ginda.height
    names = ginda.get_column("name").unique().sort().to_list() + [None]
    renamed = pl.Series([names[i] for i in rng.integers(0, len(names), n)], dtype=pl.String)
    kernels = ginda.with_columns(
        stream_id=pl.Series(rng.integers(0, 4, n)),
        name=pl.when(pl.Series(rng.random(n) < 0.3)).then(renamed).otherwise(pl.col("name")))
    _check_chains(kernels[rng.permutation(n)], min_length, max_gap_ns, max_between)


def test_chains_too_long_for_an_integer_key_group_by_lists(ginda) -> None:
    """Elementwise kernels only: a few long runs whose code sequences do not fit 63 bits."""
    ew = families.with_family(ginda.select(pl.col("name").unique().sort())).filter(
        pl.col("family").is_in(llm.EW_FAMILIES)).get_column("name")
    assert ew.len() >= 3
    rng = np.random.default_rng(1)
    kernels = ginda.with_columns(name=ew.gather(rng.integers(0, ew.len(), ginda.height)),
                                 stream_id=pl.Series(rng.integers(0, 3, ginda.height)))
    view = llm_chains.StreamView.build(kernels)
    rows, lengths, at = llm_chains._runs(kernels, view, view.family < 255, 10**9, 2)
    assert llm_chains._run_groups(view.codes[rows], lengths, at).dtype == pl.List(pl.UInt32)
    _check_chains(kernels, 2, 10**9, 3)
    _check_chains(kernels, 1, 0, 3)
