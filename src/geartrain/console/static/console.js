"use strict";
// The geartrain console: reads /api/, listens to /api/events, acts with POST.
const $ = (id) => document.getElementById(id);
const points = [];
const MAX_POINTS = 300;

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.floor(seconds % 60) + " s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
}

function when(epoch) {
  return epoch ? new Date(epoch * 1000).toLocaleString() : "–";
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 2500);
}

async function get(path) {
  const reply = await fetch(path, { headers: { Accept: "application/json" } });
  if (!reply.ok) throw new Error(path + ": " + reply.status);
  return reply.json();
}

async function act(path, label) {
  const headers = { "X-Geartrain-Console": "1" };
  const token = sessionStorage.getItem("geartrain-token");
  if (token) headers.Authorization = "Bearer " + token;
  let reply = await fetch(path, { method: "POST", headers });
  if (reply.status === 401) {
    const given = prompt("This action needs the console token (--http-token):");
    if (!given) return;
    sessionStorage.setItem("geartrain-token", given);
    return act(path, label);
  }
  const body = await reply.json().catch(() => ({}));
  toast(reply.ok ? label : (body.error || "refused: " + reply.status));
  refresh();
}

function button(text, path, label, danger) {
  const b = el("button", { textContent: text, className: danger ? "danger" : "" });
  b.addEventListener("click", () => act(path, label));
  return b;
}

function fill(id, rows, columns, empty) {
  const body = $(id).tBodies[0];
  const cells = rows.map((row) => el("tr", {}, ...row.map((c) => {
    const td = el("td");
    if (c && typeof c === "object" && !(c instanceof Node) && "v" in c) {
      td.className = c.cls || "";
      td.append(c.v instanceof Node ? c.v : String(c.v ?? ""));
      if (c.title) td.title = c.title;
    } else {
      td.append(c instanceof Node ? c : String(c ?? ""));
    }
    return td;
  })));
  if (!cells.length) cells.push(el("tr", {}, el("td", { colSpan: columns, className: "empty", textContent: empty })));
  body.replaceChildren(...cells);
}

const num = (v) => ({ v, cls: "num" });
const payload = (v) => ({ v, cls: "payload opt", title: v });
const unique = (v) => ({ v, cls: "unique opt", title: v });
const enc = encodeURIComponent;

function progress(job) {
  const [n, d] = job.progress;
  if (!d) return "–";
  const pct = Math.min(100, Math.round((100 * n) / d));
  const bar = el("span", { className: "bar" }, el("i"));
  bar.firstChild.style.width = pct + "%";
  return el("span", {}, bar, ` ${n}/${d} (${pct}%)`);
}

function showStatus(s) {
  $("version").textContent = "v" + s.version;
  const c = s.counts;
  $("c-processed").textContent = c.processed.toLocaleString();
  $("c-failed").textContent = c.failed.toLocaleString();
  $("c-busy").textContent = s.busy_workers;
  $("c-queued").textContent = c.queued.toLocaleString();
  $("c-running").textContent = c.running.toLocaleString();
  $("c-scheduled").textContent = c.scheduled.toLocaleString();
  $("c-retries").textContent = c.retries.toLocaleString();
  $("c-dead").textContent = c.dead === null ? "–" : c.dead.toLocaleString();
  $("failed-card").hidden = c.dead === null;
  const store = s.store;
  const pending = "pending" in store ? `, ${store.pending} pending` : "";
  const storeState = "state" in store
    ? `${store.state}${store.reason ? ` (${store.reason})` : ""}${pending}` : "–";
  const facts = [
    ["version", s.version], ["pid", s.pid], ["uptime", ago(s.uptime_seconds)],
    ["connections", s.connections], ["workers", s.workers], ["functions", s.functions],
    ["jobs", s.jobs], ["memory", bytes(s.memory_bytes)], ["queue", store.description],
    ["store", storeState], ["durability", s.durability || "–"], ["ready", s.ready ? "yes" : "no"],
  ];
  if (store.primary) facts.splice(9, 0, ["store primary", store.primary]);
  $("facts").replaceChildren(...facts.map(([k, v]) => el("div", {}, el("dt", { textContent: k }), el("dd", { textContent: v }))));
}

function showFunctions(list) {
  fill("functions", list.map((f) => {
    const path = `/api/functions/${enc(f.function)}/`;
    const name = el("span", {}, el("code", { textContent: f.function }));
    if (f.paused) name.append(" ", el("span", { className: "tag paused", textContent: "paused" }));
    const actions = el("span", {}, f.paused
      ? button("Resume", path + "resume", "resumed " + f.function)
      : button("Pause", path + "pause", "paused " + f.function));
    if (!f.total && !f.workers) actions.append(" ", button("Drop", path + "drop", "dropped " + f.function, true));
    return [
      name, num(f.queued.high), num(f.queued.normal), num(f.queued.low),
      num(f.scheduled), num(f.running), num(f.workers), num(ago(f.oldest_queued_seconds)), actions,
    ];
  }), 9, "no functions yet");
}

function showWorkers(list) {
  fill("workers", list.map((w) => {
    const doing = w.jobs.length
      ? el("span", {}, ...w.jobs.map((j) => el("span", { className: "tag running", textContent: `${j.function} ${j.handle} · ${ago(j.running_seconds)}` })))
      : el("span", { className: "tag idle", textContent: w.sleeping ? "idle (asleep)" : "idle" });
    return [
      el("code", { textContent: w.client_id }), w.address,
      el("span", {}, ...w.functions.map((f) => el("span", { className: "tag", textContent: f }))),
      doing, ago(w.connected_seconds),
    ];
  }), 5, "no workers connected");
}

function showJobs(list) {
  fill("jobs", list.map((j) => [
    el("code", { textContent: j.handle }), j.function,
    el("span", { className: "tag " + (j.state === "running" ? "running" : "idle"), textContent: j.state, title: j.worker ? "on " + j.worker : "" }),
    progress(j), num(ago(j.age_seconds)), { v: j.priority, cls: "opt" }, unique(j.unique), payload(j.data_preview),
    button("Cancel", `/api/jobs/${enc(j.handle)}/cancel`, "cancelled " + j.handle, true),
  ]), 9, "no running or queued jobs");
}

function showScheduled(list) {
  fill("scheduled", list.map((j) => [
    el("code", { textContent: j.handle }), j.function, when(j.due), num(j.attempts), payload(j.data_preview),
    button("Cancel", `/api/jobs/${enc(j.handle)}/cancel`, "cancelled " + j.handle, true),
  ]), 6, "nothing scheduled");
}

function showFailed(reply) {
  fill("failed", reply.failed.map((f) => [
    el("code", { textContent: f.handle }), f.function, num(f.attempts), when(f.failed_at), f.reason, payload(f.data_preview),
    el("span", {}, button("Retry", `/api/failed/${enc(f.handle)}/retry`, "retrying " + f.handle), " ",
      button("Delete", `/api/failed/${enc(f.handle)}/delete`, "deleted " + f.handle, true)),
  ]), 7, "no failed jobs");
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const [status, functions, workers, running, queued, scheduled] = await Promise.all([
      get("/api/status"), get("/api/functions"), get("/api/workers"),
      get("/api/jobs?state=running&limit=100"), get("/api/jobs?state=queued&limit=100"),
      get("/api/jobs?state=scheduled&limit=100"),
    ]);
    showStatus(status);
    showFunctions(functions.functions || functions);
    showWorkers(workers.workers);
    showJobs(running.jobs.concat(queued.jobs));
    showScheduled(scheduled.jobs);
    if (status.counts.dead !== null) showFailed(await get("/api/failed?limit=100"));
  } catch (error) {
    $("live").textContent = "offline";
    $("live").className = "live off";
  } finally {
    refreshing = false;
  }
}

function niceCeiling(value) {
  // The axis top: 4, 8, 20, 40, 80, 200 ... so the four gridlines get round labels.
  if (value <= 4) return 4;
  const magnitude = Math.pow(10, Math.floor(Math.log10(value / 4)));
  for (const step of [1, 2, 5, 10]) if (value <= 4 * step * magnitude) return 4 * step * magnitude;
  return 40 * magnitude;
}

function drawChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const left = 44, bottom = height - 18, top = 8;
  const peak = Math.max(0, ...points.map((p) => Math.max(p[1], p[2], p[3])));
  const max = niceCeiling(peak);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#6b7280";
  g.strokeStyle = "#e5e7eb";
  for (let i = 0; i <= 4; i++) {
    const y = bottom - ((bottom - top) * i) / 4;
    g.beginPath(); g.moveTo(left, y); g.lineTo(width, y); g.stroke();
    g.fillText(((max * i) / 4).toLocaleString(), 4, y + 4);
  }
  g.fillText(`last ${Math.round(points.length / 60) || "<1"} min`, left, height - 3);
  const styles = { 1: "#7c3aed", 2: "#16a34a", 3: "#dc2626" };
  const step = (width - left) / Math.max(1, MAX_POINTS - 1);
  for (const k of [1, 2, 3]) {
    g.strokeStyle = styles[k];
    g.lineWidth = 2;
    g.beginPath();
    points.forEach((p, i) => {
      const x = left + (MAX_POINTS - points.length + i) * step;
      const y = bottom - ((bottom - top) * p[k]) / max;
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  }
  canvas.dataset.points = String(points.length);
  canvas.dataset.total = String(points.reduce((sum, p) => sum + p[1] + p[2] + p[3], 0));
}

function listen() {
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { $("live").textContent = "live"; $("live").className = "live on"; });
  source.addEventListener("error", () => { $("live").textContent = "reconnecting"; $("live").className = "live off"; });
  source.addEventListener("tick", (event) => {
    const message = JSON.parse(event.data);
    points.push(message.point);
    if (points.length > MAX_POINTS) points.shift();
    showStatus(message.status);
    drawChart();
    refresh();
  });
}

document.addEventListener("DOMContentLoaded", async () => {
  for (const b of document.querySelectorAll("[data-all]")) {
    const action = b.dataset.all;
    b.addEventListener("click", () => {
      if (action === "retry" || confirm("Delete every failed job?")) act(`/api/failed/${action}`, action + " all failed jobs");
    });
  }
  try {
    const history = await get("/api/history");
    points.push(...history.points.slice(-MAX_POINTS));
  } catch (error) { /* the chart starts empty */ }
  drawChart();
  await refresh();
  listen();
  window.addEventListener("resize", drawChart);
});
