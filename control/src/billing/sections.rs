//! The billing sections of a snapshot: prices, policies and rate limits
//! (the same for every data plane), and credit grants (each data plane its
//! own, filled in when its copy is sealed).

use super::rows::{CreditAccount, PolicyRow};
use crate::store::compile::Compiled;
use crate::store::compile::Credits;
use crate::store::open_read;
use crate::store::rows::DataplaneRow;
use crate::store::schema::{self, unpack2};
use crate::store::{decode, StoreError};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::de::DeserializeOwned;
use sluice_contract::snapshot::types::{ModelPrice, PolicyDoc, RateLimit};
use std::collections::HashMap;

/// Adds the billing sections to `c`, read inside a write transaction.
pub(crate) fn add_from_write(txn: &WriteTransaction, c: &mut Compiled) -> Result<(), StoreError> {
    add(
        c,
        Some(&txn.open_table(schema::PRICES)?),
        Some(&txn.open_table(schema::POLICIES)?),
        Some(&txn.open_table(schema::RATE_LIMITS)?),
        Some(&txn.open_table(schema::CREDIT_ACCOUNTS)?),
        Some(&txn.open_table(schema::CREDIT_LEASES)?),
        Some(&txn.open_table(schema::RATE_SHARES)?),
        &txn.open_table(schema::DATAPLANES)?,
    )
}

/// Adds the billing sections to `c`, read inside a read transaction.
pub(crate) fn add_from_read(r: &ReadTransaction, c: &mut Compiled) -> Result<(), StoreError> {
    add(
        c,
        open_read(r, schema::PRICES)?.as_ref(),
        open_read(r, schema::POLICIES)?.as_ref(),
        open_read(r, schema::RATE_LIMITS)?.as_ref(),
        open_read(r, schema::CREDIT_ACCOUNTS)?.as_ref(),
        open_read(r, schema::CREDIT_LEASES)?.as_ref(),
        open_read(r, schema::RATE_SHARES)?.as_ref(),
        &r.open_table(schema::DATAPLANES)?,
    )
}

#[allow(clippy::too_many_arguments)]
fn add<S, P, L, R>(
    c: &mut Compiled,
    prices: Option<&S>,
    policies: Option<&S>,
    limits: Option<&P>,
    accounts: Option<&S>,
    leases: Option<&L>,
    shares: Option<&R>,
    dataplanes: &S,
) -> Result<(), StoreError>
where
    S: ReadableTable<&'static str, &'static [u8]>,
    P: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    L: ReadableTable<(&'static str, [u8; 4]), [u8; 16]>,
    R: ReadableTable<(&'static str, &'static str, [u8; 4]), u64>,
{
    c.snapshot.prices = rows::<_, ModelPrice>(prices)?;
    c.snapshot.policies = rows::<_, PolicyRow>(policies)?
        .into_iter()
        .map(|p| PolicyDoc {
            tenant: p.tenant,
            toml: p.toml,
        })
        .collect();
    c.snapshot.rate_limits = match limits {
        Some(t) => t
            .range::<(&str, &str)>(..)?
            .map(|item| decode::<RateLimit>(item?.1.value()))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let mut credits = Credits::default();
    for a in rows::<_, CreditAccount>(accounts)? {
        credits.metered.push((a.tenant, a.default_max_tokens));
    }
    let mut ids: HashMap<u32, String> = HashMap::new();
    if leases.is_some() || shares.is_some() {
        for item in dataplanes.range::<&str>(..)? {
            let row: DataplaneRow = decode(item?.1.value())?;
            ids.insert(row.num, row.id);
        }
    }
    if let Some(shares) = shares {
        for item in shares.range::<(&str, &str, [u8; 4])>(..)? {
            let (k, v) = item?;
            let (tenant, key, dp) = k.value();
            let Some(id) = ids.get(&u32::from_be_bytes(dp)) else {
                continue;
            };
            c.rate_shares
                .by_subject
                .entry((tenant.to_owned(), key.to_owned()))
                .or_default()
                .insert(id.clone(), v.value());
        }
    }
    if let Some(leases) = leases {
        for item in leases.range::<(&str, [u8; 4])>(..)? {
            let (k, v) = item?;
            let (tenant, dp) = k.value();
            let Some(id) = ids.get(&u32::from_be_bytes(dp)) else {
                continue;
            };
            credits
                .granted
                .entry(id.clone())
                .or_default()
                .insert(tenant.to_owned(), unpack2(&v.value()));
        }
    }
    c.credits = credits;
    Ok(())
}

/// Every value of a table keyed by name, decoded; none when it is absent.
fn rows<S, T>(table: Option<&S>) -> Result<Vec<T>, StoreError>
where
    S: ReadableTable<&'static str, &'static [u8]>,
    T: DeserializeOwned,
{
    let Some(t) = table else {
        return Ok(Vec::new());
    };
    t.range::<&str>(..)?.map(|item| decode(item?.1.value())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metered_tenant_appears_for_every_data_plane() {
        let mut c = Credits {
            metered: vec![("a".into(), None), ("b".into(), Some(64))],
            ..Credits::default()
        };
        c.granted
            .entry("dp1".into())
            .or_default()
            .insert("a".into(), (7, 5));
        let one = c.for_dataplane("dp1");
        assert_eq!(one.len(), 2);
        assert_eq!((one[0].granted_micros, one[1].granted_micros), (7, 0));
        assert_eq!((one[0].spent_micros, one[1].spent_micros), (5, 0));
        assert_eq!(one[1].default_max_tokens, Some(64));
        let other = c.for_dataplane("dp2");
        assert!(other.iter().all(|g| g.granted_micros == 0));
    }
}
