/* traceview report: draws the embedded figures, makes tables sortable and searchable.
   Works offline; records its own state in <pre id="tv-selftest"> for automated checks. */
(function () {
  "use strict";
  var errors = [], timings = {}, started = 0;
  window.__tvErrors = errors;  /* read by automated checks after interactions */
  window.addEventListener("error", function (e) { errors.push(String(e.message || e)); });
  window.addEventListener("unhandledrejection", function (e) { errors.push(String(e.reason)); });

  function cellValue(row, col, numeric) {
    var cell = row.children[col];
    if (!cell) { return numeric ? -Infinity : ""; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
    if (numeric) { var v = parseFloat(raw); return isNaN(v) ? -Infinity : v; }
    return raw.toLowerCase();
  }

  function makeSortable(table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, col) {
      function sort() {
        var numeric = th.getAttribute("data-type") === "num";
        var dir = th.getAttribute("data-dir") === (numeric ? "desc" : "asc") ? (numeric ? "asc" : "desc")
                                                                             : (numeric ? "desc" : "asc");
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir);
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var sign = dir === "asc" ? 1 : -1;
        rows.sort(function (a, b) {
          var x = cellValue(a, col, numeric), y = cellValue(b, col, numeric);
          return x < y ? -sign : x > y ? sign : 0;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
    });
  }

  function makeSearchable(input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    if (!table) { return; }
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        r.style.display = !q || r.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
      });
    });
  }

  var TYPED = { f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array,
                u2: Uint16Array, i1: Int8Array, u1: Uint8Array };
  function decode(v) {  /* plotly's base64 typed-array spec {dtype, bdata} -> typed array */
    if (!v || v.bdata === undefined) { return v; }
    var bin = atob(v.bdata), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    return new TYPED[v.dtype](bytes.buffer);
  }
  function fmtUs(us) { return us >= 1000 ? (us / 1000).toFixed(3) + " ms" : us.toFixed(2) + " \u00b5s"; }

  /* Timeline traces (meta "tv-seg") arrive as events: x = start (ms), customdata = duration (us),
     y = row, text = optional escaped label. segments() draws those in [x0, x1] as line segments,
     merging events less than a pixel apart and keeping each segment at least a pixel long, so
     the drawing cost is bounded by the plot width at every zoom level. */
  function segments(ev, x0, x1, px) {
    var xs = [], ys = [], tx = [], n = ev.s.length, i = 0;
    while (i < n) {
      var s = ev.s[i], e = s + ev.d[i] / 1000, row = ev.y[i];
      if (e < x0 || s > x1) { i++; continue; }
      var count = 1, busy = ev.d[i], j = i + 1;
      while (j < n && ev.y[j] === row && ev.s[j] - e < px && ev.s[j] <= x1) {
        e = Math.max(e, ev.s[j] + ev.d[j] / 1000); busy += ev.d[j]; count++; j++;
      }
      e = Math.max(e, s + px);
      var label = count === 1 ? (ev.t ? ev.t[i] + "<br>" : "") + fmtUs(ev.d[i])
                              : count + " events, merged at this zoom<br>" + fmtUs(busy) + " busy in total";
      xs.push(s, (s + e) / 2, e, NaN); ys.push(row, row, row, row); tx.push(label, label, label, "");
      i = j;
    }
    return { x: xs, y: ys, text: tx };
  }

  function prepareTimeline(div, fig) {
    var evs = [], lo = Infinity, hi = -Infinity;
    fig.data.forEach(function (t, i) {
      if (t.meta !== "tv-seg") { return; }
      var ev = { i: i, s: decode(t.x), d: decode(t.customdata), y: decode(t.y), t: t.text || null };
      for (var k = 0; k < ev.s.length; k++) {
        lo = Math.min(lo, ev.s[k]); hi = Math.max(hi, ev.s[k] + ev.d[k] / 1000);
      }
      evs.push(ev);
    });
    if (!evs.length) { return null; }
    var px = (hi - lo) / Math.max(div.clientWidth - 200, 300);
    evs.forEach(function (ev) {
      var seg = segments(ev, -Infinity, Infinity, px), t = fig.data[ev.i];
      t.x = seg.x; t.y = seg.y; t.text = seg.text; delete t.customdata;
    });
    return { evs: evs, lo: lo, hi: hi };
  }

  function redrawTimeline(div, tl, ev) {
    if (!ev) { return; }
    if (ev["xaxis.autorange"]) {  /* reset: the full range, then redraw at that zoom */
      var pad = (tl.hi - tl.lo) * 0.01;
      Plotly.relayout(div, { "xaxis.range": [tl.lo - pad, tl.hi + pad] });
      return;
    }
    if (ev["xaxis.range[0]"] === undefined && ev["xaxis.range"] === undefined) { return; }
    var xa = div._fullLayout.xaxis, x0 = Number(xa.range[0]), x1 = Number(xa.range[1]);
    var px = (x1 - x0) / Math.max(xa._length, 1), upd = { x: [], y: [], text: [] }, idx = [];
    tl.evs.forEach(function (e) {
      var seg = segments(e, x0 - px, x1 + px, px);
      upd.x.push(seg.x); upd.y.push(seg.y); upd.text.push(seg.text); idx.push(e.i);
    });
    Plotly.restyle(div, upd, idx);
  }

  function drawFigures() {
    var spec = JSON.parse(document.getElementById("tv-figures").textContent);
    var config = spec.config || {};
    var jobs = Object.keys(spec.figures).map(function (id) {
      var fig = spec.figures[id], t0 = performance.now();
      fig.layout = fig.layout || {};
      fig.layout.template = spec.template;
      var div = document.getElementById(id);
      if (!div) { errors.push("no element for figure " + id); return Promise.resolve(); }
      var tl = prepareTimeline(div, fig);
      return Plotly.newPlot(div, fig.data, fig.layout, config).then(function () {
        timings[id] = Math.round(performance.now() - t0);
        if (tl) { div.on("plotly_relayout", function (ev) { redrawTimeline(div, tl, ev); }); }
      });
    });
    return Promise.all(jobs).then(function () { return jobs.length; });
  }

  function report(state) {
    var plots = document.querySelectorAll(".tv-plot");
    var drawn = Array.prototype.filter.call(plots, function (p) {
      return p.querySelector("svg.main-svg, canvas") !== null;
    }).length;
    var out = { state: state, plots: plots.length, rendered: drawn, errors: errors, figure_ms: timings,
                script_start_ms: started, ms: Math.round(performance.now()) };
    var pre = document.getElementById("tv-selftest");
    pre.textContent = JSON.stringify(out);
    document.body.setAttribute("data-tv-done", "1");
  }

  function start() {
    started = Math.round(performance.now());
    Array.prototype.forEach.call(document.querySelectorAll("table.tv-table"), makeSortable);
    Array.prototype.forEach.call(document.querySelectorAll("input.tv-search"), makeSearchable);
    var run;
    try {
      run = typeof Plotly === "undefined" ? Promise.reject(new Error("plotly.js missing")) : drawFigures();
    } catch (e) { run = Promise.reject(e); }
    run.then(function () { report("ok"); }, function (e) { errors.push(String(e)); report("error"); });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
