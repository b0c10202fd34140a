//! The lease arithmetic (see [`crate::billing`]) and the grants it makes.

use super::rows::{CreditAccount, Lease};
use crate::store::open_read;
use crate::store::rows::DataplaneRow;
use crate::store::schema::{self, pack2, unpack2};
use crate::store::{decode, encode, Store, StoreError};
use redb::{ReadableTable, WriteTransaction};

/// Smallest slice granted while the balance is positive.
pub(crate) const MIN_SLICE_MICROS: u64 = 10_000;
/// A slice is this fraction of the balance (1/10).
pub(crate) const SLICE_DIVISOR: u64 = 10;

/// The nominal slice for a tenant whose balance is `balance`.
pub(crate) fn slice(balance: i64) -> u64 {
    match u64::try_from(balance) {
        Ok(b) if b > 0 => (b / SLICE_DIVISOR).max(MIN_SLICE_MICROS),
        _ => 0,
    }
}

/// How much more to grant a data plane holding `lease` of `account`'s
/// credit: a slice (or what is left unleased) once less than half a slice
/// remains, else nothing. Never more than [`CreditAccount::unleased`].
pub(crate) fn top_up(account: &CreditAccount, lease: Lease) -> u64 {
    let slice = slice(account.balance());
    if slice == 0 || lease.remaining() >= i64::try_from(slice / 2).unwrap_or(i64::MAX) {
        return 0;
    }
    slice.min(account.unleased())
}

/// The lease of `tenant` on data plane `dp` (none yet: zero).
pub(crate) fn lease_of<L>(leases: Option<&L>, tenant: &str, dp: u32) -> Result<Lease, StoreError>
where
    L: ReadableTable<(&'static str, [u8; 4]), [u8; 16]>,
{
    let Some(leases) = leases else {
        return Ok(Lease::default());
    };
    Ok(leases
        .get((tenant, dp.to_be_bytes()))?
        .map(|v| {
            let (granted, spent) = unpack2(&v.value());
            Lease { granted, spent }
        })
        .unwrap_or_default())
}

/// (tenant, account, lease, amount) for every grant data plane `dp` is due
/// among `tenants` (every metered tenant when `None`).
fn plan<A, L>(
    accounts: &A,
    leases: Option<&L>,
    dp: u32,
    tenants: Option<&[String]>,
) -> Result<Vec<(CreditAccount, Lease, u64)>, StoreError>
where
    A: ReadableTable<&'static str, &'static [u8]>,
    L: ReadableTable<(&'static str, [u8; 4]), [u8; 16]>,
{
    let mut out = Vec::new();
    let mut consider = |account: CreditAccount| -> Result<(), StoreError> {
        let lease = lease_of(leases, &account.tenant, dp)?;
        let amount = top_up(&account, lease);
        if amount > 0 {
            out.push((account, lease, amount));
        }
        Ok(())
    };
    match tenants {
        Some(list) => {
            for t in list {
                if let Some(v) = accounts.get(t.as_str())? {
                    consider(decode(v.value())?)?;
                }
            }
        }
        None => {
            for item in accounts.range::<&str>(..)? {
                consider(decode(item?.1.value())?)?;
            }
        }
    }
    Ok(out)
}

/// Grants data plane `dp` what it is due among `tenants` (every metered
/// tenant when `None`), inside `txn`. Returns whether any grant grew.
pub(crate) fn grant(
    txn: &WriteTransaction,
    dp: u32,
    tenants: Option<&[String]>,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let mut accounts = txn.open_table(schema::CREDIT_ACCOUNTS)?;
    let mut leases = txn.open_table(schema::CREDIT_LEASES)?;
    let due = plan(&accounts, Some(&leases), dp, tenants)?;
    let changed = !due.is_empty();
    for (mut account, lease, amount) in due {
        // `amount ≤ unleased`, so `leased ≤ added` still holds after this.
        account.leased_micros = account
            .leased_micros
            .checked_add(amount)
            .filter(|l| *l <= account.added_micros)
            .ok_or_else(|| {
                StoreError::Internal(format!("lease of {} would exceed its credit", account.tenant))
            })?;
        account.updated_ms = now_ms;
        leases.insert(
            (account.tenant.as_str(), dp.to_be_bytes()),
            pack2(lease.granted + amount, lease.spent),
        )?;
        accounts.insert(account.tenant.as_str(), encode(&account)?.as_slice())?;
    }
    Ok(changed)
}

/// Tops up every live data plane that holds a lease of `tenant` (after credit
/// was added). Returns whether any grant grew.
pub(crate) fn grant_holders(txn: &WriteTransaction, tenant: &str, now_ms: u64) -> Result<bool, StoreError> {
    let holders: Vec<u32> = {
        let leases = txn.open_table(schema::CREDIT_LEASES)?;
        let live = live_dataplanes(txn)?;
        leases
            .range((tenant, [0u8; 4])..=(tenant, [0xffu8; 4]))?
            .map(|i| i.map(|(k, _)| u32::from_be_bytes(k.value().1)))
            .filter(|n| n.as_ref().map_or(true, |n| live.contains(n)))
            .collect::<Result<_, _>>()?
    };
    let list = [tenant.to_owned()];
    let mut changed = false;
    for dp in holders {
        changed |= grant(txn, dp, Some(&list), now_ms)?;
    }
    Ok(changed)
}

/// Whether control has seen anything spent on a lease of data plane `dp`.
pub(crate) fn spent_on(txn: &WriteTransaction, dp: u32) -> Result<bool, StoreError> {
    let leases = txn.open_table(schema::CREDIT_LEASES)?;
    for item in leases.range::<(&str, [u8; 4])>(..)? {
        let (k, v) = item?;
        if k.value().1 == dp.to_be_bytes() && unpack2(&v.value()).1 > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Numbers of the data planes that are not revoked.
fn live_dataplanes(txn: &WriteTransaction) -> Result<Vec<u32>, StoreError> {
    let t = txn.open_table(schema::DATAPLANES)?;
    let mut out = Vec::new();
    for item in t.range::<&str>(..)? {
        let row: DataplaneRow = decode(item?.1.value())?;
        if row.revoked_ms.is_none() {
            out.push(row.num);
        }
    }
    Ok(out)
}

impl Store {
    /// Whether control has seen anything spent on a lease of data plane `dp`
    /// (a read, so that a data plane without one costs no write).
    pub(crate) fn spent_on(&self, dp: u32) -> Result<bool, StoreError> {
        let r = self.begin_read()?;
        let Some(leases) = open_read(&r, schema::CREDIT_LEASES)? else {
            return Ok(false);
        };
        for item in leases.range::<(&str, [u8; 4])>(..)? {
            let (k, v) = item?;
            if k.value().1 == dp.to_be_bytes() && unpack2(&v.value()).1 > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether data plane `dp` is due a grant among `tenants` (every metered
    /// tenant when `None`): a read, so the common "no" costs no write.
    pub(crate) fn leases_due(&self, dp: u32, tenants: Option<&[String]>) -> Result<bool, StoreError> {
        let r = self.begin_read()?;
        let Some(accounts) = open_read(&r, schema::CREDIT_ACCOUNTS)? else {
            return Ok(false);
        };
        let leases = open_read(&r, schema::CREDIT_LEASES)?;
        Ok(!plan(&accounts, leases.as_ref(), dp, tenants)?.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(added: u64, spent: u64, leased: u64) -> CreditAccount {
        CreditAccount {
            added_micros: added,
            spent_micros: spent,
            leased_micros: leased,
            ..CreditAccount::new("t", 0)
        }
    }

    #[test]
    fn slices_are_a_tenth_of_the_balance_with_a_floor() {
        assert_eq!(slice(1_000_000), 100_000);
        assert_eq!(slice(50_000), MIN_SLICE_MICROS);
        assert_eq!(slice(0), 0);
        assert_eq!(slice(-5), 0);
    }

    #[test]
    fn top_up_only_below_half_a_slice_and_never_past_the_credit() {
        let a = account(1_000_000, 0, 0);
        assert_eq!(top_up(&a, Lease::default()), 100_000, "first slice");
        let a = account(1_000_000, 60_000, 200_000);
        // Balance 940k: slice 94k; remaining 100k − 60k = 40k < 47k.
        let lease = Lease {
            granted: 100_000,
            spent: 60_000,
        };
        assert_eq!(top_up(&a, lease), 94_000);
        let lease = Lease {
            granted: 100_000,
            spent: 50_000,
        };
        assert_eq!(top_up(&a, lease), 0, "50k left is above half a slice");
        let a = account(1_000_000, 900_000, 990_000);
        assert_eq!(top_up(&a, Lease::default()), 10_000, "only what is unleased");
        let a = account(1_000_000, 1_000_000, 1_000_000);
        assert_eq!(top_up(&a, Lease::default()), 0, "nothing left");
        let a = account(1_000_000, 1_200_000, 900_000);
        assert_eq!(top_up(&a, Lease::default()), 0, "overspent: no more grants");
    }

    /// Simulated data planes spending whatever they are granted, in random
    /// order, never get more than the tenant added, and spend it all.
    #[test]
    fn grants_never_exceed_the_credit() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut a = account(1 + rand(5_000_000), 0, 0);
            let mut leases = [Lease::default(); 4];
            for _ in 0..2_000 {
                let d = rand(4) as usize;
                if rand(2) == 0 {
                    let amount = top_up(&a, leases[d]);
                    leases[d].granted += amount;
                    a.leased_micros += amount;
                } else {
                    // Spend up to what is left of the lease, as a data plane would.
                    let left = leases[d].remaining().max(0) as u64;
                    let cost = rand(left + 1).min(left);
                    leases[d].spent += cost;
                    a.spent_micros += cost;
                }
                let granted: u64 = leases.iter().map(|l| l.granted).sum();
                assert_eq!(granted, a.leased_micros);
                assert!(granted <= a.added_micros, "{granted} > {}", a.added_micros);
                assert!(a.spent_micros <= a.added_micros);
            }
        }
    }
}
