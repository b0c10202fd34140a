//! The JSON body rewrite.

use super::*;
use serde_json::{json, Value};

fn redact_all() -> PiiScanner {
    PiiScanner::new(PiiConfig::all(PiiAction::Redact)).unwrap()
}

const OPENAI: &str = r#"{"temperature":0.7,"model":"gpt-4o","user":"bob@example.com",
 "messages":[
  {"role":"system","content":"mail alice@example.com"},
  {"role":"user","name":"carol@example.com","content":[
     {"type":"text","text":"card 4111 1111 1111 1111"},
     {"type":"image_url","image_url":{"url":"https://x/dan@example.com.png"}}]},
  {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function",
     "function":{"name":"f","arguments":"{\"to\":\"erin@example.com\"}"}}]},
  {"role":"assistant","function_call":{"name":"g","arguments":"ip 10.1.2.3"}}],
 "tools":[{"type":"function","function":{"name":"f","description":"send to frank@example.com",
     "parameters":{"type":"object","properties":{"to":{"description":"grace@example.com"}}}}}],
 "functions":[{"name":"old","description":"call +44 20 7946 0958"}],
 "metadata":{"z":1,"a":[1,2.5,-3,true,null],"big":18446744073709551615,"neg":-9223372036854775808},
 "stream":false}"#;

#[test]
fn openai_body_rewrites_only_the_read_fields() {
    let out = redact_body(&redact_all(), Dialect::OpenAi, OPENAI.as_bytes())
        .unwrap()
        .unwrap();
    let got: Value = serde_json::from_slice(&out).unwrap();
    let mut want: Value = serde_json::from_str(OPENAI).unwrap();
    want["messages"][0]["content"] = json!("mail [REDACTED_EMAIL]");
    want["messages"][1]["name"] = json!("[REDACTED_EMAIL]");
    want["messages"][1]["content"][0]["text"] = json!("card [REDACTED_CARD]");
    want["messages"][2]["tool_calls"][0]["function"]["arguments"] = json!("{\"to\":\"[REDACTED_EMAIL]\"}");
    want["messages"][3]["function_call"]["arguments"] = json!("ip [REDACTED_IPV4]");
    want["tools"][0]["function"]["description"] = json!("send to [REDACTED_EMAIL]");
    want["functions"][0]["description"] = json!("call [REDACTED_PHONE]");
    // Not read, so not touched: `user`, the image URL, parameter descriptions.
    assert_eq!(got, want);
    // Key order is the body's.
    let text = String::from_utf8(out).unwrap();
    let pos = |k: &str| text.find(k).unwrap();
    assert!(pos("\"temperature\"") < pos("\"model\"") && pos("\"model\"") < pos("\"user\""));
    assert!(pos("\"z\"") < pos("\"a\"") && pos("\"metadata\"") < pos("\"stream\""));
    assert!(text.contains("18446744073709551615") && text.contains("-9223372036854775808"));
}

#[test]
fn anthropic_body_rewrites_system_blocks_and_tool_input() {
    let body = r#"{"model":"claude-3","max_tokens":10,"system":[{"type":"text","text":"ssn 123-45-6789"}],
      "messages":[{"role":"user","content":"key AKIAIOSFODNN7EXAMPLE"},
       {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"s",
          "input":{"henry@example.com":["iris@example.com",{"n":1}],"q":"ok"}}]},
       {"role":"user","content":[{"type":"tool_result","tool_use_id":"t",
          "content":[{"type":"text","text":"reach jack@example.com"}]}]}],
      "metadata":{"user_id":"kate@example.com"}}"#;
    let out = redact_body(&redact_all(), Dialect::Anthropic, body.as_bytes())
        .unwrap()
        .unwrap();
    let got: Value = serde_json::from_slice(&out).unwrap();
    let want = json!({"model":"claude-3","max_tokens":10,"system":[{"type":"text","text":"ssn [REDACTED_SSN]"}],
      "messages":[{"role":"user","content":"key [REDACTED_SECRET]"},
       {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"s",
          "input":{"[REDACTED_EMAIL]":["[REDACTED_EMAIL]",{"n":1}],"q":"ok"}}]},
       {"role":"user","content":[{"type":"tool_result","tool_use_id":"t",
          "content":[{"type":"text","text":"reach [REDACTED_EMAIL]"}]}]}],
      "metadata":{"user_id":"kate@example.com"}});
    assert_eq!(got, want);
}

#[test]
fn nothing_to_redact_is_none_and_bad_bodies_are_errors() {
    let s = redact_all();
    let clean = br#"{"model":"m","messages":[{"role":"user","content":"hello"}],"user":"a@b.co"}"#;
    assert_eq!(redact_body(&s, Dialect::OpenAi, clean).unwrap(), None);
    assert_eq!(
        redact_body(&s, Dialect::OpenAi, b"{").unwrap_err(),
        ExtractError::NotJson
    );
    assert_eq!(
        redact_body(&s, Dialect::OpenAi, b"[]").unwrap_err(),
        ExtractError::NotObject
    );
    let off = PiiScanner::new(PiiConfig::default()).unwrap();
    assert_eq!(
        redact_body(&off, Dialect::OpenAi, OPENAI.as_bytes()).unwrap(),
        None
    );
}

use crate::policy::extract::ExtractError;

/// The rewrite walks the very fields extraction reads: after it, no text that
/// extraction returns holds anything a redacting detector finds, and nothing
/// was redacted that extraction does not read.
#[test]
fn rewrite_and_extraction_agree() {
    let s = only(Detector::Email);
    for (api, body) in [
        (Dialect::OpenAi, OPENAI),
        (Dialect::Anthropic, ANTHROPIC_ALL_FIELDS),
    ] {
        let before = extract(api, body.as_bytes()).unwrap();
        let dirty = before
            .texts
            .iter()
            .filter(|t| !s.scan(&t.text).is_empty())
            .count();
        assert!(dirty >= 4, "the fixture should put an address in most fields");
        let out = redact_body(&s, api, body.as_bytes()).unwrap().unwrap();
        let after = extract(api, &out).unwrap();
        assert_eq!(before.texts.len(), after.texts.len());
        for t in &after.texts {
            assert!(s.scan(&t.text).is_empty(), "{:?} still holds an address", t.kind);
        }
        // Addresses outside the read fields survive, in the same number.
        let outside = |b: &[u8]| {
            let total = String::from_utf8_lossy(b).matches("@example.com").count();
            total
                - extract(api, b)
                    .unwrap()
                    .texts
                    .iter()
                    .map(|t| t.text.matches("@example.com").count())
                    .sum::<usize>()
        };
        assert_eq!(outside(body.as_bytes()), outside(&out));
    }
}

const ANTHROPIC_ALL_FIELDS: &str = r#"{"model":"claude","system":"a@example.com",
 "messages":[{"role":"user","content":[{"type":"text","text":"b@example.com"},
   {"type":"tool_result","content":"c@example.com"},
   {"type":"tool_use","input":{"to":"d@example.com"}}]}],
 "tools":[{"name":"t","description":"e@example.com","input_schema":{"description":"f@example.com"}}],
 "metadata":{"user_id":"g@example.com"}}"#;

/// Reusing the policy's scan gives the very same body as scanning afresh,
/// and texts that do not belong to the body are never trusted.
#[test]
fn reusing_findings_gives_the_same_body() {
    let s = redact_all();
    for (api, body) in [
        (Dialect::OpenAi, OPENAI),
        (Dialect::Anthropic, ANTHROPIC_ALL_FIELDS),
    ] {
        let view = extract(api, body.as_bytes()).unwrap();
        let mut found = PiiFindings::default();
        for (i, t) in view.texts.iter().enumerate() {
            s.scan_into(&t.text, i, &mut found);
        }
        let fresh = redact_body(&s, api, body.as_bytes()).unwrap();
        let reused = super::super::redact_body_found(&s, api, body.as_bytes(), &view.texts, &found).unwrap();
        assert!(fresh.is_some());
        assert_eq!(fresh, reused);
    }
    // Findings of another body: every text mismatches, so each is scanned afresh.
    let other = extract(Dialect::Anthropic, ANTHROPIC_ALL_FIELDS.as_bytes()).unwrap();
    let mut found = PiiFindings::default();
    for (i, t) in other.texts.iter().enumerate() {
        s.scan_into(&t.text, i, &mut found);
    }
    let fresh = redact_body(&s, Dialect::OpenAi, OPENAI.as_bytes()).unwrap();
    let misled =
        super::super::redact_body_found(&s, Dialect::OpenAi, OPENAI.as_bytes(), &other.texts, &found)
            .unwrap();
    assert_eq!(fresh, misled);
}

#[test]
fn embeddings_input_is_redacted_where_it_was_read() {
    let body = r#"{"model":"text-embedding-3-small","input":["mail alice@example.com",[1,2,3],"card 4111 1111 1111 1111"],"user":"bob@example.com","encoding_format":"base64"}"#;
    let out = redact_body(&redact_all(), Dialect::OpenAiEmbeddings, body.as_bytes())
        .unwrap()
        .unwrap();
    let got: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        got["input"],
        json!(["mail [REDACTED_EMAIL]", [1, 2, 3], "card [REDACTED_CARD]"])
    );
    assert_eq!(got["user"], "bob@example.com", "not read, not touched");
    let one = r#"{"model":"m","input":"call +44 20 7946 0958"}"#;
    let out = redact_body(&redact_all(), Dialect::OpenAiEmbeddings, one.as_bytes())
        .unwrap()
        .unwrap();
    let got: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(got["input"], "call [REDACTED_PHONE]");
    // Every text extraction reads is rewritten, in step.
    let view = crate::policy::extract::extract(Dialect::OpenAiEmbeddings, body.as_bytes()).unwrap();
    assert_eq!(view.texts.len(), 2);
}

#[test]
fn responses_input_is_redacted_where_it_was_read() {
    let body = r#"{"model":"gpt-4o","instructions":"reply to alice@example.com","input":[{"role":"user","content":"card 4111 1111 1111 1111"},{"type":"message","role":"user","content":[{"type":"input_text","text":"mail bob@example.com"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{\"to\":\"carol@example.com\"}"},{"type":"function_call_output","call_id":"c","output":"call +44 20 7946 0958"},{"type":"item_reference","id":"dan@example.com"}],"user":"eve@example.com","store":true,"previous_response_id":"resp_1"}"#;
    let out = redact_body(&redact_all(), Dialect::OpenAiResponses, body.as_bytes())
        .unwrap()
        .unwrap();
    let got: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(got["instructions"], "reply to [REDACTED_EMAIL]");
    assert_eq!(got["input"][0]["content"], "card [REDACTED_CARD]");
    assert_eq!(got["input"][1]["content"][0]["text"], "mail [REDACTED_EMAIL]");
    assert_eq!(got["input"][2]["arguments"], "{\"to\":\"[REDACTED_EMAIL]\"}");
    assert_eq!(got["input"][3]["output"], "call [REDACTED_PHONE]");
    assert_eq!(got["input"][4]["id"], "dan@example.com", "not read, not touched");
    assert_eq!(got["user"], "eve@example.com", "not read, not touched");
    assert_eq!(
        (got["store"].clone(), got["previous_response_id"].clone()),
        (json!(true), json!("resp_1"))
    );
    let one = r#"{"model":"m","input":"mail alice@example.com"}"#;
    let out = redact_body(&redact_all(), Dialect::OpenAiResponses, one.as_bytes())
        .unwrap()
        .unwrap();
    let got: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(got["input"], "mail [REDACTED_EMAIL]");
    // Every text extraction reads is rewritten, in step.
    let view = crate::policy::extract::extract(Dialect::OpenAiResponses, body.as_bytes()).unwrap();
    assert_eq!(view.texts.len(), 5);
}

#[test]
fn gemini_contents_are_redacted_where_they_were_read() {
    let body = r#"{"systemInstruction":{"parts":[{"text":"reply to alice@example.com"}]},"contents":[{"role":"user","parts":[{"text":"card 4111 1111 1111 1111"},{"inlineData":{"mimeType":"text/plain","data":"bob@example.com"}}]}],"generationConfig":{"maxOutputTokens":5},"labels":{"who":"eve@example.com"}}"#;
    let out = redact_body(&redact_all(), Dialect::Gemini, body.as_bytes())
        .unwrap()
        .unwrap();
    let got: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        got["systemInstruction"]["parts"][0]["text"],
        "reply to [REDACTED_EMAIL]"
    );
    assert_eq!(got["contents"][0]["parts"][0]["text"], "card [REDACTED_CARD]");
    assert_eq!(
        got["contents"][0]["parts"][1]["inlineData"]["data"],
        "bob@example.com"
    );
    assert_eq!(got["labels"]["who"], "eve@example.com", "not read, not touched");
    assert_eq!(got["generationConfig"]["maxOutputTokens"], 5);
    let tools = r#"{"contents":[],"tools":[{"function_declarations":[{"name":"f","description":"mails dan@example.com"}]}]}"#;
    let out = redact_body(&redact_all(), Dialect::Gemini, tools.as_bytes())
        .unwrap()
        .unwrap();
    let got: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        got["tools"][0]["function_declarations"][0]["description"],
        "mails [REDACTED_EMAIL]"
    );
    let batch =
        r#"{"requests":[{"model":"models/e","content":{"parts":[{"text":"mail carol@example.com"}]}}]}"#;
    let out = redact_body(&redact_all(), Dialect::Gemini, batch.as_bytes())
        .unwrap()
        .unwrap();
    let got: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        got["requests"][0]["content"]["parts"][0]["text"],
        "mail [REDACTED_EMAIL]"
    );
    let view = crate::policy::extract::extract(Dialect::Gemini, body.as_bytes()).unwrap();
    assert_eq!(view.texts.len(), 2);
}
