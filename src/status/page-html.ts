/**
 * The status page: static HTML and a small script that reads the event
 * stream ("events", relative, so the page works under any prefix) and
 * redraws the tables from each snapshot. Values are set with textContent,
 * never parsed as HTML. Test hooks: `tr[data-plugin]`, `tr[data-endpoint][data-url]`,
 * `tr[data-method]` with `td[data-field]` cells, and `body[data-updates]`.
 */
export function statusPageHtml(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2433; }
  h1 { font-size: 1.25rem; margin: 0 0 .3rem; }
  #meta { color: #5b6475; margin-bottom: 1rem; }
  table { border-collapse: collapse; margin-bottom: 1.2rem; }
  th, td { border: 1px solid #c9d1e0; padding: .3rem .6rem; text-align: left; }
  th { background: #eef2f8; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.sub td:first-child { padding-left: 1.6rem; color: #5b6475; }
  .good { color: #0b6b2b; } .bad { color: #a4161a; } .warn { color: #9a5b00; }
  h2 { font-size: 1rem; margin: 1rem 0 .4rem; }
</style>
</head>
<body data-updates="0">
<h1>${escapeHtml(title)}</h1>
<div id="meta">connecting…</div>
<h2>Plugins and cluster instances</h2>
<table>
  <thead><tr><th>plugin / instance</th><th>source</th><th>where</th><th>state</th><th>generation</th>
  <th>health</th><th>circuit</th><th>restarts</th><th>in flight</th></tr></thead>
  <tbody id="plugins"></tbody>
</table>
<h2>Calls by method (rate over 10 s, latency over 60 s)</h2>
<table>
  <thead><tr><th>plugin</th><th>method</th><th>calls/s</th><th>calls</th><th>errors</th>
  <th>p50</th><th>p99</th></tr></thead>
  <tbody id="methods"></tbody>
</table>
<script>
"use strict";
var GOOD = { serving: 1, running: 1, closed: 1, true: 1 };
var BAD = { "not-serving": 1, failed: 1, open: 1, invalid: 1, false: 1 };
function cell(tr, field, value, cls) {
  var td = document.createElement("td");
  td.dataset.field = field;
  td.textContent = value === undefined || value === null ? "—" : String(value);
  if (cls) td.className = cls;
  tr.append(td);
}
function tone(value) {
  return GOOD[String(value)] ? "good" : BAD[String(value)] ? "bad" : "warn";
}
function ms(v) {
  if (v === undefined || v === null) return "—";
  return v < 1 ? (v * 1000).toFixed(0) + " µs" : v < 1000 ? v.toFixed(v < 10 ? 2 : 1) + " ms" : (v / 1000).toFixed(2) + " s";
}
function circuitOf(p) {
  if (p.endpoints.length === 0) return undefined;
  var counts = {};
  p.endpoints.forEach(function (e) { counts[e.circuit] = (counts[e.circuit] || 0) + 1; });
  return Object.keys(counts).map(function (k) { return counts[k] + " " + k; }).join(", ");
}
function render(snapshot) {
  var plugins = document.getElementById("plugins");
  var methods = document.getElementById("methods");
  var prows = [], mrows = [];
  snapshot.plugins.forEach(function (p) {
    var tr = document.createElement("tr");
    tr.dataset.plugin = p.name;
    cell(tr, "name", p.name);
    cell(tr, "source", p.source);
    cell(tr, "where", p.problem ? p.where + " — " + p.problem : p.where);
    cell(tr, "state", p.state, tone(p.state));
    cell(tr, "generation", p.generation, "num");
    cell(tr, "health", p.health, tone(p.health));
    cell(tr, "circuit", circuitOf(p));
    cell(tr, "restarts", p.restarts, "num");
    cell(tr, "inFlight", p.inFlight, "num");
    prows.push(tr);
    p.endpoints.forEach(function (e) {
      var sub = document.createElement("tr");
      sub.className = "sub";
      sub.dataset.plugin = p.name;
      sub.dataset.endpoint = e.id;
      sub.dataset.url = e.url;
      cell(sub, "name", e.id);
      cell(sub, "source", "instance");
      cell(sub, "where", e.url);
      var held = e.admission && e.admission !== "serving";
      cell(sub, "state", held ? e.admission + (e.reason ? ": " + e.reason : "") : e.healthy ? "healthy" : "unhealthy", held || !e.healthy ? "bad" : "good");
      cell(sub, "generation", e.protocolVersion !== undefined ? "v" + e.protocolVersion : undefined);
      cell(sub, "health", e.healthy ? "serving" : "not-serving", e.healthy ? "good" : "bad");
      cell(sub, "circuit", e.circuit, e.circuit === "closed" ? "good" : tone(e.circuit));
      cell(sub, "restarts", undefined);
      cell(sub, "inFlight", e.outstanding, "num");
      prows.push(sub);
    });
    p.methods.forEach(function (m) {
      var tr = document.createElement("tr");
      tr.dataset.plugin = p.name;
      tr.dataset.method = m.method;
      cell(tr, "plugin", p.name);
      cell(tr, "method", m.method);
      cell(tr, "callsPerSecond", m.callsPerSecond.toFixed(1), "num");
      cell(tr, "calls", m.calls, "num");
      cell(tr, "errors", m.errors, m.errors > 0 ? "num bad" : "num");
      cell(tr, "p50", ms(m.p50Ms), "num");
      cell(tr, "p99", ms(m.p99Ms), "num");
      mrows.push(tr);
    });
  });
  plugins.replaceChildren.apply(plugins, prows);
  methods.replaceChildren.apply(methods, mrows);
  document.getElementById("meta").textContent =
    snapshot.plugins.length + " plugin(s), updated " + new Date(snapshot.time).toLocaleTimeString();
  document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
}
var events = new EventSource("events");
events.onmessage = function (e) { render(JSON.parse(e.data)); };
events.addEventListener("failure", function (e) {
  document.getElementById("meta").textContent = "status failed: " + JSON.parse(e.data);
});
events.onerror = function () {
  document.getElementById("meta").textContent = "disconnected; retrying…";
};
</script>
</body>
</html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
