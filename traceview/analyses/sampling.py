"""Attribute GPU metrics samples to the kernels running in each sample interval.

A sample counts for a kernel when the kernel covers the whole sample interval and nothing
else (another kernel, a copy, a memset) runs on that device during it: its values then
describe that kernel alone. Samples shared with other activity are counted, not used.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from traceview.ingest.gpu_metrics import METRICS


def _overlap_counts(samples: pl.DataFrame, activity: pl.DataFrame) -> np.ndarray:
    """Per sample, how many activity intervals overlap [start, end) (sorted arrays, no loop per event)."""
    starts = np.sort(activity.get_column("start").to_numpy())
    ends = np.sort(activity.get_column("end").to_numpy())
    s0 = samples.get_column("start").to_numpy()
    s1 = samples.get_column("end").to_numpy()
    return np.searchsorted(starts, s1, side="left") - np.searchsorted(ends, s0, side="right")


def attribute_samples(samples: pl.DataFrame, kernels: pl.DataFrame, others: pl.DataFrame) -> pl.DataFrame:
    """Samples that exactly one kernel covers alone, with that kernel's name (column ``name``).

    ``kernels``: start, end, device_id, name; ``others``: start, end, device_id (copies, memsets).
    """
    parts = []
    for dev in samples.get_column("device_id").unique().to_list():
        s = samples.filter(pl.col("device_id") == dev).sort("start")
        k = kernels.filter(pl.col("device_id") == dev).select("start", "end", "name").sort("start")
        if k.height == 0 or s.height == 0:
            continue
        busy = pl.concat([k.select("start", "end"), others.filter(pl.col("device_id") == dev).select("start", "end")])
        s = s.with_columns(pl.Series("_n", _overlap_counts(s, busy)))
        joined = s.join_asof(k.rename({"start": "k_start", "end": "k_end"}), left_on="start", right_on="k_start",
                             strategy="backward")
        parts.append(joined.filter((pl.col("_n") == 1) & (pl.col("k_end") >= pl.col("end"))).drop("_n"))
    if not parts:
        return samples.head(0).with_columns(pl.lit(None, pl.String).alias("name"))
    return pl.concat(parts)


def kernel_metric_averages(samples: pl.DataFrame, kernels: pl.DataFrame, others: pl.DataFrame,
                           period_ns: float, min_samples: int = 3) -> pl.DataFrame:
    """Per kernel name: attributed sample count, launches sampled, and metric averages.

    Averages are null (with ``reason``) when fewer than ``min_samples`` samples are attributed.
    """
    own = attribute_samples(samples, kernels, others)
    metric_cols = [c for c in METRICS if c in own.columns]
    agg = own.group_by("name").agg(
        pl.len().alias("samples"), pl.col("k_start").n_unique().alias("launches_sampled"),
        *[pl.col(c).mean().alias(c) for c in metric_cols])
    per_name = kernels.group_by("name").agg(pl.len().alias("launches"), pl.col("duration").mean().alias("avg_ns"))
    out = per_name.join(agg, on="name", how="left").with_columns(
        pl.col("samples").fill_null(0), pl.col("launches_sampled").fill_null(0))
    enough = pl.col("samples") >= min_samples
    reason = (pl.when(enough).then(pl.lit(None, pl.String))
              .when(pl.col("avg_ns") < period_ns * 2)
              .then(pl.format("too short to sample: {} ns on average vs a {} ns sample period",
                              pl.col("avg_ns").round(0).cast(pl.Int64), pl.lit(int(period_ns))))
              .otherwise(pl.format("only {} sample(s) cover it alone (others overlap concurrent work)",
                                   pl.col("samples"))))
    return out.with_columns([pl.when(enough).then(pl.col(c)).alias(c) for c in metric_cols] + [reason.alias("reason")]
                            ).sort("name")  # group_by order is not deterministic
