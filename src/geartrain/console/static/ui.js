// The console's building blocks: formatting, lists, the page frame, actions and toasts.
export const $ = (id) => document.getElementById(id);
export const PAGE_SIZE = 50;
export const FLAG_TEXT = { no_workers: "no workers", stale: "stale jobs", paused: "paused" };

// -- small helpers ---------------------------------------------------------------

export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key.startsWith("aria") || key.startsWith("data-")) node.setAttribute(key.replace("aria", "aria-").toLowerCase(), value);
    else node[key] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  return node;
}

export const count = (n) => (n ?? 0).toLocaleString("en-US");
export const plural = (n, word) => `${count(n)} ${word}${n === 1 ? "" : "s"}`;
export const enc = encodeURIComponent;

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.floor(seconds % 60) + " s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
}

export const since = (epoch) => (epoch ? ago(Date.now() / 1000 - epoch) : "–");

export function when(epoch) {
  if (!epoch) return "–";
  const delta = epoch - Date.now() / 1000;
  const relative = delta >= 0 ? "in " + ago(delta) : ago(-delta) + " ago";
  return `${new Date(epoch * 1000).toLocaleString()} (${relative})`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

export function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 4000);
}

export function tag(text, cls) {
  return el("span", { className: "tag " + (cls || ""), textContent: text });
}

export function progressBar(progress) {
  const [n, d] = progress || [0, 0];
  if (!d) return null;
  const pct = Math.min(100, Math.round((100 * n) / d));
  const bar = el("span", { className: "bar", role: "progressbar", ariaLabel: "progress", "data-pct": pct }, el("i"));
  bar.setAttribute("aria-valuenow", String(pct));
  bar.firstChild.style.width = pct + "%";
  return el("span", { className: "progress" }, bar, ` ${n}/${d} (${pct}%)`);
}

export function seconds(v) {
  if (v === null || v === undefined) return "–";
  return v < 1 ? (v * 1000).toFixed(v < 0.01 ? 1 : 0) + " ms" : ago(v);
}

// -- lists: a table on a desk, cards on a phone --------------------------------------

export function table(columns, rows, empty, cls) {
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
export function pager(total, offset, limit, go, exact) {
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

export function heading(text, ...extra) {
  return el("h1", {}, text, ...extra);
}

export function go(parts, query) {
  const search = query && [...query].length ? "?" + query : "";
  location.hash = "#/" + parts.map(enc).join("/") + search;
}

export function frame(view, title, ...children) {
  view.dataset.title = title;
  view.append(heading(title), el("p", { id: "problem", className: "problem", role: "alert" }), ...children);
}

export function notFound(view) {
  frame(view, "No such page", el("p", {}, el("a", { href: "#/" }, "Back to the dashboard")));
  return { update: async () => {} };
}

// Runs an action, says how many jobs it touched, and has the page read the server again.
export async function perform(label, run) {
  try {
    const reply = await run();
    if (reply.ok) toast(`${label}: ${plural(reply.touched ?? 1, "job")} touched`);
    else toast(`${label}: ${reply.body.error || "refused (" + reply.status + ")"}`);
  } catch (error) {
    toast(`${label}: ${error.message}`);
  }
  document.dispatchEvent(new Event("geartrain:changed")); // the page reads the server again
}

export function actionButton(text, label, run, danger) {
  const b = el("button", { type: "button", textContent: text, className: danger ? "danger" : "" });
  if (label !== text) b.setAttribute("aria-label", label);
  b.addEventListener("click", () => perform(text, run));
  return b;
}
