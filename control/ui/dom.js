// DOM helpers. Text always goes in through textContent, never innerHTML:
// nothing the API returns can become markup or script.

/** An element: h("td", {class: "num"}, "12"). Attributes starting with
 * "on" become listeners; children are nodes or text. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A table: columns are [header, (row) => cell, "num"?]. */
export function table(columns, rows, opts = {}) {
  const head = h("tr", {}, columns.map(([title, , cls]) => h("th", { class: cls }, title)));
  const body = rows.map((row) => {
    const tr = h("tr", { "data-key": opts.key ? opts.key(row) : undefined });
    for (const [, cell, cls] of columns) tr.append(h("td", { class: cls }, cell(row)));
    if (opts.onclick) {
      tr.style.cursor = "pointer";
      tr.addEventListener("click", () => opts.onclick(row, tr));
    }
    return tr;
  });
  if (rows.length === 0) {
    body.push(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, opts.empty || "Nothing yet.")));
  }
  return h("table", { "data-table": opts.name }, h("thead", {}, head), h("tbody", {}, body));
}

export function toast(message, bad = false) {
  const box = document.getElementById("toast");
  const d = h("div", { class: bad ? "bad" : "" }, message);
  box.append(d);
  setTimeout(() => d.remove(), bad ? 8000 : 4000);
}

/** Runs an action, showing its error; returns its result or undefined. */
export async function attempt(f, done) {
  try {
    const out = await f();
    if (done) toast(done);
    return out;
  } catch (e) {
    toast(e.message || String(e), true);
    return undefined;
  }
}

export const fmtTime = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "");
export const fmtUsd = (micros) => `$${((micros || 0) / 1e6).toFixed(micros && micros < 10000 ? 6 : 2)}`;
export const fmtInt = (n) => (n === undefined || n === null ? "" : Number(n).toLocaleString("en-US"));
export const fmtMs = (v) => (v === undefined || v === null ? "–" : `${v.toFixed(1)} ms`);

/** A labelled input. */
export function field(label, attrs) {
  return h("label", {}, label, h("input", attrs));
}

/** Reads a form's named inputs into an object (strings; checkboxes as booleans). */
export function values(form) {
  const out = {};
  for (const el of form.querySelectorAll("input, select, textarea")) {
    if (!el.name) continue;
    out[el.name] = el.type === "checkbox" ? el.checked : el.value.trim();
  }
  return out;
}

/** A form whose submit runs `f(values, form)`; the button is disabled meanwhile. */
export function form(attrs, children, f) {
  const el = h("form", { class: "card", autocomplete: "off", ...attrs }, children);
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const buttons = el.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      await f(values(el), el);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
  return el;
}
