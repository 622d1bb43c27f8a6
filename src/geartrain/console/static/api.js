// The JSON API (docs/operations.md): reading, and acting with the token when one is set.
import { enc } from "./ui.js";

export async function get(path) {
  const reply = await fetch(path, { headers: { Accept: "application/json" } });
  if (!reply.ok) {
    const error = new Error(path + ": " + reply.status);
    error.status = reply.status;
    throw error;
  }
  return reply.json();
}

// POST an action; asks for the token on 401 as the console always did.
// Returns {ok, status, body}; a refusal's body is {error}.
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
  // The guard's refusals (403: access rules, other hosts) are one line of text.
  const text = await reply.text();
  let answer;
  try { answer = JSON.parse(text); } catch { answer = { error: text.trim() || `refused (${reply.status})` }; }
  return { ok: reply.ok, status: reply.status, body: answer };
}

export const api = {
  jobs(state, filter, offset, limit) {
    const query = new URLSearchParams({ state, offset, limit });
    for (const [k, v] of Object.entries(filter)) if (v) query.set(k, v);
    return get("/api/jobs?" + query);
  },
  job: (handle) => get("/api/jobs/" + enc(handle)),
  async functions() {
    const reply = await get("/api/functions");
    return Array.isArray(reply) ? reply : reply.functions;
  },
  // One action on one job, or on the selected ones ({handles}) or all a filter matches ({filter}).
  async act(handle, action) {
    const reply = await post(`/api/jobs/${enc(handle)}/${action}`);
    return { ...reply, touched: reply.body.touched ?? (reply.ok ? 1 : 0) };
  },
  async bulk(action, selection) {
    const reply = await post("/api/jobs/bulk", { action, ...selection });
    return { ...reply, touched: reply.body.touched };
  },
};
