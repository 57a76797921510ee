"""The report's "Communication" section, from ``extra["communication"]`` (docs/communication.md)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from traceview.report.htmlparts import Section, esc, fmt_ns, generic_table, plot_div, plot_text

STATE_COLORS = {"exposed": "#d62728", "overlapped": "#9467bd", "compute_only": "#1f5fa6"}


def overlap_figure(devices: list[dict[str, Any]]) -> go.Figure:
    """Stacked bars per device: exposed communication, overlapped, compute only (ms)."""
    fig = go.Figure()
    labels = [f"GPU {d['device_id']}" for d in devices]
    for state, color in STATE_COLORS.items():
        fig.add_bar(y=labels, x=[d[f"{state}_ns"] / 1e6 for d in devices], orientation="h", marker_color=color,
                    name=state.replace("_", " "), hovertemplate=f"{state}: %{{x:.3f}} ms<extra></extra>")
    fig.update_layout(barmode="stack", xaxis_title="ms", legend={"orientation": "h", "y": -0.25},
                      title={"text": plot_text("Communication vs compute per device"), "x": 0.01},
                      height=140 + 30 * len(devices), margin={"l": 10, "r": 20, "t": 46, "b": 40}, template=None)
    return fig


def _device_rows(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("device_id", "comm_ns", "exposed_ns", "overlapped_ns", "compute_only_ns", "exposed_pct")
    return [{**{k: d[k] for k in keys}, "comm_streams": ", ".join(map(str, d["comm_streams"])),
             "shared_streams": ", ".join(map(str, d["shared_streams"])) or "\u2013",
             "peer_copies": d["peer_copies"]["count"]} for d in devices]


def communication(data: dict[str, Any]) -> Section | None:
    """None when the trace has no communication report (one GPU, no peer copies)."""
    comm = data.get("communication")
    if not comm or not comm.get("devices"):
        return None
    devices = comm["devices"]
    link = comm.get("link") or {}
    html = (f'<p class="tv-muted">link: {esc(link.get("name", "unknown"))}; exposed = communication running while '
            "no compute kernel runs on that GPU</p>" + plot_div("tv-fig-comm")
            + generic_table("tv-comm-devices", _device_rows(devices), "per device"))
    collectives = [{"device_id": d["device_id"], **c} for d in devices for c in d["collectives"]]
    if collectives:
        html += "<h3>Collectives</h3>" + generic_table("tv-comm-collectives", collectives)
    steps = comm.get("steps")
    if steps:
        html += (f"<h3>Per {esc(steps['name'])} ({steps['count']} steps, medians)</h3>"
                 + generic_table("tv-comm-steps", steps["per_device"]))
    skew = comm.get("skew")
    if skew:
        html += (f"<h3>Rank skew</h3><p>median skew {esc(fmt_ns(skew['med_skew_ns']))} over "
                 f"{skew['collectives']} collectives</p>" + generic_table("tv-comm-skew", skew["stragglers"]))
    return Section("communication", "Communication", html, {"tv-fig-comm": overlap_figure(devices)})
