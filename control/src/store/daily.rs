//! The daily rollup tables keyed by (tenant, UTC day u32 BE, model): one
//! tenant's rows read, or removed, by one range scan.

use super::StoreError;
use redb::{ReadableTable, Table};

/// A daily rollup table with values of `N` bytes.
type Key = (&'static str, [u8; 4], &'static str);

/// `tenant`'s rows of `t`: (day, model, value), by day then model.
pub(crate) fn of_tenant<const N: usize, T>(
    t: &T,
    tenant: &str,
) -> Result<Vec<(u32, String, [u8; N])>, StoreError>
where
    T: ReadableTable<Key, [u8; N]>,
{
    let mut out = Vec::new();
    for item in t.range((tenant, [0u8; 4], "")..)? {
        let (k, v) = item?;
        let (tn, day, model) = k.value();
        if tn != tenant {
            break;
        }
        out.push((u32::from_be_bytes(day), model.to_owned(), v.value()));
    }
    Ok(out)
}

/// Removes `tenant`'s rows of `t`.
pub(crate) fn delete_tenant<const N: usize>(
    t: &mut Table<'_, Key, [u8; N]>,
    tenant: &str,
) -> Result<(), StoreError> {
    for (day, model, _) in of_tenant(t, tenant)? {
        t.remove((tenant, day.to_be_bytes(), model.as_str()))?;
    }
    Ok(())
}
