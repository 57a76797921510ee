"""Communication/compute overlap per device: interval arithmetic in polars, no per-event loops.

Each device's timeline is tiled into segments of constant state by a +1/-1 sweep over the
start and end of every communication and compute interval:

* ``exposed``: communication runs and no compute does (the time communication costs),
* ``overlapped``: both run,
* ``compute_only``: compute runs, no communication,
* ``idle``: neither.

Time in a state within any window [a, b) is ``F(b) - F(a)`` with ``F`` the cumulative time
in that state, evaluated for all windows at once with an as-of join on the segments.
"""

from __future__ import annotations

import polars as pl

from traceview.analyses import hostcalls

STATES = ("exposed", "overlapped", "compute_only", "idle")
DEFAULT_STEP_PATTERN = r"(?i)step|iteration|\biter\b"


def segments(comm: pl.DataFrame, comp: pl.DataFrame) -> pl.DataFrame:
    """Tile each device's active span into (device_id, start, end, state) segments."""
    def events(frame: pl.DataFrame, col: str) -> pl.DataFrame:
        zero = "dk" if col == "dc" else "dc"
        return pl.concat([
            frame.select("device_id", pl.col("start").alias("t"), pl.lit(1).alias(col), pl.lit(0).alias(zero)),
            frame.select("device_id", pl.col("end").alias("t"), pl.lit(-1).alias(col), pl.lit(0).alias(zero)),
        ]).select("device_id", "t", "dc", "dk")

    ev = (pl.concat([events(comm, "dc"), events(comp, "dk")])
          .group_by("device_id", "t").agg(pl.col("dc").sum(), pl.col("dk").sum()).sort("device_id", "t")
          .with_columns(nc=pl.col("dc").cum_sum().over("device_id"), nk=pl.col("dk").cum_sum().over("device_id"),
                        next_t=pl.col("t").shift(-1).over("device_id")))
    state = (pl.when((pl.col("nc") > 0) & (pl.col("nk") > 0)).then(pl.lit("overlapped"))
             .when(pl.col("nc") > 0).then(pl.lit("exposed"))
             .when(pl.col("nk") > 0).then(pl.lit("compute_only")).otherwise(pl.lit("idle")))
    return (ev.filter(pl.col("next_t").is_not_null() & (pl.col("next_t") > pl.col("t")))
            .select("device_id", pl.col("t").alias("start"), pl.col("next_t").alias("end"), state.alias("state")))


def totals(segs: pl.DataFrame) -> pl.DataFrame:
    """Per device: exposed_ns, overlapped_ns, compute_only_ns, comm_ns (union of communication),
    exposed_pct (exposed share of communication time, 0-100)."""
    out = (segs.with_columns(d=pl.col("end") - pl.col("start"))
           .group_by("device_id")
           .agg(*[pl.col("d").filter(pl.col("state") == s).sum().alias(f"{s}_ns") for s in STATES[:3]]))
    return _derived(out).sort("device_id")


def _derived(frame: pl.DataFrame) -> pl.DataFrame:
    comm = pl.col("exposed_ns") + pl.col("overlapped_ns")
    return frame.with_columns(comm_ns=comm).with_columns(
        exposed_pct=pl.when(pl.col("comm_ns") > 0).then(pl.col("exposed_ns") * 100.0 / pl.col("comm_ns")))


def in_windows(segs: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """``windows`` (any columns plus device_id, start, end) with exposed_ns, overlapped_ns,
    compute_only_ns, comm_ns and exposed_pct inside each window."""
    s = segs.sort("device_id", "start").with_columns(d=pl.col("end") - pl.col("start"))
    s = s.with_columns(*[
        (pl.when(pl.col("state") == st).then(pl.col("d")).otherwise(0).cum_sum().over("device_id")
         - pl.when(pl.col("state") == st).then(pl.col("d")).otherwise(0)).alias(f"c_{st}") for st in STATES[:3]
    ]).sort("start")
    w = windows.with_row_index("_w")

    def cumulative(at: str) -> pl.DataFrame:
        q = w.select("_w", "device_id", pl.col(at).alias("t")).sort("t")
        j = q.join_asof(s, left_on="t", right_on="start", by="device_id", check_sortedness=False)
        part = pl.min_horizontal(pl.col("t"), pl.col("end")) - pl.col("start")
        return j.select("_w", *[(pl.col(f"c_{st}") + pl.when(pl.col("state") == st).then(part).otherwise(0))
                                .fill_null(0).alias(f"{at}_{st}") for st in STATES[:3]])

    a, b = cumulative("start"), cumulative("end")
    out = w.join(a, on="_w").join(b, on="_w").with_columns(
        *[(pl.col(f"end_{st}") - pl.col(f"start_{st}")).alias(f"{st}_ns") for st in STATES[:3]])
    return _derived(out.sort("_w").drop("_w", *[f"{x}_{st}" for x in ("start", "end") for st in STATES[:3]]))


def attribute(activity: pl.DataFrame, ranges: pl.DataFrame, api: pl.DataFrame) -> pl.DataFrame:
    """``activity`` plus ``range_id``: the range (of ``ranges``: range_id, start, end, global_tid;
    non-overlapping per thread) in which the CUDA API call that launched it was made. GPU work
    without a launch record falls back to the range containing its start time."""
    act = activity.with_row_index("_row").with_columns(_pid=hostcalls.PID_OF_GLOBAL)
    calls = api.select("correlation_id", pl.col("pid").alias("_pid"), pl.col("start").alias("_launch"), "global_tid")
    act = act.join(calls.unique(["correlation_id", "_pid"]), on=["correlation_id", "_pid"], how="left")
    r = ranges.select("range_id", pl.col("start").alias("_rs"), pl.col("end").alias("_re"), "global_tid").sort("_rs")
    launched = (act.filter(pl.col("_launch").is_not_null()).sort("_launch")
                .join_asof(r, left_on="_launch", right_on="_rs", by="global_tid", check_sortedness=False)
                .filter(pl.col("_launch") <= pl.col("_re")).select("_row", "range_id"))
    rest = act.join(launched, on="_row", how="anti").sort("start")
    timed = (rest.join_asof(r.drop("global_tid"), left_on="start", right_on="_rs", check_sortedness=False)
             .filter(pl.col("start") <= pl.col("_re")).select("_row", "range_id"))
    return (act.join(pl.concat([launched, timed]), on="_row", how="left").sort("_row")
            .drop("_row", "_pid", "_launch", "global_tid"))


def range_windows(attributed: pl.DataFrame) -> pl.DataFrame:
    """GPU window of each (range_id, device_id): first start and last end of its attributed work."""
    return (attributed.drop_nulls("range_id").group_by("range_id", "device_id")
            .agg(pl.col("start").min(), pl.col("end").max()).sort("range_id", "device_id"))


def step_name(nvtx: pl.DataFrame, pattern: str = DEFAULT_STEP_PATTERN) -> str | None:
    """The NVTX range that marks steps: the name matching ``pattern`` with the most instances (>= 2)."""
    names = (nvtx.filter(pl.col("domain").is_null() | (pl.col("domain") != "NCCL"))
             .group_by("name").agg(pl.len().alias("n"), pl.col("duration").sum().alias("total"))
             .filter(pl.col("name").str.contains(pattern) & (pl.col("n") >= 2))
             .sort(["n", "total", "name"], descending=[True, True, False]))
    return names.get_column("name")[0] if names.height else None


def ranges_named(nvtx: pl.DataFrame, name: str) -> pl.DataFrame:
    """Instances of one NVTX range as (range_id = ordinal, name, start, end, global_tid)."""
    return (nvtx.filter(pl.col("name") == name).sort("start")
            .select(pl.int_range(pl.len()).alias("range_id"), "name", "start", "end", "global_tid"))


def top_level_phases(nvtx: pl.DataFrame, limit: int = 20) -> pl.DataFrame:
    """Outermost (level 0) non-NCCL NVTX ranges of the ``limit`` names with most total time."""
    top = (nvtx.filter((pl.col("level") == 0) & (pl.col("domain").is_null() | (pl.col("domain") != "NCCL")))
           .drop_nulls("name"))
    keep = (top.group_by("name").agg(pl.col("duration").sum().alias("t"))
            .sort(["t", "name"], descending=[True, False]).head(limit).get_column("name"))
    return (top.filter(pl.col("name").is_in(keep.implode())).sort("start")
            .select(pl.int_range(pl.len()).alias("range_id"), "name", "start", "end", "global_tid"))


def phase_overlap(segs: pl.DataFrame, activity: pl.DataFrame, phases: pl.DataFrame, api: pl.DataFrame) -> pl.DataFrame:
    """Per NVTX phase name and device: instances, window_ns and the overlap figures summed over
    the GPU windows of its instances."""
    if phases.height == 0 or activity.height == 0:
        return pl.DataFrame()
    wins = range_windows(attribute(activity, phases, api)).join(phases.select("range_id", "name"), on="range_id")
    figures = in_windows(segs, wins)
    cols = [f"{s}_ns" for s in STATES[:3]]
    return _derived(figures.group_by("name", "device_id").agg(
        pl.len().alias("instances"), (pl.col("end") - pl.col("start")).sum().alias("window_ns"),
        *[pl.col(c).sum() for c in cols])).sort(["window_ns", "name", "device_id"], descending=[True, False, False])
