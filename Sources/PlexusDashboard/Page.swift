/// The dashboard page: one HTML document with its styles and script inline,
/// shipped inside the binary (no CDN, no network). It listens to
/// /api/stream (Server-Sent Events) and draws every panel from the latest
/// snapshot; rates are differences between two snapshots, computed here.
enum Page {
    static let html = head + style + body + script

    static let head = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Plexus</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='6' fill='%2334a0ff'/%3E%3C/svg%3E">

"""#

    static let style = #"""
<style>
:root { color-scheme: light dark;
  --bg:#0f1318; --panel:#171c23; --panel2:#1d232c; --line:#2a323d; --text:#e6ebf1; --dim:#8a96a6; --accent:#34a0ff;
  --ok:#2fbf71; --warn:#f0b429; --bad:#f25f5c; --run:#34a0ff; --idle:#56606d; --shadow:0 1px 2px rgba(0,0,0,.4); }
:root[data-theme=light] { --bg:#f3f5f8; --panel:#ffffff; --panel2:#f7f9fb; --line:#dfe4ea; --text:#16202b; --dim:#5f6b7a;
  --accent:#0a6fd6; --ok:#16924f; --warn:#b7791f; --bad:#d64541; --run:#0a6fd6; --idle:#a0aab5; --shadow:0 1px 2px rgba(20,30,40,.08); }
@media (prefers-color-scheme: light) { :root:not([data-theme=dark]) { --bg:#f3f5f8; --panel:#ffffff; --panel2:#f7f9fb; --line:#dfe4ea;
  --text:#16202b; --dim:#5f6b7a; --accent:#0a6fd6; --ok:#16924f; --warn:#b7791f; --bad:#d64541; --run:#0a6fd6; --idle:#a0aab5;
  --shadow:0 1px 2px rgba(20,30,40,.08); } }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text); font:13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.mono, td.num, .pid { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size:12px; }
header { position:sticky; top:0; z-index:5; display:flex; align-items:center; gap:18px; padding:10px 18px;
  background:var(--panel); border-bottom:1px solid var(--line); }
header h1 { font-size:15px; margin:0; letter-spacing:.3px; display:flex; align-items:center; gap:8px; }
header h1 .logo { width:14px; height:14px; border-radius:50%; background:var(--accent); box-shadow:0 0 0 3px color-mix(in srgb, var(--accent) 25%, transparent); }
.kpis { display:flex; gap:6px; flex:1; flex-wrap:wrap; }
.kpi { padding:3px 10px; border-radius:6px; background:var(--panel2); border:1px solid var(--line); white-space:nowrap; }
.kpi b { font-size:14px; margin-right:4px; font-variant-numeric: tabular-nums; }
.kpi.bad b { color:var(--bad); } .kpi.warn b { color:var(--warn); }
#conn { display:flex; align-items:center; gap:6px; color:var(--dim); white-space:nowrap; }
#conn i { width:8px; height:8px; border-radius:50%; background:var(--bad); display:inline-block; }
#conn.live i { background:var(--ok); }
button { font:inherit; color:var(--text); background:var(--panel2); border:1px solid var(--line); border-radius:6px; padding:3px 10px; cursor:pointer; }
button:hover { border-color:var(--accent); }
main { display:grid; grid-template-columns: minmax(0,1fr) minmax(0,1fr); gap:12px; padding:12px 18px 24px; }
section { background:var(--panel); border:1px solid var(--line); border-radius:10px; box-shadow:var(--shadow); min-width:0; display:flex; flex-direction:column; }
section.wide { grid-column: 1 / -1; }
section h2 { font-size:12px; text-transform:uppercase; letter-spacing:.8px; color:var(--dim); margin:0; padding:10px 14px;
  border-bottom:1px solid var(--line); display:flex; align-items:center; gap:10px; }
section h2 .sub { text-transform:none; letter-spacing:0; font-weight:400; margin-left:auto; }
.scroll { overflow:auto; }
table { border-collapse:collapse; width:100%; }
th { text-align:left; font-weight:500; color:var(--dim); font-size:11px; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; position:sticky; top:0; background:var(--panel); }
td { padding:5px 8px; border-bottom:1px solid color-mix(in srgb, var(--line) 60%, transparent); white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
tr:last-child td { border-bottom:none; }
tr.builtin td { opacity:.6; } tr.builtin td:first-child b { font-weight:500; }
.pill { display:inline-block; padding:0 8px; border-radius:10px; font-size:11px; line-height:18px; font-weight:600;
  background:color-mix(in srgb, var(--c) 18%, transparent); color:var(--c); }
.s-active,.s-done,.s-completed,.s-closed { --c:var(--ok); } .s-running,.s-queued,.s-approved { --c:var(--run); }
.s-suspended,.s-draining,.s-waiting,.s-half-open,.s-awaiting_approval,.s-registering { --c:var(--warn); }
.s-terminated,.s-failed,.s-dead,.s-open,.s-cancelled { --c:var(--bad); } .s-pending,.s-skipped,.s-none,.s-stopped { --c:var(--idle); }
.kind { color:var(--dim); font-size:11px; margin-left:6px; }
.dim { color:var(--dim); } .bad { color:var(--bad); } .warn { color:var(--warn); }
.spark { vertical-align:middle; }
.split { display:grid; grid-template-columns: 250px minmax(0,1fr) minmax(0,400px); min-height:280px; max-height:480px; }
.runs { border-right:1px solid var(--line); overflow:auto; }
.stepbox { border-left:1px solid var(--line); }
.run { padding:8px 12px; border-bottom:1px solid var(--line); cursor:pointer; }
.run:hover { background:var(--panel2); } .run.sel { background:color-mix(in srgb, var(--accent) 12%, transparent); box-shadow: inset 3px 0 0 var(--accent); }
.run .top { display:flex; align-items:center; gap:8px; } .run .name { font-weight:600; flex:1; overflow:hidden; text-overflow:ellipsis; }
.bar { height:4px; border-radius:2px; background:var(--line); margin-top:6px; overflow:hidden; } .bar i { display:block; height:100%; background:var(--ok); }
.graphbox { overflow:auto; padding:8px; }
.steps td { vertical-align:top; } .steps td.err { white-space:normal; color:var(--bad); min-width:140px; }
td.when { width:1%; vertical-align:top; }
.split.traces { grid-template-columns: 300px minmax(0,1fr); }
.span-row { display:grid; grid-template-columns: minmax(0,300px) minmax(0,150px) minmax(0,1fr) 80px; gap:8px; align-items:center; padding:2px 12px; font-size:12px; }
.span-row:hover { background:var(--panel2); } .span-row .nm { overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.span-row .who { color:var(--dim); overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.span-row .track { position:relative; height:12px; } .span-row .track i { position:absolute; top:2px; height:8px; border-radius:2px; min-width:2px; background:var(--run); }
.span-row.k-wait .track i { background:var(--warn); } .span-row.k-reply .track i, .span-row.k-route .track i { background:var(--idle); }
.span-row.bad .track i { background:var(--bad); } .span-row .dur { text-align:right; font-variant-numeric:tabular-nums; }
.clamp { display:-webkit-box; -webkit-line-clamp:2; -webkit-box-orient:vertical; overflow:hidden; }
svg text { fill:var(--text); font-size:11px; }
.node rect { fill:var(--panel2); stroke:var(--line); }
.step rect { stroke-width:2; rx:7; }
.step[data-state=done] rect { stroke:var(--ok); fill:color-mix(in srgb, var(--ok) 16%, var(--panel)); }
.step[data-state=running] rect { stroke:var(--run); fill:color-mix(in srgb, var(--run) 16%, var(--panel)); animation:pulse 1.2s ease-in-out infinite; }
.step[data-state=failed] rect, .step[data-state=cancelled] rect { stroke:var(--bad); fill:color-mix(in srgb, var(--bad) 16%, var(--panel)); }
.step[data-state=awaiting_approval] rect, .step[data-state=approved] rect, .step[data-state=waiting] rect { stroke:var(--warn); fill:color-mix(in srgb, var(--warn) 16%, var(--panel)); }
.step[data-state=pending] rect, .step[data-state=skipped] rect { stroke:var(--idle); fill:var(--panel2); }
.step[data-state=skipped] { opacity:.55; }
@keyframes pulse { 50% { stroke-opacity:.35; } }
.edge { stroke:var(--dim); fill:none; } .edge.hot { stroke:var(--accent); }
.topo .label { fill:var(--dim); font-size:11px; paint-order:stroke; stroke:var(--panel); stroke-width:3px; }
.topo g.n rect { fill:var(--panel2); stroke:var(--line); rx:6; } .topo g.n.host rect { stroke:var(--accent); }
.topo g.n.off rect { stroke:var(--bad); }
.topo.focus .edge:not(.near), .topo.focus .label:not(.near) { opacity:.12; }
.topo.many .label { display:none; } .topo.many.focus .label.near { display:inline; }
.tail { max-height:330px; } .tail td { font-size:12px; } .tail .data { white-space:normal; word-break:break-word; color:var(--dim); font-weight:400; }
.filters { display:flex; gap:6px; padding:8px 12px; border-bottom:1px solid var(--line); }
input[type=search] { flex:1; font:inherit; color:var(--text); background:var(--panel2); border:1px solid var(--line); border-radius:6px; padding:3px 8px; }
.tabs { display:flex; gap:4px; } .tabs button.on { border-color:var(--accent); color:var(--accent); }
.empty { padding:18px; color:var(--dim); text-align:center; }
details summary { cursor:pointer; } details .hist { margin:4px 0 2px 14px; color:var(--dim); white-space:normal; }
</style>
</head>

"""#

    static let body = #"""
<body>
<header>
  <h1><span class="logo"></span>Plexus</h1>
  <div class="kpis" id="kpis"></div>
  <div id="conn"><i></i><span>connecting…</span></div>
  <button id="theme" title="Switch between dark and light">◐ Theme</button>
</header>
<main>
  <section class="wide" id="agents-panel">
    <h2>Agents <span class="sub dim" id="agents-sub"></span></h2>
    <div class="scroll"><table id="agents"><thead><tr>
      <th>Agent</th><th>State</th><th class="num">PID</th><th>Restarts · last exit</th>
      <th class="num">Mailbox</th><th class="num">In flight</th><th class="num">Handled</th><th class="num">Failed</th>
      <th class="num">Rate</th><th>Last minute</th><th class="num">p50 · p99</th>
      <th class="num">CPU</th><th class="num">Memory</th><th>Circuit</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section class="wide" id="workflows-panel">
    <h2>Workflows <span class="sub dim" id="runs-sub"></span></h2>
    <div class="split"><div class="runs" id="runs"></div>
      <div class="graphbox" id="graph"></div><div class="scroll stepbox"><table class="steps" id="steps"></table></div></div>
  </section>
  <section id="topology-panel">
    <h2>Topology <span class="sub dim">who sends to whom · messages/s (hover an agent for its own)</span></h2>
    <div class="graphbox" id="topology"></div>
  </section>
    <section id="events-panel">
      <h2>Events <span class="sub dim" id="events-sub"></span></h2>
      <div class="filters"><input type="search" id="event-filter" placeholder="filter: kind or text (workflow. task.dead …)"></div>
      <div class="scroll tail"><table id="events"><tbody></tbody></table></div>
    </section>
    <section class="wide" id="traces-panel">
      <h2>Traces <span class="sub dim" id="traces-sub"></span></h2>
      <div class="split traces"><div class="runs" id="trace-list"></div><div class="scroll" id="trace-tree"></div></div>
    </section>
    <section id="tasks-panel">
      <h2>Tasks <span class="sub dim" id="tasks-sub"></span></h2>
      <div class="scroll tail" id="tasks"></div>
    </section>
    <section id="problems-panel">
      <h2>Dead letters &amp; audit <span class="sub tabs"><button id="tab-dl" class="on">Dead letters</button><button id="tab-audit">Audit</button></span></h2>
      <div class="filters"><input type="search" id="problem-filter" placeholder="filter: agent, reason…"></div>
      <div class="scroll tail" id="problems"></div>
    </section>
</main>

"""#

    static let script = #"""
<script>
"use strict";
const $ = id => document.getElementById(id);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const dash = "–";
const state = { snap: null, prev: null, history: {}, edgeRates: {}, events: [], selectedRun: null, problemTab: "dl", lastAt: 0 };

// Theme: the system's unless the user picked one (remembered).
const savedTheme = localStorage.getItem("plexus-theme");
if (savedTheme) document.documentElement.dataset.theme = savedTheme;
$("theme").onclick = () => {
  const dark = getComputedStyle(document.documentElement).getPropertyValue("--bg").trim() !== "#f3f5f8";
  const t = dark ? "light" : "dark";
  document.documentElement.dataset.theme = t;
  localStorage.setItem("plexus-theme", t);
};

function fmtInt(n) { return n == null ? dash : n.toLocaleString("en-US"); }
function fmtRate(r) { return r == null ? dash : r >= 100 ? Math.round(r).toLocaleString("en-US") + "/s" : r >= 10 ? r.toFixed(1) + "/s" : r.toFixed(2) + "/s"; }
function fmtUs(us) { return us == null ? dash : us >= 1e6 ? (us / 1e6).toFixed(2) + " s" : us >= 1e3 ? (us / 1e3).toFixed(1) + " ms" : Math.round(us) + " µs"; }
function fmtBytes(b) { if (b == null) return dash; const u = ["B","KiB","MiB","GiB"]; let i = 0; while (b >= 1024 && i < 3) { b /= 1024; i++; } return b.toFixed(i ? 1 : 0) + " " + u[i]; }
function fmtAgo(ns) { if (!ns) return dash; const s = (Date.now() - ns / 1e6) / 1000; return s < 60 ? Math.max(0, Math.round(s)) + "s ago" : s < 3600 ? Math.round(s / 60) + "m ago" : Math.round(s / 3600) + "h ago"; }
function fmtTime(ns) { const d = new Date(ns / 1e6); return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0"); }
function pill(s) { const v = s ?? "none"; return `<span class="pill s-${esc(v)}">${esc(v.replace("_", " "))}</span>`; }

function spark(values, w = 90, h = 20) {
  if (!values || values.length < 2) return `<svg class="spark" width="${w}" height="${h}"></svg>`;
  const max = Math.max(...values, 1e-9), step = w / (values.length - 1);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`).join(" ");
  return `<svg class="spark" width="${w}" height="${h}"><polyline points="${pts}" fill="none" stroke="var(--accent)" stroke-width="1.5"/></svg>`;
}

// MARK: the stream
function connect() {
  const es = new EventSource("api/stream");
  es.addEventListener("snapshot", e => { onSnapshot(JSON.parse(e.data)); $("conn").className = "live"; });
  es.addEventListener("events", e => onEvents(JSON.parse(e.data)));
  es.onerror = () => { $("conn").className = ""; $("conn").lastChild.textContent = "reconnecting…"; };
}

function onSnapshot(s) {
  state.prev = state.snap; state.snap = s;
  const dt = state.prev ? (s.at_unix_ns - state.prev.at_unix_ns) / 1e9 : 0;
  const before = {};
  for (const a of state.prev?.agents ?? []) before[a.name] = a;
  for (const a of s.agents) {
    const h = state.history[a.name] ??= { rate: [], p99: [] };
    const b = before[a.name];
    a.rate = b && dt > 0 ? Math.max(0, a.handled - b.handled) / dt : null;
    if (a.rate != null) { h.rate.push(a.rate); if (h.rate.length > 60) h.rate.shift(); }
  }
  const edgesBefore = {};
  for (const e of state.prev?.topology ?? []) edgesBefore[e.from + "→" + e.to] = e.messages;
  for (const e of s.topology) { const b = edgesBefore[e.from + "→" + e.to]; e.rate = dt > 0 && b != null ? (e.messages - b) / dt : dt > 0 ? e.messages / dt : 0; }
  $("conn").lastChild.textContent = "live · " + fmtTime(s.at_unix_ns);
  drawKpis(s); drawAgents(s); drawRuns(s); drawTopology(s); drawTraces(s); drawTasks(s); drawProblems();
}

function onEvents(list) {
  state.events.push(...list);
  if (state.events.length > 300) state.events.splice(0, state.events.length - 300);
  drawEvents();
}

// MARK: header
function drawKpis(s) {
  const up = s.agents.filter(a => a.state === "active").length;
  const rate = s.agents.reduce((t, a) => t + (a.rate ?? 0), 0);
  const c = s.tasks.counts ?? {};
  const running = s.runs.filter(r => r.state === "running").length;
  const k = (v, label, cls = "") => `<span class="kpi ${cls}"><b>${v}</b>${label}</span>`;
  $("kpis").innerHTML = k(`${up}/${s.agents.length}`, "agents up", up < s.agents.length ? "warn" : "") +
    k(fmtRate(rate), "handled") + k(fmtInt((c.queued ?? 0) + (c.waiting ?? 0)), "tasks queued") +
    k(fmtInt(c.running ?? 0), "running") + k(fmtInt(c.dead ?? 0), "dead tasks", c.dead ? "bad" : "") +
    k(running, "runs in progress") + k(fmtInt(s.dead_letters.length), "dead letters", s.dead_letters.length ? "bad" : "");
}

// MARK: agents
function drawAgents(s) {
  // The host's own agents (builtin) after the plugins' and clients'; each group by rate.
  const rows = [...s.agents].sort((a, b) => (a.kind === "builtin") - (b.kind === "builtin") || (b.rate ?? 0) - (a.rate ?? 0) || a.name.localeCompare(b.name));
  $("agents-sub").textContent = `${s.agents.filter(a => a.kind !== "builtin").length} agents and ${s.agents.filter(a => a.kind === "builtin").length} of the host's · sorted by rate`;
  $("agents").tBodies[0].innerHTML = rows.map(a => {
    const h = state.history[a.name];
    return `<tr data-agent="${esc(a.name)}" class="${a.kind === "builtin" ? "builtin" : ""}">
      <td title="${esc(a.capabilities.join(", "))}${a.confinement ? "\nconfined by " + esc(a.confinement) : ""}"><b>${esc(a.name)}</b><span class="kind">${esc(a.kind)}</span></td>
      <td>${pill(a.state)}</td><td class="num pid">${a.pid ?? dash}</td>
      <td><span class="${a.restarts ? "warn" : "dim"}">${a.restarts}</span>${a.last_exit ? ` <span class="bad">· ${esc(a.last_exit)}</span>` : ""}</td>
      <td class="num">${fmtInt(a.queued)}</td><td class="num">${fmtInt(a.in_flight)}</td>
      <td class="num handled">${fmtInt(a.handled)}</td><td class="num ${a.failed ? "bad" : ""}">${fmtInt(a.failed)}</td>
      <td class="num rate">${fmtRate(a.rate)}</td><td>${spark(h?.rate)}</td>
      <td class="num">${a.handle_p50_us == null && a.handle_p99_us == null ? dash : `${fmtUs(a.handle_p50_us)} <span class="dim">·</span> ${fmtUs(a.handle_p99_us)}`}</td>
      <td class="num">${a.cpu_seconds == null ? dash : a.cpu_seconds.toFixed(2) + " s"}</td><td class="num">${fmtBytes(a.resident_bytes)}</td>
      <td>${a.circuit ? pill(a.circuit) : `<span class="dim">${dash}</span>`}</td></tr>`;
  }).join("");
}

// MARK: workflows
function drawRuns(s) {
  const runs = s.runs;
  $("runs-sub").textContent = runs.length ? `${runs.length} latest runs` : "";
  if (!runs.length) { $("runs").innerHTML = `<div class="empty">No workflow runs yet.<br><span class="mono">plexus workflow run FILE.yaml</span></div>`; $("graph").innerHTML = ""; $("steps").innerHTML = ""; return; }
  if (!runs.some(r => r.id === state.selectedRun)) state.selectedRun = (runs.find(r => r.state === "running") ?? runs[0]).id;
  $("runs").innerHTML = runs.map(r => {
    const done = r.steps.filter(x => x.state === "done" || x.state === "skipped").length;
    return `<div class="run ${r.id === state.selectedRun ? "sel" : ""}" data-run="${esc(r.id)}" data-state="${esc(r.state)}">
      <div class="top"><span class="name">${esc(r.workflow)}</span>${pill(r.state)}</div>
      <div class="dim mono">${esc(r.id.slice(0, 12))} · ${fmtAgo(r.created_unix_ns)} · ${done}/${r.steps.length}</div>
      <div class="bar"><i style="width:${r.steps.length ? 100 * done / r.steps.length : 0}%;${r.state === "failed" ? "background:var(--bad)" : ""}"></i></div></div>`;
  }).join("");
  for (const el of $("runs").querySelectorAll(".run")) el.onclick = () => { state.selectedRun = el.dataset.run; drawRuns(state.snap); };
  const run = runs.find(r => r.id === state.selectedRun);
  drawWorkflowGraph(run);
  $("runs-sub").innerHTML = (runs.length === 1 ? "1 run" : `${runs.length} latest runs`) + (run.trace ? ` · <button id="run-trace">Trace of this run</button>` : "");
  if (run.trace) $("run-trace").onclick = () => { pickTrace(run.trace); $("traces-panel").scrollIntoView({ behavior: "smooth" }); };
  $("steps").innerHTML = `<thead><tr><th>Step</th><th>State</th><th class="num">Tries</th><th>Last failure · why it waits</th></tr></thead><tbody>` +
    run.steps.map(x => `<tr data-step="${esc(x.name)}"><td><b>${esc(x.name)}</b><div class="dim mono">${esc(x.capability ?? x.kind)}</div></td><td>${pill(x.state)}</td>
      <td class="num">${x.attempts ?? dash}</td>
      <td class="err" title="${esc(x.waiting ?? x.last_error ?? x.error ?? "")}"><div class="clamp">${x.waiting ? `<span class="warn">waiting: ${esc(x.waiting)}</span>` : esc(x.last_error ?? x.error ?? "")}</div></td></tr>`).join("") + "</tbody>";
}

// Layered layout: a node's layer is the longest path to it from a root;
// within a layer, nodes keep the workflow's order. Top to bottom, as
// `plexus workflow graph` draws it.
function drawWorkflowGraph(run) {
  const g = run.graph;
  if (!g) { $("graph").innerHTML = `<div class="empty">The run's workflow no longer reads.</div>`; return; }
  const byName = {}; run.steps.forEach(x => byName[x.name] = x);
  const layer = {}; g.nodes.forEach(n => layer[n.name] = 0);
  for (let i = 0; i < g.nodes.length; i++) for (const e of g.edges) layer[e.to] = Math.max(layer[e.to], layer[e.from] + 1);
  const layers = [];
  g.nodes.forEach(n => (layers[layer[n.name]] ??= []).push(n));
  const W = 150, H = 44, GX = 18, GY = 30;
  const widest = Math.max(...layers.map(l => l.length));
  const width = Math.max(widest * (W + GX), W + GX), height = layers.length * (H + GY) + 8;
  const pos = {};
  layers.forEach((l, y) => { const off = (width - l.length * (W + GX)) / 2 + GX / 2; l.forEach((n, x) => pos[n.name] = { x: off + x * (W + GX), y: 8 + y * (H + GY) }); });
  let out = `<svg width="100%" viewBox="0 0 ${width} ${height}" style="max-width:${width}px;display:block;margin:auto"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="var(--dim)"/></marker></defs>`;
  for (const e of g.edges) {
    const a = pos[e.from], b = pos[e.to]; if (!a || !b) continue;
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y, my = (y1 + y2) / 2;
    out += `<path class="edge" ${e.when ? 'stroke-dasharray="4 3"' : ""} d="M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2 - 2}" marker-end="url(#arrow)"/>`;
    if (e.when) out += `<text class="label" x="${(x1 + x2) / 2 + 4}" y="${my}">if ${esc(e.when.length > 22 ? e.when.slice(0, 21) + "…" : e.when)}<title>${esc(e.when)}</title></text>`;
  }
  for (const n of g.nodes) {
    const p = pos[n.name], x = byName[n.name] ?? {}, st = x.state ?? "pending";
    const lines = n.text.split("\n");
    const detail = x.items_total != null ? `${x.items_done}/${x.items_total} items` : x.iterations != null ? `ran ${x.iterations} of ≤${x.max}`
      : x.attempts > 1 ? `attempt ${x.attempts}` : (lines[1] ?? "");
    out += `<g class="step" data-step="${esc(n.name)}" data-state="${esc(st)}"><title>${esc(n.text)}${x.error ? "\n" + esc(x.error) : ""}</title>
      <rect x="${p.x}" y="${p.y}" width="${W}" height="${H}"/>
      <text x="${p.x + 10}" y="${p.y + 18}" font-weight="600">${esc(lines[0].slice(0, 20))}</text>
      <text x="${p.x + 10}" y="${p.y + 34}" class="label">${esc(detail.slice(0, 24))}</text>
      <text x="${p.x + W - 10}" y="${p.y + 18}" text-anchor="end" class="label">${esc(st === "done" ? "✓" : st === "failed" ? "✗" : st === "cancelled" ? "⊘" : st === "running" ? "●" : st === "waiting" ? "⏸" : "")}</text></g>`;
  }
  $("graph").innerHTML = out + "</svg>";
}

// MARK: topology
// The host ("plexus": the scheduler, workflows and socket callers) in the
// middle; agents on rings around it, sorted by name, each ring holding as
// many as fit its circumference at a node's diagonal apart, so no two
// boxes overlap (checked below, and spread further if they would).
function layoutTopology(names, widthOf, H) {
  const diag = Math.max(...names.map(n => Math.hypot(widthOf(n), H)), 60) + 10;
  for (let spread = 1; ; spread += 0.25) {
    const pos = {}, rings = [];
    // The first ring large enough for up to 18 boxes: one ring while they fit.
    let r = Math.max(diag * spread * 1.2, Math.min(names.length, 18) * diag * spread / (2 * Math.PI)), i = 0;
    while (i < names.length) {
      const cap = Math.max(1, Math.floor(2 * Math.PI * r / (diag * spread)));
      const ring = names.slice(i, i + cap); rings.push(ring); i += ring.length;
      ring.forEach((n, k) => { const t = -Math.PI / 2 + 2 * Math.PI * k / ring.length + (rings.length % 2 ? 0 : Math.PI / ring.length);
        pos[n] = { x: r * Math.cos(t), y: r * Math.sin(t) }; });
      r += diag * spread;
    }
    const all = Object.keys(pos);
    let clash = false;
    for (let a = 0; a < all.length && !clash; a++) for (let b = a + 1; b < all.length; b++) {
      const p = pos[all[a]], q = pos[all[b]];
      if (Math.abs(p.x - q.x) < (widthOf(all[a]) + widthOf(all[b])) / 2 + 6 && Math.abs(p.y - q.y) < H + 6) { clash = true; break; }
    }
    if (!clash || spread > 4) return { pos, radius: r - diag * spread };
  }
}

function drawTopology(s) {
  const host = "plexus";
  // Every agent but the host's own, which appear only once they carry traffic.
  const names = s.agents.filter(a => a.kind !== "builtin").map(a => a.name).filter(n => n !== host).sort();
  for (const e of s.topology) for (const n of [e.from, e.to]) if (n !== host && !names.includes(n)) names.push(n);
  // Many agents: the panel takes the page's width, and rates show on hover.
  $("topology-panel").classList.toggle("wide", names.length > 16);
  const H = 24, widthOf = n => Math.min(150, 16 + n.length * 6.6);
  const { pos, radius } = layoutTopology(names, widthOf, H);
  pos[host] = { x: 0, y: 0 };
  const padX = 85, padY = 30, sizeX = 2 * (radius + padX), sizeY = 2 * (radius + padY);
  const off = sizeX / 2, offY = sizeY / 2;
  const agent = {}; s.agents.forEach(a => agent[a.name] = a);
  const maxRate = Math.max(...s.topology.map(e => e.rate), 1e-9);
  let out = `<svg class="topo ${s.topology.length > 14 ? "many" : ""}" width="100%" viewBox="0 0 ${sizeX} ${sizeY}" style="max-height:${names.length > 16 ? 640 : 400}px;display:block"><defs><marker id="tarrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="var(--accent)"/></marker></defs>`;
  for (const e of s.topology) {
    const a = pos[e.from], b = pos[e.to]; if (!a || !b || e.from === e.to) continue;
    const hot = e.rate > 0, w = hot ? 1 + 3 * Math.sqrt(e.rate / maxRate) : 1;
    // Stop the line at the target box's edge, so the arrow shows.
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const cut = Math.min(Math.abs((widthOf(e.to) / 2 + 3) * len / (dx || 1e-9)), Math.abs((H / 2 + 3) * len / (dy || 1e-9)));
    const x2 = b.x - dx / len * cut, y2 = b.y - dy / len * cut;
    out += `<line class="edge ${hot ? "hot" : ""}" data-from="${esc(e.from)}" data-to="${esc(e.to)}" x1="${a.x + off}" y1="${a.y + offY}" x2="${x2 + off}" y2="${y2 + offY}" stroke-width="${w.toFixed(1)}" ${hot ? 'marker-end="url(#tarrow)"' : ""}><title>${esc(e.from)} → ${esc(e.to)}: ${fmtInt(e.messages)} messages</title></line>`;
    // The label halfway, beside the line (on its left, seen from the sender).
    const mx = (a.x + x2) / 2 + off - dy / len * 10, my = (a.y + y2) / 2 + offY + dx / len * 10 + 4;
    out += `<text class="label" data-from="${esc(e.from)}" data-to="${esc(e.to)}" x="${mx}" y="${my}" text-anchor="middle">${hot ? fmtRate(e.rate) : fmtInt(e.messages) + (e.messages === 1 ? " msg" : " msgs")}</text>`;
  }
  for (const n of [host, ...names]) {
    const p = pos[n], w = n === host ? 70 : widthOf(n), a = agent[n];
    const cls = n === host ? "host" : a && a.state !== "active" ? "off" : "";
    out += `<g class="n ${cls}" data-node="${esc(n)}"><rect x="${p.x + off - w / 2}" y="${p.y + offY - H / 2}" width="${w}" height="${H}"/>
      <text x="${p.x + off}" y="${p.y + offY + 4}" text-anchor="middle">${esc(n.length > 21 ? n.slice(0, 20) + "…" : n)}</text><title>${esc(n)}</title></g>`;
  }
  $("topology").innerHTML = out + "</svg>";
  const svg = $("topology").firstChild;
  for (const g of svg.querySelectorAll("g.n")) {
    g.onmouseenter = () => { svg.classList.add("focus"); for (const el of svg.querySelectorAll(`[data-from="${CSS.escape(g.dataset.node)}"],[data-to="${CSS.escape(g.dataset.node)}"]`)) el.classList.add("near"); };
    g.onmouseleave = () => { svg.classList.remove("focus"); for (const el of svg.querySelectorAll(".near")) el.classList.remove("near"); };
  }
  if (!s.topology.length) $("topology").insertAdjacentHTML("beforeend", `<div class="empty">No messages between agents yet.</div>`);
}

// MARK: traces
// The recent traces come with each snapshot; a picked one's span tree is
// read once from /api/traces/ID (and again only when picked again).
function drawTraces(s) {
  const t = s.traces;
  if (!t) return;
  const st = t.status ?? {};
  $("traces-sub").textContent = st.enabled === false ? "tracing is off (tracing.enabled in plexus.yaml)"
    : `${fmtInt(st.recorded)} spans recorded · ${fmtInt(st.dropped)} overwritten · ring of ${fmtInt(st.capacity)}`;
  const list = [...(t.traces ?? [])].reverse();
  $("trace-list").innerHTML = list.length ? list.map(x => `<div class="run ${x.trace === state.trace?.trace ? "sel" : ""}" data-trace="${esc(x.trace)}">
      <div class="top"><span class="name">${esc(x.root)}</span><span class="dim mono">${TraceDur(x.duration_ns)}</span></div>
      <div class="dim mono">${esc(x.trace.slice(0, 12))} · ${x.spans} spans · ${fmtAgo(x.start_unix_ns)}</div></div>`).join("")
    : `<div class="empty">No traces yet.</div>`;
  for (const el of $("trace-list").querySelectorAll(".run")) el.onclick = () => pickTrace(el.dataset.trace);
  if (!state.trace) $("trace-tree").innerHTML = `<div class="empty">Pick a trace, or a workflow run's “Trace of this run”, to see where its messages went.</div>`;
}

function TraceDur(ns) { return ns < 1e3 ? ns + " ns" : ns < 1e6 ? Math.round(ns / 1e3) + " µs" : ns < 1e9 ? (ns / 1e6).toFixed(2) + " ms" : (ns / 1e9).toFixed(2) + " s"; }

async function pickTrace(id) {
  const r = await fetch("api/traces/" + encodeURIComponent(id));
  const t = await r.json();
  state.trace = t;
  for (const el of $("trace-list").querySelectorAll(".run")) el.classList.toggle("sel", el.dataset.trace === id);
  if (!t.spans || !t.spans.length) { $("trace-tree").innerHTML = `<div class="empty">Trace ${esc(id)} is not in the ring (never recorded, or overwritten).</div>`; return; }
  const t0 = Math.min(...t.spans.map(x => x.start_unix_ns));
  const end = Math.max(...t.spans.map(x => x.start_unix_ns + x.duration_ns));
  const total = Math.max(end - t0, 1);
  $("trace-tree").innerHTML = `<div class="span-row dim"><span>trace ${esc(t.trace)} · ${t.spans.length} spans</span><span>who</span><span></span><span class="dur">${TraceDur(total)}</span></div>` +
    t.spans.map(x => `<div class="span-row k-${esc(x.kind)} ${x.status !== "OK" ? "bad" : ""}" data-span="${esc(x.span)}" title="${esc(x.kind)} ${esc(x.name)}${x.status !== "OK" ? " · " + esc(x.status) : ""}">
      <span class="nm" style="padding-left:${x.depth * 14}px"><b>${esc(x.kind)}</b> ${esc(x.name)}${x.attempt ? " #" + x.attempt : ""}</span>
      <span class="who">${esc(x.kind === "route" && x.sender ? x.sender + " → " + x.agent : x.agent)}</span>
      <span class="track"><i style="left:${(100 * (x.start_unix_ns - t0) / total).toFixed(2)}%;width:${(100 * x.duration_ns / total).toFixed(2)}%"></i></span>
      <span class="dur mono">${TraceDur(x.duration_ns)}</span></div>`).join("");
}

// MARK: tasks
function drawTasks(s) {
  const t = s.tasks, c = t.counts ?? {};
  $("tasks-sub").textContent = `${fmtInt(c.completed ?? 0)} completed`;
  const groups = {};
  for (const q of t.queued) { const k = q.capability + "\u0000" + q.priority; (groups[k] ??= { cap: q.capability, prio: q.priority, n: 0, waiting: q.waiting }).n++; }
  const order = { critical: 0, high: 1, normal: 2, low: 3 };
  const rows = Object.values(groups).sort((a, b) => order[a.prio] - order[b.prio] || b.n - a.n);
  let out = `<table><thead><tr><th>Queued: capability</th><th>Priority</th><th class="num">Tasks</th></tr></thead><tbody>` +
    (rows.length ? rows.map(g => `<tr><td class="mono">${esc(g.cap)}${g.waiting ? `<div class="warn">${esc(g.waiting)}</div>` : ""}</td><td>${esc(g.prio)}</td><td class="num">${g.n}</td></tr>`).join("")
      : `<tr><td colspan="3" class="dim">none queued</td></tr>`) + `</tbody></table>`;
  out += `<table><thead><tr><th>Running</th><th>Agent</th><th class="num">Attempt</th></tr></thead><tbody>` +
    (t.running.length ? t.running.map(r => `<tr><td class="mono">${esc(r.capability)}</td><td>${esc(r.agent ?? dash)}</td><td class="num">${r.attempts}/${r.max_attempts}</td></tr>`).join("")
      : `<tr><td colspan="3" class="dim">none running</td></tr>`) + `</tbody></table>`;
  out += `<table><thead><tr><th>Dead-lettered</th></tr></thead><tbody>` +
    (t.dead.length ? t.dead.map(d => `<tr><td><details><summary><span class="mono">${esc(d.capability)}</span> <span class="dim">${esc(d.id.slice(0, 12))} · ${d.attempts} attempts</span><div class="bad" style="white-space:normal">${esc(d.error ?? "")}</div></summary>
      ${(d.attempt_history ?? []).map(h => `<div class="hist">#${h.attempt} ${esc(h.agent ?? dash)} · ${esc(h.outcome)} · ${h.ms} ms · ${esc(h.detail)}</div>`).join("")}</details></td></tr>`).join("")
      : `<tr><td class="dim">none</td></tr>`) + `</tbody></table>`;
  $("tasks").innerHTML = out;
}

// MARK: events, dead letters, audit
$("event-filter").oninput = drawEvents;
$("problem-filter").oninput = drawProblems;
$("tab-dl").onclick = () => { state.problemTab = "dl"; drawProblems(); };
$("tab-audit").onclick = () => { state.problemTab = "audit"; drawProblems(); };

function drawEvents() {
  const f = $("event-filter").value.trim().toLowerCase();
  const shown = state.events.filter(e => !f || e.kind.toLowerCase().startsWith(f) || JSON.stringify(e).toLowerCase().includes(f)).slice(-200).reverse();
  $("events-sub").textContent = `${shown.length} shown · live`;
  $("events").tBodies[0].innerHTML = shown.map(e => {
    const cls = /dead|fail/.test(e.kind) ? "bad" : /retry|waiting/.test(e.kind) ? "warn" : "";
    return `<tr><td class="mono dim when">${fmtTime(e.at_unix_ns)}</td><td class="${cls}"><b>${esc(e.kind)}</b><div class="data">${esc(e.subject)} ${esc(typeof e.data === "string" ? e.data : JSON.stringify(e.data)).slice(0, 240)}</div></td></tr>`;
  }).join("") || `<tr><td class="empty">No events yet.</td></tr>`;
}

function drawProblems() {
  const s = state.snap; if (!s) return;
  $("tab-dl").className = state.problemTab === "dl" ? "on" : ""; $("tab-audit").className = state.problemTab === "audit" ? "on" : "";
  const f = $("problem-filter").value.trim().toLowerCase();
  const list = (state.problemTab === "dl" ? s.dead_letters : s.audit).filter(x => !f || JSON.stringify(x).toLowerCase().includes(f)).slice().reverse();
  $("problems").innerHTML = list.length ? `<table><tbody>` + list.map(x => state.problemTab === "dl"
      ? `<tr><td class="mono dim when">${fmtTime(x.at_unix_ns)}</td><td><b>${esc(x.sender)}</b> → <b>${esc(x.target)}</b> <span class="dim">${esc(x.kind)}</span><div class="bad" style="white-space:normal">${esc(x.reason)}</div></td></tr>`
      : `<tr><td class="mono dim when">${fmtTime(x.at_unix_ns)}</td><td><b>${esc(x.holder)}</b> refused <b>${esc(x.action)}</b> ${esc(x.name)}<div class="bad" style="white-space:normal">${esc(x.reason)}</div></td></tr>`).join("") + `</tbody></table>`
    : `<div class="empty">${state.problemTab === "dl" ? "No dead letters." : "No refusals."}</div>`;
}

connect();
</script>
</body>
</html>
"""#
}
