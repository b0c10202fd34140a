//! What the unit tests of the phases share: a compiled snapshot from TOML,
//! without a socket, a runtime or a control plane.

use sluice_contract::crypto::{hex, sha256};
use sluice_contract::snapshot::{Index, KeyEntry, KeyMaterial, Snapshot};

/// The gateway key every test snapshot knows, as `k1` of tenant `acme`.
pub(crate) const KEY: &[u8] = b"sk-sluice-k1-secret";

/// Compiles `toml` (a snapshot; `HASH` stands for [`KEY`]'s SHA-256), with
/// every `api_key_env` provider key read as `sk-test`.
pub(crate) fn index(toml: &str) -> Index {
    let text = toml.replace("HASH", &hex(&sha256(KEY)));
    let snap: Snapshot = toml::from_str(&text).expect("test snapshot parses");
    let env = |_: &str| Some("sk-test".to_string());
    Index::build(&snap, KeyMaterial::Env(&env)).expect("test snapshot compiles")
}

/// The entry of [`KEY`] in `index`.
pub(crate) fn key(index: &Index) -> KeyEntry {
    index
        .key(&sha256(KEY))
        .cloned()
        .expect("the test key is in the snapshot")
}
