// A tenant's keys. Gateway keys: create (the key is shown once, here, and
// never again), revoke. Provider keys: add, rotate, delete; the secret is
// typed into a password field that is cleared at once, never put anywhere
// else in the page, and never sent back by the API.

import { api, seg } from "../api.js";
import { h, fill, table, form, field, attempt, fmtTime } from "../dom.js";
import { tenantPicker, latest } from "./common.js";

export default async function keys(root, ctx) {
  const body = h("div", { id: "keys-body" });
  root.append(h("h1", {}, "Keys"));
  root.append(await tenantPicker(ctx, (t) => render(body, t, ctx)), body);
}

/** A password input for a provider secret: not autofilled, not kept. */
function secretInput(name) {
  return h("input", { type: "password", name, autocomplete: "new-password", required: true, spellcheck: "false" });
}

/** Reads and clears a form's secret field, so the value lives only in this call. */
function takeSecret(form, name) {
  const el = form.querySelector(`input[name="${name}"]`);
  const v = el.value;
  el.value = "";
  return v;
}

async function render(body, tenant, ctx) {
  if (ctx.stale()) return;
  const mine = latest(body);
  const t = seg(tenant);
  const [gw, pk] = await Promise.all([api.get(`/v1/tenants/${t}/api-keys`), api.get(`/v1/tenants/${t}/provider-keys`)]);
  if (!mine()) return; // another tenant was picked meanwhile
  const reload = () => render(body, tenant, ctx);
  const shown = h("div", { id: "new-key" });
  body.dataset.tenant = tenant;
  fill(
    body,
    h("h2", {}, "Gateway keys"),
    form({ id: "apikey-create" }, [
      h("div", { class: "row" },
        field("Id (optional)", { name: "id", pattern: "[a-z0-9_\\-]+" }),
        field("Label (optional)", { name: "name" }),
        h("button", { type: "submit" }, "Create gateway key")),
      shown,
    ], async (v, f) => {
      const b = {};
      if (v.id) b.id = v.id;
      if (v.name) b.name = v.name;
      const created = await attempt(() => api.post(`/v1/tenants/${t}/api-keys`, b));
      if (!created) return;
      f.reset();
      await reload();
      // The key exists only in this reply; it is shown once and not kept.
      fill(body.querySelector("#new-key"),
        h("p", {}, "Copy this key now: it is not stored and will not be shown again."),
        h("div", { class: "secret-once", id: "created-key" }, created.key),
        h("button", { type: "button", class: "secondary", onclick: (e) => fill(e.target.parentElement) }, "Done"));
    }),
    table(
      [
        ["id", (k) => k.id],
        ["label", (k) => k.name || ""],
        ["created", (k) => fmtTime(k.created_ms)],
        ["state", (k) => (k.revoked_ms ? h("span", { class: "badge bad" }, `revoked ${fmtTime(k.revoked_ms)}`) : h("span", { class: "badge ok" }, "active"))],
        ["", (k) => (k.revoked_ms ? "" : h("button", {
          type: "button", class: "danger", "data-revoke": k.id,
          onclick: async () => {
            if (await attempt(() => api.post(`/v1/tenants/${t}/api-keys/${seg(k.id)}/revoke`), `Key ${k.id} revoked`)) await reload();
          },
        }, "Revoke"))],
      ],
      gw,
      { name: "api-keys", key: (k) => k.id, empty: "No gateway keys." },
    ),
    h("h2", {}, "Provider keys"),
    form({ id: "provider-key-add" }, [
      h("div", { class: "row" },
        field("Id", { name: "id", required: true, pattern: "[a-z0-9_\\-]+", placeholder: "openai-main" }),
        h("label", {}, "Secret (sealed at rest, never shown)", secretInput("secret")),
        h("button", { type: "submit" }, "Add provider key")),
    ], async (v, f) => {
      const secret = takeSecret(f, "secret");
      if (await attempt(() => api.post(`/v1/tenants/${t}/provider-keys`, { id: v.id, secret }), `Provider key ${v.id} added`)) {
        f.reset();
        await reload();
      }
    }),
    table(
      [
        ["id", (k) => k.id],
        ["created", (k) => fmtTime(k.created_ms)],
        ["last rotated", (k) => fmtTime(k.updated_ms)],
        ["rotate", (k) => rotateForm(t, k.id, reload)],
        ["", (k) => h("button", {
          type: "button", class: "danger", "data-delete": k.id,
          onclick: async () => {
            if (!confirm(`Delete provider key ${k.id}? Routes that use it stop working.`)) return;
            if (await attempt(() => api.del(`/v1/tenants/${t}/provider-keys/${seg(k.id)}`), `Provider key ${k.id} deleted`)) await reload();
          },
        }, "Delete")],
      ],
      pk,
      { name: "provider-keys", key: (k) => k.id, empty: "No provider keys." },
    ),
  );
}

function rotateForm(t, id, reload) {
  const f = h("form", { class: "row", autocomplete: "off", "data-rotate": id }, secretInput("secret"), h("button", { type: "submit", class: "secondary" }, "Rotate"));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const secret = takeSecret(f, "secret");
    if (await attempt(() => api.put(`/v1/tenants/${t}/provider-keys/${seg(id)}`, { secret }), `Provider key ${id} rotated`)) await reload();
  });
  return f;
}
