/* traceview report: draws the embedded figures, makes tables sortable and searchable.
   Works offline; records its own state in <pre id="tv-selftest"> for automated checks. */
(function () {
  "use strict";
  var errors = [], timings = {}, started = 0;
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

  function drawFigures() {
    var spec = JSON.parse(document.getElementById("tv-figures").textContent);
    var config = spec.config || {};
    var jobs = Object.keys(spec.figures).map(function (id) {
      var fig = spec.figures[id], t0 = performance.now();
      fig.layout = fig.layout || {};
      fig.layout.template = spec.template;
      var div = document.getElementById(id);
      if (!div) { errors.push("no element for figure " + id); return Promise.resolve(); }
      return Plotly.newPlot(div, fig.data, fig.layout, config).then(function () {
        timings[id] = Math.round(performance.now() - t0);
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
