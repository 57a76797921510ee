"""The HTML report, opened in real headless Chromium (Debian `chromium`) through the DevTools pipe.

Each report is rendered from a real trace, loaded once in one browser, and checked for:
no console errors or exceptions, no network requests, every plot div holding a rendered
SVG, the findings table led by the top finding, a screenshot that is not blank, and
escaped trace strings (a crafted copy whose kernel name is HTML/JS runs no script).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from chromium import Browser, find_chromium, png_pixels
from paths import H200, NCU, PUBLIC

import traceview
from traceview.api import AnalyzeOptions
from traceview.report import extras, figures, timeline_view
from traceview.report.html import render_html, script_json, write_html
from traceview.report.htmlparts import plot_text

PUBLIC_TRACE = PUBLIC / "openhackathons-org__AI-Profiler__baseline_nvtx.CONVERTED.sqlite"
XSS_KERNEL = "<script>window.__xss=1;document.title='pwned';alert(1)</script><img src=x onerror=\"window.__xss=2\">"
XSS_NVTX = "</script><script>window.__xss=3</script>\u2028&amp;\"quoted\""


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.fail("chromium is not installed (scripts/test.sh installs it with apt-get)")
    with Browser(timeout_s=25) as b:
        yield b


def _xss_copy(tmp: Path) -> Path:
    """A copy of the baseline whose kernel name and an NVTX label are HTML/JS."""
    path = tmp / "xss.sqlite"
    shutil.copyfile(H200 / "h200_baseline.sqlite", path)
    with sqlite3.connect(path) as db:
        assert db.execute("UPDATE StringIds SET value = ? WHERE value = 'gelu_inplace'", (XSS_KERNEL,)).rowcount == 1
        assert db.execute("UPDATE NVTX_EVENTS SET text = ? WHERE text = 'prefill'", (XSS_NVTX,)).rowcount == 1
    return path


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """name -> (html path, analysis result) for every report the browser tests open."""
    tmp = tmp_path_factory.mktemp("html")
    cases = {
        "baseline": (H200 / "h200_baseline.sqlite", AnalyzeOptions(ncu=[NCU / "ncu_baseline_raw.csv"]), {}),
        "tp2": (H200 / "h200x2_tp_serial.sqlite", None, {}),
        "public": (PUBLIC_TRACE, None, {}),
        "public_binned": (PUBLIC_TRACE, None, {"max_timeline_events": 5_000}),
        "xss": (_xss_copy(tmp), None, {}),
    }
    out = {}
    for name, (trace, options, kw) in cases.items():
        result = traceview.analyze(traceview.load(trace), options=options)
        out[name] = (write_html(result, tmp / f"{name}.html", **kw), result)
    return out


@pytest.fixture(scope="module")
def opened(browser, reports):
    """name -> (PageLoad, selftest dict, page facts) after opening each report."""
    facts_js = """JSON.stringify({
        title: document.title, xss: window.__xss === undefined ? null : window.__xss,
        imgs: document.querySelectorAll('img').length, text: document.body.innerText,
        header: document.querySelector('header').innerText,
        first_finding: (document.querySelector('#tv-findings tbody tr') || {}).innerText || null,
        sections: Array.from(document.querySelectorAll('section.tv-section')).map(s => s.id),
        kernel_ticks: Array.from(document.querySelectorAll('#tv-fig-kernels .ytick text')).map(t => t.textContent)})"""
    out = {}
    for name, (path, _) in reports.items():
        load = browser.open(path)
        selftest = json.loads(browser.evaluate("document.getElementById('tv-selftest').textContent"))
        facts = json.loads(browser.evaluate(facts_js))
        facts["png"] = browser.screenshot(scale=0.4)
        if name == "tp2":
            facts["zoom"] = json.loads(browser.evaluate(ZOOM_JS, await_promise=True))
        if name == "baseline":
            facts["sort"] = json.loads(browser.evaluate(SORT_JS))
        out[name] = (load, selftest, facts)
    return out


ZOOM_JS = """(async function () {
    const gd = document.getElementById('tv-fig-timeline');
    const segs = () => gd.data.filter(t => t.meta === 'tv-seg').reduce((n, t) => n + t.x.filter(v => !isNaN(v)).length / 3, 0);
    const settle = () => new Promise(r => setTimeout(r, 300));
    const full = segs(), range = gd._fullLayout.xaxis.range.slice();
    await Plotly.relayout(gd, {'xaxis.range[0]': 181.5, 'xaxis.range[1]': 183.0}); await settle();
    const zoomed = segs();
    await Plotly.relayout(gd, {'xaxis.autorange': true}); await settle();
    return JSON.stringify({full: full, zoomed: zoomed, range: range, reset: gd._fullLayout.xaxis.range,
                           errors: window.__tvErrors});
})()"""

SORT_JS = """(function () {
    const t = document.getElementById('tv-kernels'), th = t.tHead.rows[0].cells[1];
    th.click(); th.click();  // instances: the first click sorts descending, the second ascending
    const asc = Array.from(t.tBodies[0].rows).map(r => Number(r.cells[1].dataset.sort));
    const box = document.querySelector('input[data-table="tv-kernels"]');
    box.value = 'gemv_bf16'; box.dispatchEvent(new Event('input'));
    const shown = Array.from(t.tBodies[0].rows).filter(r => r.style.display !== 'none').map(r => r.cells[0].innerText);
    return JSON.stringify({asc: asc, shown: shown});
})()"""


REPORTS = ["baseline", "tp2", "public", "public_binned", "xss"]


@pytest.mark.parametrize("name", REPORTS)
def test_report_opens_clean(name, opened):
    load, selftest, _ = opened[name]
    assert load.console_errors == [] and load.exceptions == [] and load.dialogs == []
    assert selftest["state"] == "ok" and selftest["errors"] == []
    assert load.requests == [load.url], "the report must not fetch anything"


@pytest.mark.parametrize("name", REPORTS)
def test_every_plot_is_rendered(name, opened, reports):
    _, selftest, facts = opened[name]
    html = reports[name][0].read_text(encoding="utf-8")
    spec = json.loads(html.split('id="tv-figures">', 1)[1].split("</script>", 1)[0])
    assert selftest["plots"] == len(spec["figures"]) >= 3
    assert selftest["rendered"] == selftest["plots"]
    assert {"findings", "timeline", "kernels", "phases"} <= set(facts["sections"])


@pytest.mark.parametrize("name", REPORTS)
def test_header_and_top_finding(name, opened, reports):
    _, _, facts = opened[name]
    result = reports[name][1]
    for gpu in result.gpus:
        assert (gpu["name"] or "unknown GPU") in facts["header"]
    assert str(result.trace.nsys_version or "?") in facts["header"]
    if result.findings:
        top = max(result.findings, key=lambda f: f["estimated_gain_ns"])
        assert top["title"] in facts["first_finding"] and top["rule_id"] in facts["first_finding"]
        assert "Top finding: " + top["title"] in facts["header"]
    else:
        assert facts["first_finding"] is None and "No findings" in facts["text"]


@pytest.mark.parametrize("name", REPORTS)
def test_screenshot_is_not_blank(name, opened):
    pixels = png_pixels(opened[name][2]["png"]).astype(float)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 300
    assert pixels.std() > 20
    assert len({tuple(p) for p in pixels[::4, ::4, :3].reshape(-1, 3).tolist()}) > 50


def test_optional_sections_follow_the_data(opened, reports):
    """Roofline, occupancy and flowchart appear exactly when their analyses produced data."""
    for name in REPORTS:
        data = reports[name][1].to_dict()
        sections = set(opened[name][2]["sections"])
        assert ("roofline" in sections) == bool(extras.roofline_points(data)[0] or extras.bound_rows(data))
        assert ("occupancy" in sections) == bool(extras.launch_rows(data))
        assert ("flowchart" in sections) == (extras.flowchart_graph(data) is not None)
    assert "roofline" in opened["baseline"][2]["sections"]  # --ncu gives measured points


def test_flowchart_is_drawn_whole_with_the_top_kernels_path(reports):
    flow = reports["baseline"][1].to_dict()["flowchart"]
    chart = extras.flowchart_graph({"flowchart": flow})
    assert list(chart["labels"]) == list(flow["nodes"])  # every node, also those no kernel reached
    fig = figures.flowchart(chart)
    lit = [k for k, c in zip(chart["labels"], fig.data[2].marker.color, strict=True) if c == "#ff7f0e"]
    assert sorted(lit) == sorted(flow["kernels"][0]["path"])


def test_xss_copy_shows_text_and_runs_nothing(opened):
    load, selftest, facts = opened["xss"]
    assert selftest["errors"] == [] and facts["xss"] is None and "pwned" not in facts["title"] and load.dialogs == []
    assert facts["imgs"] == 0
    assert XSS_KERNEL in facts["text"]                       # the kernel table shows it as text
    assert any(t.startswith("<script>window.__xss=1") for t in facts["kernel_ticks"])  # plotly label too
    assert "</script><script>window.__xss=3</script>" in facts["text"]  # the NVTX phase table


def test_large_trace_is_binned_and_says_so(reports, opened):
    result = reports["public_binned"][1]
    view = timeline_view.build(result.frames, result.trace.nvtx, result.trace.time_bounds[0], 5_000)
    assert view.aggregated and int(view.events.get_column("count").sum()) == view.total_events
    assert view.total_events == (result.frames["kernels"].height + result.frames["memcpy"].height
                                 + result.frames["memset"].height + result.trace.nvtx.height)
    assert f"This trace has {view.total_events:,} GPU and NVTX events" in opened["public_binned"][2]["text"]
    assert "merges them into time bins" not in opened["public"][2]["text"]


def test_timeline_has_one_row_per_device_stream(reports):
    result = reports["tp2"][1]
    view = timeline_view.build(result.frames, result.trace.nvtx, result.trace.time_bounds[0])
    streams = result.frames["kernels"].select("device_id", "stream_id").unique().height
    assert sum(r.startswith("GPU ") for r in view.rows) >= streams == 4
    assert view.rows[0].startswith("NVTX") and not view.aggregated
    assert view.total_events == 1168 + 384 + 4 + 25  # kernels, memcpy, memset, NVTX in this trace


def test_plotly_embedded_once_and_no_remote_resources(reports):
    from plotly.offline import get_plotlyjs

    html = reports["baseline"][0].read_text(encoding="utf-8")
    assert html.count(get_plotlyjs()[:200]) == 1
    assert "<script src" not in html and "<link rel=\"stylesheet\"" not in html
    assert "default-src 'none'" in html  # CSP: the browser refuses any fetch


def test_script_json_and_plot_text_escape():
    raw = json.dumps({"k": "</script><!--\u2028\u2029&"}, ensure_ascii=False)
    safe = script_json(raw)
    assert not any(c in safe for c in "<>&\u2028\u2029") and json.loads(safe) == json.loads(raw)
    assert plot_text("<b>x</b> & 'q'") == "&lt;b&gt;x&lt;/b&gt; &amp; 'q'"


def test_failed_render_leaves_no_file(tmp_path, monkeypatch, baseline_result):
    target = tmp_path / "report.html"
    target.write_text("previous report")

    def boom(*args, **kwargs):
        raise RuntimeError("render failed")

    monkeypatch.setattr(figures, "top_kernels", boom)
    with pytest.raises(RuntimeError):
        write_html(baseline_result, target)
    assert target.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    with pytest.raises(RuntimeError):
        write_html(baseline_result, tmp_path / "new.html")
    assert not (tmp_path / "new.html").exists()


def test_flowchart_figure_highlights_each_kernel_path():
    """The flowchart contract of issue 5: {target, target_met, kernels: [{name, bound, path, actions}]}."""
    flow = {"target": None, "target_met": None, "kernels": [
        {"name": "gemv_bf16_decode", "bound": "memory", "actions": ["quantize"],
         "path": ["capture", "longest kernels", "bottleneck type?", "memory-bound", "quantize", "fuse", "re-profile"]},
        {"name": "sgemm_tile64x64", "bound": "compute", "actions": ["raise intensity"],
         "path": ["capture", "longest kernels", "bottleneck type?", "compute-bound", "occupancy", "re-profile"]}]}
    chart = extras.flowchart_graph({"flowchart": flow})
    assert len(chart["labels"]) == 9 and ("bottleneck type?", "compute-bound") in chart["edges"]
    fig = figures.flowchart(chart)
    nodes = fig.data[2]
    highlighted = {t for t, c in zip(nodes.text, nodes.marker.color) if c == "#ff7f0e"}
    assert "memory-bound" in highlighted and "compute-bound" not in highlighted
    menu = fig.layout.updatemenus[0].buttons
    assert [b.label for b in menu] == ["gemv_bf16_decode", "sgemm_tile64x64"]
    assert "compute-bound" in {t for t, c in zip(nodes.text, menu[1].args[0]["marker.color"][1]) if c == "#ff7f0e"}


def _cli(*args: str):
    from typer.testing import CliRunner

    from traceview.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_report_with_baseline(tmp_path, browser):
    out = tmp_path / "cmp.html"
    proc = _cli("report", str(H200 / "h200_regressed.sqlite"), "-o", str(out),
                "--baseline", str(H200 / "h200_baseline.sqlite"))
    assert proc.exit_code == 0, proc.output
    load = browser.open(out)
    assert load.console_errors == [] and load.exceptions == []
    assert browser.evaluate("document.getElementById('tv-verdict').textContent") == "gate verdict: FAIL"
    rows = browser.evaluate("Array.from(document.querySelectorAll('#tv-cmp-items tbody tr')).map(r => r.innerText)")
    assert any("reduce_small_grid" in r and "regression" in r for r in rows)
    assert browser.evaluate("document.querySelectorAll('#tv-fig-compare svg.main-svg').length") > 0


def test_cli_analyze_html_and_bad_input(tmp_path):
    out = tmp_path / "a.html"
    proc = _cli("analyze", str(H200 / "h200_baseline.sqlite"), "--html", str(out), "--format", "json")
    assert proc.exit_code == 0, proc.output
    assert out.stat().st_size > 1_000_000 and "traceview report: h200_baseline.sqlite" in out.read_text()
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database")
    proc = subprocess.run([sys.executable, "-m", "traceview", "report", str(bad), "-o", str(tmp_path / "bad.html")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad.html").exists()


def test_table_sort_and_search_work_offline(opened, reports):
    got = opened["baseline"][2]["sort"]
    instances = sorted(reports["baseline"][1].kernels.get_column("instances").to_list())
    assert got["asc"] == instances and len(set(instances)) > 1
    assert got["shown"] == ["gemv_bf16_decode"]


def test_timeline_zoom_redraws_at_the_new_scale(opened):
    """Zooming into 1.5 ms of the 2-GPU trace separates events merged at full view; reset restores it."""
    zoom = opened["tp2"][2]["zoom"]
    assert zoom["errors"] == []
    assert zoom["zoomed"] > zoom["full"] > 0
    assert zoom["reset"][0] <= zoom["range"][0] + 1 and zoom["reset"][1] >= zoom["range"][1] - 1


def test_render_is_deterministic(baseline_result):
    assert render_html(baseline_result) == render_html(baseline_result)


def test_report_lists_every_kernel_even_with_top(baseline_trace):
    result = traceview.analyze(baseline_trace, top=3)
    page = render_html(result)
    assert f"{result.kernels.height:,} kernels" in page and result.kernels.height > 3
    assert all(f">{name}<" in page for name in result.kernels.get_column("name").to_list())
