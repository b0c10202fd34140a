// The audit trail of admin actions, and whether its hash chain verifies.

import { api, query } from "../api.js";
import { h, fill, table, fmtTime } from "../dom.js";

export default async function audit(root) {
  const verdict = h("section", { class: "card", id: "audit-verify" });
  const list = h("div", { id: "audit-list" });
  root.append(h("h1", {}, "Audit trail"), verdict, list);
  const v = await api.get("/v1/audit/verify");
  fill(
    verdict,
    v.ok
      ? h("p", { class: "ok", "data-verified": "ok" }, `Verified: ${v.entries} entries, chain whole`, v.head ? ` (head ${v.head.slice(0, 16)}…)` : "")
      : h("p", { class: "bad", "data-verified": "broken" }, `BROKEN at entry ${v.first_bad}: ${v.problem}`),
  );
  // The newest entries: the API pages forward from `after`.
  const after = Math.max(0, v.entries - 200);
  const entries = await api.get(`/v1/audit${query({ after: after || "", limit: 200 })}`);
  fill(
    list,
    table(
      [
        ["#", (e) => e.seq, "num"],
        ["time", (e) => fmtTime(e.ts_ms)],
        ["admin", (e) => e.admin],
        ["action", (e) => e.action],
        ["target", (e) => e.target || ""],
        ["detail", (e) => e.detail || ""],
        ["outcome", (e) => h("span", { class: `badge ${e.outcome === "ok" ? "ok" : "bad"}` }, e.outcome)],
      ],
      entries.slice().reverse(),
      { name: "audit", key: (e) => String(e.seq), empty: "No entries." },
    ),
  );
}
