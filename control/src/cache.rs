//! Response cache rules: stored in redb, changed by admin ops (audited like
//! every admin change), carried to data planes in the snapshot's `caches`
//! section. Only rules live here: cached content never reaches the control
//! plane (it stays in each data plane's memory).

pub(crate) mod meter;
pub(crate) mod stats;

use crate::store::compile::Compiled;
use crate::store::schema::CACHE_RULES;
use crate::store::{decode, encode, open_read, require_tenant, Store, StoreError};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use sluice_contract::cache::CacheRule;

/// One change of cache rules.
#[derive(Debug, Clone)]
pub(crate) enum CacheOp {
    /// Create or replace a rule (already checked).
    Set(CacheRule),
    /// Remove a tenant's rule for one model, or its tenant-wide rule.
    Off {
        /// Tenant id.
        tenant: String,
        /// Model alias; `None` for the tenant-wide rule.
        model: Option<String>,
    },
}

/// Applies `op` inside `txn`; the snapshot always changes.
pub(crate) fn mutate(txn: &WriteTransaction, op: &CacheOp) -> Result<bool, StoreError> {
    let mut t = txn.open_table(CACHE_RULES)?;
    match op {
        CacheOp::Set(rule) => {
            require_tenant(txn, &rule.tenant)?;
            rule.check().map_err(StoreError::Invalid)?;
            let model = rule.model.as_deref().unwrap_or("");
            t.insert((rule.tenant.as_str(), model), encode(rule)?.as_slice())?;
        }
        CacheOp::Off { tenant, model } => {
            if t.remove((tenant.as_str(), model.as_deref().unwrap_or("")))?
                .is_none()
            {
                return Err(StoreError::NotFound(match model {
                    Some(m) => format!("tenant {tenant:?} has no cache rule for model {m:?}"),
                    None => format!("tenant {tenant:?} has no tenant-wide cache rule"),
                }));
            }
        }
    }
    Ok(true)
}

/// Removes every rule of `tenant` (part of deleting it).
pub(crate) fn delete_tenant(txn: &WriteTransaction, tenant: &str) -> Result<(), StoreError> {
    let mut t = txn.open_table(CACHE_RULES)?;
    let mut models: Vec<String> = Vec::new();
    for item in t.range((tenant, "")..)? {
        let (k, _) = item?;
        let (tn, model) = k.value();
        if tn != tenant {
            break;
        }
        models.push(model.to_owned());
    }
    for m in models {
        t.remove((tenant, m.as_str()))?;
    }
    Ok(())
}

fn rules<T>(t: &T, tenant: Option<&str>) -> Result<Vec<CacheRule>, StoreError>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    let mut out = Vec::new();
    for item in t.range::<(&str, &str)>(..)? {
        let (k, v) = item?;
        if tenant.is_some_and(|tn| tn != k.value().0) {
            continue;
        }
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// Adds the `caches` section to `c`, inside a write transaction.
pub(crate) fn add_from_write(txn: &WriteTransaction, c: &mut Compiled) -> Result<(), StoreError> {
    c.snapshot.caches = rules(&txn.open_table(CACHE_RULES)?, None)?;
    Ok(())
}

/// Adds the `caches` section to `c`, inside a read transaction.
pub(crate) fn add_from_read(r: &ReadTransaction, c: &mut Compiled) -> Result<(), StoreError> {
    c.snapshot.caches = match open_read(r, CACHE_RULES)? {
        Some(t) => rules(&t, None)?,
        None => Vec::new(),
    };
    Ok(())
}

impl Store {
    /// Every cache rule, or one tenant's.
    pub(crate) fn cache_rules(&self, tenant: Option<&str>) -> Result<Vec<CacheRule>, StoreError> {
        let r = self.begin_read()?;
        match open_read(&r, CACHE_RULES)? {
            Some(t) => rules(&t, tenant),
            None => Ok(Vec::new()),
        }
    }
}

/// The audit trail's description of `op`.
pub(crate) fn describe(op: &CacheOp) -> crate::audit::Described {
    let (action, tenant, model, detail) = match op {
        CacheOp::Set(r) => (
            "cache.set",
            &r.tenant,
            &r.model,
            Some(format!(
                "ttl_s={} replay={} hit_price={}",
                r.ttl_s,
                r.replay.as_str(),
                r.hit_price
            )),
        ),
        CacheOp::Off { tenant, model } => ("cache.off", tenant, model, None),
    };
    crate::audit::Described {
        action: action.to_owned(),
        target: Some(format!("cache {tenant}/{}", model.as_deref().unwrap_or("*"))),
        tenant: Some(tenant.clone()),
        detail,
        ..crate::audit::Described::default()
    }
}
