"""Rule engine: small registered rules that turn analyses into ranked findings."""

from traceview.rules.base import Evidence, Finding, NotApplicable, Rule, RuleContext, Severity
from traceview.rules.registry import all_rules, get_rule, rule, run_rules

__all__ = ["Evidence", "Finding", "NotApplicable", "Rule", "RuleContext", "Severity", "all_rules", "get_rule",
           "rule", "run_rules"]
