"""One function per chart: prepared rows or frames in, a plotly ``Figure`` out.

Figures carry no template (the page applies one shared template) and every label that
can come from a trace is escaped with ``plot_text``, because plotly renders a subset of
HTML in labels and hover text.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from traceview.report.htmlparts import plot_text
from traceview.report.timeline_view import TimelineView

COLORS = {
    "kernels": ["#1f5fa6", "#3b7dd8", "#6aa2e8", "#2a4f80", "#5b8fc7", "#8fb8ee"],
    "NCCL": ["#d62728", "#f0605d", "#a31515"],
    "memcpy": ["#2ca02c", "#5fcf5f", "#1e6e1e", "#98df8a"],
    "memset": ["#9467bd", "#c5b0d5"],
    "NVTX": ["#c98b00", "#e6b84f", "#8c6d31", "#f2cf86"],
}
BOUND_COLORS = {"compute": "#d62728", "memory": "#1f77b4", "latency": "#ff7f0e",
                "communication": "#9467bd", "unknown": "#7f7f7f"}
NAMED_TRACES = 40   # per category, the names with most time get their own trace (hover = trace name)


def _base_layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title={"text": plot_text(title), "x": 0.01, "font": {"size": 15}}, height=height,
                      margin={"l": 10, "r": 20, "t": 46, "b": 40}, template=None)
    return fig


def _escaped_labels(names: pl.Series, limit: int = 100) -> list[str]:
    """``plot_text`` for a whole column, in polars (no Python loop over events)."""
    text = names.fill_null("").cast(pl.String)
    cut = pl.when(pl.col("t").str.len_chars() > limit).then(pl.col("t").str.slice(0, limit - 1) + "\u2026") \
        .otherwise(pl.col("t"))
    return (pl.DataFrame({"t": text}).select(cut.str.replace_all("&", "&amp;", literal=True)
                                             .str.replace_all("<", "&lt;", literal=True)
                                             .str.replace_all(">", "&gt;", literal=True))
            .to_series().to_list())


def _segment_trace(group: pl.DataFrame, *, name: str, category: str, color: str, width: float,
                   labels: list[str] | None) -> go.Scatter:
    """Events of one timeline trace in compact form, drawn as segments by the page's script.

    ``x`` holds start times (ms), ``customdata`` durations (us), ``y`` rows, ``text`` optional
    per-event labels (already escaped). The script (report.js, traces with ``meta="tv-seg"``)
    turns them into line segments for the visible range, merging events closer than one
    pixel and keeping every segment at least a pixel long, at every zoom level: drawing cost
    stays bounded by the plot's width, not by the number of events.
    """
    rows = group.get_column("row").to_numpy()
    kw: dict[str, Any] = {}
    if labels is not None:
        kw["text"] = labels
    return go.Scatter(
        x=group.get_column("start_ms").to_numpy(), y=rows.astype(np.uint8 if rows.max(initial=0) < 256 else np.uint16),
        customdata=group.get_column("dur_us").to_numpy().astype(np.float32), meta="tv-seg", mode="lines",
        name=plot_text(name, 100), legendgroup=category, showlegend=False, line={"color": color, "width": width},
        hoverlabel={"namelength": -1}, hovertemplate="<b>%{fullData.name}</b><br>%{text}<br>at %{x:.4f} ms"
        "<extra></extra>", **kw)


def timeline(view: TimelineView) -> go.Figure:
    """Zoomable timeline: NVTX rows on top, then one row per device and stream (see ``_segment_trace``)."""
    fig = go.Figure()
    n_rows = max(len(view.rows), 1)
    width = 14 if n_rows < 30 else 8
    # Categories with more busy time are drawn later, on top: where several kinds share a stream and
    # merge below a pixel, a pixel shows the kind that dominates the row (e.g. kernels over memsets).
    order = (view.events.group_by("category").agg(pl.col("dur_us").sum()).sort(["dur_us", "category"])
             .get_column("category").to_list())
    for category in (c for c in order if c in COLORS):
        events = view.events.filter(pl.col("category") == category)
        palette = COLORS[category]
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=category, legendgroup=category,
                                 line={"color": palette[0], "width": 10}, hoverinfo="skip"))
        if view.aggregated:
            labels = events.select(pl.format("{} events in this bin", pl.col("count"))).to_series().to_list()
            fig.add_trace(_segment_trace(events, name=category, category=category, color=palette[0],
                                         width=width, labels=labels))
            continue
        ranked = (events.group_by("name").agg(pl.col("dur_us").sum().alias("t"))
                  .sort(["t", "name"], descending=[True, False]).get_column("name").to_list())
        named = ranked[:NAMED_TRACES]
        for i, name in enumerate(named):
            fig.add_trace(_segment_trace(events.filter(pl.col("name") == name), name=name, category=category,
                                         color=palette[i % len(palette)], width=width, labels=None))
        rest = events.filter(~pl.col("name").is_in(named))
        if rest.height:
            fig.add_trace(_segment_trace(rest, name=f"other {category}", category=category, color=palette[-1],
                                         width=width,
                                         labels=_escaped_labels(rest.get_column("name"))))
    fig.update_yaxes(tickvals=list(range(len(view.rows))), ticktext=[plot_text(r) for r in view.rows],
                     range=[n_rows - 0.5, -0.5], fixedrange=True, showgrid=False, zeroline=False)
    fig.update_xaxes(title_text="time since trace start (ms)", zeroline=False, showspikes=True,
                     spikemode="across", spikethickness=1)
    fig.update_layout(hovermode="closest", dragmode="zoom", legend={"orientation": "h", "y": 1.02, "x": 0.3,
                                                                       "yanchor": "bottom"})
    return _base_layout(fig, "Timeline (drag to zoom, double-click to reset)", 110 + 26 * n_rows)


def _kernel_label(k: dict[str, Any], limit: int = 60) -> str:
    return plot_text(k.get("short_name") or k.get("name"), limit)


def top_kernels(kernels: list[dict[str, Any]], limit: int = 20) -> go.Figure:
    """Horizontal bars: total GPU time of the top kernels (NCCL kernels in red)."""
    top = kernels[:limit]
    ranks = list(range(len(top)))
    colors = [COLORS["NCCL"][0] if k.get("is_nccl") or "nccl" in str(k.get("name", "")).lower()
              else COLORS["kernels"][0] for k in top]
    hover = [f"<b>{plot_text(k.get('name'), 160)}</b><br>{k.get('instances', 0):,} instances, "
             f"avg {(k.get('avg_ns') or 0) / 1e3:,.2f} \u00b5s<br>{k.get('time_pct') or 0:.1f}% of kernel time"
             for k in top]
    fig = go.Figure(go.Bar(x=[(k.get("total_ns") or 0) / 1e6 for k in top], y=ranks, orientation="h",
                           marker={"color": colors}, hovertext=hover, hoverinfo="text"))
    fig.update_yaxes(tickvals=ranks, ticktext=[_kernel_label(k) for k in top], autorange="reversed")
    fig.update_xaxes(title_text="total time (ms)")
    return _base_layout(fig, f"Top {len(top)} kernels by total GPU time", 90 + 24 * max(len(top), 3))


def roofline(points: list[dict[str, Any]], ceilings: list[tuple[str, float]], peak_bw: float | None) -> go.Figure:
    """Kernels at (FLOP/byte, achieved FLOP/s) under the DRAM-bandwidth roof and compute ceilings."""
    fig = go.Figure()
    ai = np.array([p["ai"] for p in points], dtype=float)
    top = max((c[1] for c in ceilings), default=None)
    if peak_bw and top:
        xs = np.geomspace(min(float(ai.min()) / 4, top / peak_bw / 1000), max(float(ai.max()) * 4, top / peak_bw * 10),
                          200)
        for i, (label, flops) in enumerate(ceilings):
            fig.add_trace(go.Scatter(x=xs, y=np.minimum(flops, xs * peak_bw) / 1e12, mode="lines",
                                     name=plot_text(f"{label} ({flops / 1e12:,.0f} TFLOP/s)"),
                                     line={"color": "#37474f", "width": 2.5 if i == 0 else 1.2,
                                           "dash": "solid" if i == 0 else "dash"}, hoverinfo="skip"))
    for cls in sorted({p.get("class") or "unknown" for p in points}):
        sel = [p for p in points if (p.get("class") or "unknown") == cls]
        fig.add_trace(go.Scatter(
            x=[p["ai"] for p in sel], y=[p["flops"] / 1e12 for p in sel], mode="markers", name=plot_text(cls),
            marker={"size": [max(9, min(32, 9 + (p.get("time_pct") or 0) / 3)) for p in sel],
                    "color": BOUND_COLORS.get(cls, "#7f7f7f"), "line": {"width": 1, "color": "#fff"}},
            hovertext=[f"<b>{plot_text(p['name'], 120)}</b><br>{p['ai']:.3g} FLOP/byte, "
                       f"{p['flops'] / 1e12:.3g} TFLOP/s<br>{plot_text(cls)} ({plot_text(p.get('tier') or '?')})"
                       + (f", {p['time_pct']:.1f}% of kernel time" if p.get("time_pct") is not None else "")
                       for p in sel], hoverinfo="text"))
    fig.update_xaxes(type="log", title_text="arithmetic intensity (FLOP/byte)")
    fig.update_yaxes(type="log", title_text="achieved TFLOP/s")
    return _base_layout(fig, "Roofline (marker size: share of kernel time)", 480)


def occupancy(rows: list[dict[str, Any]]) -> go.Figure:
    """Per kernel launch shape: theoretical occupancy (colored by limiter) and waves."""
    ranks = list(range(len(rows)))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("theoretical occupancy (%)", "waves per launch (blocks / concurrent slots)"))
    limiters = [str(r.get("limiter") or "unknown") for r in rows]
    palette = {"warps": "#1f77b4", "blocks": "#ff7f0e", "registers": "#d62728", "shared_memory": "#9467bd",
               "shared memory": "#9467bd", "smem": "#9467bd"}
    for lim in dict.fromkeys(limiters):
        idx = [i for i, x in enumerate(limiters) if x == lim]
        fig.add_trace(go.Bar(x=[rows[i]["occupancy_pct"] for i in idx], y=idx, orientation="h",
                             name=f"limited by {plot_text(lim)}", marker={"color": palette.get(lim, "#7f7f7f")},
                             hovertext=[f"<b>{plot_text(rows[i]['name'], 120)}</b><br>"
                                        f"{rows[i]['occupancy_pct']:.1f}% ({plot_text(lim)})" for i in idx],
                             hoverinfo="text"), row=1, col=1)
    waves = [r.get("waves") for r in rows]
    fig.add_trace(go.Bar(x=[w if w is not None else 0 for w in waves], y=ranks, orientation="h", showlegend=False,
                         marker={"color": ["#e45756" if w is not None and w < 1 else "#54a24b" for w in waves]},
                         hovertext=[f"<b>{plot_text(r['name'], 120)}</b><br>{r.get('waves') or 0:.2f} waves"
                                    + (f", tail {r['tail_fraction']:.0%}" if r.get("tail_fraction") else "")
                                    for r in rows], hoverinfo="text"), row=1, col=2)
    fig.add_vline(x=1, line_dash="dot", line_color="#444", row=1, col=2)
    fig.update_yaxes(tickvals=ranks, ticktext=[plot_text(r["label"], 50) for r in rows], autorange="reversed",
                     row=1, col=1)
    fig.update_xaxes(range=[0, 100], row=1, col=1)
    fig.update_layout(barmode="overlay", legend={"orientation": "h", "y": -0.12})
    return _base_layout(fig, "Occupancy and waves per kernel", 140 + 24 * max(len(rows), 3))


def ranked_bars(rows: list[dict[str, Any]], series: list[tuple[str, str]], title: str, unit_scale: float = 1e6,
                unit: str = "ms") -> go.Figure:
    """Horizontal bars per row (e.g. per phase), one bar per ``(key, label)`` in ``series``."""
    ranks = list(range(len(rows)))
    fig = go.Figure()
    for i, (key, label) in enumerate(series):
        values = [(r.get(key) or 0) / unit_scale for r in rows]
        fig.add_trace(go.Bar(x=values, y=ranks, orientation="h", name=plot_text(label),
                             marker={"color": COLORS["NVTX"][0] if i == 0 else COLORS["kernels"][0]},
                             hovertext=[f"<b>{plot_text(r.get('name'), 120)}</b><br>{plot_text(label)}: "
                                        f"{v:,.3f} {unit}" for r, v in zip(rows, values, strict=True)],
                             hoverinfo="text"))
    fig.update_yaxes(tickvals=ranks, ticktext=[plot_text(r.get("name"), 50) for r in rows], autorange="reversed")
    fig.update_xaxes(title_text=unit)
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": 1.02, "x": 0.5, "yanchor": "bottom"})
    return _base_layout(fig, title, 110 + (18 + 12 * len(series)) * max(len(rows), 3))


def change_bars(rows: list[dict[str, Any]], title: str) -> go.Figure:
    """Per item change in percent (regressions red, improvements green)."""
    ranks = list(range(len(rows)))
    values = [r["change_pct"] for r in rows]
    fig = go.Figure(go.Bar(x=values, y=ranks, orientation="h",
                           marker={"color": ["#d62728" if v > 0 else "#2ca02c" for v in values]},
                           hovertext=[f"<b>{plot_text(r['name'], 120)}</b><br>{r['change_pct']:+.1f}%"
                                      + (f" ({plot_text(r['status'])})" if r.get("status") else "") for r in rows],
                           hoverinfo="text"))
    fig.update_yaxes(tickvals=ranks, ticktext=[plot_text(r["name"], 50) for r in rows], autorange="reversed")
    fig.update_xaxes(title_text="change vs baseline (%)", zeroline=True, zerolinecolor="#444")
    return _base_layout(fig, title, 90 + 24 * max(len(rows), 3))


def _wrap(label: str, width: int = 18) -> str:
    words, lines, line = plot_text(label, 60).split(), [], ""
    for w in words:
        if line and len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "<br>".join(lines + [line])


def _flow_layout(labels: dict[str, str], edges: list[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Columns by depth (edges that point back in first-seen order are loops), rows within a column."""
    order = {key: i for i, key in enumerate(labels)}
    depth = {key: 0 for key in labels}
    for key in labels:  # first-seen order is topological for forward edges
        for a, b in edges:
            if b == key and a in order and order[a] < order[key]:
                depth[key] = max(depth[key], depth[a] + 1)
    columns: dict[int, list[str]] = {}
    for key in labels:
        columns.setdefault(depth[key], []).append(key)
    pos = {}
    for col, keys in columns.items():
        for i, key in enumerate(keys):
            pos[key] = (float(col), (len(keys) - 1) / 2 - i)
    return pos


def flowchart(chart: dict[str, Any]) -> go.Figure:
    """The optimization flowchart as a diagram; a menu picks the kernel whose path is highlighted."""
    labels, edges, paths = chart["labels"], chart["edges"], chart["paths"]
    pos = _flow_layout(labels, edges)
    ex, ey = [], []
    for a, b in edges:
        ex += [pos[a][0], pos[b][0], None]
        ey += [pos[a][1], pos[b][1], None]
    keys = list(labels)

    def highlight(path: list[str]) -> tuple[list[Any], list[Any], list[str]]:
        hx, hy = [], []
        for a, b in pairwise(path):
            hx += [pos[a][0], pos[b][0], None]
            hy += [pos[a][1], pos[b][1], None]
        on = set(path)
        return hx, hy, ["#ff7f0e" if k in on else "#cfd8dc" for k in keys]

    names = list(paths)
    hx, hy, colors = highlight(paths[names[0]] if names else [])
    fig = go.Figure([
        go.Scatter(x=ex, y=ey, mode="lines", line={"color": "#b0bec5", "width": 2}, hoverinfo="skip",
                   showlegend=False),
        go.Scatter(x=hx, y=hy, mode="lines", line={"color": "#ff7f0e", "width": 5}, hoverinfo="skip",
                   name="path taken"),
        go.Scatter(x=[pos[k][0] for k in keys], y=[pos[k][1] for k in keys], mode="markers+text",
                   marker={"symbol": "square", "size": 22, "color": colors, "line": {"width": 1, "color": "#455a64"}},
                   text=[_wrap(labels[k]) for k in keys], textposition="bottom center", textfont={"size": 11},
                   hovertext=[plot_text(labels[k]) for k in keys], hoverinfo="text", showlegend=False),
    ])
    for a, b in edges:
        fig.add_annotation(x=pos[b][0], y=pos[b][1], ax=pos[a][0], ay=pos[a][1], xref="x", yref="y",
                           axref="x", ayref="y", showarrow=True, arrowhead=2, arrowsize=1.2, arrowcolor="#78909c",
                           standoff=12, startstandoff=12, text="")
    buttons = []
    for name in names[:25]:
        bx, by, bc = highlight(paths[name])
        buttons.append({"label": plot_text(name, 40), "method": "restyle",
                        "args": [{"x": [bx], "y": [by]}, [1]]})
        buttons[-1]["args"] = [{"x": [bx, [pos[k][0] for k in keys]], "y": [by, [pos[k][1] for k in keys]],
                                "marker.color": ["#ff7f0e", bc]}, [1, 2]]
    if buttons:
        fig.update_layout(updatemenus=[{"buttons": buttons, "x": 0.0, "y": 1.0, "xanchor": "left",
                                        "yanchor": "bottom", "direction": "down", "showactive": True,
                                        "pad": {"b": 6}}])
    ys = [p[1] for p in pos.values()] or [0]
    fig.update_xaxes(visible=False, range=[-0.5, max(p[0] for p in pos.values()) + 0.5])
    fig.update_yaxes(visible=False, range=[min(ys) - 0.8, max(ys) + 0.5])
    title = "Optimization flowchart: the path of the kernel picked in the menu is highlighted"
    fig = _base_layout(fig, title, 220 + 90 * (max(ys) - min(ys) + 1))
    fig.update_layout(legend={"orientation": "h", "x": 0.3, "y": 1.0, "yanchor": "bottom"},
                      margin={"t": 90})
    return fig
