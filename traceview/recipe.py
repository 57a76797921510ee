"""Recipes: named TOML bundles of hardware target, rule selection, thresholds, silences, NVTX phase
names and performance targets (``recipes/*.toml``, ``traceview analyze --recipe NAME|FILE``).

    name = "llm-decode"
    extends = "default"                # another recipe (name or path); tables merge, lists replace
    hardware = "h200"
    select = ["*"]                     # rule ids or globs; ignore = [...]
    [rules."timeline.gpu-idle"]        # thresholds per rule id (validated against the rule's Params)
    min_gap_ns = 20_000
    [[silence]]                        # drop findings of these rules for these subject names
    rules = ["launch.small-grid"]
    names = ["ncclDevKernel_*"]
    reason = "NCCL uses few blocks by design"
    [phases]                           # NVTX range names per phase
    decode = ["decode_step"]
    [targets]                          # decode_step_ms, prefill_ms, step_ms, tokens_per_s, tokens_per_step
    decode_step_ms = 0.5
    [flowchart]
    top = 5                            # kernels walked through the optimization flowchart
    quantization = ["fp8", "int8"]     # formats to advise, best first

Any other top-level table (``[gate]``, ``[projection]``) is kept, unvalidated, in
``Recipe.sections[name]`` for the feature that owns it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traceview.errors import RecipeError
from traceview.rules.registry import all_rules, get_rule, make_params

if TYPE_CHECKING:
    from traceview.api import AnalyzeOptions

RECIPE_DIRS = (Path("recipes"), Path(__file__).resolve().parents[1] / "recipes")
TOP_KEYS = {"name": str, "description": str, "extends": str, "hardware": str, "select": list, "ignore": list}
OWNED_TABLES = {"rules", "silence", "phases", "targets", "flowchart"}
TARGETS = {"decode_step_ms": float, "prefill_ms": float, "step_ms": float, "tokens_per_s": float,
           "tokens_per_step": int, "bandwidth_share_pct": float}
QUANT_FORMATS = ("nvfp4", "mxfp4", "fp8", "int8", "int4")
FLOWCHART = {"top": int, "quantization": list}


@dataclass(frozen=True, slots=True)
class Silence:
    """Findings of rules matching ``rules`` whose subject name matches ``names`` are dropped."""

    rules: tuple[str, ...]
    names: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Recipe:
    name: str
    description: str = ""
    path: Path | None = None
    extends: str | None = None
    hardware: str | None = None
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    silence: tuple[Silence, ...] = ()
    phases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    flowchart_top: int = 5
    quantization: tuple[str, ...] = ()
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_options(self, options: AnalyzeOptions) -> AnalyzeOptions:
        """``options`` with this recipe's settings filled in (explicit option values win)."""
        thresholds = {rid: {**self.thresholds.get(rid, {}), **options.thresholds.get(rid, {})}
                      for rid in {*self.thresholds, *options.thresholds}}
        silence = [(r, n) for s in self.silence for r in s.rules for n in s.names] + list(options.silence)
        return dataclasses.replace(
            options, recipe=self, hardware=options.hardware or self.hardware,
            select=options.select if options.select is not None else (list(self.select) if self.select else None),
            ignore=sorted({*(options.ignore or []), *self.ignore}) or None,
            thresholds=thresholds, silence=silence)


def find_recipe(spec: str | Path) -> Path:
    """A recipe file from a path, or from a name in ./recipes or the project's recipes/."""
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise RecipeError(f"{spec}: no such recipe file")
        return path
    for directory in RECIPE_DIRS:
        if (directory / f"{spec}.toml").is_file():
            return directory / f"{spec}.toml"
    known = sorted({p.stem for d in RECIPE_DIRS if d.is_dir() for p in d.glob("*.toml")})
    raise RecipeError(f"{spec}: no such recipe (known: {', '.join(known) or 'none'}; or give a .toml path)")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read recipe ({exc})") from None


def merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child over parent: tables merge recursively, ``silence`` lists add up, other values replace."""
    out = dict(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif key == "silence" and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = out[key] + value
        else:
            out[key] = value
    return out


def resolve(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw TOML of ``path`` with its ``extends`` chain merged in."""
    if path.resolve() in seen:
        raise RecipeError(f"{path}: 'extends' loops back to {path.name}")
    raw = read_toml(path)
    parent = raw.get("extends")
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise RecipeError(f"{path}: extends must be a recipe name or path, got {parent!r}")
    sibling = path.parent / f"{parent}.toml"
    parent_path = sibling if sibling.is_file() else find_recipe(parent)
    base = resolve(parent_path, (*seen, path.resolve()))
    base.pop("name", None), base.pop("description", None)
    return merge(base, raw)


def load_recipe(spec: str | Path) -> Recipe:
    """Load and validate a recipe; every problem is a one-line ``RecipeError``."""
    path = find_recipe(spec)
    raw = resolve(path)
    try:
        return build(raw, path)
    except RecipeError as exc:
        raise RecipeError(f"recipe {path}: {exc}") from None


def build(raw: dict[str, Any], path: Path | None = None) -> Recipe:
    """A Recipe from a merged TOML document (validates everything)."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key in TOP_KEYS:
            _expect(key, value, TOP_KEYS[key])
        elif key in OWNED_TABLES:
            continue
        elif isinstance(value, dict):
            sections[key] = value
        else:
            raise RecipeError(f"unknown key {key!r} (known: {', '.join(sorted({*TOP_KEYS, *OWNED_TABLES}))})")
    select, ignore = raw.get("select"), raw.get("ignore", [])
    for pattern in [*(select or []), *ignore]:
        _rule_pattern(pattern, "select/ignore")
    top, quantization = _flowchart(raw.get("flowchart", {}))
    hardware = raw.get("hardware")
    if hardware is not None:
        _check_hardware(hardware)
    return Recipe(
        name=raw.get("name") or (path.stem if path else "recipe"), description=raw.get("description", ""),
        path=path, extends=raw.get("extends"), hardware=hardware,
        select=tuple(select) if select is not None else None, ignore=tuple(ignore),
        thresholds=thresholds(raw.get("rules", {})), silence=_silences(raw.get("silence", [])),
        phases=_phases(raw.get("phases", {})), targets=_targets(raw.get("targets", {})),
        flowchart_top=top, quantization=quantization, sections=sections)


def _expect(key: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
        raise RecipeError(f"{key} must be {'a list of strings' if kind is list else 'a string'}, got {value!r}")


def _rule_pattern(pattern: Any, where: str) -> str:
    if not isinstance(pattern, str) or not any(fnmatch.fnmatchcase(r.id, pattern) for r in all_rules()):
        raise RecipeError(f"{where}: no rule matches {pattern!r} (see `traceview rules`)")
    return pattern


def thresholds(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``[rules."id"]`` tables (also written unquoted, ``[rules.memcpy.pageable]``) -> validated overrides."""
    if not isinstance(table, dict):
        raise RecipeError("rules must be a table of [rules.\"rule.id\"] tables")
    out: dict[str, dict[str, Any]] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for key, value in node.items():
            rule_id = f"{prefix}.{key}" if prefix else key
            if not isinstance(value, dict):
                raise RecipeError(f"rules: unknown rule id {prefix!r} (see `traceview rules`)" if prefix
                                  else f"rules.{key} must be a table of thresholds")
            if rule_id in {r.id for r in all_rules()}:
                make_params(get_rule(rule_id), value)  # raises on unknown keys, wrong types, bad ranges
                out[rule_id] = dict(value)
            elif any(r.id.startswith(rule_id + ".") for r in all_rules()):
                walk(rule_id, value)
            else:
                raise RecipeError(f"rules: unknown rule id {rule_id!r} (see `traceview rules`)")

    walk("", table)
    return out


def _silences(items: Any) -> tuple[Silence, ...]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RecipeError("silence must be an array of tables ([[silence]] with rules, names, reason)")
    out = []
    for i, item in enumerate(items):
        unknown = set(item) - {"rules", "names", "reason"}
        if unknown:
            raise RecipeError(f"silence[{i}]: unknown key {min(unknown)!r} (known: names, reason, rules)")
        rules, names = _str_list(item.get("rules", ["*"]), f"silence[{i}].rules"), \
            _str_list(item.get("names", ["*"]), f"silence[{i}].names")
        for pattern in rules:
            _rule_pattern(pattern, f"silence[{i}].rules")
        out.append(Silence(rules, names, str(item.get("reason", ""))))
    return tuple(out)


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise RecipeError(f"{where} must be a string or a non-empty list of strings, got {value!r}")
    return tuple(value)


def _phases(table: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise RecipeError("phases must be a table: phase = [NVTX range names]")
    return {phase: _str_list(names, f"phases.{phase}") for phase, names in table.items()}


def _targets(table: Any) -> dict[str, float]:
    if not isinstance(table, dict):
        raise RecipeError("targets must be a table")
    out: dict[str, float] = {}
    for key, value in table.items():
        if key not in TARGETS:
            raise RecipeError(f"targets: unknown key {key!r} (known: {', '.join(sorted(TARGETS))})")
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or value <= 0 or (TARGETS[key] is int and not isinstance(value, int)):
            raise RecipeError(f"targets.{key} must be a positive {TARGETS[key].__name__}, got {value!r}")
        if key == "bandwidth_share_pct" and value > 100:
            raise RecipeError(f"targets.bandwidth_share_pct must be at most 100, got {value!r}")
        out[key] = value
    return out


def _flowchart(table: Any) -> tuple[int, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise RecipeError("flowchart must be a table")
    unknown = set(table) - set(FLOWCHART)
    if unknown:
        raise RecipeError(f"flowchart: unknown key {min(unknown)!r} (known: {', '.join(sorted(FLOWCHART))})")
    top = table.get("top", 5)
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 100:
        raise RecipeError(f"flowchart.top must be an integer 1..100, got {top!r}")
    formats = table.get("quantization", [])
    if not isinstance(formats, list) or any(f not in QUANT_FORMATS for f in formats):
        raise RecipeError(f"flowchart.quantization must list formats from {', '.join(QUANT_FORMATS)}, got {formats!r}")
    return top, tuple(formats)


def _check_hardware(name: str) -> None:
    try:
        from traceview.hardware.db import find_gpu
    except ImportError:  # hardware database not installed: accept the name
        return
    from traceview.errors import TraceviewError

    try:
        find_gpu(name)
    except TraceviewError as exc:
        raise RecipeError(f"hardware: {exc}") from None
