//! Admin changes. Each runs in its own write transaction: it checks its
//! preconditions, mutates, and — when the snapshot is affected — compiles the
//! snapshot it would produce and runs the data plane's validation over it.
//! Any error aborts the transaction, so a refused change changes nothing.
//!
//! This layer sits above the store and the domains (billing, privacy): it
//! dispatches each operation to the store's tables or to its domain, and
//! [`writer`] is the one thread that runs them.

pub(crate) mod describe;
pub(crate) mod writer;

/// The current snapshot, compiled in one read transaction (so its version
/// and its contents agree): the store's part, then billing's sections and
/// the content keys of tenants that log content.
pub(crate) fn compile_current(store: &crate::store::Store) -> Result<Compiled, StoreError> {
    let r = store.begin_read()?;
    let mut compiled = crate::store::Store::compile_core(&r)?;
    crate::billing::sections::add_from_read(&r, &mut compiled)?;
    crate::privacy::content::add_from_read(&r, &mut compiled)?;
    crate::cache::add_from_read(&r, &mut compiled)?;
    Ok(compiled)
}

use crate::store::compile::{compile, validate, Compiled, Sources};
use crate::store::require_tenant;
use crate::store::rows::{AdminTokenRow, ApiKeyRow, DataplaneRow, ProviderKeyRow, SealedSecret, TenantRow};
use crate::store::schema::{self, meta, META};
use crate::store::{decode, encode, meta_u32, meta_u64, StoreError};
use redb::{ReadableTable, Table, WriteTransaction};
use sluice_contract::snapshot::types::{Route, Upstream};

/// One admin change.
#[derive(Debug, Clone)]
pub(crate) enum AdminOp {
    /// Add a tenant; its id must be new.
    CreateTenant(TenantRow),
    /// Change a tenant's name or region (`Some(None)` clears).
    UpdateTenant {
        /// Tenant id.
        id: String,
        /// New name.
        name: Option<Option<String>>,
        /// New region.
        region: Option<Option<String>>,
    },
    /// Delete a tenant with its keys, provider keys, routes, records and usage.
    DeleteTenant(String),
    /// Add a gateway key (its hash).
    CreateApiKey(ApiKeyRow),
    /// Revoke a gateway key: it leaves the snapshot.
    RevokeApiKey {
        /// Tenant id.
        tenant: String,
        /// Key id.
        id: String,
    },
    /// Add (`create`) or replace (rotate) a provider key.
    PutProviderKey {
        /// The sealed key.
        row: ProviderKeyRow,
        /// Whether the key must be new (else it must exist).
        create: bool,
    },
    /// Delete a provider key no route uses.
    DeleteProviderKey {
        /// Tenant id.
        tenant: String,
        /// Key id.
        id: String,
    },
    /// Add an upstream; its name must be new.
    AddUpstream(Upstream),
    /// Remove an upstream no route uses.
    RemoveUpstream(String),
    /// Create or replace a tenant's route (the route's tenant is set).
    SetRoute(Route),
    /// Remove a tenant's route.
    RemoveRoute {
        /// Tenant id.
        tenant: String,
        /// Model alias.
        model: String,
    },
    /// Enroll a data plane (or re-enroll a revoked one with a new token).
    EnrollDataplane {
        /// Data plane id.
        id: String,
        /// SHA-256 hex of its bearer token.
        token_sha256: String,
        /// Its key secret, sealed under the master key.
        key: SealedSecret,
        /// Now, unix ms.
        now_ms: u64,
    },
    /// Create a named admin token (its hash and scope; the scope was checked).
    CreateAdminToken(AdminTokenRow),
    /// Revoke a named admin token.
    RevokeAdminToken {
        /// Token name.
        name: String,
        /// Now, unix ms.
        now_ms: u64,
    },
    /// Revoke a data plane's token.
    RevokeDataplane {
        /// Data plane id.
        id: String,
        /// Now, unix ms.
        now_ms: u64,
    },
    /// Prices, policies, rate limits, credit (see `crate::billing`).
    Billing(crate::billing::ops::BillingOp),
    /// Content logging, retention, purges (see `crate::privacy`).
    Privacy(crate::privacy::PrivacyOp),
    /// Response cache rules (see `crate::cache`).
    Cache(crate::cache::CacheOp),
    /// Record sinks and their cursors (see `crate::sinks`).
    Sink(crate::sinks::cursor::SinkOp),
}

/// The result of a committed admin change.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    /// Snapshot version after the change.
    pub(crate) version: u64,
    /// The new snapshot, when the change produced one.
    pub(crate) compiled: Option<Compiled>,
}

type PairTable<'t> = Table<'t, (&'static str, &'static str), &'static [u8]>;

/// Applies `op` inside `txn`. The caller commits on `Ok` and aborts on `Err`.
pub(crate) fn apply(txn: &WriteTransaction, op: &AdminOp) -> Result<Applied, StoreError> {
    let changes_snapshot = mutate(txn, op)?;
    let mut m = txn.open_table(META)?;
    let mut version = meta_u64(&m, meta::SNAPSHOT_VERSION)?;
    if !changes_snapshot {
        return Ok(Applied {
            version,
            compiled: None,
        });
    }
    version += 1;
    let compiled = compile_in(txn, version)?;
    validate(&compiled)?;
    m.insert(meta::SNAPSHOT_VERSION, &version.to_be_bytes()[..])?;
    Ok(Applied {
        version,
        compiled: Some(compiled),
    })
}

/// Compiles the snapshot of `version` from the state inside `txn`.
pub(crate) fn compile_in(txn: &WriteTransaction, version: u64) -> Result<Compiled, StoreError> {
    let tenants = txn.open_table(schema::TENANTS)?;
    let api_keys = txn.open_table(schema::API_KEYS)?;
    let upstreams = txn.open_table(schema::UPSTREAMS)?;
    let provider_keys = txn.open_table(schema::PROVIDER_KEYS)?;
    let routes = txn.open_table(schema::ROUTES)?;
    let mut compiled = compile(
        version,
        &Sources {
            tenants: &tenants,
            api_keys: &api_keys,
            upstreams: &upstreams,
            provider_keys: &provider_keys,
            routes: &routes,
        },
    )?;
    crate::billing::sections::add_from_write(txn, &mut compiled)?;
    crate::privacy::content::add_from_write(txn, &mut compiled)?;
    crate::cache::add_from_write(txn, &mut compiled)?;
    Ok(compiled)
}

/// Performs the change; returns whether the snapshot is affected.
fn mutate(txn: &WriteTransaction, op: &AdminOp) -> Result<bool, StoreError> {
    match op {
        AdminOp::CreateTenant(row) => {
            let mut t = txn.open_table(schema::TENANTS)?;
            if t.get(row.id.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "tenant {:?} already exists",
                    row.id
                )));
            }
            t.insert(row.id.as_str(), encode(row)?.as_slice())?;
        }
        AdminOp::UpdateTenant { id, name, region } => {
            let mut t = txn.open_table(schema::TENANTS)?;
            let mut row: TenantRow = match t.get(id.as_str())? {
                Some(v) => decode(v.value())?,
                None => return Err(not_found("tenant", id)),
            };
            if let Some(n) = name {
                row.name.clone_from(n);
            }
            if let Some(r) = region {
                row.region.clone_from(r);
            }
            t.insert(id.as_str(), encode(&row)?.as_slice())?;
        }
        AdminOp::DeleteTenant(id) => delete_tenant(txn, id)?,
        AdminOp::CreateApiKey(row) => {
            require_tenant(txn, &row.tenant)?;
            let mut t = txn.open_table(schema::API_KEYS)?;
            if t.get((row.tenant.as_str(), row.id.as_str()))?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "gateway key {:?} already exists for tenant {:?}",
                    row.id, row.tenant
                )));
            }
            t.insert((row.tenant.as_str(), row.id.as_str()), encode(row)?.as_slice())?;
        }
        AdminOp::RevokeApiKey { tenant, id } => {
            let mut t = txn.open_table(schema::API_KEYS)?;
            let mut row: ApiKeyRow = match t.get((tenant.as_str(), id.as_str()))? {
                Some(v) => decode(v.value())?,
                None => return Err(not_found("gateway key", &format!("{tenant}/{id}"))),
            };
            if row.revoked_ms.is_some() {
                return Ok(false);
            }
            row.revoked_ms = Some(crate::clock::now_ms());
            t.insert((tenant.as_str(), id.as_str()), encode(&row)?.as_slice())?;
        }
        AdminOp::PutProviderKey { row, create } => {
            require_tenant(txn, &row.tenant)?;
            let mut t = txn.open_table(schema::PROVIDER_KEYS)?;
            let key = (row.tenant.as_str(), row.id.as_str());
            let existing: Option<ProviderKeyRow> = t.get(key)?.map(|v| decode(v.value())).transpose()?;
            let mut row = row.clone();
            match (existing, create) {
                (Some(_), true) => {
                    return Err(StoreError::Conflict(format!(
                        "provider key {:?} already exists for tenant {:?}; use `provider-key rotate`",
                        row.id, row.tenant
                    )))
                }
                (None, false) => {
                    return Err(not_found("provider key", &format!("{}/{}", row.tenant, row.id)))
                }
                (Some(old), false) => {
                    row.created_ms = old.created_ms;
                    // A rotation that names no organization or project keeps the old ones.
                    row.organization = row.organization.or(old.organization);
                    row.project = row.project.or(old.project);
                }
                (None, true) => {}
            }
            t.insert(key, encode(&row)?.as_slice())?;
        }
        AdminOp::DeleteProviderKey { tenant, id } => {
            if let Some(route) = route_using(txn, |r| {
                r.tenant.as_deref() == Some(tenant.as_str())
                    && r.targets.iter().any(|t| &t.provider_key == id)
            })? {
                return Err(StoreError::Conflict(format!(
                    "provider key {tenant}/{id} is used by route {route}; change or remove that route first"
                )));
            }
            let mut t = txn.open_table(schema::PROVIDER_KEYS)?;
            if t.remove((tenant.as_str(), id.as_str()))?.is_none() {
                return Err(not_found("provider key", &format!("{tenant}/{id}")));
            }
        }
        AdminOp::AddUpstream(u) => {
            let mut t = txn.open_table(schema::UPSTREAMS)?;
            if t.get(u.name.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "upstream {:?} already exists",
                    u.name
                )));
            }
            t.insert(u.name.as_str(), encode(u)?.as_slice())?;
        }
        AdminOp::RemoveUpstream(name) => {
            if let Some(route) = route_using(txn, |r| r.targets.iter().any(|t| &t.upstream == name))? {
                return Err(StoreError::Conflict(format!(
                    "upstream {name:?} is used by route {route}; change or remove that route first"
                )));
            }
            let mut t = txn.open_table(schema::UPSTREAMS)?;
            if t.remove(name.as_str())?.is_none() {
                return Err(not_found("upstream", name));
            }
        }
        AdminOp::SetRoute(route) => {
            let tenant = route.tenant.as_deref().unwrap_or("");
            require_tenant(txn, tenant)?;
            let mut t = txn.open_table(schema::ROUTES)?;
            t.insert((tenant, route.model.as_str()), encode(route)?.as_slice())?;
        }
        AdminOp::RemoveRoute { tenant, model } => {
            let mut t = txn.open_table(schema::ROUTES)?;
            if t.remove((tenant.as_str(), model.as_str()))?.is_none() {
                return Err(not_found("route", &format!("{tenant}/{model}")));
            }
        }
        AdminOp::EnrollDataplane {
            id,
            token_sha256,
            key,
            now_ms,
        } => {
            enroll(txn, id, token_sha256, key, *now_ms)?;
            return Ok(false);
        }
        AdminOp::RevokeDataplane { id, now_ms } => {
            let mut t = txn.open_table(schema::DATAPLANES)?;
            let mut row: DataplaneRow = match t.get(id.as_str())? {
                Some(v) => decode(v.value())?,
                None => return Err(not_found("data plane", id)),
            };
            row.revoked_ms.get_or_insert(*now_ms);
            t.insert(id.as_str(), encode(&row)?.as_slice())?;
            return Ok(false);
        }
        AdminOp::CreateAdminToken(row) => {
            let mut t = txn.open_table(schema::ADMIN_TOKENS)?;
            if t.get(row.name.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "admin token {:?} exists (names are never reused, revoked or not)",
                    row.name
                )));
            }
            t.insert(row.name.as_str(), encode(row)?.as_slice())?;
            return Ok(false);
        }
        AdminOp::RevokeAdminToken { name, now_ms } => {
            let mut t = txn.open_table(schema::ADMIN_TOKENS)?;
            let mut row: AdminTokenRow = match t.get(name.as_str())? {
                Some(v) => decode(v.value())?,
                None => return Err(not_found("admin token", name)),
            };
            row.revoked_ms.get_or_insert(*now_ms);
            t.insert(name.as_str(), encode(&row)?.as_slice())?;
            return Ok(false);
        }
        AdminOp::Billing(op) => return crate::billing::ops::mutate(txn, op),
        AdminOp::Privacy(op) => return crate::privacy::apply(txn, op),
        AdminOp::Cache(op) => return crate::cache::mutate(txn, op),
        AdminOp::Sink(op) => {
            crate::sinks::cursor::apply(txn, op)?;
            return Ok(false);
        }
    }
    Ok(true)
}

fn not_found(what: &str, id: &str) -> StoreError {
    StoreError::NotFound(format!("{what} {id:?} does not exist"))
}

/// The first route (as `tenant/model`) matching `pred`.
fn route_using(txn: &WriteTransaction, pred: impl Fn(&Route) -> bool) -> Result<Option<String>, StoreError> {
    let t = txn.open_table(schema::ROUTES)?;
    for item in t.range::<(&str, &str)>(..)? {
        let (k, v) = item?;
        let route: Route = decode(v.value())?;
        if pred(&route) {
            let (tenant, model) = k.value();
            return Ok(Some(format!("{tenant}/{model}")));
        }
    }
    Ok(None)
}

fn enroll(
    txn: &WriteTransaction,
    id: &str,
    token_sha256: &str,
    key: &SealedSecret,
    now_ms: u64,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(schema::DATAPLANES)?;
    let existing: Option<DataplaneRow> = t.get(id)?.map(|v| decode(v.value())).transpose()?;
    let num = match existing {
        Some(row) if row.revoked_ms.is_none() => {
            return Err(StoreError::Conflict(format!(
                "data plane {id:?} is already enrolled; revoke it first to issue a new token"
            )))
        }
        // A re-enrolled data plane keeps its number, so its records stay its own.
        Some(row) => row.num,
        None => {
            let mut m = txn.open_table(META)?;
            let num = meta_u32(&m, meta::NEXT_DATAPLANE)?;
            let next = num
                .checked_add(1)
                .ok_or_else(|| StoreError::Internal("data plane numbers exhausted".into()))?;
            m.insert(meta::NEXT_DATAPLANE, &next.to_be_bytes()[..])?;
            num
        }
    };
    let row = DataplaneRow {
        id: id.to_owned(),
        num,
        token_sha256: token_sha256.to_owned(),
        created_ms: now_ms,
        revoked_ms: None,
        key: Some(key.clone()),
    };
    t.insert(id, encode(&row)?.as_slice())?;
    Ok(())
}

/// Keys of `table` whose first part is `tenant`.
fn tenant_keys(table: &PairTable<'_>, tenant: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for item in table.range((tenant, "")..)? {
        let (k, _) = item?;
        let (t, id) = k.value();
        if t != tenant {
            break;
        }
        out.push(id.to_owned());
    }
    Ok(out)
}

fn delete_tenant(txn: &WriteTransaction, id: &str) -> Result<(), StoreError> {
    {
        let mut t = txn.open_table(schema::TENANTS)?;
        if t.remove(id)?.is_none() {
            return Err(not_found("tenant", id));
        }
    }
    // Before the usage rows go: they are folded into anonymous rollups.
    crate::privacy::erase::tenant(txn, id)?;
    for def in [schema::API_KEYS, schema::PROVIDER_KEYS, schema::ROUTES] {
        let mut t = txn.open_table(def)?;
        for k in tenant_keys(&t, id)? {
            t.remove((id, k.as_str()))?;
        }
    }
    // Records: the tenant index names every record to delete.
    let mut index = txn.open_table(schema::RECORDS_BY_TENANT)?;
    let mut records = txn.open_table(schema::RECORDS)?;
    let lo = (id, [0u8; 20]);
    let hi = (id, [0xffu8; 20]);
    let keys: Vec<[u8; 20]> = index
        .range(lo..=hi)?
        .map(|item| item.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    for k in keys {
        index.remove((id, k))?;
        records.remove(schema::split_tenant_record_key(&k).1)?;
    }
    crate::store::daily::delete_tenant(&mut txn.open_table(schema::USAGE_DAILY)?, id)?;
    crate::billing::tables::delete_tenant(txn, id)?;
    crate::cache::delete_tenant(txn, id)?;
    crate::cache::stats::delete_tenant(txn, id)?;
    Ok(())
}
