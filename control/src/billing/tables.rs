//! Opening the billing tables, and removing a tenant's rows from them.
//!
//! The tables are created by the first write that needs them, so a store
//! that predates them reads them as empty.

use crate::store::schema;
use crate::store::{decode, StoreError};
use redb::{ReadableTable, WriteTransaction};

use super::rows::AlertRow;

/// Removes every billing row of `tenant` (part of deleting the tenant).
pub(crate) fn delete_tenant(txn: &WriteTransaction, tenant: &str) -> Result<(), StoreError> {
    txn.open_table(schema::POLICIES)?.remove(tenant)?;
    txn.open_table(schema::CREDIT_ACCOUNTS)?.remove(tenant)?;
    {
        let mut t = txn.open_table(schema::RATE_LIMITS)?;
        let mut keys: Vec<String> = Vec::new();
        for item in t.range((tenant, "")..)? {
            let (k, _) = item?;
            let (tn, key) = k.value();
            if tn != tenant {
                break;
            }
            keys.push(key.to_owned());
        }
        for k in keys {
            t.remove((tenant, k.as_str()))?;
        }
    }
    {
        let mut t = txn.open_table(schema::RATE_SHARES)?;
        t.retain(|(tn, _, _), _| tn != tenant)?;
    }
    {
        let mut t = txn.open_table(schema::CREDIT_LEASES)?;
        let dps: Vec<[u8; 4]> = t
            .range((tenant, [0u8; 4])..=(tenant, [0xffu8; 4]))?
            .map(|i| i.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()?;
        for dp in dps {
            t.remove((tenant, dp))?;
        }
    }
    crate::store::daily::delete_tenant(&mut txn.open_table(schema::USAGE_METER_DAILY)?, tenant)?;
    crate::store::daily::delete_tenant(&mut txn.open_table(schema::UNPRICED_DAILY)?, tenant)?;
    {
        // Alerts are keyed by id: few enough to scan.
        let mut t = txn.open_table(schema::ALERTS)?;
        let mut ids = Vec::new();
        for item in t.range::<[u8; 8]>(..)? {
            let (k, v) = item?;
            let row: AlertRow = decode(v.value())?;
            if row.tenant == tenant {
                ids.push(k.value());
            }
        }
        for id in ids {
            t.remove(id)?;
        }
    }
    Ok(())
}
