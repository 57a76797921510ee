"""The rule registry: ``@rule`` registers; ``run_rules`` runs a selection with overrides."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable
from typing import Any

from traceview.errors import RecipeError
from traceview.rules.base import Finding, NotApplicable, Rule, RuleContext, Severity

_RULES: dict[str, Rule] = {}
_LOADED = False


def rule(*, id: str, title: str, category: str, severity: Severity, params: type) -> Callable[[Any], Any]:
    """Register ``fn(ctx, params) -> Iterable[Finding] | NotApplicable`` as a rule; its docstring is the doc."""

    def deco(fn: Any) -> Any:
        if id in _RULES:
            raise ValueError(f"duplicate rule id {id}")
        _RULES[id] = Rule(id=id, title=title, category=category, severity=severity, params=params,
                          check=fn, doc=inspect.cleandoc(fn.__doc__ or ""))
        return fn

    return deco


def _load_builtin() -> None:
    global _LOADED
    if _LOADED:
        return
    import traceview.rules.builtin as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        importlib.import_module(f"{pkg.__name__}.{mod.name}")
    _LOADED = True


def all_rules() -> list[Rule]:
    _load_builtin()
    return sorted(_RULES.values(), key=lambda r: r.id)


def get_rule(rule_id: str) -> Rule:
    _load_builtin()
    try:
        return _RULES[rule_id]
    except KeyError:
        raise RecipeError(f"unknown rule id {rule_id!r} (see `traceview rules`)") from None


def make_params(r: Rule, overrides: dict[str, Any] | None) -> Any:
    """Rule defaults with recipe overrides; unknown keys and wrong types are RecipeErrors."""
    base = r.default_params()
    if not overrides:
        return base
    fields = {f.name: f for f in dataclasses.fields(base)}
    for key, value in overrides.items():
        if key not in fields:
            raise RecipeError(f"rule {r.id}: unknown threshold {key!r} (known: {', '.join(sorted(fields))})")
        default = getattr(base, key)
        ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))
        if not ok or isinstance(value, bool) != isinstance(default, bool):
            raise RecipeError(f"rule {r.id}: {key} must be {type(default).__name__}, got {value!r}")
    return dataclasses.replace(base, **overrides)


def selected(rules: Iterable[Rule], select: list[str] | None, ignore: list[str] | None) -> list[Rule]:
    """Select/ignore by id or glob (``launch.*``)."""
    out = []
    for r in rules:
        if select and not any(fnmatch.fnmatch(r.id, p) for p in select):
            continue
        if ignore and any(fnmatch.fnmatch(r.id, p) for p in ignore):
            continue
        out.append(r)
    return out


def run_rules(ctx: RuleContext, *, select: list[str] | None = None, ignore: list[str] | None = None,
              thresholds: dict[str, dict[str, Any]] | None = None,
              silence: list[tuple[str, str]] | None = None) -> tuple[list[Finding], list[NotApplicable]]:
    """Run rules; return findings ranked by estimated gain and the rules that did not apply.

    ``silence`` holds (rule id glob, subject name glob) pairs to drop individual findings.
    """
    for pattern in (select or []) + (ignore or []):
        if not any(fnmatch.fnmatch(r.id, pattern) for r in all_rules()):
            raise RecipeError(f"no rule matches {pattern!r} (see `traceview rules`)")
    findings: list[Finding] = []
    skipped: list[NotApplicable] = []
    for r in selected(all_rules(), select, ignore):
        out = r.check(ctx, make_params(r, (thresholds or {}).get(r.id)))
        if isinstance(out, NotApplicable):
            skipped.append(out)
            continue
        for f in out:
            name = str(f.subject.get("name", ""))
            if any(fnmatch.fnmatch(f.rule_id, rp) and fnmatch.fnmatch(name, np) for rp, np in silence or []):
                continue
            findings.append(f)
    findings.sort(key=lambda f: (-f.estimated_gain_ns, f.rule_id, str(f.subject.get("name", ""))))
    return findings, skipped
