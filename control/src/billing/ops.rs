//! Billing changes, applied by the store's writer like every admin change
//! (`AdminOp::Billing`): inside its write transaction, followed by the
//! snapshot validation when they return `true` (the snapshot changes).

use super::leases;
use super::meter::raise;
use super::rows::{AlertRow, CreditAccount, PolicyRow};
use crate::store::require_tenant;
use crate::store::schema;
use crate::store::{decode, encode, StoreError};
use redb::{ReadableTable, WriteTransaction};
use sluice_contract::snapshot::types::{ModelPrice, RateLimit};

/// Most credit one tenant can hold, in all: $1e12 keeps every sum in range.
pub(crate) const MAX_CREDIT_MICROS: u64 = 1_000_000_000_000_000_000;

/// One billing change.
#[derive(Debug, Clone)]
pub(crate) enum BillingOp {
    /// Create or replace a model's price.
    SetPrice(ModelPrice),
    /// Remove a model's price override (the built-in default, if any, applies again).
    RemovePrice(String),
    /// Create or replace a tenant's policy (already validated).
    SetPolicy(PolicyRow),
    /// Remove a tenant's policy.
    RemovePolicy(String),
    /// Create or replace a tenant's (or one gateway key's) rate limit.
    SetLimit(RateLimit),
    /// Remove a tenant's (or one gateway key's) rate limit.
    RemoveLimit {
        /// Tenant id.
        tenant: String,
        /// Gateway key id; `None` for the tenant-wide limit.
        key: Option<String>,
    },
    /// Add prepaid credit (creating the account: the tenant becomes metered).
    AddCredit {
        /// Tenant id.
        tenant: String,
        /// Micro-dollars, more than zero.
        micros: u64,
        /// Now, unix ms.
        now_ms: u64,
    },
    /// Set or clear the low-balance alert threshold.
    SetThreshold {
        /// Tenant id.
        tenant: String,
        /// Micro-dollars; `None` clears.
        micros: Option<u64>,
        /// Now, unix ms.
        now_ms: u64,
    },
    /// Set or clear the completion tokens reserved for requests without `max_tokens`.
    SetDefaultMaxTokens {
        /// Tenant id.
        tenant: String,
        /// Tokens; `None` clears (the data plane's default applies).
        tokens: Option<u64>,
        /// Now, unix ms.
        now_ms: u64,
    },
    /// Grant a data plane the slices it is due (see [`leases`]).
    TopUp {
        /// Data plane number.
        dataplane: u32,
        /// Only these tenants; every metered tenant when `None`.
        tenants: Option<Vec<String>>,
    },
    /// Replaces how the fleet's data planes share each rate limit (see
    /// [`crate::billing::fleet`]): (tenant, key id or "", data plane
    /// number, share in parts per million); an empty list: no limit shared.
    RateShares(Vec<super::fleet::ShareRow>),
    /// A new snapshot for a data plane that just started, so that it learns
    /// what control has seen spent on its leases (see [`crate::billing`]).
    Resync {
        /// Data plane number.
        dataplane: u32,
    },
    /// The webhook took an alert.
    AlertDelivered {
        /// Alert id.
        id: u64,
        /// Now, unix ms.
        now_ms: u64,
    },
}

/// Performs `op` inside `txn`; returns whether the snapshot is affected.
pub(crate) fn mutate(txn: &WriteTransaction, op: &BillingOp) -> Result<bool, StoreError> {
    match op {
        BillingOp::SetPrice(p) => {
            txn.open_table(schema::PRICES)?
                .insert(p.model.as_str(), encode(p)?.as_slice())?;
        }
        BillingOp::RemovePrice(model) => {
            if txn.open_table(schema::PRICES)?.remove(model.as_str())?.is_none() {
                return Err(StoreError::NotFound(format!(
                    "model {model:?} has no price override (built-in defaults cannot be removed)"
                )));
            }
        }
        BillingOp::SetPolicy(row) => {
            require_tenant(txn, &row.tenant)?;
            txn.open_table(schema::POLICIES)?
                .insert(row.tenant.as_str(), encode(row)?.as_slice())?;
        }
        BillingOp::RemovePolicy(tenant) => {
            if txn
                .open_table(schema::POLICIES)?
                .remove(tenant.as_str())?
                .is_none()
            {
                return Err(StoreError::NotFound(format!("tenant {tenant:?} has no policy")));
            }
        }
        BillingOp::SetLimit(l) => {
            require_tenant(txn, &l.tenant)?;
            if let Some(k) = &l.key {
                let keys = txn.open_table(schema::API_KEYS)?;
                if keys.get((l.tenant.as_str(), k.as_str()))?.is_none() {
                    return Err(StoreError::NotFound(format!(
                        "gateway key {:?} does not exist for tenant {:?}",
                        k, l.tenant
                    )));
                }
            }
            txn.open_table(schema::RATE_LIMITS)?.insert(
                (l.tenant.as_str(), l.key.as_deref().unwrap_or("")),
                encode(l)?.as_slice(),
            )?;
        }
        BillingOp::RemoveLimit { tenant, key } => {
            let mut t = txn.open_table(schema::RATE_LIMITS)?;
            if t.remove((tenant.as_str(), key.as_deref().unwrap_or("")))?
                .is_none()
            {
                return Err(StoreError::NotFound(match key {
                    Some(k) => format!("gateway key {tenant}/{k} has no rate limit"),
                    None => format!("tenant {tenant:?} has no tenant-wide rate limit"),
                }));
            }
        }
        BillingOp::AddCredit {
            tenant,
            micros,
            now_ms,
        } => {
            require_tenant(txn, tenant)?;
            if *micros == 0 {
                return Err(StoreError::Invalid("credit to add must be more than zero".into()));
            }
            {
                let mut accounts = txn.open_table(schema::CREDIT_ACCOUNTS)?;
                let mut account = match accounts.get(tenant.as_str())? {
                    Some(v) => decode(v.value())?,
                    None => CreditAccount::new(tenant, *now_ms),
                };
                account.added_micros = account
                    .added_micros
                    .checked_add(*micros)
                    .filter(|a| *a <= MAX_CREDIT_MICROS)
                    .ok_or_else(|| {
                        StoreError::Invalid(format!(
                            "a tenant can hold at most ${} of credit",
                            MAX_CREDIT_MICROS / 1_000_000
                        ))
                    })?;
                account.updated_ms = *now_ms;
                // More credit can only lift the balance: this re-arms the alert.
                account.update_alert_state();
                accounts.insert(tenant.as_str(), encode(&account)?.as_slice())?;
            }
            leases::grant_holders(txn, tenant, *now_ms)?;
        }
        BillingOp::SetThreshold {
            tenant,
            micros,
            now_ms,
        } => {
            let mut accounts = txn.open_table(schema::CREDIT_ACCOUNTS)?;
            let mut account = account(&accounts, tenant)?;
            account.low_balance_micros = *micros;
            account.updated_ms = *now_ms;
            if account.update_alert_state() {
                raise(&mut txn.open_table(schema::ALERTS)?, &account, *now_ms)?;
            }
            accounts.insert(tenant.as_str(), encode(&account)?.as_slice())?;
            return Ok(false);
        }
        BillingOp::SetDefaultMaxTokens {
            tenant,
            tokens,
            now_ms,
        } => {
            if *tokens == Some(0) {
                return Err(StoreError::Invalid(
                    "default max tokens must be at least 1".into(),
                ));
            }
            let mut accounts = txn.open_table(schema::CREDIT_ACCOUNTS)?;
            let mut account = account(&accounts, tenant)?;
            account.default_max_tokens = *tokens;
            account.updated_ms = *now_ms;
            accounts.insert(tenant.as_str(), encode(&account)?.as_slice())?;
        }
        BillingOp::TopUp { dataplane, tenants } => {
            return leases::grant(txn, *dataplane, tenants.as_deref(), crate::clock::now_ms());
        }
        BillingOp::Resync { dataplane } => return leases::spent_on(txn, *dataplane),
        BillingOp::RateShares(shares) => {
            let mut t = txn.open_table(schema::RATE_SHARES)?;
            t.retain(|_, _| false)?;
            for (tenant, key, dp, ppm) in shares {
                t.insert((tenant.as_str(), key.as_str(), dp.to_be_bytes()), *ppm)?;
            }
        }
        BillingOp::AlertDelivered { id, now_ms } => {
            let mut t = txn.open_table(schema::ALERTS)?;
            let mut row: AlertRow = match t.get(id.to_be_bytes())? {
                Some(v) => decode(v.value())?,
                // Deleted with its tenant meanwhile.
                None => return Ok(false),
            };
            row.delivered_ms = Some(*now_ms);
            t.insert(id.to_be_bytes(), encode(&row)?.as_slice())?;
            return Ok(false);
        }
    }
    Ok(true)
}

fn account(
    accounts: &impl ReadableTable<&'static str, &'static [u8]>,
    tenant: &str,
) -> Result<CreditAccount, StoreError> {
    match accounts.get(tenant)? {
        Some(v) => decode(v.value()),
        None => Err(StoreError::NotFound(format!(
            "tenant {tenant:?} has no credit; add some first with `tenant credit add`"
        ))),
    }
}
