"""nccl.rank-skew: one rank reaches the collectives late and the others wait for it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from traceview.rules.base import Evidence, Finding, NotApplicable, RuleContext, Severity
from traceview.rules.builtin import nccl_common as nc
from traceview.rules.registry import rule

SKEW_SOURCE = "trace: start of matched NCCL kernels per rank (CUPTI_ACTIVITY_KIND_KERNEL.start)"


@dataclass(frozen=True)
class RankSkewParams:
    min_last_pct: float = 75.0        # the straggler reaches at least this % of collectives last
    min_wait_pct: float = 10.0        # the others' wait is at least this % of all collective time
    min_lateness_ns: int = 1_000      # median lateness of the straggler


@rule(id="nccl.rank-skew", title="Straggler rank", category="nccl", severity=Severity.medium,
      params=RankSkewParams)
def rank_skew(ctx: RuleContext, p: RankSkewParams) -> Iterable[Finding] | NotApplicable:
    """What it does: matches each collective across ranks (devices of one file, or rank files
    aligned by ``traceview.analyses.ranks.align_ranks``), finds which rank starts it last and by
    how much, and flags a rank that is consistently last.

    Why it matters: a collective finishes only when every rank has joined; the early ranks sit
    in the NCCL kernel waiting (their collective time grows), so the straggler's extra work sets
    the pace of the whole group.

    How to fix: find what the straggler does before the collective (more or slower compute,
    host-side launch delays, data loading, a slower or throttled GPU, a noisy neighbour on its
    CPU); balance the work across ranks, pin CPU threads, use CUDA graphs to cut launch jitter.

    Parameters: ``min_last_pct`` (75.0), ``min_wait_pct`` (10.0 % of collective time),
    ``min_lateness_ns`` (1000).
    """
    comm = nc.report(ctx, "nccl.rank-skew")
    if isinstance(comm, NotApplicable):
        return comm
    skew = comm.get("skew")
    if not skew:
        return NotApplicable("nccl.rank-skew", "fewer than two ranks run collectives (or a --device filter is set)")
    top = skew["stragglers"][0]
    wait_pct = 100.0 * top["wait_caused_ns"] / max(skew["collective_time_ns"], 1)
    if top["last_pct"] < p.min_last_pct or wait_pct < p.min_wait_pct or top["med_lateness_ns"] < p.min_lateness_ns:
        return []
    return [_finding(skew, top, wait_pct)]


def _finding(skew: dict, top: dict, wait_pct: float) -> Finding:
    d = top["device_id"]
    return Finding(
        rule_id="nccl.rank-skew", severity=nc.severity(wait_pct / 100.0),
        title=f"Rank {top['rank']} (GPU {d}) arrives last at {top['last_pct']:.0f}% of collectives",
        message=(f"Rank {top['rank']} (GPU {d}) starts {top['last_count']} of {skew['collectives']} collectives last, "
                 f"a median {top['med_lateness_ns'] / 1e3:.1f} us after the first rank; the other ranks wait "
                 f"{nc.ms(top['wait_caused_ns'])} for it, {wait_pct:.0f}% of all collective time "
                 f"({nc.ms(skew['collective_time_ns'])})."),
        subject={**nc.device_subject(d), "kind": "rank", "name": f"rank {top['rank']} (GPU {d})", "rank": top["rank"]},
        evidence=(Evidence("collectives reached last", top["last_count"], "collectives", SKEW_SOURCE),
                  Evidence("median lateness", top["med_lateness_ns"], "ns", SKEW_SOURCE),
                  Evidence("wait of other ranks", top["wait_caused_ns"], "ns", SKEW_SOURCE),
                  Evidence("wait share of collective time", round(wait_pct, 1), "%", SKEW_SOURCE)),
        estimated_gain_ns=float(top["wait_caused_ns"]),
        recommendation=(f"Look at what rank {top['rank']} runs before its collectives (extra compute, launch "
                        "delays on its host thread, a slower GPU) and balance the work across ranks."),
    )
