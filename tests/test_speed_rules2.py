"""Round 2 of the rules' fast paths (issue 8) against the plain paths they replace: call sites
reduced once per distinct range name, the next call of the kept calls only, device lists."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from traceview.analyses import hostcalls, streams, timeline
from traceview.rules import timeline_data as td
from traceview.rules.base import RuleContext
from traceview.rules.builtin import timeline_launch_bound as lb

range_names = st.sampled_from(["aten::copy_, op_id = 3", "aten::copy_, op_id = 4", "decode", "step, seq = 9",
                               "stencil", None])


@settings(max_examples=60, deadline=None)
@given(st.lists(range_names, max_size=60))
def test_call_sites_equal_the_regex_per_row(values):
    """Few distinct names (a lookup per row) or many (the regex per row): the same call sites."""
    series = pl.Series("nvtx_range", values, dtype=pl.String)
    expect = series.to_frame().select(hostcalls.call_site_name(pl.col("nvtx_range"))).to_series()
    assert hostcalls.call_sites(series).equals(expect)


def test_call_sites_of_real_nvtx_ranges(baseline_trace):
    """h200_baseline's NVTX names repeated: the lookup path, equal to the regex on every row."""
    names = pl.concat([baseline_trace.nvtx.get_column("name")] * 5).alias("nvtx_range")
    assert names.n_unique() * 4 <= names.len()
    expect = names.to_frame().select(hostcalls.call_site_name(pl.col("nvtx_range"))).to_series()
    assert hostcalls.call_sites(names).equals(expect)


def test_range_instances_count_call_sites(baseline_result):
    """Counting per name, then per call site, gives the counts of grouping every range by its site."""
    ctx = RuleContext(trace=baseline_result.trace, result=baseline_result, options=None)
    nvtx = baseline_result.trace.nvtx
    expect = dict(nvtx.group_by(hostcalls.call_site_name(pl.col("name"))).agg(pl.len()).iter_rows())
    assert td.range_instances(ctx) == expect
    assert sum(expect.values()) == nvtx.height > 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40)), min_size=1, max_size=60), st.data())
def test_adjacent_at_equals_all_positions(rows, data):
    """One start-sorted group (the usual single host thread) or several: the next row of the rows
    asked for, as ``adjacent_positions`` finds for every row."""
    frame = pl.DataFrame(rows, schema=["tid", "start"], orient="row")
    for f in (frame, frame.sort("start"), frame.with_columns(tid=pl.lit(0)).sort("start")):
        code = streams.group_numbers(f, ["tid"]).to_numpy()
        asked = np.flatnonzero(np.array(data.draw(st.lists(st.booleans(), min_size=f.height, max_size=f.height))))
        expect = streams.adjacent_positions(f, code, after=True)[asked]
        assert (streams.adjacent_at(f, code, asked) == expect).all()


@given(st.lists(st.one_of(st.none(), st.integers(0, 3)), max_size=20))
def test_distinct_devices(values):
    series = pl.Series(values, dtype=pl.Int64)
    assert timeline.distinct_values(series) == sorted(series.drop_nulls().unique().to_list())


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 200_000), st.sampled_from([0.0, 0.2, 0.5, 2.0]), st.integers(1, 5000), st.integers(0, 50_000))
def test_launch_groups_medians_of_candidates_only(baseline_trace, max_kernel_ns, ratio, min_launches, max_gap_ns):
    """The groups reported when medians are taken only over the candidate groups' rows equal those of
    one group-by of every short launch (h200_baseline's kernels)."""
    kernels = baseline_trace.kernels
    p = lb.Params(max_kernel_ns, ratio, min_launches, max_gap_ns)
    k = lb._short_launches(kernels, streams.links(kernels), p)
    plain = lb._reported(k.group_by("_g").agg(*lb._stats()), p)
    assert lb._candidates_reported(k, p).sort("_g").equals(plain.sort("_g"))
