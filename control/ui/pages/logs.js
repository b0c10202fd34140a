// A tenant's request records: metadata only, newest first, with filters and
// paging. A record with opted-in content is marked; its content is opened
// only when asked for (GET /v1/tenants/{t}/content, itself audited).

import { api, query, seg } from "../api.js";
import { h, fill, table, attempt, fmtTime, fmtUsd, fmtInt } from "../dom.js";
import { tenantPicker, latest } from "./common.js";

export default async function logs(root, ctx) {
  const filters = h("form", { class: "card row", id: "log-filters", autocomplete: "off" },
    h("label", {}, "Model", h("input", { name: "model" })),
    h("label", {}, "Gateway key id", h("input", { name: "key" })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "errors" }), "errors only"),
    h("label", {}, "Per page", h("input", { name: "limit", type: "number", min: 1, max: 1000, value: 50, size: 5 })),
    h("button", { type: "submit" }, "Apply"));
  const body = h("div", { id: "logs-body" });
  let tenant = "";
  const state = { pages: [""] };
  const load = async () => {
    if (!tenant || ctx.stale()) return;
    const f = Object.fromEntries(new FormData(filters).entries());
    const before = state.pages[state.pages.length - 1];
    const mine = latest(body);
    const page = await api.get(`/v1/tenants/${seg(tenant)}/records${query({
      model: f.model, key: f.key, errors: f.errors ? 1 : "", limit: f.limit, before,
    })}`);
    if (ctx.stale() || !mine()) return;
    render(body, tenant, page, state, load);
  };
  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.pages = [""];
    load();
  });
  root.append(h("h1", {}, "Logs"), await tenantPicker(ctx, (t) => {
    tenant = t;
    state.pages = [""];
    load();
  }), filters, body);
}

function render(body, tenant, page, state, load) {
  const detail = h("div", { id: "log-detail" });
  body.dataset.tenant = tenant;
  const outcome = (r) => h("span", { class: `badge ${r.status >= 400 || r.outcome !== "ok" ? "bad" : "ok"}` }, `${r.status} ${r.outcome}`);
  fill(
    body,
    table(
      [
        ["time", (e) => fmtTime(e.record.ts_ms)],
        ["route", (e) => e.record.route],
        ["model", (e) => e.record.model || ""],
        ["key", (e) => e.record.key_id || ""],
        ["status", (e) => outcome(e.record)],
        ["in", (e) => fmtInt(e.record.usage ? e.record.usage.input_tokens : null), "num"],
        ["out", (e) => fmtInt(e.record.usage ? e.record.usage.output_tokens : null), "num"],
        ["cost", (e) => (e.record.cost_micros === null || e.record.cost_micros === undefined ? "" : fmtUsd(e.record.cost_micros)), "num"],
        ["TTFT", (e) => (e.record.ttfb_us ? `${(e.record.ttfb_us / 1000).toFixed(1)} ms` : ""), "num"],
        ["stream", (e) => (e.record.stream ? "yes" : "")],
        ["content", (e) => (e.has_content
          ? h("button", { type: "button", class: "secondary", "data-content": `${e.dataplane}:${e.seq}`,
              onclick: () => openContent(detail, tenant, e) }, h("span", { class: "badge content" }, "content"), " show")
          : "")],
      ],
      page.entries,
      { name: "logs", key: (e) => `${e.dataplane}:${e.seq}`, empty: "No records match." },
    ),
    h("div", { class: "pager" },
      h("button", { type: "button", class: "secondary", id: "newer", disabled: state.pages.length < 2,
        onclick: () => { state.pages.pop(); load(); } }, "← Newer"),
      h("button", { type: "button", class: "secondary", id: "older", disabled: !page.next,
        onclick: () => { state.pages.push(page.next); load(); } }, "Older →")),
    detail,
  );
}

async function openContent(box, tenant, e) {
  // The content endpoint takes a time window; ask for this record's
  // millisecond and pick it out by data plane and sequence.
  const ts = e.record.ts_ms;
  const list = await attempt(() => api.get(`/v1/tenants/${seg(tenant)}/content${query({ since: ts, until: ts + 1, limit: 1000 })}`));
  if (!list) return;
  const found = list.find((x) => x.dataplane === e.dataplane && x.seq === e.seq);
  const c = found && found.content;
  let shown;
  if (!c) shown = h("p", { class: "muted" }, "No content stored for this record.");
  else if (c.state === "opened") {
    const o = c;
    shown = [h("h3", {}, "Request"), h("pre", { class: "content" }, o.request), h("h3", {}, "Response"),
      h("pre", { class: "content" }, o.response), o.response_truncated ? h("p", { class: "muted" }, "(response truncated at capture)") : null];
  } else shown = h("p", { class: "muted" }, `Content not shown: ${String(c.state).replace(/_/g, " ")}.`);
  fill(box, h("section", { class: "card", id: "content-view" }, h("h2", {}, `Content of ${e.dataplane}:${e.seq} (access recorded in the audit trail)`), shown));
}
