//! Compiling the snapshot from the tables, and validating it with the data
//! plane's own index builder.

use super::rows::{ApiKeyRow, ProviderKeyRow, TenantRow};
use super::{decode, StoreError};
use crate::vault::Envelope;
use redb::ReadableTable;
use sluice_contract::crypto::{hex, unhex, SealKey};
use sluice_contract::snapshot::index::{Index, KeyMaterial};
use sluice_contract::snapshot::types::{ApiKey, CreditGrant, ProviderKey, Route, Snapshot, Tenant, Upstream};
use std::collections::HashMap;
use std::sync::Arc;

/// A snapshot as the store holds it: provider keys still in their envelopes.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    /// The snapshot, with `sealed` and `api_key_env` of every provider key unset.
    pub(crate) snapshot: Snapshot,
    /// The envelope of each provider key, in the order of `snapshot.provider_keys`.
    pub(crate) envelopes: Vec<Envelope>,
    /// Credit grants per data plane, put into `snapshot.credits` when sealed for one.
    pub(crate) credits: Credits,
    /// Each data plane's share of the fleet-wide rate limits, applied to
    /// `snapshot.rate_limits` when sealed for one.
    pub(crate) rate_shares: RateShares,
    /// (tenant, content key sealed under the master key) of every tenant that
    /// logs content, put into its `content_key` when sealed for a data plane.
    pub(crate) content_keys: Vec<(String, Envelope)>,
}

/// Every data plane's credit grants, as of one snapshot version.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Credits {
    /// Every metered tenant, with its `default_max_tokens`, by tenant id.
    pub(crate) metered: Vec<(String, Option<u64>)>,
    /// Data plane id → tenant → (cumulative grant, settled cost of its records).
    pub(crate) granted: HashMap<String, HashMap<String, (u64, u64)>>,
}

impl Credits {
    /// The `credits` section of `dataplane`'s snapshot: every metered tenant,
    /// with 0 where nothing was granted, so that no data plane serves a
    /// metered tenant without a limit; and what control has seen spent on
    /// each lease, so that a restarted data plane does not spend it again.
    pub(crate) fn for_dataplane(&self, dataplane: &str) -> Vec<CreditGrant> {
        let mine = self.granted.get(dataplane);
        self.metered
            .iter()
            .map(|(tenant, default_max_tokens)| {
                let (granted, spent) = mine.and_then(|m| m.get(tenant)).copied().unwrap_or_default();
                CreditGrant {
                    tenant: tenant.clone(),
                    granted_micros: i64::try_from(granted).unwrap_or(i64::MAX),
                    spent_micros: i64::try_from(spent).unwrap_or(i64::MAX),
                    default_max_tokens: *default_max_tokens,
                }
            })
            .collect()
    }
}

/// Parts per million: a whole rate limit.
pub(crate) const PPM: u64 = 1_000_000;

/// How a fleet's data planes share each rate limit (see
/// `crate::billing::fleet`), as of one snapshot version.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RateShares {
    /// (tenant, gateway key id or "") → data plane id → share in [`PPM`].
    pub(crate) by_subject: HashMap<(String, String), HashMap<String, u64>>,
}

impl RateShares {
    /// The share of `dataplane` in the limit of `subject`, in [`PPM`]: the
    /// whole limit while it is not shared; for a data plane that joined
    /// since the last rebalance, the smallest share a member gets.
    pub(crate) fn share(&self, subject: &(String, String), dataplane: &str) -> u64 {
        match self.by_subject.get(subject) {
            None => PPM,
            Some(shares) => match shares.get(dataplane) {
                Some(&ppm) => ppm,
                None => floor_share(shares.len() + 1),
            },
        }
    }

    /// Scales the `rpm` and `tpm` of `limits` down to `dataplane`'s shares
    /// (never below 1 a minute: a limit of 0 would refuse everything).
    pub(crate) fn apply(&self, dataplane: &str, limits: &mut [sluice_contract::snapshot::types::RateLimit]) {
        if self.by_subject.is_empty() {
            return;
        }
        for l in limits {
            let subject = (l.tenant.clone(), l.key.clone().unwrap_or_default());
            let ppm = self.share(&subject, dataplane);
            if ppm >= PPM {
                continue;
            }
            let scale = |v: u64| (u128::from(v) * u128::from(ppm) / u128::from(PPM)).max(1) as u64;
            l.rpm = l.rpm.map(scale);
            l.tpm = l.tpm.map(scale);
        }
    }
}

/// The smallest share of a limit that each of `members` data planes keeps,
/// however little of the tenant's traffic it sees: a quarter of an even split.
pub(crate) fn floor_share(members: usize) -> u64 {
    PPM / (4 * members.max(1) as u64)
}

/// The tables a snapshot is compiled from (opened by a read or a write
/// transaction): `S` tables are keyed by name, `P` tables by (tenant, name).
pub(crate) struct Sources<'a, S, P> {
    /// [`super::schema::TENANTS`].
    pub(crate) tenants: &'a S,
    /// [`super::schema::API_KEYS`].
    pub(crate) api_keys: &'a P,
    /// [`super::schema::UPSTREAMS`].
    pub(crate) upstreams: &'a S,
    /// [`super::schema::PROVIDER_KEYS`].
    pub(crate) provider_keys: &'a P,
    /// [`super::schema::ROUTES`].
    pub(crate) routes: &'a P,
}

/// Compiles the snapshot of `version` from `src`. Revoked gateway keys are left out.
pub(crate) fn compile<S, P>(version: u64, src: &Sources<'_, S, P>) -> Result<Compiled, StoreError>
where
    S: ReadableTable<&'static str, &'static [u8]>,
    P: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    let mut snapshot = Snapshot {
        version,
        ..Snapshot::default()
    };
    for item in src.tenants.range::<&str>(..)? {
        let (_, v) = item?;
        let t: TenantRow = decode(v.value())?;
        snapshot.tenants.push(Tenant {
            id: t.id,
            name: t.name,
            region: t.region,
            ..Tenant::default()
        });
    }
    for item in src.api_keys.range::<(&str, &str)>(..)? {
        let (_, v) = item?;
        let k: ApiKeyRow = decode(v.value())?;
        if k.revoked_ms.is_none() {
            snapshot.api_keys.push(ApiKey {
                id: k.id,
                tenant: k.tenant,
                sha256: k.sha256,
            });
        }
    }
    for item in src.upstreams.range::<&str>(..)? {
        let (_, v) = item?;
        snapshot.upstreams.push(decode::<Upstream>(v.value())?);
    }
    let mut envelopes = Vec::new();
    for item in src.provider_keys.range::<(&str, &str)>(..)? {
        let (_, v) = item?;
        let k: ProviderKeyRow = decode(v.value())?;
        envelopes.push(envelope_of(&k)?);
        snapshot.provider_keys.push(ProviderKey {
            id: k.id,
            tenant: Some(k.tenant),
            api_key_env: None,
            sealed: None,
            organization: k.organization,
            project: k.project,
            ..ProviderKey::default()
        });
    }
    for item in src.routes.range::<(&str, &str)>(..)? {
        let (_, v) = item?;
        snapshot.routes.push(decode::<Route>(v.value())?);
    }
    Ok(Compiled {
        snapshot,
        envelopes,
        credits: Default::default(),
        rate_shares: Default::default(),
        content_keys: Vec::new(),
    })
}

/// The envelope stored in a provider key row.
pub(crate) fn envelope_of(k: &ProviderKeyRow) -> Result<Envelope, StoreError> {
    let bad = || StoreError::Internal(format!("provider key {}/{} is not valid hex", k.tenant, k.id));
    Ok(Envelope {
        wrapped_dek: unhex_vec(&k.wrapped_dek).ok_or_else(bad)?,
        sealed: unhex_vec(&k.sealed).ok_or_else(bad)?,
    })
}

/// Lower/upper-case hex of any length into bytes.
pub(crate) fn unhex_vec(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| std::str::from_utf8(p).ok().and_then(unhex::<1>).map(|b| b[0]))
        .collect()
}

/// Runs the data plane's index builder over `c`: every reference must resolve
/// and every upstream URL parse, exactly as a data plane will require.
pub(crate) fn validate(c: &Compiled) -> Result<(), StoreError> {
    let mut snap = c.snapshot.clone();
    for (k, env) in snap.provider_keys.iter_mut().zip(&c.envelopes) {
        // The index only stores sealed bytes; any hex stands in for the real copy.
        k.sealed = Some(hex(&env.sealed));
    }
    let throwaway = SealKey::from_bytes(&[0u8; 32])?;
    Index::build(&snap, KeyMaterial::Sealed(Arc::new(throwaway)))
        .map(drop)
        .map_err(|e| StoreError::Invalid(format!("change refused: {e}")))
}
