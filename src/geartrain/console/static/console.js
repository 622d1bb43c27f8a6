// The geartrain console: one page per concern, chosen by the URL hash (#/jobs/failed?function=x),
// so each can be linked and reloaded.  The visible page reads one /api/ answer every 2 s at
// most; the header and the dashboard follow /api/events.  Actions are POSTs (docs/operations.md).
import { $, notFound } from "./ui.js";
import { get } from "./api.js";
import { CHART_SECONDS, dashboard, drawChart, points, showStatus } from "./dashboard.js";
import { jobPage, jobsPage } from "./jobs.js";
import { audit, busy, cluster, functionPage, functionsPage, schedules } from "./pages.js";

const POLL_MS = 2000;
const POLL_COST = 40; // a page whose answer took t ms is read again after 40 t ms at the soonest
let took = 0; // ms the last reading took

// -- routing -------------------------------------------------------------------

let page = null; // {update: async () => void}
let updating = false;

function parseHash() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(search || "") };
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
  delete view.dataset.drawn;
  const make = {
    dashboard, busy, functions: functionsPage, jobs: () => jobsPage(arg || "queued", query),
    job: () => jobPage(arg), function: () => functionPage(arg), schedules, audit, cluster,
  }[name || "dashboard"] || notFound;
  page = make(view, query);
  document.title = `geartrain · ${view.dataset.title || "console"}`;
  refresh();
}

let again = false; // asked while a reading was under way: read once more after it

async function refresh() {
  if (!page) return;
  if (updating) { again = true; return; }
  updating = true;
  const current = page;
  const started = performance.now();
  try {
    await current.update();
    took = performance.now() - started;
    $("view").classList.remove("stale");
    if (current === page) $("view").dataset.drawn = "1"; // the page has its data (tests, benchmarks)
  } catch (error) {
    if (current === page) {
      $("view").classList.add("stale");
      const box = $("problem");
      if (box) box.textContent = "Could not read the server: " + error.message;
    }
  } finally {
    updating = false;
    if (again) { again = false; refresh(); }
  }
}

// -- live events ------------------------------------------------------------------

let source = null;

function listen() {
  source = new EventSource("/api/events");
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
  document.addEventListener("geartrain:changed", refresh);
  window.addEventListener("resize", drawChart);
  try {
    const history = await get("/api/history");
    points.push(...history.points.slice(-CHART_SECONDS));
  } catch (error) { /* the chart starts empty */ }
  get("/api/cluster").then((c) => { document.querySelector("#nav [data-page=cluster]").hidden = !c.enabled; }, () => {});
  route();
  listen();
  // A hidden tab closes its event stream and stops polling, so it costs the server
  // nothing; shown again, it fetches the chart's missed points and goes on.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      source?.close();
      source = null;
      $("live").textContent = "paused";
      $("live").className = "live off";
    } else if (!source) {
      get("/api/history").then((h) => { points.splice(0, points.length, ...h.points.slice(-CHART_SECONDS)); drawChart(); }, () => {});
      listen();
      refresh();
    }
  });
  // Every 2 s, or less often for a page that is dear to answer (a text filter over a
  // deep queue), so an open tab stays cheap; nothing while the tab is hidden.
  const poll = async () => {
    if (!document.hidden) await refresh();
    setTimeout(poll, Math.max(POLL_MS, POLL_COST * took));
  };
  setTimeout(poll, POLL_MS);
});
