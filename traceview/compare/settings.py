"""Gate settings: defaults, the recipe's ``[gate]`` section, and the allowlist."""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from traceview.compare.stats import NoiseModel
from traceview.errors import RecipeError

RECIPE_DIRS = (Path("recipes"), Path(__file__).resolve().parents[2] / "recipes")


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """Accept a known regression: items whose name matches ``pattern`` (fnmatch), until ``expires``."""

    pattern: str
    reason: str
    expires: dt.date
    kind: str | None = None     # "kernel", "nvtx" or "device"; None matches every kind

    def matches(self, kind: str, *names: str) -> bool:
        if self.kind is not None and self.kind != kind:
            return False
        return any(fnmatch.fnmatchcase(n, self.pattern) for n in names if n)

    def expired(self, today: dt.date) -> bool:
        return today > self.expires


@dataclass(frozen=True, slots=True)
class GateSettings:
    """Every knob of the gate. A recipe's ``[gate]`` section sets these by name."""

    alpha: float = 0.01                  # family-wise significance level
    correction: str = "holm"             # "holm" or "bonferroni" over the tested items
    threshold_pct: float = 5.0           # practical significance: |change| of the item's total
    min_cost_pct: float = 0.5            # and |delta| >= this % of the device's baseline kernel time
    bootstrap_resamples: int = 1000
    seed: int = 0
    run_noise_scale: float = 0.5         # see traceview.compare.stats.NoiseModel
    run_noise_floor_pct: float = 0.5
    noise_prior_weight: float = 8.0       # pseudo-runs the noise prior weighs against measured runs
    compare_nvtx: bool = True
    min_kernel_overlap_pct: float = 50.0  # % of baseline kernel time that must match a candidate kernel
    allow_gpu_mismatch: bool = False
    allow_workload_change: bool = False
    allow: tuple[AllowEntry, ...] = field(default_factory=tuple)

    @property
    def noise(self) -> NoiseModel:
        return NoiseModel(scale=self.run_noise_scale, floor=self.run_noise_floor_pct / 100.0,
                          prior_weight=self.noise_prior_weight)

    def with_overrides(self, **overrides: Any) -> GateSettings:
        """Apply CLI/API overrides (None values are ignored) and validate."""
        return validate(replace(self, **{k: v for k, v in overrides.items() if v is not None}))


def validate(s: GateSettings) -> GateSettings:
    checks = [
        (0.0 < s.alpha < 1.0, "alpha must be between 0 and 1"),
        (s.correction in ("holm", "bonferroni"), "correction must be 'holm' or 'bonferroni'"),
        (s.threshold_pct >= 0.0, "threshold_pct must be >= 0"),
        (s.min_cost_pct >= 0.0, "min_cost_pct must be >= 0"),
        (s.bootstrap_resamples >= 100, "bootstrap_resamples must be >= 100"),
        (s.run_noise_scale >= 0.0 and s.run_noise_floor_pct >= 0.0, "run noise settings must be >= 0"),
        (s.noise_prior_weight > 0.0, "noise_prior_weight must be > 0"),
        (0.0 <= s.min_kernel_overlap_pct <= 100.0, "min_kernel_overlap_pct must be within 0..100"),
    ]
    for ok, message in checks:
        if not ok:
            raise RecipeError(f"[gate] {message}")
    return s


def _allow_entry(raw: Any, index: int) -> AllowEntry:
    where = f"[[gate.allow]] entry {index + 1}"
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: expected a table with pattern, reason and expires")
    unknown = set(raw) - {"pattern", "reason", "expires", "kind"}
    missing = [k for k in ("pattern", "reason", "expires") if not raw.get(k)]
    if unknown or missing:
        raise RecipeError(f"{where}: " + (f"unknown keys {sorted(unknown)}" if unknown else f"missing {missing}"))
    expires = raw["expires"]
    if isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires)
        except ValueError:
            raise RecipeError(f"{where}: expires must be a date like 2026-12-31, got {expires!r}") from None
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    if not isinstance(expires, dt.date):
        raise RecipeError(f"{where}: expires must be a date like 2026-12-31")
    kind = raw.get("kind")
    if kind not in (None, "kernel", "nvtx", "device"):
        raise RecipeError(f"{where}: kind must be kernel, nvtx or device")
    return AllowEntry(pattern=str(raw["pattern"]), reason=str(raw["reason"]), expires=expires, kind=kind)


def _coerce(key: str, default: Any, raw: Any) -> Any:
    """Check a [gate] value against the type of its default (an int is accepted for a float)."""
    if isinstance(default, bool):
        ok = isinstance(raw, bool)
    elif isinstance(default, float):
        ok = isinstance(raw, int | float) and not isinstance(raw, bool)
    elif isinstance(default, int):
        ok = isinstance(raw, int) and not isinstance(raw, bool)
    else:
        ok = isinstance(raw, str)
    if not ok:
        raise RecipeError(f"[gate] {key} must be a {type(default).__name__}, got {raw!r}")
    return float(raw) if isinstance(default, float) else raw


def from_section(section: dict[str, Any]) -> GateSettings:
    """GateSettings from a ``[gate]`` table; unknown keys and bad values raise RecipeError."""
    known = {f.name: f for f in fields(GateSettings)}
    values: dict[str, Any] = {}
    for key, raw in section.items():
        if key not in known:
            raise RecipeError(f"[gate] unknown key {key!r} (known: {', '.join(sorted(known))})")
        if key == "allow":
            if not isinstance(raw, list):
                raise RecipeError("[gate] allow must be an array of tables ([[gate.allow]])")
            values[key] = tuple(_allow_entry(r, i) for i, r in enumerate(raw))
            continue
        values[key] = _coerce(key, known[key].default, raw)
    return validate(GateSettings(**values))


def _read_toml(spec: str | Path) -> dict[str, Any]:
    path = Path(spec)
    candidates = [path] if path.suffix == ".toml" or path.exists() else [d / f"{spec}.toml" for d in RECIPE_DIRS]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise RecipeError(f"{candidate}: invalid TOML ({exc})") from None
            except OSError as exc:
                raise RecipeError(f"{candidate}: cannot read recipe ({exc.strerror})") from None
    raise RecipeError(f"{spec}: no such recipe (a TOML file, or a name in recipes/)")


def gate_section(recipe: Any) -> dict[str, Any]:
    """The ``[gate]`` table of a recipe: a loaded Recipe (``.sections``), a dict, a name or a path."""
    if recipe is None:
        return {}
    if isinstance(recipe, dict):
        return dict(recipe.get("gate", {}))
    if hasattr(recipe, "sections"):
        return dict(recipe.sections.get("gate", {}) or {})
    try:
        from traceview.recipe import load_recipe
    except ImportError:
        return dict(_read_toml(recipe).get("gate", {}))
    return dict(load_recipe(str(recipe)).sections.get("gate", {}) or {})


def load_settings(recipe: Any = None, **overrides: Any) -> GateSettings:
    """Defaults <- recipe ``[gate]`` <- explicit overrides (None = keep)."""
    return from_section(gate_section(recipe)).with_overrides(**overrides)
