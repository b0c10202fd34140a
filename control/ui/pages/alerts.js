// Low-balance alerts, newest last as the API lists them.

import { api, query } from "../api.js";
import { h, table, fmtTime, fmtUsd } from "../dom.js";

export default async function alerts(root, ctx) {
  const list = await api.get(`/v1/alerts${query({ tenant: ctx.me.tenant || "", limit: 1000 })}`);
  root.append(
    h("h1", {}, "Alerts"),
    h("p", { class: "muted" }, "Raised when a tenant's balance crosses its threshold (set on the Tenants page); sent to --alert-webhook when one is configured."),
    table(
      [
        ["#", (a) => a.id, "num"],
        ["time", (a) => fmtTime(a.ts_ms)],
        ["type", (a) => a.type],
        ["tenant", (a) => a.tenant],
        ["balance", (a) => fmtUsd(a.balance_micros), "num"],
        ["threshold", (a) => fmtUsd(a.threshold_micros), "num"],
        ["delivered", (a) => (a.delivered_ms ? fmtTime(a.delivered_ms) : h("span", { class: "muted" }, "not yet"))],
      ],
      list.slice().reverse(),
      { name: "alerts", key: (a) => String(a.id), empty: "No alerts." },
    ),
  );
}
