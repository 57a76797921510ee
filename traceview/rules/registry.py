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
    """Rule defaults with recipe overrides; unknown keys, wrong types and out-of-range values are RecipeErrors."""
    base = r.default_params()
    if not overrides:
        return base
    fields = {f.name: f for f in dataclasses.fields(base)}
    clean: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise RecipeError(f"rule {r.id}: unknown threshold {key!r} (known: {', '.join(sorted(fields))})")
        clean[key] = check_value(r.id, fields[key], getattr(base, key), value)
    return dataclasses.replace(base, **clean)


def value_range(f: dataclasses.Field[Any]) -> tuple[float | None, float | None]:
    """Allowed (min, max) of a numeric threshold: ``field(metadata={"min": .., "max": ..})`` when
    given, else by name: ``*_pct`` 0-100, ``*_fraction``/``*_share`` 0-1, anything else >= 0."""
    meta = f.metadata or {}
    if "min" in meta or "max" in meta:
        return meta.get("min"), meta.get("max")
    if f.name.endswith("_pct"):
        return 0.0, 100.0
    if f.name.endswith(("_fraction", "_share")):
        return 0.0, 1.0
    return 0.0, None


def _type_ok(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_value(rule_id: str, f: dataclasses.Field[Any], default: Any, value: Any) -> Any:
    """Validate one override against the default's type and the field's range; lists become tuples."""
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"rule {rule_id}: {f.name} must be a list, got {value!r}")
        kinds = {type(x) for x in default}
        if kinds and any(type(x) not in kinds for x in value):
            raise RecipeError(f"rule {rule_id}: {f.name} items must be {'/'.join(sorted(k.__name__ for k in kinds))}, "
                              f"got {value!r}")
        return tuple(value)
    if not _type_ok(value, default):
        raise RecipeError(f"rule {rule_id}: {f.name} must be {type(default).__name__}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = value_range(f)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise RecipeError(f"rule {rule_id}: {f.name} = {value!r} is out of range ({bounds})")
        return float(value) if isinstance(default, float) else value
    return value


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
    findings.sort(key=lambda f: (-f.estimated_gain_ns, f.rule_id, str(f.subject.get("name", "")), f.title, f.message))
    return findings, skipped
