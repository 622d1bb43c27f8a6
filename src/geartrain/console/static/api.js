// The JSON API (docs/operations.md), and what servers before the paged API answer.
import { enc } from "./ui.js";

// -- HTTP ------------------------------------------------------------------------

export async function get(path) {
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
export async function post(path, body) {
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

export const api = {
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
