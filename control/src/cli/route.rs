//! `route set|list|remove`.

use super::{method, print_json, seg, table, Client, Noun};
use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use sluice_contract::snapshot::types::{Route, Target};

/// Route verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum RouteCmd {
    /// Create or replace the route of a model alias.
    Set {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Model alias clients ask for.
        #[arg(long)]
        model: String,
        /// A target: upstream=NAME,key=PROVIDER_KEY_ID[,priority=N][,weight=N][,model=UPSTREAM_MODEL].
        /// Repeat for fallbacks (lower priority first) and weighted splits.
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        /// How the first target is chosen among the healthy ones: ordered,
        /// weighted, least-latency or least-cost (default: ordered).
        #[arg(long)]
        strategy: Option<String>,
        /// Time allowed for an upstream's first byte before the next target, ms.
        #[arg(long)]
        first_byte_timeout_ms: Option<u64>,
        /// Retries per upstream as a share of its requests (default 0.2).
        #[arg(long)]
        retry_budget: Option<f64>,
        /// Retries per upstream per 10 s allowed regardless (default 10).
        #[arg(long)]
        retry_min: Option<u32>,
        /// Consecutive failures that eject a target (default 5).
        #[arg(long)]
        eject_after: Option<u32>,
        /// First ejection, ms (default 5000), doubled while probes fail.
        #[arg(long)]
        eject_ms: Option<u64>,
        /// Longest ejection, ms (default 300000).
        #[arg(long)]
        eject_max_ms: Option<u64>,
        /// Share of failed attempts over 10 s that ejects (default: off).
        #[arg(long)]
        eject_failure_rate: Option<f64>,
        /// Attempts over 10 s before the failure rate counts (default 20).
        #[arg(long)]
        eject_min_requests: Option<u32>,
        /// A request translated for a target of another kind, with a field
        /// that has no equivalent there: `refuse` it with 400 naming the
        /// field (default), or `drop` the field and name it in the
        /// `x-sluice-dropped-fields` response header.
        #[arg(long, value_parser = ["refuse", "drop"])]
        on_unsupported: Option<String>,
    },
    /// List a tenant's routes.
    List {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a route.
    Remove {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Model alias.
        #[arg(long)]
        model: String,
    },
}

/// Parses `upstream=u,key=k,priority=0,weight=1,model=m`.
pub(crate) fn parse_target(s: &str) -> anyhow::Result<Target> {
    let mut t = Target {
        upstream: String::new(),
        provider_key: String::new(),
        model: None,
        priority: None,
        weight: 1,
    };
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("target {s:?}: expected key=value, got {part:?}"))?;
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| anyhow!("target {s:?}: {k} must be a number"))
        };
        match k.trim() {
            "upstream" => t.upstream = v.to_owned(),
            "key" | "provider_key" => t.provider_key = v.to_owned(),
            "model" => t.model = Some(v.to_owned()),
            "priority" => t.priority = Some(num(v)?),
            "weight" => t.weight = num(v)?,
            other => bail!("target {s:?}: unknown field {other:?} (upstream, key, priority, weight, model)"),
        }
    }
    if t.upstream.is_empty() || t.provider_key.is_empty() {
        bail!("target {s:?}: upstream=NAME and key=PROVIDER_KEY_ID are required");
    }
    Ok(t)
}

/// Runs a route verb.
pub(crate) fn run(cmd: Noun<RouteCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        RouteCmd::Set {
            tenant,
            model,
            targets,
            strategy,
            first_byte_timeout_ms,
            retry_budget,
            retry_min,
            eject_after,
            eject_ms,
            eject_max_ms,
            eject_failure_rate,
            eject_min_requests,
            on_unsupported,
        } => {
            let targets = targets
                .iter()
                .map(|t| parse_target(t))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let path = format!("/v1/tenants/{}/routes", seg(&tenant));
            let mut body = json!({ "model": model, "targets": targets });
            let settings = [
                ("strategy", strategy.map(Value::from)),
                ("first_byte_timeout_ms", first_byte_timeout_ms.map(Value::from)),
                ("retry_budget", retry_budget.map(Value::from)),
                ("retry_min", retry_min.map(Value::from)),
                ("eject_after", eject_after.map(Value::from)),
                ("eject_ms", eject_ms.map(Value::from)),
                ("eject_max_ms", eject_max_ms.map(Value::from)),
                ("eject_failure_rate", eject_failure_rate.map(Value::from)),
                ("eject_min_requests", eject_min_requests.map(Value::from)),
                ("on_unsupported", on_unsupported.map(Value::from)),
            ];
            for (name, value) in settings {
                if let Some(v) = value {
                    body[name] = v;
                }
            }
            let r: Route = c.json(method::PUT, &path, Some(&body))?;
            println!(
                "route {} for tenant {tenant}: {} target(s), {}",
                r.model,
                r.targets.len(),
                r.strategy.as_str()
            );
        }
        RouteCmd::List { tenant, json } => {
            let list: Vec<Route> = c.get(&format!("/v1/tenants/{}/routes", seg(&tenant)))?;
            if json {
                return print_json(&list);
            }
            let mut rows = Vec::new();
            for r in &list {
                for (i, t) in r.targets.iter().enumerate() {
                    rows.push(vec![
                        if i == 0 { r.model.clone() } else { String::new() },
                        t.upstream.clone(),
                        t.provider_key.clone(),
                        t.priority.unwrap_or(i as u32).to_string(),
                        t.weight.to_string(),
                        table::opt(t.model.as_deref()),
                    ]);
                }
            }
            table::print(
                &["MODEL", "UPSTREAM", "KEY", "PRIORITY", "WEIGHT", "UPSTREAM MODEL"],
                &rows,
            );
        }
        RouteCmd::Remove { tenant, model } => {
            let path = format!("/v1/tenants/{}/routes/{}", seg(&tenant), seg(&model));
            let _: Value = c.json(method::DELETE, &path, None::<&()>)?;
            println!("removed route {model} of tenant {tenant}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = parse_target("upstream=mock,key=k1,priority=2,weight=3,model=gpt-4o-2024").unwrap();
        assert_eq!((t.upstream.as_str(), t.provider_key.as_str()), ("mock", "k1"));
        assert_eq!(
            (t.priority, t.weight, t.model.as_deref()),
            (Some(2), 3, Some("gpt-4o-2024"))
        );
        assert!(parse_target("upstream=mock").is_err());
        assert!(parse_target("upstream=mock,key=k,colour=red").is_err());
        assert!(parse_target("upstream=mock,key=k,weight=x").is_err());
    }
}
