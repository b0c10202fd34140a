//! What the audit trail says about an admin change: its kind and the names
//! it touches, never its secrets (a provider key's envelope, a gateway key's
//! hash, a policy's text).

use crate::audit::Described;
use crate::billing::ops::BillingOp;
use crate::ops::AdminOp;
use crate::privacy::PrivacyOp;

fn of(action: &str, target: String, tenant: Option<&str>) -> Described {
    Described {
        action: action.to_owned(),
        target: Some(target),
        tenant: tenant.map(str::to_owned),
        ..Described::default()
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// The description of `op`, or `None` for changes that are not admin actions
/// (a timer's purge that removed nothing).
pub(crate) fn describe(op: &AdminOp) -> Option<Described> {
    Some(match op {
        AdminOp::CreateTenant(row) => of("tenant.create", format!("tenant {}", row.id), Some(&row.id)),
        AdminOp::UpdateTenant { id, name, region } => {
            let mut parts = Vec::new();
            if name.is_some() {
                parts.push("name".to_owned());
            }
            if let Some(r) = region {
                parts.push(format!("region={}", r.as_deref().unwrap_or("none")));
            }
            Described {
                detail: Some(parts.join(" ")),
                ..of("tenant.update", format!("tenant {id}"), Some(id))
            }
        }
        AdminOp::DeleteTenant(id) => Described {
            erase_target: true,
            ..of("tenant.delete", format!("tenant {id}"), Some(id))
        },
        AdminOp::CreateApiKey(row) => of(
            "apikey.create",
            format!("apikey {}/{}", row.tenant, row.id),
            Some(&row.tenant),
        ),
        AdminOp::RevokeApiKey { tenant, id } => {
            of("apikey.revoke", format!("apikey {tenant}/{id}"), Some(tenant))
        }
        AdminOp::PutProviderKey { row, create } => of(
            if *create {
                "provider_key.create"
            } else {
                "provider_key.rotate"
            },
            format!("provider-key {}/{}", row.tenant, row.id),
            Some(&row.tenant),
        ),
        AdminOp::DeleteProviderKey { tenant, id } => of(
            "provider_key.delete",
            format!("provider-key {tenant}/{id}"),
            Some(tenant),
        ),
        AdminOp::AddUpstream(u) => of("upstream.add", format!("upstream {}", u.name), None),
        AdminOp::RemoveUpstream(name) => of("upstream.remove", format!("upstream {name}"), None),
        AdminOp::SetRoute(r) => {
            let tenant = r.tenant.as_deref().unwrap_or("");
            of("route.set", format!("route {tenant}/{}", r.model), Some(tenant))
        }
        AdminOp::RemoveRoute { tenant, model } => {
            of("route.remove", format!("route {tenant}/{model}"), Some(tenant))
        }
        AdminOp::EnrollDataplane { id, .. } => of("dataplane.enroll", format!("dataplane {id}"), None),
        AdminOp::RevokeDataplane { id, .. } => of("dataplane.revoke", format!("dataplane {id}"), None),
        AdminOp::CreateAdminToken(row) => Described {
            detail: Some(format!("scope={}", row.scope)),
            ..of("token.create", format!("admin token {}", row.name), None)
        },
        AdminOp::RevokeAdminToken { name, .. } => of("token.revoke", format!("admin token {name}"), None),
        AdminOp::Privacy(p) => return privacy(p),
        AdminOp::Cache(c) => crate::cache::describe(c),
        AdminOp::Billing(b) => billing(b).unwrap_or_else(|| generic(op)),
        AdminOp::Sink(s) => return sink(s),
    })
}

/// Adding and removing a sink are admin actions; a publisher's cursor
/// advances and alerts are not.
fn sink(op: &crate::sinks::cursor::SinkOp) -> Option<Described> {
    use crate::sinks::cursor::SinkOp;
    Some(match op {
        SinkOp::Add(row) => Described {
            detail: Some(format!(
                "url={} stream={} subject={}",
                row.url, row.stream, row.subject
            )),
            ..of("sink.add", format!("sink {}", row.name), None)
        },
        SinkOp::Remove(name) => of("sink.remove", format!("sink {name}"), None),
        SinkOp::Advance { .. } | SinkOp::Stalled { .. } => return None,
    })
}

fn privacy(op: &PrivacyOp) -> Option<Described> {
    Some(match op {
        PrivacyOp::Settings { tenant, change, .. } => {
            let mut parts = Vec::new();
            if let Some(b) = change.log_content {
                parts.push(format!("log_content={}", on_off(b)));
            }
            if let Some(d) = change.retention_days {
                parts.push(format!("retention_days={d}"));
            }
            if let Some(d) = change.content_retention_days {
                parts.push(format!("content_retention_days={d}"));
            }
            Described {
                detail: Some(parts.join(" ")),
                ..of("tenant.privacy", format!("tenant {tenant}"), Some(tenant))
            }
        }
        PrivacyOp::Purge { by_admin, report, .. } => {
            let r = *report.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // The hourly purge is recorded only when it removed something.
            if !by_admin && r.is_none_or(|r| r.is_empty()) {
                return None;
            }
            Described {
                action: "retention.purge".into(),
                detail: r.map(|r| r.summary()),
                system: !by_admin,
                ..Described::default()
            }
        }
        PrivacyOp::Note { action, tenant } => of(action, format!("tenant {tenant}"), Some(tenant)),
    })
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

/// Billing changes by an admin, with their target (a policy by its tenant,
/// never its text); `None` for control's own (credit top-ups, alert
/// deliveries) and for kinds this module does not know.
fn billing(op: &BillingOp) -> Option<Described> {
    let limit_target = |tenant: &str, key: Option<&str>| match key {
        Some(k) => format!("limit {tenant}/{k}"),
        None => format!("limit {tenant}"),
    };
    Some(match op {
        BillingOp::SetPrice(p) => of("price.set", format!("price {}", p.model), None),
        BillingOp::RemovePrice(model) => of("price.remove", format!("price {model}"), None),
        BillingOp::SetPolicy(p) => of("policy.set", format!("policy {}", p.tenant), Some(&p.tenant)),
        BillingOp::RemovePolicy(tenant) => of("policy.remove", format!("policy {tenant}"), Some(tenant)),
        BillingOp::SetLimit(l) => Described {
            detail: Some(format!("rpm={} tpm={}", opt(l.rpm), opt(l.tpm))),
            ..of(
                "limit.set",
                limit_target(&l.tenant, l.key.as_deref()),
                Some(&l.tenant),
            )
        },
        BillingOp::RemoveLimit { tenant, key } => {
            of("limit.remove", limit_target(tenant, key.as_deref()), Some(tenant))
        }
        BillingOp::AddCredit { tenant, micros, .. } => Described {
            detail: Some(format!("micros={micros}")),
            ..of("credit.add", format!("credit {tenant}"), Some(tenant))
        },
        BillingOp::SetThreshold { tenant, micros, .. } => Described {
            detail: Some(format!("alert_below_micros={}", opt(*micros))),
            ..of("credit.threshold", format!("credit {tenant}"), Some(tenant))
        },
        BillingOp::SetDefaultMaxTokens { tenant, tokens, .. } => Described {
            detail: Some(format!("default_max_tokens={}", opt(*tokens))),
            ..of(
                "credit.default_max_tokens",
                format!("credit {tenant}"),
                Some(tenant),
            )
        },
        _ => return None,
    })
}

/// Changes this module does not know in detail: the variant's name only
/// (its fields may hold secrets or policy text).
fn generic(op: &AdminOp) -> Described {
    let debug = format!("{op:?}");
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    // `Billing(SetPolicy(..))` → `billing.SetPolicy`.
    let inner: String = debug
        .get(name.len() + 1..)
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Described {
        action: if inner.is_empty() {
            name.to_lowercase()
        } else {
            format!("{}.{inner}", name.to_lowercase())
        },
        // Credit top-ups, alert deliveries and rate-share rebalances are
        // control's own doing.
        system: matches!(inner.as_str(), "TopUp" | "AlertDelivered" | "RateShares"),
        ..Described::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows::ProviderKeyRow;

    #[test]
    fn descriptions_name_things_but_hold_no_secrets() {
        let op = AdminOp::PutProviderKey {
            row: ProviderKeyRow {
                id: "k1".into(),
                tenant: "acme".into(),
                wrapped_dek: "deadbeefdek".into(),
                sealed: "cafebabesealed".into(),
                created_ms: 1,
                updated_ms: 1,
                organization: None,
                project: None,
            },
            create: true,
        };
        let d = describe(&op).unwrap();
        assert_eq!(d.action, "provider_key.create");
        assert_eq!(d.target.as_deref(), Some("provider-key acme/k1"));
        assert_eq!(d.tenant.as_deref(), Some("acme"));
        let all = format!("{d:?}");
        assert!(!all.contains("deadbeef") && !all.contains("cafebabe"), "{all}");

        let d = describe(&AdminOp::DeleteTenant("acme".into())).unwrap();
        assert!(d.erase_target);

        // A policy is named by its tenant; its text stays out.
        let op = AdminOp::Billing(BillingOp::SetPolicy(crate::billing::rows::PolicyRow {
            tenant: "acme".into(),
            toml: "[[rules]]\nid = \"secret-rule-text\"".into(),
            updated_ms: 1,
        }));
        let d = describe(&op).unwrap();
        assert_eq!(d.action, "policy.set");
        assert_eq!(d.target.as_deref(), Some("policy acme"));
        assert_eq!(d.tenant.as_deref(), Some("acme"));
        assert!(!format!("{d:?}").contains("secret-rule-text"));
        // Control's own top-ups are marked as such.
        let d = describe(&AdminOp::Billing(BillingOp::TopUp {
            dataplane: 1,
            tenants: None,
        }))
        .unwrap();
        assert!(d.system && d.target.is_none());
    }
}
