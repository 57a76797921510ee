"""Host-side CUDA API calls joined to GPU activity, NVTX ranges and GPU idle gaps.

Everything here is vectorized polars (joins and as-of joins); loops run only over NVTX
nesting levels and devices, never over events.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from traceview.analyses import streams, timeline

PID_OF_GLOBAL = (pl.col("global_pid") // (1 << 24)) % (1 << 24)  # serialized GlobalId -> pid

# Host-blocking synchronization calls, runtime and driver API (cudaStreamWaitEvent is GPU-side: not here).
SYNC_CALL = r"^(cudaDeviceSynchronize|cudaThreadSynchronize|cudaStreamSynchronize|cudaEventSynchronize|" \
            r"cuCtxSynchronize|cuStreamSynchronize|cuEventSynchronize)"
COPY_CALL = r"^cu(da)?Memcpy"
SET_CALL = r"^cu(da)?Memset"


def classify_calls(api: pl.DataFrame) -> pl.DataFrame:
    """Add ``call_kind`` (copy | memset | sync | other) and ``is_async`` (name says Async) to API rows.
    The regexes run once per distinct name (a few dozen), not once per call."""
    if api.height < 10_000 or {"call_kind", "is_async"} & set(api.columns):
        return _classify(api)
    name = api.get_column("name")
    kinds = _classify(name.unique().to_frame())
    if name.dtype == pl.String and not name.null_count():  # one hash per call: the name's index in ``kinds``
        code = name.cast(pl.Enum(kinds.get_column("name"))).to_physical()
        is_async = kinds.get_column("is_async").to_numpy()[code.to_numpy()]
        return api.with_columns(kinds.get_column("call_kind").gather(code), pl.Series("is_async", is_async))
    return api.with_columns(  # element-wise, so the new columns keep the frame's chunks: after a join they
        # would not, and every later select on the frame would re-chunk all of it (0.3 s at 10M calls)
        pl.col("name").replace_strict(kinds["name"], kinds["call_kind"], return_dtype=pl.String).alias("call_kind"),
        pl.col("name").replace_strict(kinds["name"], kinds["is_async"], return_dtype=pl.Boolean).alias("is_async"))


def _classify(api: pl.DataFrame) -> pl.DataFrame:
    name = pl.col("name")
    return api.with_columns(
        call_kind=pl.when(name.str.contains(SYNC_CALL)).then(pl.lit("sync"))
        .when(name.str.contains(COPY_CALL)).then(pl.lit("copy"))
        .when(name.str.contains(SET_CALL)).then(pl.lit("memset"))
        .otherwise(pl.lit("other")),
        is_async=name.str.contains("Async"),
    )


def innermost_range(frame: pl.DataFrame, nvtx: pl.DataFrame, time_col: str = "start",
                    out_col: str = "nvtx_range") -> pl.DataFrame:
    """Add ``out_col``: the innermost NVTX range open on the row's ``global_tid`` at ``time_col``.

    One as-of join per nesting level (ranges of one level on one thread do not overlap), inner
    levels overriding outer ones. Rows come back sorted by ``time_col``.
    """
    out = sorted_by(frame, time_col).with_columns(pl.lit(None, dtype=pl.String).alias(out_col))
    if nvtx.height == 0 or out.height == 0:
        return out
    levels = sorted(int(v) for v in nvtx.get_column("level").fill_null(0).unique().to_list())
    tids = out.get_column("global_tid")
    tid = tids[0] if tids.null_count() == 0 and tids.n_unique() == 1 else None
    for level in levels:
        ranges = (nvtx.filter(pl.col("level").fill_null(0) == level)
                  .select("global_tid", pl.col("start").alias("_r_start"), pl.col("end").alias("_r_end"),
                          pl.col("name").alias("_r_name"))
                  .drop_nulls("global_tid").sort("_r_start"))
        if tid is not None and ranges.height and (ranges.get_column("global_tid") == tid).all():  # one thread: no by
            joined = out.join_asof(ranges.drop("global_tid"), left_on=time_col, right_on="_r_start",
                                   strategy="backward", check_sortedness=False)
        else:
            joined = out.join_asof(ranges, left_on=time_col, right_on="_r_start", by="global_tid",
                                   strategy="backward", check_sortedness=False)
        inside = pl.col("_r_end").is_not_null() & (pl.col(time_col) <= pl.col("_r_end"))
        out = joined.with_columns(pl.when(inside).then(pl.col("_r_name")).otherwise(pl.col(out_col)).alias(out_col)
                                  ).drop("_r_start", "_r_end", "_r_name")
    return out


def sorted_by(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """``frame.sort(column)``, skipped when the column is in order already (no null)."""
    values = frame.get_column(column)
    return frame if values.null_count() == 0 and values.is_sorted() else frame.sort(column)


def unique_calls(api: pl.DataFrame) -> pl.DataFrame:
    """One row per (thread, correlation id): some exports (nsys 2022.2) record a runtime call twice,
    nested, under two name ids; the outer (longest) record is kept. Sorted by start."""
    ids = api.get_column("correlation_id").drop_nulls()
    if ids.n_unique() == ids.len():  # the usual case: no call recorded twice, nothing to drop
        return api if api.get_column("start").is_sorted() else api.sort("start")
    keyed = api.filter(pl.col("correlation_id").is_not_null())
    unique = keyed.sort("duration", descending=True).unique(["global_tid", "correlation_id"], keep="first")
    return pl.concat([unique, api.filter(pl.col("correlation_id").is_null())]).sort("start")


def launch_calls(api: pl.DataFrame) -> pl.DataFrame:
    """Per launching call: its keys (``correlation_id``, and ``pid`` when the export has it), start
    (``host_t``) and ``global_tid``; one row per key (the first), rows with null keys dropped (a
    null key matches no GPU activity)."""
    keys = ["correlation_id", "pid"] if api.get_column("pid").null_count() < api.height else ["correlation_id"]
    calls = api.select(*keys, pl.col("start").alias("host_t"), "global_tid").drop_nulls(keys)
    if calls.get_column("correlation_id").n_unique() < calls.height:  # rare: ids repeat (across processes)
        calls = calls.unique(subset=keys, keep="first", maintain_order=True)
    return calls


CALL_KEY = (pl.col("pid").cast(pl.Int64) * (1 << 32) + pl.col("correlation_id").cast(pl.Int64)).alias("_call_key")
_KEY_FITS = pl.col("pid").is_between(0, (1 << 31) - 1) & pl.col("correlation_id").is_between(0, (1 << 32) - 1)


def join_on_call(left: pl.DataFrame, right: pl.DataFrame, how: str = "left") -> pl.DataFrame:
    """``left.join(right, on=["pid", "correlation_id"], how=how)``, through one packed Int64 key when
    the ids fit in it (pid < 2^31, correlation id < 2^32): a one-column hash join of millions of
    rows takes a third of the time of a two-column one."""
    keys = ["pid", "correlation_id"]
    if not all(_key_fits(f) for f in (left, right)):
        return left.join(right, on=keys, how=how)  # type: ignore[arg-type]
    return (left.with_columns(CALL_KEY).join(right.select(CALL_KEY, pl.exclude(keys)), on="_call_key",
                                           how=how)  # type: ignore[arg-type]
            .drop("_call_key"))


def keyed_calls(calls: pl.DataFrame, columns: list[pl.Expr | str]) -> pl.DataFrame | None:
    """``columns`` of the calls with ``_call_key`` (pid and correlation id packed in one Int64),
    sorted by it, for ``join_keyed``; None when the ids do not fit in the key or a key repeats."""
    if not _key_fits(calls):
        return None
    keyed = calls.select(CALL_KEY, *columns)
    key = keyed.get_column("_call_key")
    if not key.null_count() and bool((np.diff(key.to_numpy()) > 0).all()):  # sorted, no key repeated: one pass
        return keyed.set_sorted("_call_key")
    if key.null_count():
        keyed = keyed.drop_nulls("_call_key")
    if not keyed.get_column("_call_key").is_sorted():  # sorted by start is usually sorted by key too
        keyed = keyed.sort("_call_key")
    if keyed.select(pl.col("_call_key").diff().eq(0).any()).item():
        return None
    return keyed.set_sorted("_call_key")


def join_keyed(left: pl.DataFrame, keyed: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``left`` (with ``pid`` and ``correlation_id``) that have a call in ``keyed``
    (``keyed_calls``), with its columns; in key order. Both sides sorted by one integer key: a
    merge join, several times faster than a hash join of millions of rows."""
    probe = left.filter(_KEY_FITS).with_columns(CALL_KEY).drop("pid", "correlation_id").sort("_call_key")
    return probe.join(keyed, on="_call_key", how="inner").drop("_call_key")


def keyed_rows(left: pl.DataFrame, keyed: pl.DataFrame) -> np.ndarray:
    """The rows of ``keyed`` (``keyed_calls``) that ``join_keyed(left, keyed)`` matches, one per
    matching row of ``left``, in ``left``'s order: a binary search in the sorted keys, no join."""
    rows = _keyed_positions(left, keyed)
    return rows[rows >= 0]


def _keyed_positions(left: pl.DataFrame, keyed: pl.DataFrame) -> np.ndarray:
    """Per row of ``left``, the row of its call in ``keyed`` (``keyed_calls``), -1 when none."""
    key = left.select(pl.when(_KEY_FITS).then(CALL_KEY).otherwise(-1).fill_null(-1)).to_series().to_numpy()
    keys = keyed.get_column("_call_key").to_numpy()
    if len(keys) == 0:
        return np.full(len(key), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
    return np.where(keys[at] == key, at, -1)


def _key_fits(frame: pl.DataFrame) -> bool:
    """Every (pid, correlation id) of ``frame`` fits ``CALL_KEY`` (pid < 2^31, id < 2^32)."""
    return _in_range(frame, "pid", 1 << 31) and _in_range(frame, "correlation_id", 1 << 32)


def _in_range(frame: pl.DataFrame, col: str, limit: int) -> bool:
    lo, hi = frame.select(pl.col(col).min().alias("lo"), pl.col(col).max().alias("hi")).row(0)
    return lo is None or (lo >= 0 and hi < limit)


def launch_points(activity: pl.DataFrame, calls: pl.DataFrame) -> pl.DataFrame:
    """GPU activity rows whose launching call (``launch_calls``) has a known thread: ``_id`` (row
    number in ``activity``), ``host_t``, ``global_tid``, sorted by ``host_t``."""
    keys = [c for c in ("correlation_id", "pid") if c in calls.columns]
    pid = pl.col("pid") if "pid" in activity.columns else PID_OF_GLOBAL.alias("pid")
    left = activity.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_id"), "correlation_id",
                           *([pid] if "pid" in keys else []))
    right = calls.filter(pl.col("global_tid").is_not_null())
    joined = join_on_call(left, right, "inner") if len(keys) == 2 else left.join(right, on=keys, how="inner")
    return joined.select("_id", "host_t", "global_tid").sort("host_t")


def call_site_name(name: pl.Expr) -> pl.Expr:
    """NVTX range name without per-call annotations (PyTorch's ``aten::copy_, op_id = 317147``
    -> ``aten::copy_``), so that repeated calls of one site group together."""
    return name.str.replace(r",\s*(op_id|seq|sizes|input_op_ids|stream)\s*=.*$", "")


def call_sites(values: pl.Series) -> pl.Series:
    """``call_site_name`` of each value; the regex runs once per distinct value when values repeat
    (the ranges of many calls), then one hash lookup per value."""
    distinct = values.drop_nulls().unique()
    if distinct.len() * 4 > values.len():
        return values.to_frame("v").select(call_site_name(pl.col("v")).alias(values.name)).to_series()
    sites = distinct.to_frame("v").select(call_site_name(pl.col("v"))).to_series()
    return values.replace_strict(distinct, sites, default=None, return_dtype=pl.String)


def calls_with_ranges(api: pl.DataFrame, nvtx: pl.DataFrame) -> pl.DataFrame:
    """Classified, de-duplicated API calls with their innermost NVTX range (by thread and call start),
    range names reduced to their call site (``call_site_name``)."""
    out = innermost_range(classify_calls(unique_calls(api)), nvtx)
    return out.with_columns(call_site_name(pl.col("nvtx_range")).alias("nvtx_range"))


def activity_with_calls(activity: pl.DataFrame, calls: pl.DataFrame, extra: tuple[str, ...] = ()) -> pl.DataFrame:
    """GPU activity rows (memcpy/memset) joined to the API call that issued them.

    Joined on (pid, correlation_id); adds ``api_name``, ``api_start``, ``api_end``, ``api_duration``,
    ``global_tid``, ``nvtx_range``, ``call_kind``, ``is_async`` and the ``extra`` call columns (null
    where no call matches, e.g. graph-launched copies).
    """
    keyed = activity.with_columns(pid=PID_OF_GLOBAL)
    right = calls.select("pid", "correlation_id", pl.col("name").alias("api_name"),
                         pl.col("start").alias("api_start"), pl.col("end").alias("api_end"),
                         pl.col("duration").alias("api_duration"), "global_tid", "nvtx_range", "call_kind", "is_async",
                         *extra)
    sorted_right = keyed_calls(right, [pl.exclude("pid", "correlation_id")])
    if sorted_right is None:  # ids out of range or repeated: the join (a repeated key repeats the row)
        return join_on_call(keyed, right)
    rows = streams.with_nulls(_keyed_positions(keyed, sorted_right))  # the left join as positions, in the left order
    return keyed.hstack(sorted_right.drop("_call_key").gather(rows))


def gap_containing(points: pl.DataFrame, gaps: pl.DataFrame, time_col: str,
                   out_col: str = "bubble_ns") -> pl.DataFrame:
    """Add ``out_col``: the length of the GPU idle gap on the row's ``device_id`` that contains
    ``time_col`` (0 when the device was busy then). ``gaps`` comes from ``timeline.idle_gaps``.
    Rows come back sorted by ``time_col``."""
    points = sorted_by(points, time_col)
    t, dev = points.get_column(time_col), points.get_column("device_id")
    bubble = np.zeros(points.height, dtype=np.int64)
    for device, (starts, ends, lengths) in _gaps_by_device(gaps).items():  # loop over devices
        on = ((dev == device).fill_null(False) & t.is_not_null()).to_numpy()
        if on.all():  # one device, no null time: no gather
            bubble = _gap_length_at(t.to_numpy(), starts, ends, lengths)
            continue
        rows = np.flatnonzero(on)
        bubble[rows] = _gap_length_at(t.gather(rows).to_numpy(), starts, ends, lengths)
    return points.with_columns(pl.Series(out_col, bubble))


def _gaps_by_device(gaps: pl.DataFrame) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per device: the starts, ends and lengths of its idle gaps, sorted by start."""
    out = {}
    devices = timeline.distinct_values(gaps.get_column("device_id"))
    for device in devices:
        g = gaps if len(devices) == 1 and gaps.get_column("device_id").null_count() == 0 else (
            gaps.filter(pl.col("device_id") == device))
        if g.select(pl.col("start").null_count() + pl.col("end").null_count()).item():
            g = g.drop_nulls(["start", "end"])
        if not g.get_column("start").is_sorted():
            g = g.sort("start")
        out[device] = (g.get_column("start").to_numpy(), g.get_column("end").to_numpy(),
                       g.get_column("duration").to_numpy())
    return out


def _gap_length_at(t: np.ndarray, starts: np.ndarray, ends: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per time: the length of the gap (sorted by start, disjoint) that contains it, else 0."""
    i = np.searchsorted(starts, t, side="right") - 1  # the last gap starting at or before t
    at = np.maximum(i, 0)
    inside = (i >= 0) & (t <= ends[at]) if len(starts) else np.zeros(len(t), dtype=bool)
    return np.where(inside, lengths[at] if len(starts) else 0, 0)


def bubble_after_calls(calls: pl.DataFrame, gaps: pl.DataFrame, devices: list[int]) -> pl.DataFrame:
    """For host calls whose device is not known (device/context/stream syncs): ``bubble_ns`` = the
    longest GPU idle gap, over ``devices``, that contains the call's end."""
    bubble = np.zeros(calls.height, dtype=np.int64)
    end = calls.get_column("end")
    rows = np.flatnonzero(end.is_not_null().to_numpy())
    t = end.gather(rows).to_numpy()
    by_device = _gaps_by_device(gaps)
    for device in devices:  # loop over devices
        if device in by_device:
            bubble[rows] = np.maximum(bubble[rows], _gap_length_at(t, *by_device[device]))
    return calls.with_columns(pl.Series("bubble_ns", bubble))
