use super::*;
use crate::dialect::Dialect;
use crate::policy::extract::{extract, ExtractError};

/// Rewrites `body` as the data plane does: keys from the extraction pass.
fn apply(body: &[u8], edits: &Edits<'_>) -> serde_json::Value {
    let view = extract(Dialect::OpenAi, body).unwrap();
    let out = rewrite(body, view.keys, edits).unwrap().unwrap();
    // The output must itself pass extraction: one copy of every key.
    extract(Dialect::OpenAi, &out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
    serde_json::from_slice(&out).unwrap()
}

const USAGE_ONLY: Edits<'static> = Edits {
    model: None,
    ask_usage: true,
    limit: None,
};

#[test]
fn model_rewrite_keeps_other_fields() {
    let v = apply(
        br#"{"model":"alias","messages":[{"role":"user","content":"1"}],"x":{"y":true}}"#,
        &Edits {
            model: Some("real"),
            ..Edits::default()
        },
    );
    assert_eq!(v["model"], "real");
    assert_eq!(v["x"]["y"], true);
    assert_eq!(v["messages"][0]["content"], "1");
    assert_eq!(rewrite(b"{}", TopKeys::default(), &Edits::default()), Ok(None));
}

#[test]
fn asking_for_usage() {
    let check = |body: &[u8]| {
        let v = apply(body, &USAGE_ONLY);
        assert_eq!(v["stream_options"]["include_usage"], true);
        v
    };
    let v = check(br#"  {"model":"m","messages":[],"stream":true}"#);
    assert_eq!(v["model"], "m");
    let v = check(br#"{"model":"m","messages":[],"stream_options":{"include_usage":false,"other":1}}"#);
    assert_eq!(v["stream_options"]["other"], 1);
    check(br#"{"model":"m","messages":[],"stream_options":null}"#);
    let v = check(br#"{"model":"a","messages":[],"stream":true}"#);
    assert_eq!(v["stream"], true);
    assert_eq!(
        rewrite(b"[1]", TopKeys::default(), &USAGE_ONLY),
        Err(RewriteError::NotObject)
    );
}

#[test]
fn an_escaped_key_is_the_key() {
    // The byte search this replaces missed the escaped key and forwarded two
    // `stream_options`; the provider kept the client's and reported no usage.
    let body = br#"{"model":"m","messages":[],"stream":true,"stream\u005foptions":{"include_usage":false}}"#;
    let v = apply(body, &USAGE_ONLY);
    assert_eq!(v["stream_options"], serde_json::json!({"include_usage": true}));
    let out = rewrite(body, extract(Dialect::OpenAi, body).unwrap().keys, &USAGE_ONLY)
        .unwrap()
        .unwrap();
    assert_eq!(
        memchr::memmem::find_iter(&out, b"stream").count(),
        2,
        "stream and one stream_options"
    );
    // Whitespace around keys and colons changes nothing.
    let spaced =
        b"{ \"model\" : \"m\" ,\n \"messages\" : [] , \"stream_options\"\t:\n{ \"include_usage\" : false } }";
    assert_eq!(
        apply(spaced, &USAGE_ONLY)["stream_options"]["include_usage"],
        true
    );
}

#[test]
fn duplicates_of_gateway_keys_are_refused() {
    for body in [
        &br#"{"model":"m","messages":[],"stream_options":{},"stream\u005foptions":{"include_usage":false}}"#
            [..],
        br#"{"model":"m","model":"n","messages":[]}"#,
        br#"{"model":"m","messages":[],"stream":true,"stream":false}"#,
        br#"{"model":"m","messages":[],"max_tokens":1,"max_tokens":9}"#,
        br#"{"model":"m","messages":[],"max_completion_tokens":1,"max_completion_tokens":9}"#,
        br#"{"model":"m","messages":[],"messages":[]}"#,
        br#"{"model":"m","messages":[],"n":1,"n":2}"#,
        br#"{"model":"m","messages":[],"stream_options":{"include_usage":true,"include_usage":false}}"#,
    ] {
        assert!(
            matches!(extract(Dialect::OpenAi, body), Err(ExtractError::BadField(_))),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // Anthropic does not read these, but a rewrite or another dialect might.
    let body = br#"{"model":"m","messages":[],"max_tokens":5,"stream_options":1,"stream_options":2}"#;
    assert!(matches!(
        extract(Dialect::Anthropic, body),
        Err(ExtractError::BadField("stream_options"))
    ));
    // The rewrite's own guard, for a body that skipped extraction.
    let body = br#"{"model":"a","model":"b"}"#;
    let edits = Edits {
        model: Some("c"),
        ..Edits::default()
    };
    assert_eq!(
        rewrite(body, TopKeys::default(), &edits),
        Err(RewriteError::Duplicate("model"))
    );
}

#[test]
fn an_output_limit_is_added_or_replaced() {
    let limit = Edits {
        limit: Some(("max_completion_tokens", 64)),
        ..Edits::default()
    };
    let v = apply(br#"{"model":"m","messages":[]}"#, &limit);
    assert_eq!(v["max_completion_tokens"], 64);
    let v = apply(
        br#"{"model":"m","messages":[],"max_completion_tokens":null}"#,
        &limit,
    );
    assert_eq!(v["max_completion_tokens"], 64);
    let both = Edits {
        ask_usage: true,
        ..limit
    };
    let v = apply(br#"{"model":"m","messages":[]}"#, &both);
    assert_eq!(
        (
            v["max_completion_tokens"].as_u64(),
            v["stream_options"]["include_usage"].as_bool()
        ),
        (Some(64), Some(true))
    );
}
