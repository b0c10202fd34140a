// Overview: requests, errors, tokens, cost and TTFT over time, in total and
// by tenant, model and key, from GET /v1/stats.

import { api, query, seg } from "../api.js";
import { h, fill, table, fmtInt, fmtUsd, fmtMs } from "../dom.js";
import { lineChart } from "../charts.js";

const WINDOWS = [
  ["15 minutes", 15 * 60],
  ["1 hour", 3600],
  ["6 hours", 6 * 3600],
  ["24 hours", 24 * 3600],
  ["7 days", 7 * 86400],
];

export default async function overview(root, ctx) {
  const sel = h("select", { name: "window", id: "window" }, WINDOWS.map(([l, s]) => h("option", { value: s }, l)));
  sel.value = "3600";
  const refresh = h("button", { type: "button", id: "refresh" }, "Refresh");
  const body = h("div", { id: "overview-body" });
  root.append(h("h1", {}, "Overview"), h("div", { class: "row" }, h("label", {}, "Window", sel), refresh), body);
  const load = async () => {
    const secs = Number(sel.value);
    const now = Date.now();
    const q = query({ since: now - secs * 1000, until: now + 1000 });
    const path = ctx.me.tenant ? `/v1/tenants/${seg(ctx.me.tenant)}/stats${q}` : `/v1/stats${q}`;
    const s = await api.get(path);
    if (ctx.stale()) return;
    render(body, s);
  };
  sel.addEventListener("change", load);
  refresh.addEventListener("click", load);
  await load();
}

function render(body, s) {
  const t = s.total;
  const stat = (k, v, name) => h("div", { class: "stat", "data-stat": name }, h("div", { class: "v" }, v), h("div", { class: "k" }, k));
  const xs = s.buckets;
  const col = (f) => s.series.map(f);
  const groups = (list, pick) => list.map((g) => ({ label: g.name, values: g[pick] }));
  const usd = (v) => (v === 0 ? "$0" : `$${Number((v / 1e6).toPrecision(3))}`);
  fill(
    body,
    s.truncated ? h("p", { class: "bad" }, "The window holds more records than one scan reads: totals are partial.") : null,
    h(
      "div",
      { class: "cards" },
      stat("requests", fmtInt(t.requests), "requests"),
      stat("errors", fmtInt(t.errors), "errors"),
      stat("input tokens", fmtInt(t.input_tokens), "input_tokens"),
      stat("output tokens", fmtInt(t.output_tokens), "output_tokens"),
      stat("cost", fmtUsd(t.cost_micros), "cost"),
      stat("TTFT p50", fmtMs(t.ttft_p50_ms), "ttft_p50"),
      stat("TTFT p99", fmtMs(t.ttft_p99_ms), "ttft_p99"),
    ),
    h(
      "div",
      { class: "charts" },
      lineChart("requests", "Requests and errors", xs, [
        { label: "requests", values: col((b) => b.requests) },
        { label: "errors", values: col((b) => b.errors) },
      ]),
      lineChart("tokens", "Tokens", xs, [
        { label: "input", values: col((b) => b.input_tokens) },
        { label: "output", values: col((b) => b.output_tokens) },
      ]),
      lineChart("cost", "Cost (USD)", xs, [{ label: "cost", values: col((b) => b.cost_micros) }], usd),
      lineChart("ttft", "Time to first byte (ms)", xs, [
        { label: "p50", values: col((b) => b.ttft_p50_ms) },
        { label: "p99", values: col((b) => b.ttft_p99_ms) },
      ], (v) => v, { points: true }),
      lineChart("by-tenant", "Requests by tenant", xs, groups(s.by_tenant, "requests")),
      lineChart("by-model", "Cost by model (USD)", xs, groups(s.by_model, "cost_micros"), usd),
      lineChart("by-model-requests", "Requests by model", xs, groups(s.by_model, "requests")),
      lineChart("by-key", "Tokens by gateway key", xs, groups(s.by_key, "tokens")),
    ),
    breakdown("By tenant", "by-tenant", s.by_tenant),
    breakdown("By model", "by-model", s.by_model),
    breakdown("By gateway key", "by-key", s.by_key),
  );
}

function breakdown(title, name, list) {
  return h(
    "section",
    { class: "card" },
    h("h2", {}, title),
    table(
      [
        ["name", (g) => g.name],
        ["requests", (g) => fmtInt(g.total.requests), "num"],
        ["errors", (g) => fmtInt(g.total.errors), "num"],
        ["input tokens", (g) => fmtInt(g.total.input_tokens), "num"],
        ["output tokens", (g) => fmtInt(g.total.output_tokens), "num"],
        ["cost", (g) => fmtUsd(g.total.cost_micros), "num"],
        ["TTFT p50", (g) => fmtMs(g.total.ttft_p50_ms), "num"],
        ["TTFT p99", (g) => fmtMs(g.total.ttft_p99_ms), "num"],
      ],
      list,
      { name, key: (g) => g.name, empty: "No requests in this window." },
    ),
  );
}
