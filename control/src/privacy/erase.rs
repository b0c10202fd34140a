//! What deleting a tenant removes beyond the store's own tables: its privacy
//! row with the content key (so every sealed copy of its content, in this
//! file, a backup or a data plane's spool, can no longer be opened), its
//! content index, and its usage, which is folded into anonymous rollups by
//! day and model family first. Runs inside the deleting transaction, before
//! the usage tables lose the tenant's rows.
//!
//! A model name can identify its tenant (`ft:gpt-4o:acme-corp::x`, a custom
//! alias), so an anonymous rollup keeps only the public family it belongs to
//! (the longest name of the data plane's public price list that is the model
//! or a prefix of it, e.g. `gpt-4o`), or `other`.

use crate::store::schema::{self, pack3, CONTENT_INDEX, TENANT_PRIVACY, USAGE_ANONYMOUS};
use crate::store::StoreError;
use redb::{ReadableTable, WriteTransaction};
use std::collections::BTreeMap;

/// The public model family of `model` (see the module docs).
pub(crate) fn public_model(model: &str) -> &'static str {
    if model.is_empty() {
        return "";
    }
    sluice_contract::quota::price::DEFAULTS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| model.starts_with(name))
        .max_by_key(|name| name.len())
        .unwrap_or("other")
}

/// Packs the four counters of an anonymous rollup.
pub(crate) fn pack4(requests: u64, input: u64, output: u64, cost: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..24].copy_from_slice(&pack3(requests, input, output));
    out[24..].copy_from_slice(&cost.to_be_bytes());
    out
}

/// Unpacks [`pack4`].
pub(crate) fn unpack4(v: &[u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, o) in out.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&v[i * 8..i * 8 + 8]);
        *o = u64::from_be_bytes(b);
    }
    out
}

/// Removes `tenant`'s privacy state and folds its usage into the anonymous
/// rollups. The caller removes the usage rows themselves.
pub(crate) fn tenant(txn: &WriteTransaction, tenant: &str) -> Result<(), StoreError> {
    txn.open_table(TENANT_PRIVACY)?.remove(tenant)?;
    {
        let mut index = txn.open_table(CONTENT_INDEX)?;
        let keys: Vec<[u8; 20]> = index
            .range((tenant, [0u8; 20])..=(tenant, [0xffu8; 20]))?
            .map(|i| i.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()?;
        for k in keys {
            index.remove((tenant, k))?;
        }
    }
    // (day, model) → [requests, input, output, cost]
    let mut folded: BTreeMap<([u8; 4], &'static str), [u64; 4]> = BTreeMap::new();
    {
        let usage = txn.open_table(schema::USAGE_DAILY)?;
        for item in usage.range((tenant, [0u8; 4], "")..)? {
            let (k, v) = item?;
            let (t, day, model) = k.value();
            if t != tenant {
                break;
            }
            let (n, input, output) = schema::unpack3(&v.value());
            let f = folded.entry((day, public_model(model))).or_default();
            f[0] += n;
            f[1] += input;
            f[2] += output;
        }
    }
    {
        let meter = txn.open_table(schema::USAGE_METER_DAILY)?;
        for item in meter.range((tenant, [0u8; 4], "")..)? {
            let (k, v) = item?;
            let (t, day, model) = k.value();
            if t != tenant {
                break;
            }
            let mut cost = [0u8; 8];
            cost.copy_from_slice(&v.value()[..8]);
            folded.entry((day, public_model(model))).or_default()[3] += u64::from_be_bytes(cost);
        }
    }
    let mut anon = txn.open_table(USAGE_ANONYMOUS)?;
    for ((day, model), add) in folded {
        let key = (day, model);
        let old = anon.get(key)?.map(|v| unpack4(&v.value())).unwrap_or_default();
        let sum: Vec<u64> = old.iter().zip(add).map(|(a, b)| a.saturating_add(b)).collect();
        anon.insert(key, pack4(sum[0], sum[1], sum[2], sum[3]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    // By path, not `super`: the import graph then shows this file alone.
    use crate::privacy::erase::*;

    #[test]
    fn rollup_counters_round_trip() {
        assert_eq!(unpack4(&pack4(1, 2, 3, 4)), [1, 2, 3, 4]);
    }

    #[test]
    fn anonymous_rollups_keep_only_public_model_families() {
        assert_eq!(public_model("gpt-4o-mini-2024-07-18"), "gpt-4o-mini");
        assert_eq!(public_model("gpt-4o"), "gpt-4o");
        assert_eq!(public_model("claude-3-5-haiku"), "claude-3-5-haiku");
        assert_eq!(public_model("ft:gpt-4o:acme-corp::x1"), "other");
        assert_eq!(public_model("acme-secret-model"), "other");
        assert_eq!(public_model(""), "");
    }
}
