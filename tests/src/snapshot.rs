//! Standalone snapshot files (TOML), built in code.

use std::fmt::Write;

/// Lowercase hex SHA-256 of `s`, as snapshots store gateway keys.
pub fn sha256_hex(s: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A snapshot under construction.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    version: u64,
    tenants: Vec<(String, Option<String>)>,
    keys: Vec<(String, String, String)>,
    upstreams: Vec<(String, String, String, Option<String>)>,
    provider_keys: Vec<(String, Option<String>, String, String)>,
    routes: Vec<RouteSpec>,
}

/// A route: its tenant (none: every tenant), model, and `(upstream,
/// provider_key)` targets.
#[derive(Clone, Debug)]
struct RouteSpec {
    tenant: Option<String>,
    model: String,
    targets: Vec<(String, String)>,
    /// Further `key = value` lines of the route's table.
    settings: String,
    /// Weights of the targets, in order (none: the default).
    weights: Vec<u32>,
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// Sets the version.
    pub fn version(mut self, v: u64) -> Snapshot {
        self.version = v;
        self
    }

    /// Adds a tenant, optionally bound to a region.
    pub fn tenant(mut self, id: &str, region: Option<&str>) -> Snapshot {
        self.tenants.push((id.into(), region.map(Into::into)));
        self
    }

    /// Adds a gateway key: only the SHA-256 of `plaintext` goes in the file.
    pub fn key(mut self, id: &str, tenant: &str, plaintext: &str) -> Snapshot {
        self.keys.push((id.into(), tenant.into(), sha256_hex(plaintext)));
        self
    }

    /// Adds an upstream of `kind` (`openai`, `anthropic`, `openrouter`).
    pub fn upstream(mut self, name: &str, kind: &str, base_url: &str, region: Option<&str>) -> Snapshot {
        self.upstreams
            .push((name.into(), kind.into(), base_url.into(), region.map(Into::into)));
        self
    }

    /// Adds a provider key read from environment variable `env`.
    pub fn provider_key(mut self, id: &str, tenant: Option<&str>, env: &str) -> Snapshot {
        self.provider_keys
            .push((id.into(), tenant.map(Into::into), env.into(), String::new()));
        self
    }

    /// Appends TOML lines (`organization = "org-1"`, …) to the last provider key.
    pub fn provider_key_settings(mut self, lines: &str) -> Snapshot {
        if let Some(k) = self.provider_keys.last_mut() {
            k.3.push_str(lines.trim());
            k.3.push('\n');
        }
        self
    }

    /// Adds a route: `targets` are `(upstream, provider_key)`, tried in order.
    pub fn route(mut self, tenant: Option<&str>, model: &str, targets: &[(&str, &str)]) -> Snapshot {
        let targets = targets.iter().map(|(u, k)| ((*u).into(), (*k).into())).collect();
        self.routes.push(RouteSpec {
            tenant: tenant.map(Into::into),
            model: model.into(),
            targets,
            settings: String::new(),
            weights: Vec::new(),
        });
        self
    }

    /// Sets the weights of the last route's targets, in order.
    pub fn route_weights(mut self, weights: &[u32]) -> Snapshot {
        if let Some(r) = self.routes.last_mut() {
            r.weights = weights.to_vec();
        }
        self
    }

    /// Adds `key = value` lines (e.g. `strategy = "weighted"`) to the last
    /// route added.
    pub fn route_settings(mut self, lines: &str) -> Snapshot {
        if let Some(r) = self.routes.last_mut() {
            r.settings.push_str(lines.trim());
            r.settings.push('\n');
        }
        self
    }

    /// The TOML document.
    pub fn to_toml(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
        let mut out = String::new();
        let _ = writeln!(out, "version = {}\n", self.version);
        for (id, region) in &self.tenants {
            let _ = writeln!(out, "[[tenants]]\nid = {}", q(id));
            if let Some(r) = region {
                let _ = writeln!(out, "region = {}", q(r));
            }
            out.push('\n');
        }
        for (id, tenant, sha) in &self.keys {
            let _ = writeln!(
                out,
                "[[api_keys]]\nid = {}\ntenant = {}\nsha256 = {}\n",
                q(id),
                q(tenant),
                q(sha)
            );
        }
        for (name, kind, url, region) in &self.upstreams {
            let _ = writeln!(
                out,
                "[[upstreams]]\nname = {}\nkind = {}\nbase_url = {}",
                q(name),
                q(kind),
                q(url)
            );
            if let Some(r) = region {
                let _ = writeln!(out, "region = {}", q(r));
            }
            out.push('\n');
        }
        for (id, tenant, env, settings) in &self.provider_keys {
            let _ = writeln!(out, "[[provider_keys]]\nid = {}", q(id));
            if let Some(t) = tenant {
                let _ = writeln!(out, "tenant = {}", q(t));
            }
            out.push_str(settings);
            let _ = writeln!(out, "api_key_env = {}\n", q(env));
        }
        for RouteSpec {
            tenant,
            model,
            targets,
            settings,
            weights,
        } in &self.routes
        {
            out.push_str("[[routes]]\n");
            if let Some(t) = tenant {
                let _ = writeln!(out, "tenant = {}", q(t));
            }
            out.push_str(settings);
            let targets: Vec<String> = targets
                .iter()
                .enumerate()
                .map(|(i, (u, k))| match weights.get(i) {
                    Some(w) => format!("{{ upstream = {}, provider_key = {}, weight = {w} }}", q(u), q(k)),
                    None => format!("{{ upstream = {}, provider_key = {} }}", q(u), q(k)),
                })
                .collect();
            let _ = writeln!(out, "model = {}\ntargets = [{}]\n", q(model), targets.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_known_string() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn renders_every_section() {
        let toml = Snapshot::new()
            .tenant("acme", Some("eu"))
            .key("k1", "acme", "sk")
            .upstream("m", "openai", "http://127.0.0.1:1", None)
            .provider_key("pk", Some("acme"), "MOCK_KEY")
            .route(Some("acme"), "gpt", &[("m", "pk")])
            .to_toml();
        for needle in [
            "[[tenants]]",
            "region = \"eu\"",
            "[[api_keys]]",
            "[[upstreams]]",
            "[[provider_keys]]",
            "[[routes]]",
        ] {
            assert!(toml.contains(needle), "{needle} missing in\n{toml}");
        }
        assert!(toml.contains("targets = [{ upstream = \"m\", provider_key = \"pk\" }]"));
    }
}
