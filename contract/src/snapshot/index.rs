//! The compiled snapshot: hash maps built off the hot path, read per request.

use super::types::{ProviderKind, Snapshot, Strategy};
use crate::crypto::{unhex, SealKey};
use crate::health::{EjectPolicy, RetryBudget, TargetHealth};
use crate::quota::credit::Credit;
use crate::quota::gcra::Gcra;
use crate::quota::price::{Price, PriceTable};
use crate::quota::Registry;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why a snapshot could not be compiled. The message names the offending item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexError(pub String);

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IndexError {}

macro_rules! bail {
    ($($arg:tt)*) => { return Err(IndexError(format!($($arg)*))) };
}

/// A tenant as the hot path sees it.
#[derive(Debug)]
pub struct TenantEntry {
    /// Tenant id.
    pub id: Arc<str>,
    /// Region, if the tenant's traffic is pinned to one.
    pub region: Option<Arc<str>>,
    /// Model alias → targets, the tenant's own routes over the shared ones.
    pub routes: HashMap<Box<str>, RouteEntry>,
    /// The tenant's compiled policy, if it has one.
    pub policy: Option<Arc<crate::policy::CompiledPolicy>>,
    /// Requests-per-minute limit of the tenant.
    pub rpm: Option<Arc<Gcra>>,
    /// Tokens-per-minute limit of the tenant.
    pub tpm: Option<Arc<Gcra>>,
    /// Prepaid credit, when the tenant's spending is metered against one.
    pub credit: Option<Arc<Credit>>,
    /// Completion tokens reserved for when a request sets no `max_tokens`.
    pub default_max_tokens: u64,
    /// Requests in flight, when the tenant's concurrency is capped.
    pub in_flight: Option<Arc<crate::quota::inflight::InFlight>>,
    /// Opt-in content logging: bodies are sealed under this key.
    pub content_key: Option<Arc<SealKey>>,
    /// The tenant's response cache rules; `None`: nothing is cached.
    pub cache: Option<Arc<crate::cache::TenantCache>>,
}

/// Completion tokens reserved for a request without `max_tokens`, unless the
/// tenant's credit grant says otherwise.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The targets of one model alias for one tenant.
#[derive(Debug, Clone)]
pub enum RouteEntry {
    /// Targets that may serve the request, in priority order.
    Targets(Arc<[RouteTarget]>),
    /// The route exists but none of its targets is in the tenant's region.
    OutOfRegion,
}

/// A gateway key as the hot path sees it.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// Key id.
    pub id: Arc<str>,
    /// Owning tenant.
    pub tenant: Arc<TenantEntry>,
    /// Requests-per-minute limit of this key.
    pub rpm: Option<Arc<Gcra>>,
    /// Tokens-per-minute limit of this key.
    pub tpm: Option<Arc<Gcra>>,
}

/// A parsed upstream endpoint.
#[derive(Debug)]
pub struct UpstreamEntry {
    /// Upstream name.
    pub name: Arc<str>,
    /// Wire dialect.
    pub kind: ProviderKind,
    /// Whether to speak TLS.
    pub tls: bool,
    /// Host name or IP literal (without brackets).
    pub host: Box<str>,
    /// TCP port.
    pub port: u16,
    /// Value for the `Host` header.
    pub authority: Box<str>,
    /// Path prefix before `/v1/...` (empty or starting with `/`, no trailing `/`).
    pub path_prefix: Box<str>,
    /// Pool key: scheme, host and port; equal endpoints share connections
    /// across snapshots.
    pub pool_key: Arc<str>,
    /// Region the upstream is in.
    pub region: Option<Arc<str>>,
    /// Addresses: an IP literal's at once; a host name's are filled in by
    /// [`Index::refresh_addresses`], which the data plane calls before it
    /// publishes the index and again from a thread of its own (name
    /// resolution blocks, so neither on the hot path nor in the compile
    /// step, which the control plane runs inside a write transaction).
    /// Empty while the name has never resolved.
    pub addrs: ArcSwap<Box<[SocketAddr]>>,
}

/// A provider key, sealed, opened only at the moment of forwarding.
pub struct SealedProviderKey {
    /// Key id.
    pub id: Arc<str>,
    sealed: Box<[u8]>,
    aad: Box<[u8]>,
    opener: Arc<SealKey>,
    /// OpenAI: the `OpenAI-Organization` sent with this key.
    pub organization: Option<Box<str>>,
    /// OpenAI: the `OpenAI-Project` sent with this key.
    pub project: Option<Box<str>>,
    /// Account-wide response headers (rate-limit state, the account's
    /// organization and project) reach the client: a tenant's own key, or
    /// an operator-wide one whose snapshot entry says to pass them.
    pub pass_account_headers: bool,
}

impl fmt::Debug for SealedProviderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedProviderKey({})", self.id)
    }
}

impl SealedProviderKey {
    /// Opens the key into a buffer that is wiped when dropped.
    pub fn open(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::crypto::CryptoError> {
        self.opener.open(&self.sealed, &self.aad)
    }
}

/// One target of a route.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    /// Where to send.
    pub upstream: Arc<UpstreamEntry>,
    /// With which key.
    pub key: Arc<SealedProviderKey>,
    /// Model name to send upstream, when it differs from the alias.
    pub model: Option<Arc<str>>,
    /// Priority (lower first).
    pub priority: u32,
    /// Weight among targets of equal priority.
    pub weight: u32,
    /// The route's choice, timeout, retry and ejection settings.
    pub policy: Arc<RoutePolicy>,
    /// Passive health of this upstream with this key, shared by every route
    /// and worker that uses the pair, and kept across snapshots.
    pub health: Arc<TargetHealth>,
    /// The upstream's retry budget, shared likewise.
    pub budget: Arc<RetryBudget>,
    /// The price of the model sent upstream, for least-cost choice.
    pub price: Option<Price>,
}

/// A route's settings, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePolicy {
    /// How targets are chosen.
    pub strategy: Strategy,
    /// Time allowed for the first response byte, when the route sets one.
    pub first_byte_timeout: Option<std::time::Duration>,
    /// Retries per upstream as a share of its requests.
    pub retry_ratio: f64,
    /// Retries per upstream per window allowed regardless.
    pub retry_min: u32,
    /// When to eject a failing target.
    pub eject: EjectPolicy,
    /// A translated request's fields with no equivalent: refused or dropped.
    pub on_unsupported: crate::translate::OnUnsupported,
}

impl Default for RoutePolicy {
    fn default() -> Self {
        RoutePolicy {
            strategy: Strategy::Ordered,
            first_byte_timeout: None,
            retry_ratio: 0.2,
            retry_min: 10,
            eject: EjectPolicy::default(),
            on_unsupported: crate::translate::OnUnsupported::Refuse,
        }
    }
}

/// Checks a route's settings (strategy, first-byte limit, retry budget,
/// ejection) as the compile step will, for an admin API that answers 400
/// before storing a route.
pub fn check_route_settings(route: &super::types::Route) -> Result<(), IndexError> {
    route_policy(route).map(|_| ())
}

fn route_policy(route: &super::types::Route) -> Result<RoutePolicy, IndexError> {
    let d = RoutePolicy::default();
    let ratio = route.retry_budget.unwrap_or(d.retry_ratio);
    if !(ratio.is_finite() && (0.0..=10.0).contains(&ratio)) {
        bail!(
            "route {:?}: retry_budget {ratio} is not a share between 0 and 10",
            route.model
        );
    }
    if route.eject_after == Some(0) {
        bail!("route {:?}: eject_after must be at least 1", route.model);
    }
    if route.first_byte_timeout_ms == Some(0) {
        bail!("route {:?}: first_byte_timeout_ms must be positive", route.model);
    }
    let rate = route.eject_failure_rate.unwrap_or(0.0);
    if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
        bail!(
            "route {:?}: eject_failure_rate {rate} is not a share between 0 and 1",
            route.model
        );
    }
    let base_ns = route
        .eject_ms
        .map_or(d.eject.base_ns, |ms| ms.saturating_mul(1_000_000));
    let max_ns = route
        .eject_max_ms
        .map_or(d.eject.max_ns, |ms| ms.saturating_mul(1_000_000))
        .max(base_ns);
    Ok(RoutePolicy {
        strategy: route.strategy,
        first_byte_timeout: route.first_byte_timeout_ms.map(std::time::Duration::from_millis),
        retry_ratio: ratio,
        retry_min: route.retry_min.unwrap_or(d.retry_min),
        eject: EjectPolicy {
            after: route.eject_after.unwrap_or(d.eject.after),
            base_ns,
            max_ns,
            rate_permille: (rate * 1000.0).round() as u32,
            rate_min: route.eject_min_requests.unwrap_or(d.eject.rate_min),
        },
        on_unsupported: route.on_unsupported,
    })
}

/// Most targets in one route (the data plane tracks the ones a request
/// tried in one 64-bit word).
pub const MAX_ROUTE_TARGETS: usize = 64;

/// A compiled snapshot.
#[derive(Debug)]
pub struct Index {
    /// Version of the snapshot this was built from.
    pub version: u64,
    keys: HashMap<[u8; 32], KeyEntry>,
    /// Every upstream, for refreshing their addresses.
    upstreams: Box<[Arc<UpstreamEntry>]>,
    /// Prices by model.
    pub prices: PriceTable,
    registry: Arc<Registry>,
    /// Every tenant's cache rules, by tenant id (tenants with none absent):
    /// what a new snapshot is compared with to drop entries at once.
    pub caches: HashMap<Arc<str>, Arc<crate::cache::TenantCache>>,
}

/// How provider keys reach the index.
pub enum KeyMaterial<'a> {
    /// Standalone: read `api_key_env` variables through `env` and seal them under
    /// a key that lives only in this process.
    Env(&'a dyn Fn(&str) -> Option<String>),
    /// Control mode: keys arrive sealed under this data plane's key.
    Sealed(Arc<SealKey>),
}

impl Index {
    /// Every target's health cell this data plane has seen (for metrics;
    /// takes a lock, so never on the request path).
    pub fn health_cells(&self) -> Vec<(String, Arc<TargetHealth>)> {
        self.registry.health_cells()
    }

    /// Compiles `snap`. Every reference must resolve: a route to a missing
    /// upstream or key is an error, not a request-time surprise.
    pub fn build(snap: &Snapshot, material: KeyMaterial<'_>) -> Result<Index, IndexError> {
        Index::build_with(snap, material, Arc::new(Registry::default()))
    }

    /// Like [`Index::build`], carrying rate-limit and credit state over from
    /// `prev` so that a new snapshot neither resets nor refunds them.
    pub fn rebuild(snap: &Snapshot, material: KeyMaterial<'_>, prev: &Index) -> Result<Index, IndexError> {
        Index::build_with(snap, material, prev.registry.clone())
    }

    fn build_with(
        snap: &Snapshot,
        material: KeyMaterial<'_>,
        registry: Arc<Registry>,
    ) -> Result<Index, IndexError> {
        let process_key;
        let opener = match &material {
            KeyMaterial::Env(_) => {
                let (key, _raw) = SealKey::generate().map_err(|e| IndexError(e.to_string()))?;
                process_key = Arc::new(key);
                process_key.clone()
            }
            KeyMaterial::Sealed(k) => k.clone(),
        };

        let mut upstreams: HashMap<&str, Arc<UpstreamEntry>> = HashMap::new();
        for u in &snap.upstreams {
            let entry = parse_upstream(u)?;
            if upstreams.insert(u.name.as_str(), Arc::new(entry)).is_some() {
                bail!("duplicate upstream {:?}", u.name);
            }
        }

        // (tenant or "" for operator-wide, key id) → key.
        let mut pkeys: HashMap<(&str, &str), Arc<SealedProviderKey>> = HashMap::new();
        for k in &snap.provider_keys {
            let aad = k.aad();
            let sealed = match (&k.api_key_env, &k.sealed, &material) {
                (Some(var), None, KeyMaterial::Env(env)) => {
                    let Some(value) = env(var) else {
                        bail!("provider key {:?}: environment variable {var} is not set", k.id);
                    };
                    let value = zeroize::Zeroizing::new(value);
                    opener
                        .seal(value.trim().as_bytes(), aad.as_bytes())
                        .map_err(|e| IndexError(e.to_string()))?
                }
                (None, Some(hex), KeyMaterial::Sealed(_)) => {
                    let Some(bytes) = unhex_vec(hex) else {
                        bail!("provider key {:?}: sealed value is not hex", k.id);
                    };
                    bytes
                }
                (Some(_), Some(_), _) | (None, None, _) => {
                    bail!(
                        "provider key {:?}: give exactly one of api_key_env or sealed",
                        k.id
                    )
                }
                (Some(_), None, KeyMaterial::Sealed(_)) => {
                    bail!("provider key {:?}: api_key_env is only for standalone mode", k.id)
                }
                (None, Some(_), KeyMaterial::Env(_)) => {
                    bail!(
                        "provider key {:?}: sealed keys need a control-plane enrollment",
                        k.id
                    )
                }
            };
            for (what, value) in [("organization", &k.organization), ("project", &k.project)] {
                if value
                    .as_deref()
                    .is_some_and(|v| v.is_empty() || v.bytes().any(|b| b.is_ascii_control() || b >= 0x80))
                {
                    bail!(
                        "provider key {:?}: {what} must be non-empty printable ASCII",
                        k.id
                    );
                }
            }
            let entry = SealedProviderKey {
                id: Arc::from(k.id.as_str()),
                sealed: sealed.into_boxed_slice(),
                aad: aad.into_bytes().into_boxed_slice(),
                opener: opener.clone(),
                organization: k.organization.as_deref().map(Box::from),
                project: k.project.as_deref().map(Box::from),
                pass_account_headers: k.tenant.is_some() || k.pass_rate_limit_headers,
            };
            if pkeys
                .insert(
                    (k.tenant.as_deref().unwrap_or(""), k.id.as_str()),
                    Arc::new(entry),
                )
                .is_some()
            {
                bail!("duplicate provider key {:?}", k.id);
            }
        }

        // (requests, tokens) per minute, by tenant and by (tenant, key).
        type PerMinute = (Option<u64>, Option<u64>);
        let mut tenant_limits: HashMap<&str, PerMinute> = HashMap::new();
        let mut key_limits: HashMap<(&str, &str), PerMinute> = HashMap::new();
        let mut concurrency: HashMap<&str, u32> = HashMap::new();
        for l in &snap.rate_limits {
            match (l.concurrency, &l.key) {
                (Some(0), _) => bail!(
                    "concurrency limit for {:?}: 0 would refuse everything; remove it instead",
                    l.tenant
                ),
                (Some(_), Some(k)) => {
                    bail!("concurrency limit for key {k:?}: it applies to a tenant as a whole")
                }
                (Some(n), None) => {
                    concurrency.insert(l.tenant.as_str(), n);
                }
                (None, _) => {}
            }
            let slot = match &l.key {
                Some(k) => key_limits.entry((l.tenant.as_str(), k.as_str())).or_default(),
                None => tenant_limits.entry(l.tenant.as_str()).or_default(),
            };
            if l.rpm == Some(0) || l.tpm == Some(0) {
                bail!(
                    "rate limit for {:?}: a limit of 0 would refuse everything; remove it instead",
                    l.tenant
                );
            }
            *slot = (l.rpm.or(slot.0), l.tpm.or(slot.1));
        }
        let mut policies: HashMap<&str, Arc<crate::policy::CompiledPolicy>> = HashMap::new();
        for p in &snap.policies {
            let compiled = crate::policy::CompiledPolicy::compile(&p.toml)
                .map_err(|e| IndexError(format!("policy of tenant {:?}: {e}", p.tenant)))?;
            policies.insert(p.tenant.as_str(), Arc::new(compiled));
        }
        let credits: HashMap<&str, &super::types::CreditGrant> =
            snap.credits.iter().map(|c| (c.tenant.as_str(), c)).collect();

        let mut cache_rules: HashMap<&str, Vec<&crate::cache::CacheRule>> = HashMap::new();
        for r in &snap.caches {
            cache_rules.entry(r.tenant.as_str()).or_default().push(r);
        }
        let mut caches = HashMap::new();
        for (t, rules) in &cache_rules {
            let compiled = crate::cache::TenantCache::compile(rules.iter().copied()).map_err(IndexError)?;
            caches.insert(Arc::<str>::from(*t), Arc::new(compiled));
        }

        let mut tenants: HashMap<&str, TenantEntry> = HashMap::new();
        for t in &snap.tenants {
            let (rpm, tpm) = tenant_limits.get(t.id.as_str()).copied().unwrap_or_default();
            let credit = credits.get(t.id.as_str());
            let content_key = match (&t.content_key, &material) {
                (None, _) => None,
                (Some(_), KeyMaterial::Env(_)) => {
                    bail!(
                        "tenant {:?}: content logging needs a control plane (content_key)",
                        t.id
                    )
                }
                (Some(hex), KeyMaterial::Sealed(opener)) => {
                    let sealed = unhex_vec(hex)
                        .ok_or_else(|| IndexError(format!("tenant {:?}: content_key is not hex", t.id)))?;
                    let raw = opener
                        .open(&sealed, format!("content/{}", t.id).as_bytes())
                        .map_err(|e| IndexError(format!("tenant {:?}: content_key: {e}", t.id)))?;
                    let key = SealKey::from_bytes(&raw)
                        .map_err(|e| IndexError(format!("tenant {:?}: content_key: {e}", t.id)))?;
                    Some(Arc::new(key))
                }
            };
            let entry = TenantEntry {
                id: Arc::from(t.id.as_str()),
                region: t.region.as_deref().map(Arc::from),
                routes: HashMap::new(),
                policy: policies.get(t.id.as_str()).cloned(),
                rpm: rpm.map(|r| registry.limiter(&format!("tenant/{}/rpm", t.id), r)),
                tpm: tpm.map(|r| registry.limiter(&format!("tenant/{}/tpm", t.id), r)),
                credit: credit.map(|c| registry.credit(&t.id, c.granted_micros, c.spent_micros)),
                default_max_tokens: credit
                    .and_then(|c| c.default_max_tokens)
                    .unwrap_or(DEFAULT_MAX_TOKENS),
                in_flight: concurrency
                    .get(t.id.as_str())
                    .map(|&n| registry.in_flight(&t.id, n)),
                content_key,
                cache: caches.get(t.id.as_str()).cloned(),
            };
            if tenants.insert(t.id.as_str(), entry).is_some() {
                bail!("duplicate tenant {:?}", t.id);
            }
        }

        let mut prices = Vec::with_capacity(snap.prices.len());
        for p in &snap.prices {
            let usd = |v: f64| -> Result<u64, IndexError> {
                if v.is_finite() && (0.0..=1e6).contains(&v) {
                    Ok((v * 1e6).round() as u64)
                } else {
                    Err(IndexError(format!(
                        "price of {:?}: {v} is not a price in USD per million tokens",
                        p.model
                    )))
                }
            };
            let input = usd(p.input)?;
            let price = Price {
                input,
                cached_input: p.cached_input.map(usd).transpose()?.unwrap_or(input),
                cache_write: p.cache_write.map(usd).transpose()?.unwrap_or(input),
                output: usd(p.output)?,
                max_output_tokens: p.max_output_tokens,
            };
            prices.push((p.model.as_str(), price));
        }
        let prices = PriceTable::with_overrides(prices);

        let mut used_health = std::collections::HashSet::new();
        // Shared routes first, then tenant routes override them.
        let mut ordered: Vec<&super::types::Route> =
            snap.routes.iter().filter(|r| r.tenant.is_none()).collect();
        ordered.extend(snap.routes.iter().filter(|r| r.tenant.is_some()));
        for route in ordered {
            if route.targets.is_empty() {
                bail!("route {:?} has no targets", route.model);
            }
            if route.targets.len() > MAX_ROUTE_TARGETS {
                bail!(
                    "route {:?} has {} targets; at most {MAX_ROUTE_TARGETS}",
                    route.model,
                    route.targets.len()
                );
            }
            // Off the hot path: cl100k's tables, if an older model is routed
            // (o200k's are loaded at start; see `tokens::warm_up`).
            let (encoding, _) = crate::policy::tokens::encoding_for(&route.model);
            if encoding == crate::policy::tokens::Encoding::Cl100kBase {
                crate::policy::tokens::prepare(encoding);
            }
            let owners: Vec<&str> = match &route.tenant {
                Some(t) if !tenants.contains_key(t.as_str()) => {
                    bail!("route {:?} names unknown tenant {t:?}", route.model)
                }
                Some(t) => vec![t.as_str()],
                None => tenants.keys().copied().collect(),
            };
            let policy = Arc::new(route_policy(route)?);
            for owner in owners {
                let mut targets = Vec::with_capacity(route.targets.len());
                for (pos, t) in route.targets.iter().enumerate() {
                    let Some(upstream) = upstreams.get(t.upstream.as_str()) else {
                        bail!("route {:?} names unknown upstream {:?}", route.model, t.upstream);
                    };
                    let key = pkeys
                        .get(&(owner, t.provider_key.as_str()))
                        .or_else(|| pkeys.get(&("", t.provider_key.as_str())));
                    let Some(key) = key else {
                        bail!(
                            "route {:?} names unknown provider key {:?} for tenant {owner:?}",
                            route.model,
                            t.provider_key
                        );
                    };
                    let key_owner = if pkeys.contains_key(&(owner, t.provider_key.as_str())) {
                        owner
                    } else {
                        ""
                    };
                    let sent_model = t.model.as_deref().unwrap_or(&route.model);
                    targets.push(RouteTarget {
                        upstream: upstream.clone(),
                        key: key.clone(),
                        model: t.model.as_deref().map(Arc::from),
                        priority: t.priority.unwrap_or(pos as u32),
                        weight: t.weight.max(1),
                        policy: policy.clone(),
                        health: {
                            used_health.insert((
                                upstream.name.to_string(),
                                key_owner.to_owned(),
                                key.id.to_string(),
                            ));
                            registry.health(&upstream.name, key_owner, &key.id)
                        },
                        budget: registry.budget(&upstream.name),
                        price: prices.lookup(sent_model),
                    });
                }
                targets.sort_by_key(|t| t.priority);
                let Some(tenant) = tenants.get_mut(owner) else {
                    continue;
                };
                if let Some(region) = &tenant.region {
                    targets.retain(|t| t.upstream.region.as_deref() == Some(&**region));
                }
                let entry = if targets.is_empty() {
                    RouteEntry::OutOfRegion
                } else {
                    RouteEntry::Targets(targets.into())
                };
                tenant.routes.insert(Box::from(route.model.as_str()), entry);
            }
        }

        let tenants: HashMap<&str, Arc<TenantEntry>> =
            tenants.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        let mut keys = HashMap::with_capacity(snap.api_keys.len());
        for k in &snap.api_keys {
            let Some(hash) = unhex::<32>(&k.sha256) else {
                bail!("api key {:?}: sha256 must be 64 hex digits", k.id);
            };
            let Some(tenant) = tenants.get(k.tenant.as_str()) else {
                bail!("api key {:?} names unknown tenant {:?}", k.id, k.tenant);
            };
            let (rpm, tpm) = key_limits
                .get(&(k.tenant.as_str(), k.id.as_str()))
                .copied()
                .unwrap_or_default();
            let entry = KeyEntry {
                id: Arc::from(k.id.as_str()),
                tenant: tenant.clone(),
                rpm: rpm.map(|r| registry.limiter(&format!("key/{}/{}/rpm", k.tenant, k.id), r)),
                tpm: tpm.map(|r| registry.limiter(&format!("key/{}/{}/tpm", k.tenant, k.id), r)),
            };
            if keys.insert(hash, entry).is_some() {
                bail!("duplicate api key hash for {:?}", k.id);
            }
        }
        for t in policies
            .keys()
            .chain(credits.keys())
            .chain(tenant_limits.keys())
            .chain(cache_rules.keys())
        {
            if !tenants.contains_key(t) {
                bail!("policy, limit, credit or cache rule names unknown tenant {t:?}");
            }
        }
        // Targets no route uses any more leave the metrics (a snapshot that
        // uses the pair again starts it healthy).
        registry.keep_health(&used_health);
        Ok(Index {
            version: snap.version,
            keys,
            upstreams: upstreams.into_values().collect(),
            prices,
            registry,
            caches,
        })
    }

    /// Resolves every upstream named by a host name with `resolve` and swaps
    /// in the addresses that changed; returns how many did. A name that fails
    /// to resolve (`resolve` returns none) keeps its last addresses (stale
    /// beats none), and one that never resolved is tried again on the next
    /// call, so a DNS failure at start-up or a provider moving its addresses
    /// heals without a new snapshot. `resolve` blocks: call this off the hot
    /// path.
    pub fn refresh_addresses(&self, resolve: &dyn Fn(&str, u16) -> Box<[SocketAddr]>) -> usize {
        let mut changed = 0;
        for up in self.upstreams.iter() {
            if up.host.parse::<std::net::IpAddr>().is_ok() {
                continue;
            }
            let fresh = resolve(&up.host, up.port);
            if fresh.is_empty() || same_addresses(&up.addrs.load(), &fresh) {
                continue;
            }
            tracing::info!(upstream = %up.name, host = %up.host, addrs = ?fresh, "upstream addresses changed");
            up.addrs.store(Arc::new(fresh));
            changed += 1;
        }
        changed
    }

    /// The key whose SHA-256 is `hash`.
    pub fn key(&self, hash: &[u8; 32]) -> Option<&KeyEntry> {
        self.keys.get(hash)
    }

    /// Number of gateway keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

fn unhex_vec(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16)?;
            let lo = (p[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

fn parse_upstream(u: &super::types::Upstream) -> Result<UpstreamEntry, IndexError> {
    let url = u.base_url.trim();
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        bail!(
            "upstream {:?}: base_url must start with http:// or https://",
            u.name
        );
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some(end) = v6.find(']') else {
            bail!("upstream {:?}: bad IPv6 literal", u.name)
        };
        let host = &v6[..end];
        let port = match &v6[end + 1..] {
            "" => default_port,
            p => match p.strip_prefix(':').and_then(|p| p.parse().ok()) {
                Some(p) => p,
                None => bail!("upstream {:?}: bad port", u.name),
            },
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => match p.parse() {
                Ok(p) => (h, p),
                Err(_) => bail!("upstream {:?}: bad port {p:?}", u.name),
            },
            None => (authority, default_port),
        }
    };
    if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace() || b == b'@') {
        bail!("upstream {:?}: bad host in base_url", u.name);
    }
    let mut path_prefix = path.trim_end_matches('/');
    // Accept a base URL given with its `/v1` (as SDKs are configured).
    if let Some(p) = path_prefix.strip_suffix("/v1") {
        path_prefix = p;
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(UpstreamEntry {
        name: Arc::from(u.name.as_str()),
        kind: u.kind,
        tls,
        host: Box::from(host),
        port,
        authority: Box::from(authority),
        path_prefix: Box::from(path_prefix),
        pool_key: Arc::from(format!("{scheme}://{authority}").as_str()),
        region: u.region.as_deref().map(Arc::from),
        addrs: ArcSwap::from_pointee(literal_address(host, port)),
    })
}

/// Whether `a` and `b` hold the same addresses, in any order (a resolver
/// rotating its answers is no change).
fn same_addresses(a: &[SocketAddr], b: &[SocketAddr]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// The address of an IP literal host; none for a name (resolved later, by
/// the data plane: see [`Index::refresh_addresses`]).
fn literal_address(host: &str, port: u16) -> Box<[SocketAddr]> {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Box::new([SocketAddr::new(ip, port)]),
        Err(_) => Box::new([]),
    }
}

#[cfg(test)]
mod tests;
