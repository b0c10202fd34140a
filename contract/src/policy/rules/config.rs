//! The policy TOML as written by a tenant, and what can be wrong with it.
//!
//! The control plane validates a policy with [`super::CompiledPolicy::compile`]
//! before accepting it, so every error says exactly what is wrong and where:
//! unknown fields are refused at every level, and errors inside a rule name
//! the rule by its id (or by its 1-based position when it has none).

use crate::policy::pii::PiiAction;
use serde::Deserialize;
use std::fmt;

/// The whole policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyToml {
    pub(super) model_allow: Option<Vec<String>>,
    pub(super) max_tokens_cap: Option<u64>,
    #[serde(default)]
    pub(super) pii: PiiToml,
    /// Kept as raw values so that an error inside one names the rule.
    #[serde(default)]
    pub(super) rules: Vec<toml::Value>,
}

/// `[pii]`: one action per detector, absent = off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PiiToml {
    pub(super) email: Option<PiiAction>,
    pub(super) phone: Option<PiiAction>,
    pub(super) card: Option<PiiAction>,
    pub(super) iban: Option<PiiAction>,
    pub(super) ssn: Option<PiiAction>,
    pub(super) ipv4: Option<PiiAction>,
    pub(super) ipv6: Option<PiiAction>,
    pub(super) secret: Option<PiiAction>,
}

/// One `[[rules]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleToml {
    pub(super) id: String,
    pub(super) action: RuleAction,
    #[serde(default)]
    pub(super) when: WhenToml,
}

/// A rule's conditions; all given ones must hold. Within a list, any entry
/// may match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WhenToml {
    pub(super) prompt_contains: Option<Vec<String>>,
    pub(super) prompt_regex: Option<Vec<String>>,
    pub(super) model: Option<Vec<String>>,
    pub(super) key: Option<Vec<String>>,
    pub(super) max_tokens_above: Option<u64>,
    pub(super) stream: Option<bool>,
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Let the request through; later rules cannot block it (PII blocking,
    /// the model allow-list and the token cap still can).
    Allow,
    /// Refuse the request.
    Block,
}

/// Why a policy was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// Not TOML, or a top-level or `[pii]` field is unknown or has the wrong
    /// type or value; the parser's message, with line and column.
    Toml(String),
    /// A rule is malformed: unknown field, bad action, wrong type, missing
    /// field. `rule` is its id, or `#N` when it has none.
    Rule {
        /// The rule's id, or `#N` (1-based position).
        rule: String,
        /// What is wrong.
        message: String,
    },
    /// A rule id is not acceptable.
    BadRuleId {
        /// The id as written.
        id: String,
        /// Why not.
        reason: &'static str,
    },
    /// Two rules have the same id.
    DuplicateRuleId(String),
    /// A `prompt_regex` entry does not compile.
    BadRegex {
        /// The rule's id.
        rule: String,
        /// The pattern as written.
        pattern: String,
        /// The regex compiler's message.
        message: String,
    },
    /// A model glob is not acceptable.
    BadGlob {
        /// Where: `model_allow` or `rule 'ID' when.model`.
        field: String,
        /// The glob as written.
        glob: String,
        /// Why not.
        reason: &'static str,
    },
    /// A list or string that must not be empty is.
    Empty {
        /// Where: `model_allow`, `rule 'ID' when.prompt_contains`, ...
        field: String,
    },
    /// The policy is larger than the data plane accepts.
    TooLarge {
        /// What overflowed.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Building a matcher failed for a reason that is not the policy's fault.
    Internal(String),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Toml(m) => write!(f, "policy TOML: {m}"),
            PolicyError::Rule { rule, message } => write!(f, "rule {rule}: {message}"),
            PolicyError::BadRuleId { id, reason } => write!(f, "rule id {id:?}: {reason}"),
            PolicyError::DuplicateRuleId(id) => write!(f, "rule id {id:?} is used by more than one rule"),
            PolicyError::BadRegex {
                rule,
                pattern,
                message,
            } => {
                write!(
                    f,
                    "rule {rule}: when.prompt_regex {pattern:?} does not compile: {message}"
                )
            }
            PolicyError::BadGlob { field, glob, reason } => write!(f, "{field}: glob {glob:?}: {reason}"),
            PolicyError::Empty { field } => write!(f, "{field}: must not be empty (omit it instead)"),
            PolicyError::TooLarge { what, limit } => write!(f, "too many {what} (at most {limit})"),
            PolicyError::Internal(m) => write!(f, "policy could not be compiled: {m}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Ids the engine itself reports under; a rule may not take one.
pub(super) const MODEL_ALLOW_ID: &str = "model_allow";
/// See [`MODEL_ALLOW_ID`].
pub(super) const MAX_TOKENS_CAP_ID: &str = "max_tokens_cap";
/// Reported when a body needing redaction could not be rewritten.
pub(super) const REDACT_FAILED_ID: &str = "pii.redact_failed";

/// Checks a rule id: 1 to 64 characters from `A-Z a-z 0-9 _ - . :`, not one
/// of the engine's own ids.
pub(super) fn check_rule_id(id: &str) -> Result<(), PolicyError> {
    let bad = |reason| {
        Err(PolicyError::BadRuleId {
            id: id.to_owned(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id.len() > 64 {
        return bad("must be at most 64 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
    {
        return bad("may only contain A-Z, a-z, 0-9, `_`, `-`, `.` and `:`");
    }
    if id == MODEL_ALLOW_ID || id == MAX_TOKENS_CAP_ID || id.starts_with("pii.") {
        return bad("is reserved for the engine's own checks (model_allow, max_tokens_cap, pii.*)");
    }
    Ok(())
}

/// The TOML parser's message with its line and column, without the source
/// excerpt (which would echo the tenant's policy into logs).
pub(super) fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim_end();
    match e.span().and_then(|span| text.get(..span.start)) {
        Some(before) => {
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {col}: {msg}")
        }
        None => msg.to_owned(),
    }
}
