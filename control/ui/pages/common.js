// What several pages share: the tenant picker.

import { api } from "../api.js";
import { h } from "../dom.js";

let chosen = "";

/**
 * A <select> of tenants (or the one tenant a tenant-scoped token may see);
 * calls `onchange(tenant)` now and on every change. Resolves to the select.
 */
export async function tenantPicker(ctx, onchange) {
  let ids;
  if (ctx.me.tenant) ids = [ctx.me.tenant];
  else ids = (await api.get("/v1/tenants")).map((t) => t.id);
  if (!ids.includes(chosen)) chosen = ids[0] || "";
  const sel = h("select", { name: "tenant", id: "tenant-picker" }, ids.map((id) => h("option", { value: id }, id)));
  sel.value = chosen;
  let shown = chosen;
  sel.addEventListener("change", () => {
    // Picking the tenant already shown changes nothing (and must not
    // redraw the forms someone may be filling in).
    if (sel.value === shown) return;
    shown = chosen = sel.value;
    onchange(chosen);
  });
  if (chosen) onchange(chosen);
  return h("label", {}, "Tenant", sel);
}

/** Remembers `t` as the tenant the pages start on. */
export function choose(t) {
  chosen = t;
}

/** Marks a new load into `box`; the returned check says whether it is
 * still the latest one (an answer that comes back late is dropped). */
export function latest(box) {
  const n = (box.loads = (box.loads || 0) + 1);
  return () => box.loads === n;
}
