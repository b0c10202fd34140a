// Upstreams (operator-wide) and a tenant's routes.

import { api, seg } from "../api.js";
import { h, fill, table, form, field, attempt } from "../dom.js";
import { tenantPicker, latest } from "./common.js";

export default async function routing(root, ctx) {
  root.append(h("h1", {}, "Upstreams and routes"));
  if (!ctx.me.tenant) {
    const ups = h("div", { id: "upstreams" });
    root.append(h("h2", {}, "Upstreams"), ups);
    await upstreams(ups);
  }
  const routes = h("div", { id: "routes" });
  root.append(h("h2", {}, "Routes"), await tenantPicker(ctx, (t) => tenantRoutes(routes, t, ctx)), routes);
}

async function upstreams(box) {
  const list = await api.get("/v1/upstreams");
  const reload = () => upstreams(box);
  fill(
    box,
    form({ id: "upstream-add" }, [
      h("div", { class: "row" },
        field("Name", { name: "name", required: true }),
        h("label", {}, "Kind", h("select", { name: "kind" },
          ["openai", "anthropic", "openrouter"].map((k) => h("option", { value: k }, k)))),
        field("Base URL", { name: "base_url", required: true, placeholder: "https://api.openai.com", size: 36 }),
        field("Region", { name: "region" }),
        h("button", { type: "submit" }, "Add upstream")),
    ], async (v, f) => {
      const body = { name: v.name, kind: v.kind, base_url: v.base_url };
      if (v.region) body.region = v.region;
      if (await attempt(() => api.post("/v1/upstreams", body), `Upstream ${v.name} added`)) {
        f.reset();
        await reload();
      }
    }),
    table(
      [
        ["name", (u) => u.name],
        ["kind", (u) => u.kind],
        ["base URL", (u) => u.base_url],
        ["region", (u) => u.region || ""],
        ["", (u) => h("button", {
          type: "button", class: "danger",
          onclick: async () => {
            if (!confirm(`Remove upstream ${u.name}?`)) return;
            if (await attempt(() => api.del(`/v1/upstreams/${seg(u.name)}`), `Upstream ${u.name} removed`)) await reload();
          },
        }, "Remove")],
      ],
      list,
      { name: "upstreams", key: (u) => u.name, empty: "No upstreams." },
    ),
  );
}

const targetText = (t) => `${t.upstream} / key ${t.provider_key}${t.model ? ` → ${t.model}` : ""}${t.weight && t.weight !== 1 ? ` ×${t.weight}` : ""}`;

async function tenantRoutes(box, tenant, ctx) {
  if (ctx.stale()) return;
  const mine = latest(box);
  const t = seg(tenant);
  const list = await api.get(`/v1/tenants/${t}/routes`);
  if (!mine()) return; // another tenant was picked meanwhile
  const reload = () => tenantRoutes(box, tenant, ctx);
  box.dataset.tenant = tenant;
  fill(
    box,
    form({ id: "route-set" }, [
      h("p", { class: "muted" }, "One target per route here; the CLI (route set --target …) sets several, with weights and priorities."),
      h("div", { class: "row" },
        field("Model alias", { name: "model", required: true, placeholder: "gpt-4o-mini" }),
        field("Upstream", { name: "upstream", required: true }),
        field("Provider key id", { name: "provider_key", required: true }),
        field("Upstream model (optional)", { name: "target_model" }),
        h("button", { type: "submit" }, "Set route")),
    ], async (v, f) => {
      const target = { upstream: v.upstream, provider_key: v.provider_key };
      if (v.target_model) target.model = v.target_model;
      if (await attempt(() => api.put(`/v1/tenants/${t}/routes`, { model: v.model, targets: [target] }), `Route ${v.model} set`)) {
        f.reset();
        await reload();
      }
    }),
    table(
      [
        ["model", (r) => r.model],
        ["strategy", (r) => r.strategy || ""],
        ["targets", (r) => r.targets.map(targetText).join("; ")],
        ["", (r) => h("button", {
          type: "button", class: "danger",
          onclick: async () => {
            if (await attempt(() => api.del(`/v1/tenants/${t}/routes/${seg(r.model)}`), `Route ${r.model} removed`)) await reload();
          },
        }, "Remove")],
      ],
      list,
      { name: "routes", key: (r) => r.model, empty: "No routes for this tenant." },
    ),
  );
}
