// The dashboard: live counts, the chart of the last minutes, what needs attention, the server.
import { $, FLAG_TEXT, ago, bytes, count, el, enc, frame, table, tag } from "./ui.js";
import { api, get } from "./api.js";

export const CHART_SECONDS = 300; // the chart's x axis: one point a second
export const points = [];

// -- dashboard -----------------------------------------------------------------

const COUNTERS = [
  ["processed", "processed", null], ["failed", "failed", null, "bad"], ["busy", "busy workers", "#/busy"],
  ["queued", "enqueued", "#/jobs/queued"], ["running", "running", "#/jobs/running"],
  ["scheduled", "scheduled", "#/jobs/scheduled"], ["retries", "retries", "#/jobs/retrying"],
  ["dead", "dead", "#/jobs/failed", "bad"],
];

let lastStatus = null;

export function dashboard(view) {
  const counters = el("section", { className: "counts", ariaLabel: "counts" }, ...COUNTERS.map(([key, label, href, cls]) => {
    const inner = [el("b", { id: "c-" + key, textContent: "–" }), el("span", {}, label)];
    return href ? el("a", { className: "count " + (cls || ""), href }, ...inner) : el("div", { className: "count " + (cls || "") }, ...inner);
  }));
  const minutes = CHART_SECONDS / 60;
  const chart = el("section", { className: "card" },
    el("h2", {}, el("span", { id: "chart-title" }, `Jobs per second, last ${minutes} minutes`),
      el("span", { className: "legend" }, el("i", { className: "k-sub" }), "submitted", el("i", { className: "k-ok" }), "completed", el("i", { className: "k-bad" }), "failed")),
    el("canvas", { id: "chart", ariaLabel: `jobs per second over the last ${minutes} minutes`, role: "img", "data-span": CHART_SECONDS }));
  const attention = el("section", { className: "card" }, el("h2", {}, "Needs attention"), el("div", { id: "flags" }));
  const server = el("section", { className: "card" }, el("h2", {}, "Server"), el("dl", { id: "facts", className: "facts" }));
  frame(view, "Dashboard", counters, chart, attention, server);
  if (lastStatus) showStatus(lastStatus);
  drawChart();
  return {
    update: async () => {
      if (!lastStatus) showStatus(await get("/api/status")); // before the first tick
      const list = await api.functions();
      const flagged = list.filter((f) => f.flags.length || f.paused);
      $("flags").replaceChildren(flagged.length ? table([
        ["function", (f) => el("a", { href: "#/jobs/queued?function=" + enc(f.function) }, f.function)],
        ["flags", (f) => el("span", {}, ...[...(f.paused ? ["paused"] : []), ...f.flags].map((x) => tag(FLAG_TEXT[x] || x, "warn")))],
        ["queued", (f) => count(f.queued.total), "num"], ["workers", (f) => count(f.workers), "num"],
        ["oldest", (f) => ago(f.oldest_age), "num"],
      ], flagged, "", "flags") : el("p", { className: "muted" }, "Every function with jobs has a worker, no job has waited long, none is paused."));
    },
  };
}

export function showStatus(s) {
  lastStatus = s;
  $("version").textContent = "v" + s.version;
  if (!$("c-processed")) return;
  const c = s.counts;
  const values = { ...c, busy: s.busy_workers };
  for (const [key] of COUNTERS) $("c-" + key).textContent = values[key] === null || values[key] === undefined ? "–" : count(values[key]);
  const store = s.store;
  const pending = "pending" in store ? `, ${store.pending} pending` : "";
  const storeState = "state" in store ? `${store.state}${store.reason ? ` (${store.reason})` : ""}${pending}` : "–";
  const facts = [
    ["version", s.version], ["pid", s.pid], ["uptime", ago(s.uptime_seconds)], ["connections", s.connections],
    ["workers", s.workers], ["functions", s.functions], ["jobs", count(s.jobs)], ["memory", bytes(s.memory_bytes)],
    ["store", storeState], ["durability", s.durability || "–"], ["ready", s.ready ? "yes" : "no"],
    ["queue", store.description, "wide"],
  ];
  if (store.primary) facts.splice(8, 0, ["store primary", store.primary]);
  $("facts").replaceChildren(...facts.map(([k, v, cls]) => el("div", { className: cls || "" },
    el("dt", { textContent: k }), el("dd", { textContent: v ?? "–", title: String(v ?? "") }))));
}

function niceCeiling(value) {
  // The axis top: 4, 8, 20, 40, 80, 200 ... so the four gridlines get round labels.
  if (value <= 4) return 4;
  const magnitude = Math.pow(10, Math.floor(Math.log10(value / 4)));
  for (const step of [1, 2, 5, 10]) if (value <= 4 * step * magnitude) return 4 * step * magnitude;
  return 40 * magnitude;
}

export function drawChart() {
  const canvas = $("chart");
  if (!canvas) return;
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  const left = 44, bottom = height - 18, top = 8;
  const shown = points.slice(-CHART_SECONDS);
  const max = niceCeiling(Math.max(0, ...shown.map((p) => Math.max(p[1], p[2], p[3]))));
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#4b5563";
  g.strokeStyle = "#e5e7eb";
  for (let i = 0; i <= 4; i++) {
    const y = bottom - ((bottom - top) * i) / 4;
    g.beginPath(); g.moveTo(left, y); g.lineTo(width, y); g.stroke();
    g.fillText(((max * i) / 4).toLocaleString("en-US"), 4, y + 4);
  }
  // The x labels name the axis's real span: one point a second, CHART_SECONDS of them.
  const step = (width - left) / (CHART_SECONDS - 1);
  // On a narrow canvas a label that would touch the one before it is left out.
  const minutes = CHART_SECONDS / 60;
  let end = 0;
  for (let m = minutes; m >= 0; m--) {
    const label = m ? `−${m} min` : "now";
    const w = g.measureText(label).width;
    const x = Math.max(left, Math.min(width - w, left + (CHART_SECONDS - 1 - m * 60) * step - w / 2));
    if (x < end + 8 && m) continue;
    g.fillText(label, x, height - 3);
    end = x + w;
  }
  const styles = { 1: "#7c3aed", 2: "#16a34a", 3: "#dc2626" };
  for (const k of [1, 2, 3]) {
    g.strokeStyle = styles[k];
    g.lineWidth = 2;
    g.beginPath();
    shown.forEach((p, i) => {
      const x = left + (CHART_SECONDS - shown.length + i) * step;
      const y = bottom - ((bottom - top) * p[k]) / max;
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  }
  canvas.dataset.points = String(shown.length);
  canvas.dataset.total = String(shown.reduce((sum, p) => sum + p[1] + p[2] + p[3], 0));
}
