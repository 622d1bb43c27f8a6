"use strict";
// The geartrain console: one page per concern, chosen by the URL hash (#/jobs/failed?function=x),
// so each can be linked and reloaded.  The visible page reads one /api/ answer every 2 s at
// most; the header and the dashboard follow /api/events.  Actions are POSTs (docs/operations.md).
const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
const CHART_SECONDS = 300; // the chart's x axis: one point a second
const PAGE_SIZE = 50;
const points = [];

// -- small helpers ---------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key.startsWith("aria") || key.startsWith("data-")) node.setAttribute(key.replace("aria", "aria-").toLowerCase(), value);
    else node[key] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  return node;
}

const count = (n) => (n ?? 0).toLocaleString("en-US");
const plural = (n, word) => `${count(n)} ${word}${n === 1 ? "" : "s"}`;
const enc = encodeURIComponent;

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.floor(seconds % 60) + " s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
}

const since = (epoch) => (epoch ? ago(Date.now() / 1000 - epoch) : "–");

function when(epoch) {
  if (!epoch) return "–";
  const delta = epoch - Date.now() / 1000;
  const relative = delta >= 0 ? "in " + ago(delta) : ago(-delta) + " ago";
  return `${new Date(epoch * 1000).toLocaleString()} (${relative})`;
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
  toast.timer = setTimeout(() => t.classList.remove("show"), 4000);
}

function tag(text, cls) {
  return el("span", { className: "tag " + (cls || ""), textContent: text });
}

function progressBar(progress) {
  const [n, d] = progress || [0, 0];
  if (!d) return null;
  const pct = Math.min(100, Math.round((100 * n) / d));
  const bar = el("span", { className: "bar", role: "progressbar", ariaLabel: "progress", "data-pct": pct }, el("i"));
  bar.setAttribute("aria-valuenow", String(pct));
  bar.firstChild.style.width = pct + "%";
  return el("span", { className: "progress" }, bar, ` ${n}/${d} (${pct}%)`);
}

// -- HTTP ------------------------------------------------------------------------

async function get(path) {
  const reply = await fetch(path, { headers: { Accept: "application/json" } });
  if (!reply.ok) {
    const error = new Error(path + ": " + reply.status);
    error.status = reply.status;
    throw error;
  }
  return reply.json();
}

// POST an action; asks for the token on 401 as the console always did.  Returns
// {ok, status, body, missing} where missing says the server has no such route.
async function post(path, body) {
  const headers = { "X-Geartrain-Console": "1" };
  const token = sessionStorage.getItem("geartrain-token");
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const reply = await fetch(path, { method: "POST", headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (reply.status === 401) {
    const given = prompt("This action needs the console token (--http-token):");
    if (!given) return { ok: false, status: 401, body: { error: "no token given" } };
    sessionStorage.setItem("geartrain-token", given);
    return post(path, body);
  }
  const json = (reply.headers.get("Content-Type") || "").includes("json");
  const answer = json ? await reply.json().catch(() => ({})) : {};
  return { ok: reply.ok, status: reply.status, body: answer, missing: !json && (reply.status === 404 || reply.status === 405) };
}

// -- what servers before the paged API answer (kept in this one place) -----------

function fromJobView(j) {
  return {
    handle: j.handle, function: j.function, unique: j.unique, priority: j.priority, state: j.state,
    created: j.age_seconds === null || j.age_seconds === undefined ? null : Date.now() / 1000 - j.age_seconds,
    due: j.due, attempt: j.attempts, attempts: null, size: j.size, preview: j.data_preview, binary: false,
    worker: j.worker, reason: null, progress: j.progress,
  };
}

function fromFailedView(f) {
  return {
    handle: f.handle, function: f.function, unique: f.unique, priority: f.priority, state: "failed",
    created: f.failed_at, due: null, attempt: f.attempts, attempts: null, size: f.size, preview: f.data_preview,
    binary: false, worker: null, reason: f.reason, failed_at: f.failed_at,
    history: (f.outcomes || []).map((o, i) => ({ attempt: i + 1, started: null, ended: o.at, outcome: o.kind, reason: o.message })),
  };
}

async function legacyJobs(state, filter, offset, limit) {
  let items;
  if (state === "failed") items = (await get("/api/failed?limit=1000")).failed.map(fromFailedView);
  else {
    const asked = state === "retrying" ? "scheduled" : state;
    items = (await get(`/api/jobs?state=${asked}&limit=1000`)).jobs.map(fromJobView);
    if (state === "retrying") items = items.filter((j) => j.attempt > 0);
    if (state === "scheduled" || state === "retrying") items.sort((a, b) => (a.due || 0) - (b.due || 0));
  }
  items = items.filter((j) => (!filter.function || j.function === filter.function)
    && (!filter.priority || j.priority === filter.priority) && (!filter.unique || j.unique === filter.unique)
    && (!filter.q || (j.preview || "").includes(filter.q)));
  return { total: items.length, offset, limit, items: items.slice(offset, offset + limit) };
}

const api = {
  async jobs(state, filter, offset, limit) {
    const query = new URLSearchParams({ state, offset, limit });
    for (const [k, v] of Object.entries(filter)) if (v) query.set(k, v);
    try {
      const reply = await get("/api/jobs?" + query);
      if ("items" in reply) return reply;
    } catch (error) {
      if (error.status !== 400 && error.status !== 404) throw error;
    }
    return legacyJobs(state, filter, offset, limit);
  },
  async job(handle) {
    const j = await get("/api/jobs/" + enc(handle));
    if ("history" in j || !("data_preview" in j)) return j;
    return j.state === "failed" ? fromFailedView(j) : fromJobView(j);
  },
  async functions() {
    const reply = await get("/api/functions");
    const list = Array.isArray(reply) ? reply : reply.functions;
    return list.map((f) => {
      const queued = { ...f.queued };
      queued.total ??= (queued.high || 0) + (queued.normal || 0) + (queued.low || 0);
      const oldest = f.oldest_age ?? f.oldest_queued_seconds ?? null;
      const flags = f.flags ?? [
        ...(queued.total && !f.workers ? ["no_workers"] : []), ...(oldest > 300 ? ["stale"] : []),
      ];
      return { ...f, queued, oldest_age: oldest, flags };
    });
  },
  // One action on one job; older servers keep failed jobs' actions under /api/failed/.
  async act(handle, action, state) {
    let reply = await post(`/api/jobs/${enc(handle)}/${action}`);
    if (reply.missing && state === "failed") reply = await post(`/api/failed/${enc(handle)}/${action}`);
    if (reply.ok) reply.touched = reply.body.touched ?? 1;
    return reply;
  },
  async bulk(action, selection, state) {
    let reply = await post("/api/jobs/bulk", { action, ...selection });
    if (!reply.missing) return { ...reply, touched: reply.body.touched };
    let handles = selection.handles;
    if (!handles) {
      const { state: _, ...filter } = selection.filter;
      handles = (await legacyJobs(state, filter, 0, 1000)).items.map((j) => j.handle);
    }
    let touched = 0;
    for (const handle of handles) if ((await api.act(handle, action, state)).ok) touched++;
    return { ok: true, touched };
  },
};

// Runs an action, says how many jobs it touched, and refreshes the page.
async function perform(label, run) {
  try {
    const reply = await run();
    if (reply.ok) toast(`${label}: ${plural(reply.touched ?? 1, "job")} touched`);
    else toast(`${label}: ${reply.body.error || "refused (" + reply.status + ")"}`);
  } catch (error) {
    toast(`${label}: ${error.message}`);
  }
  refresh();
}

function actionButton(text, label, run, danger) {
  const b = el("button", { type: "button", textContent: text, className: danger ? "danger" : "" });
  if (label !== text) b.setAttribute("aria-label", label);
  b.addEventListener("click", () => perform(text, run));
  return b;
}

// -- lists: a table on a desk, cards on a phone --------------------------------------

function table(columns, rows, empty, cls) {
  const head = el("tr", {}, ...columns.map(([name, , c]) => el("th", { className: c || "", scope: "col" }, name)));
  const body = rows.map((row) => el("tr", {}, ...columns.map(([name, cell, c]) => {
    const value = cell(row);
    return el("td", { className: c || "", "data-label": typeof name === "string" ? name : "" },
      el("span", { className: "v" }, value instanceof Node ? value : String(value ?? "–")));
  })));
  if (!body.length) body.push(el("tr", { className: "none" }, el("td", { colSpan: columns.length, className: "empty", textContent: empty })));
  return el("div", { className: "scroll" }, el("table", { className: "list " + (cls || "") }, el("thead", {}, head), el("tbody", {}, ...body)));
}

// "51–100 of 1,000,000"; a total the server could not finish counting (a text filter
// stops after so many jobs) is said to be a lower bound.
function pager(total, offset, limit, go, exact) {
  const first = total ? offset + 1 : 0, last = Math.min(total, offset + limit);
  const of = exact === false ? `of at least ${count(total)}` : `of ${count(total)}`;
  const range = el("span", { className: "range", "data-total": total }, total ? `${count(first)}–${count(last)} ${of}` : "0 of 0");
  if (exact === false) range.title = "the text filter looked at part of the queue only";
  const prev = el("button", { type: "button", textContent: "‹ Previous", disabled: offset <= 0 });
  prev.setAttribute("aria-label", "previous page");
  prev.addEventListener("click", () => go(Math.max(0, offset - limit)));
  const next = el("button", { type: "button", textContent: "Next ›", disabled: offset + limit >= total });
  next.setAttribute("aria-label", "next page");
  next.addEventListener("click", () => go(offset + limit));
  return el("div", { className: "pager" }, prev, range, next);
}

function heading(text, ...extra) {
  return el("h1", {}, text, ...extra);
}

// -- routing -------------------------------------------------------------------

let page = null; // {update: async () => void}
let updating = false;

function parseHash() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(search || "") };
}

function go(parts, query) {
  const search = query && [...query].length ? "?" + query : "";
  location.hash = "#/" + parts.map(enc).join("/") + search;
}

function route() {
  const { parts, query } = parseHash();
  const [name, arg] = parts;
  const key = name === "jobs" ? "jobs/" + (arg || "queued") : name === "function" ? "functions" : name || "dashboard";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === key) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const view = $("view");
  view.replaceChildren();
  const make = {
    dashboard, busy, functions: functionsPage, jobs: () => jobsPage(arg || "queued", query),
    job: () => jobPage(arg), function: () => functionPage(arg), schedules, audit, cluster,
  }[name || "dashboard"] || notFound;
  page = make(view, query);
  document.title = `geartrain · ${view.dataset.title || "console"}`;
  refresh();
}

async function refresh() {
  if (updating || !page) return;
  updating = true;
  const current = page;
  try {
    await current.update();
    $("view").classList.remove("stale");
  } catch (error) {
    if (current === page) {
      $("view").classList.add("stale");
      const box = $("problem");
      if (box) box.textContent = "Could not read the server: " + error.message;
    }
  } finally {
    updating = false;
  }
}

function frame(view, title, ...children) {
  view.dataset.title = title;
  view.append(heading(title), el("p", { id: "problem", className: "problem", role: "alert" }), ...children);
}

function notFound(view) {
  frame(view, "No such page", el("p", {}, el("a", { href: "#/" }, "Back to the dashboard")));
  return { update: async () => {} };
}

// -- dashboard -----------------------------------------------------------------

const COUNTERS = [
  ["processed", "processed", null], ["failed", "failed", null, "bad"], ["busy", "busy workers", "#/busy"],
  ["queued", "enqueued", "#/jobs/queued"], ["running", "running", "#/jobs/running"],
  ["scheduled", "scheduled", "#/jobs/scheduled"], ["retries", "retries", "#/jobs/retrying"],
  ["dead", "dead", "#/jobs/failed", "bad"],
];

let lastStatus = null;

function dashboard(view) {
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
      const flagged = list.filter((f) => f.flags.length);
      $("flags").replaceChildren(flagged.length ? table([
        ["function", (f) => el("a", { href: "#/jobs/queued?function=" + enc(f.function) }, f.function)],
        ["flags", (f) => el("span", {}, ...f.flags.map((x) => tag(FLAG_TEXT[x] || x, "warn")))],
        ["queued", (f) => count(f.queued.total), "num"], ["workers", (f) => count(f.workers), "num"],
        ["oldest", (f) => ago(f.oldest_age), "num"],
      ], flagged, "", "flags") : el("p", { className: "muted" }, "Every function with jobs has a worker, and no job has waited long."));
    },
  };
}

const FLAG_TEXT = { no_workers: "no workers", stale: "stale jobs", paused: "paused" };

function showStatus(s) {
  lastStatus = s;
  $("version").textContent = "v" + s.version;
  if (!$("c-processed")) return;
  const c = s.counts;
  const values = { ...c, busy: s.busy_workers };
  for (const [key] of COUNTERS) $("c-" + key).textContent = values[key] === null || values[key] === undefined ? "–" : count(values[key]);
  const store = s.store;
  const storeState = "state" in store ? `${store.state}${store.reason ? ` (${store.reason})` : ""}, ${store.pending} pending` : "–";
  const facts = [
    ["version", s.version], ["pid", s.pid], ["uptime", ago(s.uptime_seconds)], ["connections", s.connections],
    ["workers", s.workers], ["functions", s.functions], ["jobs", count(s.jobs)], ["memory", bytes(s.memory_bytes)],
    ["store", storeState], ["durability", s.durability || "–"], ["ready", s.ready ? "yes" : "no"],
    ["queue", store.description, "wide"],
  ];
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

function drawChart() {
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

// -- busy: workers and what each runs ---------------------------------------------

function busy(view) {
  const holder = el("div");
  frame(view, "Busy workers", el("section", { className: "card" }, holder));
  return {
    update: async () => {
      const workers = (await get("/api/workers")).workers;
      workers.sort((a, b) => b.jobs.length - a.jobs.length);
      holder.replaceChildren(table([
        ["worker", (w) => el("code", {}, w.client_id || "–")], ["address", (w) => w.address],
        ["functions", (w) => el("span", {}, ...w.functions.map((f) => tag(f)))],
        ["doing", (w) => (w.jobs.length ? el("span", { className: "doing" }, ...w.jobs.map((j) => el("span", { className: "job" },
          el("a", { href: "#/job/" + enc(j.handle) }, j.function + " " + j.handle), " ", ago(j.running_seconds), " ", progressBar(j.progress))))
          : tag(w.sleeping ? "idle (asleep)" : "idle", "idle"))],
        ["connected", (w) => ago(w.connected_seconds), "num"],
      ], workers, "no workers connected", "workers"));
    },
  };
}

// -- functions (queues) --------------------------------------------------------------

function functionsPage(view) {
  const holder = el("div");
  frame(view, "Functions", el("section", { className: "card" }, holder));
  const rate = (f, k) => (f.rates && f.rates[k] !== undefined ? f.rates[k].toLocaleString("en-US", { maximumFractionDigits: 1 }) : "–");
  return {
    update: async () => {
      const list = await api.functions();
      holder.replaceChildren(table([
        ["function", (f) => el("span", {}, el("a", { href: "#/function/" + enc(f.function) }, f.function), " ",
          ...(f.paused ? [tag("paused", "warn")] : []), ...f.flags.map((x) => tag(FLAG_TEXT[x] || x, "warn")))],
        ["high", (f) => count(f.queued.high), "num"], ["normal", (f) => count(f.queued.normal), "num"],
        ["low", (f) => count(f.queued.low), "num"],
        ["queued", (f) => el("a", { href: "#/jobs/queued?function=" + enc(f.function), ariaLabel: `${count(f.queued.total)} queued ${f.function} jobs` }, count(f.queued.total)), "num"],
        ["running", (f) => count(f.running), "num"], ["workers", (f) => count(f.workers), "num"],
        ["oldest", (f) => ago(f.oldest_age), "num"],
        ["done/min", (f) => rate(f, "processed"), "num opt"], ["failed/min", (f) => rate(f, "failed"), "num opt"],
        ["retried/min", (f) => rate(f, "retried"), "num opt"],
        ["", functionActions, "actions"],
      ], list, "no functions yet", "functions"));
    },
  };
}

function functionActions(f) {
  const name = f.function, path = `/api/functions/${enc(name)}/`;
  const out = el("span", { className: "buttons" });
  if ("paused" in f) { // only servers that can pause say whether a function is paused
    const verb = f.paused ? "resume" : "pause";
    out.append(actionButton(f.paused ? "Resume" : "Pause", `${f.paused ? "Resume" : "Pause"} ${name}`, async () => {
      const reply = await post(path + verb);
      if (reply.status === 404 || reply.status === 405) reply.body = { error: "this server cannot pause a function" };
      return { ...reply, touched: f.queued.total }; // the queued jobs it holds or lets go
    }));
  }
  if (!f.queued.total && !f.running && !f.workers && !f.scheduled) {
    out.append(actionButton("Drop", `Drop ${name}`, async () => ({ ...(await post(path + "drop")), touched: 0 }), true));
  }
  return out;
}

// One function's last hour, a minute a row (the server keeps 60, in memory).
function functionPage(name) {
  const view = $("view");
  const holder = el("div");
  const lists = ["queued", "running", "retrying", "failed"].map((state) =>
    el("a", { className: "button", href: `#/jobs/${state}?function=${enc(name)}` }, `${state} jobs`));
  frame(view, "Function " + name, el("section", { className: "card" },
    el("div", { className: "buttons" }, ...lists), el("h2", { className: "below" }, "The last 60 minutes"), holder));
  const pct = (t) => (t ? [t.p50, t.p90, t.p99].map(seconds).join(" / ") : "–");
  return {
    update: async () => {
      const minutes = (await get("/api/rates?function=" + enc(name))).minutes;
      const busy = minutes.filter((m) => m.processed || m.failed || m.retried).reverse();
      const sum = (k) => minutes.reduce((n, m) => n + m[k], 0);
      holder.replaceChildren(
        el("p", { className: "totals" }, `In the hour: ${count(sum("processed"))} processed, ${count(sum("failed"))} failed, ${count(sum("retried"))} retried.`),
        table([
          ["minute", (m) => new Date(m.at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })],
          ["processed", (m) => count(m.processed), "num"], ["failed", (m) => count(m.failed), "num"],
          ["retried", (m) => count(m.retried), "num"],
          ["wait p50 / p90 / p99", (m) => pct(m.wait), "num"], ["run p50 / p90 / p99", (m) => pct(m.run), "num"],
        ], busy, "nothing ran in the last hour", "rates"));
    },
  };
}

function seconds(v) {
  if (v === null || v === undefined) return "–";
  return v < 1 ? (v * 1000).toFixed(v < 0.01 ? 1 : 0) + " ms" : ago(v);
}

// -- jobs by state ------------------------------------------------------------------

const STATES = {
  queued: { title: "Queued jobs", time: ["waiting", (j) => since(j.created)], bulk: ["cancel"] },
  running: { title: "Running jobs", time: ["running", (j) => since(j.created)], bulk: ["cancel"] },
  scheduled: { title: "Scheduled jobs", time: ["due", (j) => when(j.due)], bulk: ["cancel"] },
  retrying: { title: "Retrying jobs", time: ["next retry", (j) => when(j.due)], bulk: ["retry", "cancel"] },
  failed: { title: "Failed jobs", time: ["failed", (j) => when(j.failed_at ?? j.created)], bulk: ["retry", "delete"] },
};
const VERBS = { retry: "Retry", delete: "Delete", cancel: "Cancel" };
const FILTERS = [["function", "function"], ["priority", "priority"], ["unique", "unique key"], ["q", "text in payload"]];

function rowActions(state) {
  return { queued: ["cancel"], running: ["cancel"], scheduled: ["cancel"], retrying: ["retry", "cancel"], failed: ["retry", "delete"] }[state] || [];
}

function jobsPage(state, query) {
  const spec = STATES[state];
  if (!spec) return notFound($("view"));
  const filter = Object.fromEntries(FILTERS.map(([k]) => [k, query.get(k) || ""]));
  const sort = query.get("sort") || ""; // the server's usual: due time for scheduled and retrying, else age
  const offset = Math.max(0, parseInt(query.get("offset") || "0", 10) || 0);
  const limit = Math.min(500, Math.max(1, parseInt(query.get("limit") || String(PAGE_SIZE), 10) || PAGE_SIZE));
  const selected = new Set();
  const view = $("view");

  const form = el("form", { className: "filters", role: "search", ariaLabel: "filter jobs" });
  for (const [key, label] of FILTERS) {
    const id = "f-" + key;
    const input = key === "priority"
      ? el("select", { id, name: key }, ...["", "high", "normal", "low"].map((p) => el("option", { value: p, textContent: p || "any", selected: p === filter[key] })))
      : el("input", { id, name: key, value: filter[key], type: "search", autocomplete: "off" });
    form.append(el("label", { htmlFor: id }, label, input));
  }
  const orders = [["", "usual"], ["age", "oldest first"], ["-age", "newest first"], ["due", "due time"]];
  form.append(el("label", { htmlFor: "f-sort" }, "order", el("select", { id: "f-sort", name: "sort" },
    ...orders.map(([v, text]) => el("option", { value: v, textContent: text, selected: v === sort })))));
  form.append(el("button", { type: "submit", textContent: "Filter" }),
    el("a", { className: "button", href: "#/jobs/" + state }, "Clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    go(["jobs", state], q);
  });
  const toPage = (n) => { const q = new URLSearchParams(query); q.set("offset", n); go(["jobs", state], q); };

  const bar = el("div", { className: "toolbar" });
  const holder = el("div");
  frame(view, spec.title, el("section", { className: "card" }, form, bar, holder));

  const matching = () => ({ filter: { state, ...Object.fromEntries(Object.entries(filter).filter(([, v]) => v)) } });
  function bulkButtons(total) {
    const out = [];
    for (const action of spec.bulk) {
      const verb = VERBS[action];
      out.push(actionButton(`${verb} selected`, `${verb} the selected jobs`, async () => {
        const handles = [...selected];
        if (!handles.length) return { ok: false, body: { error: "select jobs first" } };
        selected.clear();
        return api.bulk(action, { handles }, state);
      }, action !== "retry"));
      const every = actionButton(`${verb} all ${count(total)} matching`, `${verb} all jobs matching the filter`, async () => {
        if (!confirm(`${verb} all ${count(total)} ${state} jobs matching the filter?`)) return { ok: false, body: { error: "not confirmed" } };
        return api.bulk(action, matching(), state);
      }, action !== "retry");
      every.disabled = !total;
      out.push(every);
    }
    return el("span", { className: "buttons bulk" }, ...out);
  }

  const checkbox = (j) => {
    const box = el("input", { type: "checkbox", checked: selected.has(j.handle), ariaLabel: "select " + j.handle });
    box.addEventListener("change", () => (box.checked ? selected.add(j.handle) : selected.delete(j.handle)));
    return box;
  };
  const all = () => {
    const box = el("input", { type: "checkbox", ariaLabel: "select all on this page", className: "all" });
    box.addEventListener("change", () => {
      for (const b of holder.querySelectorAll("tbody input[type=checkbox]")) { b.checked = box.checked; b.dispatchEvent(new Event("change")); }
    });
    return box;
  };
  const columns = [
    [all(), checkbox, "pick"],
    ["handle", (j) => el("a", { href: "#/job/" + enc(j.handle) }, j.handle)],
    ["function", (j) => j.function], ["priority", (j) => j.priority, "opt"],
    [spec.time[0], spec.time[1]],
    ["attempt", (j) => (j.attempt ? j.attempt + (j.attempts ? "/" + j.attempts : "") : "–"), "num opt"],
    ...(state === "running" ? [["worker", (j) => el("span", {}, j.worker || "–", " ", progressBar(j.progress))]] : []),
    ...(state === "failed" || state === "retrying" ? [["reason", (j) => j.reason || "–", "reason"]] : []),
    ["unique", (j) => j.unique || "–", "unique opt"],
    ["payload", (j) => (j.binary ? tag(`binary, ${bytes(j.size)}`) : j.preview), "payload"],
    ["", (j) => el("span", { className: "buttons" }, ...rowActions(state).map((a) =>
      actionButton(VERBS[a], `${VERBS[a]} ${j.handle}`, () => api.act(j.handle, a, state), a !== "retry"))), "actions"],
  ];
  return {
    update: async () => {
      const reply = await api.jobs(state, sort ? { ...filter, sort } : filter, offset, limit);
      // A refresh replaces the rows: the keyboard's place is kept by the control's name.
      const card = holder.parentElement, active = document.activeElement;
      const focused = active && card.contains(active) && !form.contains(active) ? active.getAttribute("aria-label") : null;
      bar.replaceChildren(pager(reply.total, offset, limit, toPage, reply.exact), bulkButtons(reply.total));
      holder.replaceChildren(table(columns, reply.items, `no ${state} jobs` + (Object.values(filter).some(Boolean) ? " match the filter" : ""), "jobs"));
      if (focused) card.querySelector(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
    },
  };
}

// -- one job ---------------------------------------------------------------------

function jobPage(handle) {
  const view = $("view");
  const holder = el("div", { className: "stack" });
  frame(view, "Job " + handle, holder);
  return {
    update: async () => {
      let j;
      try {
        j = await api.job(handle);
      } catch (error) {
        if (error.status !== 404) throw error;
        holder.replaceChildren(el("p", { className: "card" }, "This job is gone: it completed, was cancelled or deleted, or never existed."));
        return;
      }
      const actions = j.actions || rowActions(j.state);
      const fields = [
        ["handle", j.handle], ["function", j.function], ["state", j.state], ["unique key", j.unique || "–"],
        ["priority", j.priority], ["created", when(j.created)], ["due", when(j.due)],
        ["attempt", j.attempt ? j.attempt + (j.attempts ? " of " + j.attempts : "") : "–"],
        ["next retry", when(j.next_retry)], ["size", bytes(j.size)], ["client", j.client || "–"],
        ["worker", j.worker || "–"], ["last reason", j.reason || "–"],
        ...(j.progress && j.progress[1] ? [["progress", progressBar(j.progress)]] : []),
      ];
      const payload = j.payload ?? j.preview ?? "";
      const capped = j.truncated || j.size > 4096 ? ` (the first 4 KiB of ${bytes(j.size)})` : "";
      holder.replaceChildren(
        el("section", { className: "card" },
          el("div", { className: "buttons" }, ...actions.map((a) => actionButton(VERBS[a] || a, `${VERBS[a] || a} this job`, () => api.act(j.handle, a, j.state), a !== "retry")),
            el("a", { className: "button", href: "#/jobs/" + (STATES[j.state] ? j.state : "queued") }, "Back to the list")),
          el("dl", { className: "facts fields" }, ...fields.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v instanceof Node ? v : String(v)))))),
        el("section", { className: "card" }, el("h2", {}, "Payload" + (j.binary ? ", binary (hex)" : "") + capped),
          el("pre", { className: "payload-full", tabIndex: 0, ariaLabel: "payload" }, payload)),
        el("section", { className: "card" }, el("h2", {}, "History"), table([
          ["attempt", (h) => h.attempt, "num"], ["started", (h) => when(h.started)], ["ended", (h) => when(h.ended)],
          ["outcome", (h) => h.outcome || "–"], ["reason", (h) => h.reason || "–", "reason"],
        ], j.history || [], "no attempts yet", "history")),
      );
    },
  };
}

// -- schedules, audit, cluster -----------------------------------------------------

function unavailable(holder, error, what) {
  if (error.status !== 404) throw error;
  holder.replaceChildren(el("p", { className: "muted" }, `This server does not list ${what}.`));
}

function schedules(view) {
  const holder = el("div");
  const open = new Set(); // histories the reader opened stay open across refreshes
  frame(view, "Schedules", el("section", { className: "card" }, holder));
  return {
    update: async () => {
      let list;
      try { list = await get("/api/schedules"); } catch (error) { return unavailable(holder, error, "schedules"); }
      list = Array.isArray(list) ? list : list.schedules || [];
      holder.replaceChildren(table([
        ["name", (s) => s.name], ["function", (s) => s.function], ["cron", (s) => el("code", {}, s.cron)],
        ["next", (s) => when(s.next)], ["last", (s) => when(s.last)],
        ["history", (s) => {
          if (!(s.history || []).length) return "none yet";
          const box = el("details", { open: open.has(s.name) }, el("summary", {}, plural(s.history.length, "firing")),
            el("ul", {}, ...s.history.map((h) => el("li", {}, when(h.at), " ",
              h.handle ? el("a", { href: "#/job/" + enc(h.handle) }, h.handle) : "", " ", h.outcome || ""))));
          box.addEventListener("toggle", () => (box.open ? open.add(s.name) : open.delete(s.name)));
          return box;
        }],
      ], list, "no recurring schedules (the settings file's [[schedules]])", "schedules"));
    },
  };
}

function audit(view, query) {
  const holder = el("div"), bar = el("div", { className: "toolbar" });
  const offset = Math.max(0, parseInt(query.get("offset") || "0", 10) || 0);
  frame(view, "Audit", el("section", { className: "card" }, bar, holder));
  return {
    update: async () => {
      let reply;
      try { reply = await get(`/api/audit?offset=${offset}&limit=${PAGE_SIZE}`); } catch (error) { return unavailable(holder, error, "an audit log"); }
      bar.replaceChildren(pager(reply.total, offset, PAGE_SIZE, (n) => go(["audit"], new URLSearchParams({ offset: n }))));
      holder.replaceChildren(table([
        ["when", (a) => when(a.at)], ["who", (a) => a.who], ["action", (a) => a.action],
        ["target", (a) => a.target ?? "–"], ["touched", (a) => count(a.touched), "num"],
      ], reply.items, "no actions yet", "audit"));
    },
  };
}

function cluster(view) {
  const holder = el("div");
  frame(view, "Cluster", el("section", { className: "card" }, holder));
  return {
    update: async () => {
      let reply;
      try { reply = await get("/api/cluster"); } catch (error) { return unavailable(holder, error, "a cluster"); }
      if (!reply.enabled) { holder.replaceChildren(el("p", { className: "muted" }, "This server is not a cluster member.")); return; }
      holder.replaceChildren(
        reply.error ? el("p", { className: "problem" }, "The cluster store does not answer: " + reply.error) : "",
        table([
          ["member", (m) => el("span", {}, el("code", {}, m.name || m.id), m.me ? tag("this server") : "")],
          ["address", (m) => m.address || "–"], ["lease age", (m) => ago(m.lease_age), "num"],
          ["up for", (m) => ago(m.started_age), "num opt"],
          ["holds", (m) => (typeof m.holds === "number" ? plural(m.holds, "job") : JSON.stringify(m.holds)), "num"],
        ], reply.members, "no members", "members"),
        el("h2", { className: "below" }, "Jobs in the shared store"),
        table([
          ["function", (f) => el("a", { href: "#/function/" + enc(f.function) }, f.function)],
          ["jobs", (f) => count(f.jobs), "num"], ["running", (f) => count(f.running), "num"],
        ], reply.functions || [], "no jobs in the shared store", "shared"));
    },
  };
}

// -- live events ------------------------------------------------------------------

function listen() {
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { $("live").textContent = "live"; $("live").className = "live on"; });
  source.addEventListener("error", () => { $("live").textContent = "reconnecting"; $("live").className = "live off"; });
  source.addEventListener("tick", (event) => {
    const message = JSON.parse(event.data);
    points.push(message.point);
    if (points.length > CHART_SECONDS) points.shift();
    showStatus(message.status);
    drawChart();
  });
}

document.addEventListener("DOMContentLoaded", async () => {
  // Enter toggles a checkbox too, so the keyboard can select rows as it presses buttons.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.matches("input[type=checkbox]")) { event.preventDefault(); event.target.click(); }
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", drawChart);
  try {
    const history = await get("/api/history");
    points.push(...history.points.slice(-CHART_SECONDS));
  } catch (error) { /* the chart starts empty */ }
  get("/api/cluster").then((c) => { document.querySelector("#nav [data-page=cluster]").hidden = !c.enabled; }, () => {});
  route();
  listen();
  setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
});
