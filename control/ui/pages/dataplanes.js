// Enrolled data planes, the snapshot version each last fetched against the
// current one, and their last report of their targets' health.

import { api } from "../api.js";
import { h, table, fmtTime, fmtInt } from "../dom.js";

export default async function dataplanes(root) {
  const [list, snap, health] = await Promise.all([
    api.get("/v1/dataplanes"),
    api.get("/v1/snapshot"),
    api.get("/v1/dataplanes/health").catch(() => []),
  ]);
  const state = (d) => {
    if (d.revoked_ms) return h("span", { class: "badge bad" }, "revoked");
    if (d.snapshot_version === null || d.snapshot_version === undefined) return h("span", { class: "badge" }, "not seen since start");
    return d.snapshot_version >= snap.version ? h("span", { class: "badge ok" }, "current") : h("span", { class: "badge bad" }, "behind");
  };
  root.append(
    h("h1", {}, "Data planes"),
    h("p", { id: "snapshot-version" }, `Current snapshot version: ${snap.version}`),
    table(
      [
        ["id", (d) => d.id],
        ["enrolled", (d) => fmtTime(d.created_ms)],
        ["last seen", (d) => fmtTime(d.last_seen_ms)],
        ["snapshot", (d) => (d.snapshot_version ?? "–"), "num"],
        ["state", state],
        ["records", (d) => fmtInt(d.records), "num"],
        ["highest seq", (d) => fmtInt(d.max_seq), "num"],
      ],
      list,
      { name: "dataplanes", key: (d) => d.id, empty: "No data planes enrolled (sluice-control dataplane enroll ID)." },
    ),
    h("h2", {}, "Target health (last report of each data plane)"),
    table(
      [
        ["data plane", (r) => r.dataplane],
        ["reported", (r) => fmtTime(r.reported_ms)],
        ["targets", (r) => (r.targets || []).map((t) => JSON.stringify(t)).join("\n")],
      ],
      health,
      { name: "health", empty: "No reports yet." },
    ),
  );
}
