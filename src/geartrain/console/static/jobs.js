// Jobs by state (filtered, paged, acted on one by one, by selection or by filter) and one job.
import { $, actionButton, ago, bytes, count, el, enc, frame, go, notFound, pager, progressBar, since, table, tag, when, PAGE_SIZE } from "./ui.js";
import { api } from "./api.js";

// -- jobs by state ------------------------------------------------------------------

const STATES = {
  queued: { title: "Queued jobs", time: ["waiting", (j) => since(j.created ?? j.due)], bulk: ["cancel"] },
  running: { title: "Running jobs", time: ["running for", (j) => ago(j.running_seconds)], bulk: ["cancel"] },
  scheduled: { title: "Scheduled jobs", time: ["due", (j) => when(j.due)], bulk: ["cancel"] },
  retrying: { title: "Retrying jobs", time: ["next retry", (j) => when(j.due)], bulk: ["retry", "cancel"] },
  failed: { title: "Failed jobs", time: ["failed", (j) => when(j.failed_at ?? j.created)], bulk: ["retry", "delete"] },
};
const VERBS = { retry: "Retry", delete: "Delete", cancel: "Cancel" };
const FILTERS = [["function", "function"], ["priority", "priority"], ["unique", "unique key"], ["q", "text in payload"]];

// A waiting retry's Retry runs it now, ahead of its backoff: the button says so.
const verb = (action, state) => (action === "retry" && state === "retrying" ? "Retry now" : VERBS[action] || action);

// A cluster's shared job is held by a member (its id) rather than a worker known here.
const heldBy = (j) => j.worker || (j.member ? `member ${j.member}` : "–");

function rowActions(state, job) {
  if (job && job.shared && state === "retrying") return ["cancel"]; // a shared retry waits for its member
  return { queued: ["cancel"], running: ["cancel"], scheduled: ["cancel"], retrying: ["retry", "cancel"], failed: ["retry", "delete"] }[state] || [];
}

export function jobsPage(state, query) {
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
  // On a phone the filters fold away unless one is in use; the list comes first.
  const active = Object.values(filter).some(Boolean) || sort;
  const folded = el("details", { className: "filter-box", open: active || !matchMedia("(max-width: 760px)").matches },
    el("summary", {}, active ? "Filter (in use)" : "Filter"), form);
  frame(view, spec.title, el("section", { className: "card" }, folded, bar, holder));

  const matching = () => ({ filter: { state, ...Object.fromEntries(Object.entries(filter).filter(([, v]) => v)) } });
  function bulkButtons(total) {
    const out = [];
    for (const action of spec.bulk) {
      const verb = VERBS[action];
      out.push(actionButton(`${verb} selected`, `${verb} the selected jobs`, async () => {
        const handles = [...selected];
        if (!handles.length) return { ok: false, body: { error: "select jobs first" } };
        selected.clear();
        return api.bulk(action, { handles });
      }, action !== "retry"));
      const every = actionButton(`${verb} all ${count(total)} matching`, `${verb} all jobs matching the filter`, async () => {
        if (!confirm(`${verb} all ${count(total)} ${state} jobs matching the filter?`)) return { ok: false, body: { error: "not confirmed" } };
        return api.bulk(action, matching());
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
  // In the toolbar, not the table's head, so that phones (cards, no head) have it too.
  const all = el("input", { type: "checkbox", ariaLabel: "select all on this page" });
  all.addEventListener("change", () => {
    for (const b of holder.querySelectorAll("tbody input[type=checkbox]")) { b.checked = all.checked; b.dispatchEvent(new Event("change")); }
  });
  const pickAll = el("label", { className: "pick-all" }, all, "all on this page");
  const columns = [
    ["", checkbox, "pick"],
    ["handle", (j) => el("a", { href: "#/job/" + enc(j.handle) }, j.handle)],
    ["function", (j) => j.function], ["priority", (j) => j.priority, "opt"],
    [spec.time[0], spec.time[1]],
    ["attempt", (j) => (j.attempt ? j.attempt + (j.attempts ? "/" + j.attempts : "") : "–"), "num opt"],
    ...(state === "running" ? [["worker", (j) => el("span", {}, heldBy(j), " ", progressBar(j.progress))]] : []),
    ...(state === "failed" || state === "retrying" ? [["reason", (j) => j.reason || "–", "reason"]] : []),
    ["unique", (j) => j.unique || "–", "unique opt"],
    ["payload", (j) => (j.binary ? tag(`binary, ${bytes(j.size)}`) : j.preview), "payload"],
    ["", (j) => el("span", { className: "buttons" }, ...rowActions(state, j).map((a) =>
      actionButton(verb(a, state), `${verb(a, state)} ${j.handle}`, () => api.act(j.handle, a), a !== "retry"))), "actions"],
  ];
  return {
    update: async () => {
      const reply = await api.jobs(state, sort ? { ...filter, sort } : filter, offset, limit);
      // A refresh replaces the rows: the keyboard's place is kept by the control's name.
      const card = holder.parentElement, active = document.activeElement;
      const focused = active && card.contains(active) && !form.contains(active) ? active.getAttribute("aria-label") : null;
      bar.replaceChildren(el("span", { className: "pager-pick" }, pickAll, pager(reply.total, offset, limit, toPage, reply.exact)), bulkButtons(reply.total));
      holder.replaceChildren(table(columns, reply.items, `no ${state} jobs` + (Object.values(filter).some(Boolean) ? " match the filter" : ""), "jobs"));
      if (focused) card.querySelector(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
    },
  };
}

// -- one job ---------------------------------------------------------------------

export function jobPage(handle) {
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
        ["priority", j.priority], ["created", when(j.created)],
        ...(j.failed_at ? [["failed", when(j.failed_at)]] : []), ["due", when(j.due)],
        ["attempt", j.attempt ? j.attempt + (j.attempts ? " of " + j.attempts : "") : "–"],
        ["next retry", when(j.next_retry)], ["size", bytes(j.size)], ["client", j.client || "–"],
        ["worker", heldBy(j)], ["last reason", j.reason || "–"],
        ...(j.progress && j.progress[1] ? [["progress", progressBar(j.progress)]] : []),
      ];
      const payload = j.payload ?? "";
      const capped = j.truncated || j.size > 4096 ? ` (the first 4 KiB of ${bytes(j.size)})` : "";
      holder.replaceChildren(
        el("section", { className: "card" },
          el("div", { className: "buttons" }, ...actions.map((a) => actionButton(verb(a, j.state), `${verb(a, j.state)} this job`, () => api.act(j.handle, a), a !== "retry")),
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
