// Busy workers, functions, a function's hour, schedules, audit and cluster pages.
import { $, FLAG_TEXT, actionButton, ago, count, el, enc, frame, go, pager, plural, progressBar, seconds, table, tag, when, PAGE_SIZE } from "./ui.js";
import { api, get, post } from "./api.js";

// -- busy: workers and what each runs ---------------------------------------------

export function busy(view) {
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

export function functionsPage(view) {
  const holder = el("div");
  frame(view, "Functions", el("section", { className: "card" }, holder));
  const rate = (f, k) => (f.rates && f.rates[k] !== undefined ? f.rates[k].toLocaleString("en-US", { maximumFractionDigits: 1 }) : "–");
  return {
    update: async () => {
      const list = await api.functions();
      holder.replaceChildren(table([
        ["function", (f) => el("span", {}, el("a", { href: "#/function/" + enc(f.function) }, f.function), " ",
          ...(f.paused ? [tag("paused", "warn")] : []), ...f.flags.map((x) => tag(FLAG_TEXT[x] || x, "warn")))],
        // A phone's card keeps the total, and leaves the split by priority and the rates out.
        ["high", (f) => count(f.queued.high), "num opt"], ["normal", (f) => count(f.queued.normal), "num opt"],
        ["low", (f) => count(f.queued.low), "num opt"],
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
  const verb = f.paused ? "Resume" : "Pause";
  out.append(actionButton(verb, `${verb} ${name}`, async () => {
    const reply = await post(path + verb.toLowerCase());
    return { ...reply, touched: f.queued.total }; // the queued jobs it holds back or lets go
  }));
  if (!f.queued.total && !f.running && !f.workers && !f.scheduled) {
    out.append(actionButton("Drop", `Drop ${name}`, async () => ({ ...(await post(path + "drop")), touched: 0 }), true));
  }
  return out;
}

// One function's last hour, a minute a row (the server keeps 60, in memory).
export function functionPage(name) {
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

// -- schedules, audit, cluster -----------------------------------------------------

export function schedules(view) {
  const holder = el("div");
  const open = new Set(); // histories the reader opened stay open across refreshes
  frame(view, "Schedules", el("section", { className: "card" }, holder));
  return {
    update: async () => {
      const list = await get("/api/schedules");
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

export function audit(view, query) {
  const holder = el("div"), bar = el("div", { className: "toolbar" });
  const offset = Math.max(0, parseInt(query.get("offset") || "0", 10) || 0);
  frame(view, "Audit", el("section", { className: "card" }, bar, holder));
  return {
    update: async () => {
      const reply = await get(`/api/audit?offset=${offset}&limit=${PAGE_SIZE}`);
      bar.replaceChildren(pager(reply.total, offset, PAGE_SIZE, (n) => go(["audit"], new URLSearchParams({ offset: n }))));
      holder.replaceChildren(table([
        ["when", (a) => when(a.at)], ["who", (a) => a.who], ["action", (a) => a.action],
        ["target", (a) => a.target ?? "–"], ["touched", (a) => count(a.touched), "num"],
      ], reply.items, "no actions yet", "audit"));
    },
  };
}

export function cluster(view) {
  const holder = el("div");
  frame(view, "Cluster", el("section", { className: "card" }, holder));
  return {
    update: async () => {
      const reply = await get("/api/cluster");
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
