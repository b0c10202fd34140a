//! Every table of `control.redb`, in one place.
//!
//! Named things (tenants, upstreams, data planes) are keyed by their id; things
//! that belong to a tenant by `(tenant, id)`, so a tenant's rows are one range.
//! Numeric key parts are fixed-width big-endian byte arrays, so the byte order
//! of a key is its numeric order. Values are compact JSON of the row types in
//! [`super::rows`] unless noted.

use redb::TableDefinition;

/// What the `magic` meta entry of a Sluice control store holds.
pub(crate) const MAGIC: &[u8] = b"sluice-control";
/// Layout version of the tables below; bumped on any incompatible change.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Meta keys.
pub(crate) mod meta {
    /// [`super::MAGIC`].
    pub(crate) const MAGIC: &str = "magic";
    /// [`super::SCHEMA_VERSION`], u32 big-endian.
    pub(crate) const SCHEMA_VERSION: &str = "schema_version";
    /// Current snapshot version, u64 big-endian.
    pub(crate) const SNAPSHOT_VERSION: &str = "snapshot_version";
    /// A known value sealed under the master key: proves the key fits the store.
    pub(crate) const KEK_CHECK: &str = "kek_check";
    /// Next data plane number to hand out, u32 big-endian.
    pub(crate) const NEXT_DATAPLANE: &str = "next_dataplane";
}

/// Store identity and counters (see [`meta`]).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Tenant id → `TenantRow`.
pub(crate) const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// (tenant, key id) → `ApiKeyRow` (hash only, never the key).
pub(crate) const API_KEYS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("api_keys");
/// (tenant, key id) → `ProviderKeyRow` (DEK sealed under the KEK, secret under the DEK).
pub(crate) const PROVIDER_KEYS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("provider_keys");
/// Upstream name → `Upstream` (the snapshot type itself).
pub(crate) const UPSTREAMS: TableDefinition<&str, &[u8]> = TableDefinition::new("upstreams");
/// (tenant, model alias) → `Route` (the snapshot type itself).
pub(crate) const ROUTES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("routes");
/// Admin token name → `AdminTokenRow` (the token's hash and scope only).
pub(crate) const ADMIN_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("admin_tokens");
/// Data plane id → `DataplaneRow` (token hash only).
pub(crate) const DATAPLANES: TableDefinition<&str, &[u8]> = TableDefinition::new("dataplanes");
/// Data plane number → records stored (u64 BE) ++ highest seq stored (u64 BE).
pub(crate) const DATAPLANE_STATS: TableDefinition<RecordKeyDp, [u8; 16]> =
    TableDefinition::new("dataplane_stats");
/// [`record_key`] → `Record` JSON.
pub(crate) const RECORDS: TableDefinition<RecordKey, &[u8]> = TableDefinition::new("records");
/// (tenant or "" when unauthenticated, [`tenant_record_key`]) → nothing: the
/// per-tenant time index of [`RECORDS`].
pub(crate) const RECORDS_BY_TENANT: TableDefinition<(&str, TenantRecordKey), ()> =
    TableDefinition::new("records_by_tenant");
/// (tenant, UTC day u32 BE, model or "") → requests ++ input tokens ++ output
/// tokens (u64 BE each): the daily usage rollup, kept at ingest.
pub(crate) const USAGE_DAILY: TableDefinition<(&str, [u8; 4], &str), [u8; 24]> =
    TableDefinition::new("usage_daily");
/// Metering and policy (see `crate::billing`); created on first write, read
/// as empty while absent. Model → `ModelPrice` (the snapshot type itself).
pub(crate) const PRICES: TableDefinition<&str, &[u8]> = TableDefinition::new("prices");
/// Tenant → `PolicyRow` (the policy TOML as the operator wrote it).
pub(crate) const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("policies");
/// (tenant, gateway key id or "" for the whole tenant) → `RateLimit` (the snapshot type).
pub(crate) const RATE_LIMITS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("rate_limits");
/// Tenant → `CreditAccount`: prepaid credit added, spent, leased.
pub(crate) const CREDIT_ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("credit_accounts");
/// (tenant, data plane number u32 BE) → cumulative micro-dollars granted ++
/// spent there per ingested records (u64 BE each): the credit leases.
pub(crate) const CREDIT_LEASES: TableDefinition<(&str, [u8; 4]), [u8; 16]> =
    TableDefinition::new("credit_leases");
/// (tenant, gateway key id or "", data plane number u32 BE) → that data
/// plane's share of the limit in parts per million (u64 BE): the fleet-wide
/// rate limits (see `crate::billing::fleet`). Absent: the whole limit.
pub(crate) const RATE_SHARES: TableDefinition<(&str, &str, [u8; 4]), u64> =
    TableDefinition::new("rate_shares");
/// Alert id (u64 BE, ascending) → `AlertRow`.
pub(crate) const ALERTS: TableDefinition<[u8; 8], &[u8]> = TableDefinition::new("alerts");
/// (tenant, UTC day u32 BE, model or "") → cost micro-dollars ++ cached input
/// ++ cache creation ++ reasoning tokens (u64 BE each), kept at ingest.
/// (tenant, UTC day u32 BE, model or "") → requests whose model had no
/// price (records with `unpriced: true`, cost unknown), u64 BE.
pub(crate) const UNPRICED_DAILY: TableDefinition<(&str, [u8; 4], &str), [u8; 8]> =
    TableDefinition::new("unpriced_daily");
pub(crate) const USAGE_METER_DAILY: TableDefinition<(&str, [u8; 4], &str), [u8; 32]> =
    TableDefinition::new("usage_meter_daily");
/// Response cache (see `crate::cache`); created on first write, read as
/// empty while absent. (tenant, model alias or "" for every model) →
/// `CacheRule` (the snapshot type).
pub(crate) const CACHE_RULES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("cache_rules");
/// (tenant, UTC day u32 BE, model or "") → cache look-ups ++ hits ++ saved
/// micro-dollars ++ body bytes before ++ after compression (u64 BE each),
/// kept at ingest.
pub(crate) const CACHE_DAILY: TableDefinition<(&str, [u8; 4], &str), [u8; 40]> =
    TableDefinition::new("cache_daily");
/// Privacy (see `crate::privacy`); created on first write, read as empty
/// while absent. Tenant → `PrivacyRow`: content logging, retention periods,
/// the content key sealed under the master key.
pub(crate) const TENANT_PRIVACY: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_privacy");
/// (tenant, [`TenantRecordKey`]) → nothing: the records still carrying sealed content.
pub(crate) const CONTENT_INDEX: TableDefinition<(&str, TenantRecordKey), ()> =
    TableDefinition::new("content_index");
/// (UTC day u32 BE, model or "") → requests ++ input tokens ++ output tokens
/// ++ cost micro-dollars (u64 BE each): the usage of deleted tenants, with no
/// tenant identifier.
pub(crate) const USAGE_ANONYMOUS: TableDefinition<([u8; 4], &str), [u8; 32]> =
    TableDefinition::new("usage_anonymous");
/// Audit entry seq (u64 BE, from 1) → `AuditEntry` JSON: a hash chain.
pub(crate) const AUDIT: TableDefinition<[u8; 8], &[u8]> = TableDefinition::new("audit");
/// Privacy bookkeeping: the audit key (sealed), the audit chain's head, the
/// content scan cursor per data plane.
pub(crate) const PRIVACY_META: TableDefinition<&str, &[u8]> = TableDefinition::new("privacy_meta");

/// Record sinks (see `crate::sinks`); created on first write, read as empty
/// while absent. Sink name → `SinkRow` (its secret sealed under the master key).
pub(crate) const SINKS: TableDefinition<&str, &[u8]> = TableDefinition::new("sinks");
/// (sink name, data plane number u32 BE) → the next seq to publish (u64 BE):
/// a sink's durable cursor, advanced only after the engine acknowledged.
pub(crate) const SINK_CURSORS: TableDefinition<(&str, [u8; 4]), [u8; 8]> =
    TableDefinition::new("sink_cursors");

/// Data plane number, u32 BE.
pub(crate) type RecordKeyDp = [u8; 4];
/// Data plane number (u32 BE) ++ sequence (u64 BE).
pub(crate) type RecordKey = [u8; 12];
/// Timestamp ms (u64 BE) ++ data plane number (u32 BE) ++ sequence (u64 BE).
pub(crate) type TenantRecordKey = [u8; 20];

/// The [`RECORDS`] key of `(dataplane, seq)`.
pub(crate) fn record_key(dp: u32, seq: u64) -> RecordKey {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&dp.to_be_bytes());
    k[4..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The [`RECORDS_BY_TENANT`] key part of a record.
pub(crate) fn tenant_record_key(ts_ms: u64, dp: u32, seq: u64) -> TenantRecordKey {
    let mut k = [0u8; 20];
    k[..8].copy_from_slice(&ts_ms.to_be_bytes());
    k[8..].copy_from_slice(&record_key(dp, seq));
    k
}

/// Splits a [`TenantRecordKey`] back into (ts, dataplane, seq).
pub(crate) fn split_tenant_record_key(k: &TenantRecordKey) -> (u64, RecordKey) {
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&k[..8]);
    let mut rk = [0u8; 12];
    rk.copy_from_slice(&k[8..]);
    (u64::from_be_bytes(ts), rk)
}

/// Splits a [`RecordKey`] into (dataplane, seq).
pub(crate) fn split_record_key(k: &RecordKey) -> (u32, u64) {
    let mut dp = [0u8; 4];
    dp.copy_from_slice(&k[..4]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&k[4..]);
    (u32::from_be_bytes(dp), u64::from_be_bytes(seq))
}

/// Packs three u64 counters big-endian.
pub(crate) fn pack3(a: u64, b: u64, c: u64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..16].copy_from_slice(&b.to_be_bytes());
    out[16..].copy_from_slice(&c.to_be_bytes());
    out
}

/// Unpacks [`pack3`].
pub(crate) fn unpack3(v: &[u8; 24]) -> (u64, u64, u64) {
    let get = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&v[i..i + 8]);
        u64::from_be_bytes(b)
    };
    (get(0), get(8), get(16))
}

/// Packs two u64 counters big-endian.
pub(crate) fn pack2(a: u64, b: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

/// Unpacks [`pack2`].
pub(crate) fn unpack2(v: &[u8; 16]) -> (u64, u64) {
    let mut a = [0u8; 8];
    a.copy_from_slice(&v[..8]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&v[8..]);
    (u64::from_be_bytes(a), u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_numerically_and_split() {
        assert!(record_key(1, 255) < record_key(1, 256));
        assert!(record_key(1, u64::MAX) < record_key(2, 0));
        assert!(tenant_record_key(999, 9, 9) < tenant_record_key(1000, 0, 0));
        let (ts, rk) = split_tenant_record_key(&tenant_record_key(77, 3, 5));
        assert_eq!((ts, split_record_key(&rk)), (77, (3, 5)));
        assert_eq!(unpack3(&pack3(1, 2, 3)), (1, 2, 3));
        assert_eq!(unpack2(&pack2(4, 5)), (4, 5));
    }
}
