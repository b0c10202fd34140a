//! Compile errors: each kind, precise.

use super::*;

fn err(text: &str) -> PolicyError {
    CompiledPolicy::compile(text).unwrap_err()
}

#[test]
fn the_example_policy_compiles() {
    let p = CompiledPolicy::compile(
        r#"
model_allow = ["gpt-4o*", "claude-*"]   # glob; absent = all
max_tokens_cap = 4096
[pii]
email = "redact"
card = "block"
[[rules]]
id = "no-secrets-project"
action = "block"
when.prompt_contains = ["project zeus", "codename"]
when.prompt_regex = ["(?i)ignore (all|previous) instructions"]
when.model = ["gpt-4o*"]
when.key = ["k1"]
when.max_tokens_above = 1000
when.stream = true
"#,
    )
    .unwrap();
    assert_eq!(p.rule_ids().collect::<Vec<_>>(), ["no-secrets-project"]);
    assert_eq!(p.pii().config().action(Detector::Email), PiiAction::Redact);
    assert_eq!(p.pii().config().action(Detector::Card), PiiAction::Block);
    assert_eq!(p.pii().config().action(Detector::Phone), PiiAction::Off);
}

use crate::policy::pii::{Detector, PiiAction};

#[test]
fn not_toml_and_unknown_top_level_fields() {
    match err("model_allow = [") {
        PolicyError::Toml(m) => assert!(m.starts_with("line 1, column"), "{m}"),
        e => panic!("{e:?}"),
    }
    match err("max_tokens_cap = 10\nmodel_alow = [\"x\"]\n") {
        PolicyError::Toml(m) => assert!(m.contains("model_alow") && m.starts_with("line 2"), "{m}"),
        e => panic!("{e:?}"),
    }
    match err("[pii]\nemial = \"redact\"\n") {
        PolicyError::Toml(m) => assert!(m.contains("emial"), "{m}"),
        e => panic!("{e:?}"),
    }
    match err("[pii]\nemail = \"mask\"\n") {
        PolicyError::Toml(m) => assert!(m.contains("mask") && m.contains("redact"), "{m}"),
        e => panic!("{e:?}"),
    }
    match err("max_tokens_cap = -1\n") {
        PolicyError::Toml(m) => assert!(m.starts_with("line 1"), "{m}"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn rule_shape_errors_name_the_rule() {
    let e = err("[[rules]]\nid = \"r1\"\naction = \"block\"\nwhen.promt_contains = [\"x\"]\n");
    match e {
        PolicyError::Rule { rule, message } => {
            assert_eq!(rule, "'r1'");
            assert!(
                message.contains("promt_contains") && message.contains("prompt_contains"),
                "{message}"
            );
        }
        e => panic!("{e:?}"),
    }
    let e = err("[[rules]]\nid = \"r1\"\naction = \"deny\"\n");
    match &e {
        PolicyError::Rule { rule, message } => {
            assert_eq!(rule, "'r1'");
            assert!(message.contains("deny") && message.contains("block"), "{message}");
        }
        e => panic!("{e:?}"),
    }
    assert!(e.to_string().starts_with("rule 'r1': "));
    let e = err("[[rules]]\nid = \"ok\"\naction = \"allow\"\n[[rules]]\naction = \"block\"\n");
    match e {
        PolicyError::Rule { rule, message } => assert!(rule == "#2" && message.contains("id"), "{message}"),
        e => panic!("{e:?}"),
    }
    let e = err("[[rules]]\nid = \"r\"\naction = \"block\"\nextra = 1\n");
    assert!(
        matches!(e, PolicyError::Rule { ref message, .. } if message.contains("extra")),
        "{e:?}"
    );
    let e = err("[[rules]]\nid = \"r\"\naction = \"block\"\nwhen.stream = \"yes\"\n");
    assert!(matches!(e, PolicyError::Rule { .. }), "{e:?}");
}

#[test]
fn bad_regex() {
    let e = err("[[rules]]\nid = \"rx\"\naction = \"block\"\nwhen.prompt_regex = [\"ok\", \"(unclosed\"]\n");
    match &e {
        PolicyError::BadRegex {
            rule,
            pattern,
            message,
        } => {
            assert_eq!((rule.as_str(), pattern.as_str()), ("'rx'", "(unclosed"));
            assert!(!message.is_empty());
        }
        e => panic!("{e:?}"),
    }
    assert!(e.to_string().contains("(unclosed"));
    // Look-around is not supported by the regex engine: refused, not ignored.
    let e = err("[[rules]]\nid = \"rx\"\naction = \"block\"\nwhen.prompt_regex = [\"a(?=b)\"]\n");
    assert!(matches!(e, PolicyError::BadRegex { .. }), "{e:?}");
}

#[test]
fn duplicate_and_bad_rule_ids() {
    let e = err("[[rules]]\nid = \"a\"\naction = \"block\"\n[[rules]]\nid = \"a\"\naction = \"allow\"\n");
    assert_eq!(e, PolicyError::DuplicateRuleId("a".into()));
    for bad in [
        "",
        "has space",
        "model_allow",
        "max_tokens_cap",
        "pii.card",
        "ü",
        &"x".repeat(65),
    ] {
        let text = format!("[[rules]]\nid = {bad:?}\naction = \"block\"\n");
        assert!(
            matches!(err(&text), PolicyError::BadRuleId { ref id, .. } if id == bad),
            "{bad:?}"
        );
    }
    assert!(CompiledPolicy::compile("[[rules]]\nid = \"Ok_id-1.2:x\"\naction = \"block\"\n").is_ok());
}

#[test]
fn bad_globs() {
    match err("model_allow = [\"gpt-[45]\"]\n") {
        PolicyError::BadGlob { field, glob, .. } => {
            assert_eq!((field.as_str(), glob.as_str()), ("model_allow", "gpt-[45]"))
        }
        e => panic!("{e:?}"),
    }
    for bad in ["", "a b", "x{y,z}", "back\\\\slash"] {
        let text = format!("[[rules]]\nid = \"g\"\naction = \"block\"\nwhen.model = [\"{bad}\"]\n");
        match err(&text) {
            PolicyError::BadGlob { field, .. } => assert_eq!(field, "rule 'g' when.model"),
            e => panic!("{bad:?}: {e:?}"),
        }
    }
}

#[test]
fn empty_lists_and_strings() {
    assert_eq!(
        err("model_allow = []\n"),
        PolicyError::Empty {
            field: "model_allow".into()
        }
    );
    for (field, value) in [
        ("prompt_contains", "[]"),
        ("prompt_contains", "[\"\"]"),
        ("prompt_regex", "[]"),
        ("key", "[]"),
    ] {
        let text = format!("[[rules]]\nid = \"e\"\naction = \"block\"\nwhen.{field} = {value}\n");
        assert_eq!(
            err(&text),
            PolicyError::Empty {
                field: format!("rule 'e' when.{field}")
            }
        );
    }
    assert_eq!(
        err("[[rules]]\nid = \"e\"\naction = \"block\"\nwhen.model = []\n"),
        PolicyError::Empty {
            field: "rule 'e' when.model".into()
        }
    );
}

#[test]
fn too_many_rules() {
    let mut text = String::new();
    for i in 0..=MAX_RULES {
        text.push_str(&format!("[[rules]]\nid = \"r{i}\"\naction = \"allow\"\n"));
    }
    assert_eq!(
        err(&text),
        PolicyError::TooLarge {
            what: "rules",
            limit: MAX_RULES
        }
    );
}

#[test]
fn errors_display_without_echoing_the_source() {
    let e = err("secret_field = \"hunter2\"\n");
    let shown = e.to_string();
    assert!(
        shown.contains("secret_field") && !shown.contains("hunter2"),
        "{shown}"
    );
}
