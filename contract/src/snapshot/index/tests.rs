use super::*;
use crate::crypto::{hex, sha256};
use crate::snapshot::types::Snapshot;

const SNAP: &str = r#"
version = 3
[[tenants]]
id = "acme"
[[tenants]]
id = "eu"
region = "eu"
[[api_keys]]
id = "k1"
tenant = "acme"
sha256 = "HASH"
[[upstreams]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:9000/v1/"
region = "us"
[[upstreams]]
name = "mock-eu"
kind = "anthropic"
base_url = "https://[::1]:8443/prefix"
region = "eu"
[[provider_keys]]
id = "pk"
api_key_env = "PK"
[[routes]]
model = "gpt-4o"
targets = [{ upstream = "mock", provider_key = "pk" }, { upstream = "mock-eu", provider_key = "pk", priority = 0 }]
"#;

fn env(name: &str) -> Option<String> {
    (name == "PK").then(|| "sk-test-provider".to_string())
}

fn build(text: &str) -> Result<Index, IndexError> {
    let snap: Snapshot =
        toml::from_str(&text.replace("HASH", &hex(&sha256(b"sk-sluice-k1-secret")))).unwrap();
    Index::build(&snap, KeyMaterial::Env(&env))
}

#[test]
fn builds_and_looks_up() {
    let index = build(SNAP).unwrap();
    assert_eq!(index.version, 3);
    let key = index.key(&sha256(b"sk-sluice-k1-secret")).unwrap();
    assert_eq!(&*key.id, "k1");
    assert_eq!(&*key.tenant.id, "acme");
    assert!(index.key(&sha256(b"other")).is_none());
    let Some(RouteEntry::Targets(targets)) = key.tenant.routes.get("gpt-4o") else {
        panic!("no route")
    };
    // Explicit priority 0 sorts before position 0's default (stable on ties).
    assert_eq!(targets.len(), 2);
    assert_eq!(&*targets[0].upstream.name, "mock");
    let up = &targets[0].upstream;
    assert_eq!(
        (up.tls, &*up.host, up.port, &*up.path_prefix),
        (false, "127.0.0.1", 9000, "")
    );
    let eu = &targets[1].upstream;
    assert_eq!(
        (eu.tls, &*eu.host, eu.port, &*eu.path_prefix),
        (true, "::1", 8443, "/prefix")
    );
    assert_eq!(&targets[0].key.open().unwrap()[..], b"sk-test-provider");
}

#[test]
fn region_pins_targets() {
    let index =
        build(&SNAP.replace("id = \"k1\"\ntenant = \"acme\"", "id = \"k1\"\ntenant = \"eu\"")).unwrap();
    let key = index.key(&sha256(b"sk-sluice-k1-secret")).unwrap();
    let Some(RouteEntry::Targets(targets)) = key.tenant.routes.get("gpt-4o") else {
        panic!("no route")
    };
    assert_eq!(targets.len(), 1);
    assert_eq!(&*targets[0].upstream.name, "mock-eu");
    let only_us = SNAP.replace(
        "region = \"eu\"\n[[provider_keys]]",
        "region = \"us\"\n[[provider_keys]]",
    );
    let index =
        build(&only_us.replace("id = \"k1\"\ntenant = \"acme\"", "id = \"k1\"\ntenant = \"eu\"")).unwrap();
    let key = index.key(&sha256(b"sk-sluice-k1-secret")).unwrap();
    assert!(matches!(
        key.tenant.routes.get("gpt-4o"),
        Some(RouteEntry::OutOfRegion)
    ));
}

#[test]
fn dangling_references_are_errors() {
    let e = build(&SNAP.replace("upstream = \"mock\",", "upstream = \"nope\",")).unwrap_err();
    assert!(e.0.contains("unknown upstream \"nope\""), "{e}");
    let e = build(&SNAP.replace("provider_key = \"pk\" },", "provider_key = \"zz\" },")).unwrap_err();
    assert!(e.0.contains("unknown provider key"), "{e}");
    let e = build(&SNAP.replace("api_key_env = \"PK\"", "api_key_env = \"MISSING\"")).unwrap_err();
    assert!(e.0.contains("MISSING is not set"), "{e}");
    let e = build(&SNAP.replace("http://127.0.0.1:9000/v1/", "ftp://x")).unwrap_err();
    assert!(e.0.contains("http:// or https://"), "{e}");
    let e = build(&SNAP.replace("tenant = \"acme\"\nsha256", "tenant = \"ghost\"\nsha256")).unwrap_err();
    assert!(e.0.contains("unknown tenant"), "{e}");
    assert!(toml::from_str::<Snapshot>("[[tenants]]\nid = \"a\"\nbogus = 1\n").is_err());
}

#[test]
fn sealed_material_round_trips() {
    let key = Arc::new(SealKey::derive(b"secret", b"sluice-snapshot-v1", b"dp1").unwrap());
    let mut snap: Snapshot = toml::from_str(&SNAP.replace("HASH", &hex(&sha256(b"x")))).unwrap();
    let pk = &mut snap.provider_keys[0];
    pk.api_key_env = None;
    pk.sealed = Some(hex(&key.seal(b"sk-sealed", pk.aad().as_bytes()).unwrap()));
    let index = Index::build(&snap, KeyMaterial::Sealed(key)).unwrap();
    let entry = index.key(&sha256(b"x")).unwrap();
    let Some(RouteEntry::Targets(t)) = entry.tenant.routes.get("gpt-4o") else {
        panic!()
    };
    assert_eq!(&t[0].key.open().unwrap()[..], b"sk-sealed");
}

#[test]
fn names_are_resolved_by_the_caller_and_heal_after_a_failure() {
    use std::cell::Cell;
    use std::net::{Ipv4Addr, SocketAddr};
    let text = SNAP.replace("http://127.0.0.1:9000/v1/", "http://provider.test:9000/v1/");
    let index = build(&text).unwrap();
    let up = index
        .upstreams
        .iter()
        .find(|u| &*u.name == "mock")
        .unwrap()
        .clone();
    // Compiling looks nothing up: the control plane compiles inside a write
    // transaction.
    assert!(up.addrs.load().is_empty());
    let asked = Cell::new(0);
    let answer = Cell::new(Some([10, 0, 0, 1]));
    let resolve = |host: &str, port: u16| -> Box<[SocketAddr]> {
        assert_eq!((host, port), ("provider.test", 9000));
        asked.set(asked.get() + 1);
        match answer.get() {
            Some(ip) => Box::new([SocketAddr::from((Ipv4Addr::from(ip), port))]),
            None => Box::new([]),
        }
    };
    assert_eq!(index.refresh_addresses(&resolve), 1);
    // Nothing changed: nothing is swapped.
    assert_eq!(index.refresh_addresses(&resolve), 0);
    // A failed look-up keeps the last addresses (stale beats none).
    answer.set(None);
    assert_eq!(index.refresh_addresses(&resolve), 0);
    assert_eq!(up.addrs.load()[0], SocketAddr::from(([10, 0, 0, 1], 9000)));
    // The provider moved.
    answer.set(Some([10, 0, 0, 2]));
    assert_eq!(index.refresh_addresses(&resolve), 1);
    assert_eq!(up.addrs.load()[0], SocketAddr::from(([10, 0, 0, 2], 9000)));
    // IP literals are never looked up.
    let eu = index.upstreams.iter().find(|u| &*u.name == "mock-eu").unwrap();
    assert_eq!(eu.addrs.load().len(), 1);
    assert_eq!(asked.get(), 4);
}

#[test]
fn provider_key_organization_and_project_compile_or_are_refused() {
    let with = |extra: &str| {
        SNAP.replace(
            "api_key_env = \"PK\"\n",
            &format!("api_key_env = \"PK\"\n{extra}\n"),
        )
    };
    let index = build(&with("organization = \"org-1\"\nproject = \"proj_1\"")).unwrap();
    let key = index.key(&sha256(b"sk-sluice-k1-secret")).unwrap();
    let Some(RouteEntry::Targets(t)) = key.tenant.routes.get("gpt-4o") else {
        panic!("no route")
    };
    assert_eq!(t[0].key.organization.as_deref(), Some("org-1"));
    assert_eq!(t[0].key.project.as_deref(), Some("proj_1"));
    // Operator-wide: account headers stay back unless the snapshot says.
    assert!(!t[0].key.pass_account_headers);
    let index = build(&with("pass_rate_limit_headers = true")).unwrap();
    let key = index.key(&sha256(b"sk-sluice-k1-secret")).unwrap();
    let Some(RouteEntry::Targets(t)) = key.tenant.routes.get("gpt-4o") else {
        panic!("no route")
    };
    assert!(t[0].key.pass_account_headers);
    assert_eq!(t[0].key.organization, None);
    for bad in ["organization = \"org\\r\\nx-evil: 1\"", "project = \"\""] {
        let e = build(&with(bad)).unwrap_err();
        assert!(e.0.contains("printable ASCII"), "{e}");
    }
}
