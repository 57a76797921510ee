"""`traceview rules`: list rules; `rules show ID`; `rules defaults` (the defaults recipe); `rules docs`."""

from __future__ import annotations

from typing import Annotated

import typer

from traceview.cli.app import app, emit, guarded

rules_app = typer.Typer(help="The rules behind findings: list, explain, defaults.", invoke_without_command=True,
                        no_args_is_help=False)
app.add_typer(rules_app, name="rules")


@rules_app.callback()
@guarded
def rules_list(ctx: typer.Context) -> None:
    """List every rule: id, category, severity, title."""
    if ctx.invoked_subcommand is not None:
        return
    from traceview.rules import all_rules

    rows = [(r.id, r.category, r.severity.value, r.title) for r in all_rules()]
    width = max(len(r[0]) for r in rows)
    emit("\n".join(f"{i:<{width}}  {c:<10} {s:<7} {t}" for i, c, s, t in rows), None)


@rules_app.command("show")
@guarded
def rules_show(rule_id: Annotated[str, typer.Argument(help="Rule id, e.g. memcpy.pageable")]) -> None:
    """Print a rule's documentation and default thresholds."""
    from traceview.rules import get_rule
    from traceview.rules.catalog import params_of, toml_value

    r = get_rule(rule_id)
    params = "\n".join(f"  {name} = {toml_value(value)}" for name, value, _ in params_of(r)) or "  (none)"
    emit(f"{r.id}: {r.title}\ncategory {r.category}, severity {r.severity.value}\n\n{r.doc}\n\n"
         f"Defaults (override in a recipe under [rules.\"{r.id}\"]):\n{params}", None)


@rules_app.command("defaults")
@guarded
def rules_defaults() -> None:
    """Print the defaults recipe (every rule's thresholds) as TOML: recipes/default.toml."""
    from traceview.rules.catalog import defaults_toml

    emit(defaults_toml(), None)


@rules_app.command("docs")
@guarded
def rules_docs() -> None:
    """Print docs/rules.md (Markdown reference generated from the registry)."""
    from traceview.rules.catalog import rules_markdown

    emit(rules_markdown(), None)
