//! Turns validated TOML rules into [`Rule`]s and the shared pattern tables.

use super::config::{self, RuleToml};
use super::glob::Glob;
use super::{PolicyError, Rule, MAX_PATTERNS, REGEX_SIZE_LIMIT};
use regex::{Regex, RegexBuilder};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub(super) fn globs(list: &[String], field: impl Fn() -> String) -> Result<Vec<Glob>, PolicyError> {
    if list.is_empty() {
        return Err(PolicyError::Empty { field: field() });
    }
    list.iter()
        .map(|g| {
            Glob::parse(g).map_err(|reason| PolicyError::BadGlob {
                field: field(),
                glob: g.clone(),
                reason,
            })
        })
        .collect()
}

/// Accumulates rules and their deduplicated patterns.
#[derive(Default)]
pub(super) struct Builder {
    pub(super) rules: Vec<Rule>,
    ids: HashSet<Arc<str>>,
    pub(super) contains: Vec<String>,
    contains_index: HashMap<String, usize>,
    pub(super) contains_rules: Vec<Vec<u32>>,
    pub(super) regexes: Vec<String>,
    pub(super) compiled: Vec<Regex>,
    regex_index: HashMap<String, usize>,
    pub(super) regex_rules: Vec<Vec<u32>>,
}

impl Builder {
    pub(super) fn rule(&mut self, i: usize, raw: toml::Value) -> Result<(), PolicyError> {
        let name = match raw.get("id").and_then(toml::Value::as_str) {
            Some(id) => format!("'{id}'"),
            None => format!("#{}", i + 1),
        };
        let r: RuleToml = raw.try_into().map_err(|e: toml::de::Error| PolicyError::Rule {
            rule: name.clone(),
            message: e.message().trim_end().to_owned(),
        })?;
        config::check_rule_id(&r.id)?;
        let id: Arc<str> = r.id.as_str().into();
        if !self.ids.insert(id.clone()) {
            return Err(PolicyError::DuplicateRuleId(r.id));
        }
        let field = |f: &str| format!("rule {name} when.{f}");
        let w = r.when;
        let index = self.rules.len() as u32;
        let contains = w.prompt_contains.is_some();
        if let Some(list) = w.prompt_contains {
            non_empty(&list, || field("prompt_contains"))?;
            for s in list {
                let key = s.to_ascii_lowercase();
                let p = intern(
                    &mut self.contains,
                    &mut self.contains_index,
                    &mut self.contains_rules,
                    key,
                )?;
                self.contains_rules[p].push(index);
            }
        }
        let regex = w.prompt_regex.is_some();
        if let Some(list) = w.prompt_regex {
            non_empty(&list, || field("prompt_regex"))?;
            for pattern in list {
                let re = match RegexBuilder::new(&pattern).size_limit(REGEX_SIZE_LIMIT).build() {
                    Ok(re) => re,
                    Err(e) => {
                        let message = e.to_string();
                        return Err(PolicyError::BadRegex {
                            rule: name,
                            pattern,
                            message,
                        });
                    }
                };
                let known = self.regexes.len();
                let p = intern(
                    &mut self.regexes,
                    &mut self.regex_index,
                    &mut self.regex_rules,
                    pattern,
                )?;
                if p == known {
                    self.compiled.push(re);
                }
                self.regex_rules[p].push(index);
            }
        }
        let models = w
            .model
            .as_deref()
            .map(|g| globs(g, || field("model")))
            .transpose()?;
        let keys = match w.key {
            Some(list) => {
                non_empty(&list, || field("key"))?;
                Some(list.into_iter().map(String::into_boxed_str).collect())
            }
            None => None,
        };
        self.rules.push(Rule {
            id,
            action: r.action,
            contains,
            regex,
            models,
            keys,
            max_tokens_above: w.max_tokens_above,
            stream: w.stream,
        });
        Ok(())
    }
}

/// A list must have entries, and none of them empty.
fn non_empty(list: &[String], field: impl Fn() -> String) -> Result<(), PolicyError> {
    if list.is_empty() || list.iter().any(String::is_empty) {
        return Err(PolicyError::Empty { field: field() });
    }
    Ok(())
}

/// The index of `pattern` in `all`, adding it if new.
fn intern(
    all: &mut Vec<String>,
    index: &mut HashMap<String, usize>,
    rules: &mut Vec<Vec<u32>>,
    pattern: String,
) -> Result<usize, PolicyError> {
    if let Some(&p) = index.get(&pattern) {
        return Ok(p);
    }
    if all.len() >= MAX_PATTERNS {
        return Err(PolicyError::TooLarge {
            what: "patterns",
            limit: MAX_PATTERNS,
        });
    }
    index.insert(pattern.clone(), all.len());
    all.push(pattern);
    rules.push(Vec::new());
    Ok(all.len() - 1)
}
