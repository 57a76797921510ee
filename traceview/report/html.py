"""The self-contained HTML report: one file, plotly.js embedded once, no network use.

``write_html(result, path)`` renders the whole page in memory, then writes it atomically,
so a failed render leaves no file behind. Data comes from ``AnalysisResult.to_dict()``,
the result's activity frames and the trace's NVTX ranges; nothing is analyzed here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from traceview.report.htmlparts import Section, esc
from traceview.report.writer import write_atomic

if TYPE_CHECKING:
    from traceview.api import AnalysisResult

MAX_TIMELINE_EVENTS = 50_000
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False,
               "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
_AXIS = {"gridcolor": "#ebeef2", "linecolor": "#c9d1db", "zerolinecolor": "#c9d1db", "automargin": True,
         "ticks": "outside", "tickcolor": "#c9d1db"}
TEMPLATE = {"layout": {
    "colorway": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"],
    "font": {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif", "size": 12,
             "color": "#1d2433"},
    "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "xaxis": _AXIS, "yaxis": _AXIS,
    "hoverlabel": {"align": "left", "font": {"size": 12}}, "legend": {"bgcolor": "rgba(255,255,255,0.6)"},
}}
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(text: str) -> str:
    """JSON made safe inside <script>: no '</script>', no '<!--', no raw line separators."""
    for char, repl in _JSON_ESCAPES.items():
        text = text.replace(char, repl)
    return text


@cache
def _asset(name: str) -> str:
    return resources.files("traceview.report").joinpath("templates", name).read_text(encoding="utf-8")


@cache
def _plotlyjs() -> str:
    js = get_plotlyjs()
    if "</script" in js.lower():  # would end the <script> element early
        raise RuntimeError("the installed plotly.js bundle cannot be inlined safely")
    return js


def _figures_json(figures: dict[str, go.Figure]) -> str:
    parts = []
    for div_id, fig in figures.items():
        fig.layout.template = None  # one shared template for the page instead of one per figure
        parts.append(f"{json.dumps(div_id)}:{pio.to_json(fig, validate=False, remove_uids=True)}")
    return (f'{{"config":{json.dumps(PLOT_CONFIG)},"template":{json.dumps(TEMPLATE)},'
            f'"figures":{{{",".join(parts)}}}}}')


def _page(title: str, head_html: str, sections: list[Section], footer: str) -> str:
    from traceview import __version__

    figures: dict[str, go.Figure] = {}
    body = [head_html]
    body.append("<nav class=\"tv-nav\">" + "".join(
        f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections) + "</nav><main>")
    for s in sections:
        figures.update(s.figures)
        body.append(f'<section class="tv-section" id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.html}</section>')
    body.append(f"</main><footer>{footer}</footer>")
    fills = {"version": esc(__version__), "title": esc(title), "body": "\n".join(body),
             "figures": script_json(_figures_json(figures)), "plotlyjs": _plotlyjs(),
             "reportjs": _asset("report.js")}
    template = _asset("report.html")
    out, pos = [], 0
    for token, value in ((t, fills[t]) for t in ("version", "title", "body", "figures", "plotlyjs", "reportjs")):
        start = template.index("{{" + token + "}}", pos)
        out += [template[pos:start], value]
        pos = start + len(token) + 4
    out.append(template[pos:])
    return "".join(out)


def render_html(result: AnalysisResult, *, comparison: Any = None,
                max_timeline_events: int = MAX_TIMELINE_EVENTS) -> str:
    """The report page as a string. ``comparison``: a compare result (object with ``to_dict``, or a dict)."""
    from traceview.report import comm_section, llm_section
    from traceview.report import sections as sec

    data = (result if result.top is None else replace(result, top=None)).to_dict()  # every kernel, not top-N
    if comparison is not None and not isinstance(comparison, dict):
        comparison = comparison.to_dict()
    builders: list[Callable[[], Section | None]] = [
        lambda: sec.findings(data),
        lambda: sec.timeline(result, max_timeline_events),
        lambda: sec.kernels(data),
        lambda: sec.roofline(data),
        lambda: sec.occupancy(data),
        lambda: sec.flowchart(data),
        lambda: sec.phases(data),
        lambda: comm_section.communication(data),
        lambda: llm_section.llm_inference(data),
        lambda: sec.comparison(comparison),
        lambda: sec.details(data),
    ]
    sections = [s for s in (b() for b in builders) if s is not None]
    name = Path(str(data["trace"]["path"])).name
    return _page(f"traceview: {name}", sec.header(data), sections, sec.footer(data))


def write_html(result: AnalysisResult, path: str | Path, *, comparison: Any = None,
               max_timeline_events: int = MAX_TIMELINE_EVENTS) -> Path:
    """Render the report and write it atomically to ``path`` (nothing is written if rendering fails)."""
    page = render_html(result, comparison=comparison, max_timeline_events=max_timeline_events)
    write_atomic(path, page)
    return Path(path)
