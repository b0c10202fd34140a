//! What a sink receives for one record: JSON, schema version 1 (see
//! docs/export.md). The record's own fields at the top level, plus:
//!
//! - `v`: the schema version (1);
//! - `dataplane`: the id of the data plane that served the request;
//! - `seq`: the record's sequence number at that data plane;
//! - `msg_id`: `<dataplane>:<seq>`, also the `Nats-Msg-Id` header.
//!
//! Sealed content (`content_sealed`, present only for tenants who opted in to
//! full logging) is removed here, whatever else the record holds: no sink
//! ever receives it. Fields may be added within version 1; a field's meaning
//! never changes without a new version.

use crate::store::StoreError;
use serde_json::{Map, Value};

/// Current schema version.
pub(crate) const SCHEMA_VERSION: u64 = 1;
/// Field names the envelope adds; a record field of the same name is replaced.
const ENVELOPE: [&str; 4] = ["v", "dataplane", "seq", "msg_id"];

/// The message id of record `seq` of data plane `dataplane`.
pub(crate) fn msg_id(dataplane: &str, seq: u64) -> String {
    format!("{dataplane}:{seq}")
}

/// The message for one stored record (`record_json`, as control stores it).
pub(crate) fn encode(dataplane: &str, seq: u64, record_json: &[u8]) -> Result<Vec<u8>, StoreError> {
    let fields: Map<String, Value> = serde_json::from_slice(record_json)
        .map_err(|e| StoreError::Internal(format!("corrupt record {dataplane}:{seq}: {e}")))?;
    let mut out = Map::with_capacity(fields.len() + ENVELOPE.len());
    out.insert("v".into(), Value::from(SCHEMA_VERSION));
    out.insert("dataplane".into(), Value::from(dataplane));
    out.insert("seq".into(), Value::from(seq));
    out.insert("msg_id".into(), Value::from(msg_id(dataplane, seq)));
    for (k, v) in fields {
        if k == "content_sealed" || ENVELOPE.contains(&k.as_str()) {
            continue;
        }
        out.insert(k, v);
    }
    Ok(serde_json::to_vec(&Value::Object(out))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_contract::record::{ApiRoute, Record};

    #[test]
    fn sealed_content_never_leaves_and_the_envelope_names_the_record() {
        let mut r = Record::new(1_700_000_000_000, ApiRoute::ChatCompletions);
        r.tenant = Some("acme".into());
        r.content_sealed = Some("c2VhbGVk".into());
        let json = serde_json::to_vec(&r).unwrap();
        assert!(String::from_utf8_lossy(&json).contains("content_sealed"));
        let msg = encode("dp1", 42, &json).unwrap();
        let text = String::from_utf8(msg.clone()).unwrap();
        assert!(
            !text.contains("content_sealed") && !text.contains("c2VhbGVk"),
            "{text}"
        );
        let v: Value = serde_json::from_slice(&msg).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["dataplane"], "dp1");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["msg_id"], "dp1:42");
        assert_eq!(v["tenant"], "acme");
        assert_eq!(v["ts_ms"], 1_700_000_000_000u64);
    }
}
