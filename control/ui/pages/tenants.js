// Tenants: create; per tenant its name and region, credit and the
// low-balance alert threshold, retention and content logging; delete
// behind a typed confirmation.

import { api, seg } from "../api.js";
import { h, fill, table, form, field, attempt, fmtTime, fmtUsd, toast } from "../dom.js";
import { choose, latest } from "./common.js";

const usdToMicros = (s) => Math.round(parseFloat(s) * 1e6);

export default async function tenants(root, ctx) {
  const detail = h("div", { id: "tenant-detail" });
  const list = h("div", { id: "tenant-list" });
  root.append(h("h1", {}, "Tenants"));
  if (!ctx.me.tenant) {
    root.append(
      form({ id: "tenant-create" }, [
        h("h2", {}, "New tenant"),
        h(
          "div",
          { class: "row" },
          field("Id", { name: "id", required: true, pattern: "[a-z0-9_\\-]+", placeholder: "acme" }),
          field("Name", { name: "name", placeholder: "Acme Inc." }),
          field("Region", { name: "region", placeholder: "eu" }),
          h("button", { type: "submit" }, "Create tenant"),
        ),
      ], async (v, f) => {
        const body = { id: v.id };
        if (v.name) body.name = v.name;
        if (v.region) body.region = v.region;
        if (await attempt(() => api.post("/v1/tenants", body), `Tenant ${v.id} created`)) {
          f.reset();
          await refresh(v.id);
        }
      }),
    );
  }
  root.append(list, detail);

  const refresh = async (select) => {
    const rows = ctx.me.tenant ? [await api.get(`/v1/tenants/${seg(ctx.me.tenant)}`)] : await api.get("/v1/tenants");
    fill(
      list,
      table(
        [
          ["id", (t) => t.id],
          ["name", (t) => t.name || ""],
          ["region", (t) => t.region || ""],
          ["created", (t) => fmtTime(t.created_ms)],
        ],
        rows,
        { name: "tenants", key: (t) => t.id, onclick: (t) => show(t.id), empty: "No tenants yet." },
      ),
    );
    const pick = select || (rows[0] && rows[0].id);
    if (pick && rows.some((t) => t.id === pick)) await show(pick);
    else fill(detail);
  };

  const show = async (id) => {
    choose(id);
    for (const tr of list.querySelectorAll("tr[data-key]")) tr.classList.toggle("selected", tr.dataset.key === id);
    const t = seg(id);
    const mine = latest(detail);
    const [tenant, credit, privacy] = await Promise.all([
      api.get(`/v1/tenants/${t}`),
      api.get(`/v1/credits/${t}`).catch((e) => ({ hidden: e.message })),
      api.get(`/v1/tenants/${t}/privacy`),
    ]);
    if (!mine()) return; // another tenant was picked meanwhile
    detail.dataset.tenant = id;
    fill(
      detail,
      h("h2", {}, `Tenant ${tenant.id}`),
      form({ id: "tenant-edit" }, [
        h("div", { class: "row" },
          field("Name", { name: "name", value: tenant.name || "" }),
          field("Region", { name: "region", value: tenant.region || "", placeholder: "any" }),
          h("button", { type: "submit" }, "Save")),
      ], async (v) => {
        await attempt(() => api.patch(`/v1/tenants/${t}`, { name: v.name || null, region: v.region || null }), "Saved");
        await refresh(id);
      }),
      creditCard(t, credit, () => show(id)),
      form({ id: "tenant-privacy" }, [
        h("h2", {}, "Retention and content logging"),
        h("div", { class: "row" },
          h("label", { class: "check" }, h("input", { type: "checkbox", name: "log_content", checked: privacy.log_content }), "Log request and response content (sealed under the tenant's key)"),
          field("Keep records (days)", { name: "retention_days", type: "number", min: 1, value: privacy.retention_days }),
          field("Keep content (days)", { name: "content_retention_days", type: "number", min: 1, value: privacy.content_retention_days }),
          h("button", { type: "submit" }, "Save")),
      ], async (v) => {
        await attempt(() => api.patch(`/v1/tenants/${t}/privacy`, {
          log_content: v.log_content,
          retention_days: Number(v.retention_days),
          content_retention_days: Number(v.content_retention_days),
        }), "Privacy settings saved");
        await show(id);
      }),
      ctx.me.tenant ? null : deleteCard(id, () => refresh()),
    );
  };

  await refresh(undefined);
}

function creditCard(t, c, reload) {
  if (c && c.hidden) {
    return h("section", { class: "card", id: "tenant-credit" }, h("h2", {}, "Credit and alerts"), h("p", { class: "muted" }, c.hidden));
  }
  const status = c && c.metered
    ? h("p", { "data-credit": "balance" },
        `Balance ${fmtUsd(c.balance_micros)} (added ${fmtUsd(c.added_micros)}, spent ${fmtUsd(c.spent_micros)})`,
        c.below_threshold ? h("span", { class: "badge bad" }, " below threshold") : null)
    : h("p", { class: "muted", "data-credit": "none" }, "No credit account: spending is not limited. Adding credit starts metering.");
  return form({ id: "tenant-credit" }, [
    h("h2", {}, "Credit and alerts"),
    status,
    h("div", { class: "row" },
      field("Add credit (USD)", { name: "add", type: "number", step: "0.01", min: "0", placeholder: "10.00" }),
      field("Alert below (USD, empty: none)", { name: "threshold", type: "number", step: "0.01", min: "0",
        value: c && c.low_balance_micros !== null && c.low_balance_micros !== undefined ? (c.low_balance_micros / 1e6).toString() : "" }),
      h("button", { type: "submit" }, "Apply")),
  ], async (v) => {
    if (v.add) {
      const micros = usdToMicros(v.add);
      if (!(micros > 0)) return toast("Credit must be a positive amount", true);
      if (!(await attempt(() => api.post(`/v1/credits/${t}`, { micros }), "Credit added"))) return;
    }
    const threshold = v.threshold === "" ? null : usdToMicros(v.threshold);
    const current = c ? c.low_balance_micros ?? null : null;
    if (threshold !== current) await attempt(() => api.put(`/v1/credits/${t}/threshold`, { micros: threshold }), "Alert threshold set");
    await reload();
  });
}

function deleteCard(id, after) {
  const input = h("input", { name: "confirm", id: "delete-confirm", placeholder: id, autocomplete: "off" });
  const button = h("button", { type: "submit", class: "danger", disabled: true }, "Delete tenant");
  input.addEventListener("input", () => (button.disabled = input.value !== id));
  const f = form({ id: "tenant-delete" }, [
    h("h2", {}, "Delete"),
    h("p", {}, "Deleting a tenant removes its keys, routes and records, and destroys its content key. Type ", h("code", {}, id), " to confirm."),
    h("div", { class: "row" }, input, button),
  ], async (v) => {
    if (v.confirm !== id) return;
    if (await attempt(() => api.del(`/v1/tenants/${seg(id)}`), `Tenant ${id} deleted`)) await after();
  });
  return f;
}
