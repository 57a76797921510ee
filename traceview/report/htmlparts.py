"""HTML building blocks for the report: escaping, number formatting, sortable tables.

Every string that can come from a trace goes through ``esc`` (or ``plot_text`` for
plotly labels) before it reaches the page.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go


def esc(value: Any) -> str:
    """Text for HTML element content or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def plot_text(value: Any, limit: int | None = None) -> str:
    """A label for plotly, which renders a pseudo-HTML subset: escape it so that it stays text.

    Quotes are left alone: plotly decodes ``&lt; &gt; &amp;`` but not ``&quot;``.
    """
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return html.escape(text, quote=False)


def short(value: Any, limit: int = 80) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def fmt_ns(ns: Any) -> str:
    """1234567 -> '1.235 ms'."""
    if not isinstance(ns, (int, float)) or (isinstance(ns, float) and not math.isfinite(ns)):
        return "\u2013"
    a = abs(ns)
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("\u00b5s", 1e3)):
        if a >= scale:
            return f"{ns / scale:.3g} {unit}" if a < 10 * scale else f"{ns / scale:,.1f} {unit}"
    return f"{ns:,.0f} ns"


def fmt_bytes(n: Any) -> str:
    if not isinstance(n, (int, float)) or (isinstance(n, float) and not math.isfinite(n)):
        return "\u2013"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:,.0f} B"


def fmt_num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "\u2013" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "\u2013"
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def fmt_value(key: str, value: Any) -> str:
    """Format by key convention of the JSON contract: *_ns times, *_bytes sizes, *_pct percents."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if key.endswith("_ns") or key == "ns":
            return fmt_ns(value)
        if key.endswith("bytes_per_s"):
            return f"{value / 1e9:,.1f} GB/s"
        if key.endswith("flops_per_s"):
            return f"{value / 1e12:,.2f} TFLOP/s"
        if key.endswith("bytes") and "per_s" not in key:
            return fmt_bytes(value)
        if key.endswith("_pct") or key == "pct":
            return f"{value:.1f}%"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(fmt_num(v) if not isinstance(v, (dict, list)) else "\u2026" for v in value[:6])
        return shown + (", \u2026" if len(value) > 6 else "")
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt_num(v)}" for k, v in list(value.items())[:6] if not isinstance(v, (dict, list)))
    return fmt_num(value)


@dataclass(frozen=True, slots=True)
class Cell:
    """One table cell: ready-made HTML plus the value the sort uses (None = the text)."""

    html: str
    sort: float | str | None = None


def cell(key: str, value: Any) -> Cell:
    """A formatted, escaped cell whose numeric sort key is the raw value."""
    sort = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(sort, float) and not math.isfinite(sort):
        sort = None
    return Cell(esc(fmt_value(key, value)), sort)


def table(table_id: str, headers: Sequence[str], rows: Iterable[Sequence[Cell | str]],
          numeric: Iterable[int] = (), caption: str = "", row_class: Sequence[str] | None = None) -> str:
    """A sortable (click a header) and searchable table. ``str`` cells are escaped text."""
    numeric = set(numeric)
    head = "".join(f'<th data-type="{"num" if i in numeric else "text"}" tabindex="0">{esc(h)}</th>'
                   for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        tds = []
        for c in row:
            c = c if isinstance(c, Cell) else Cell(esc(c))
            attr = f' data-sort="{esc(c.sort)}"' if c.sort is not None else ""
            tds.append(f"<td{attr}>{c.html}</td>")
        cls = f' class="{esc(row_class[n])}"' if row_class else ""
        body.append(f"<tr{cls}>{''.join(tds)}</tr>")
    search = (f'<input type="search" class="tv-search" data-table="{esc(table_id)}" '
              f'placeholder="Filter rows\u2026" aria-label="Filter {esc(caption or table_id)}">')
    cap = f'<span class="tv-caption">{esc(caption)}</span>' if caption else ""
    return (f'<div class="tv-table-wrap"><div class="tv-table-tools">{search}{cap}</div>'
            f'<table class="tv-table" id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def scalar_columns(records: Sequence[dict[str, Any]], limit: int = 14) -> list[str]:
    """Column keys for a generic table: keys in first-seen order, one level of dicts flattened."""
    keys: list[str] = []
    for rec in records:
        for k, v in flatten(rec).items():
            if k not in keys and not isinstance(v, (dict,)):
                keys.append(k)
    return keys[:limit]


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                if not isinstance(v2, (dict, list)):
                    out[f"{k}.{k2}"] = v2
        else:
            out[k] = v
    return out


def generic_table(table_id: str, records: Sequence[dict[str, Any]], caption: str = "",
                  max_rows: int = 500) -> str:
    """Any list of JSON records as a sortable table (for keys this report does not know)."""
    records = [r for r in records if isinstance(r, dict)]
    if not records:
        return '<p class="tv-muted">No rows.</p>'
    cols = scalar_columns(records)
    flat = [flatten(r) for r in records[:max_rows]]
    numeric = {i for i, k in enumerate(cols)
               if any(isinstance(f.get(k), (int, float)) and not isinstance(f.get(k), bool) for f in flat)}
    rows = [[cell(k, f.get(k)) for k in cols] for f in flat]
    note = f" (first {max_rows} of {len(records)})" if len(records) > max_rows else ""
    return table(table_id, cols, rows, numeric, caption + note)


@dataclass(slots=True)
class Section:
    """One part of the page: its anchor id, heading, HTML, and the figures it places."""

    id: str
    title: str
    html: str
    figures: dict[str, go.Figure] = field(default_factory=dict)


def plot_div(div_id: str) -> str:
    return f'<div class="tv-plot" id="{esc(div_id)}"></div>'
