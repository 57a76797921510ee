"""Rule, Finding and Evidence types. Every number in a finding names its source."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traceview.api import AnalysisResult, AnalyzeOptions
    from traceview.model.trace import Trace


class Severity(str, Enum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One number and where it came from, e.g. source="trace: CUPTI_ACTIVITY_KIND_KERNEL.gridX"
    or "hardware: H200 sm_count (NVIDIA H200 datasheet)" or "ncu: dram__bytes.sum"."""

    name: str
    value: Any
    unit: str
    source: str


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str
    severity: Severity
    title: str
    message: str
    subject: dict[str, Any]           # {"kind": "kernel"|"memcpy"|"api"|"nvtx"|"device"|"stream", "name": ..., ...}
    evidence: tuple[Evidence, ...]
    estimated_gain_ns: float          # what fixing it could save; findings rank by this
    recommendation: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = self.severity.value
        d["evidence"] = [asdict(e) for e in self.evidence]
        return d


@dataclass(frozen=True, slots=True)
class NotApplicable:
    """A rule that cannot run on this trace says why (e.g. "no NCCL kernels")."""

    rule_id: str
    reason: str


@dataclass(slots=True)
class RuleContext:
    """What a rule may read: the trace, the analysis so far, the options."""

    trace: Trace
    result: AnalysisResult
    options: AnalyzeOptions
    cache: dict[str, Any] = field(default_factory=dict)  # shared per-run memo for rules


CheckFn = Callable[[RuleContext, Any], "Iterable[Finding] | NotApplicable"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered rule. ``doc`` uses the headings What it does / Why it matters / How to fix."""

    id: str                 # stable dotted id, e.g. "launch.small-grid"; public interface
    title: str
    category: str           # launch | occupancy | memory | memcpy | api | timeline | nccl | llm | ...
    severity: Severity
    params: type            # frozen dataclass of thresholds with defaults (recipes override them)
    check: CheckFn
    doc: str = ""

    def default_params(self) -> Any:
        return self.params()
