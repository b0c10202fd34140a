use super::*;
use TextKind::*;

fn texts<'a>(v: &'a RequestView<'_>) -> Vec<(TextKind, &'a str)> {
    v.texts.iter().map(|t| (t.kind, t.text.as_ref())).collect()
}

#[test]
fn openai_string_content_and_flags() {
    let body = br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},
        "max_tokens":100,"temperature":0.2,"messages":[
        {"role":"system","content":"be brief"},
        {"role":"user","content":"hello","name":"alice"}]}"#;
    let v = extract(Dialect::OpenAi, body).unwrap();
    assert_eq!(v.api, Dialect::OpenAi);
    assert_eq!(v.model, "gpt-4o");
    assert!(v.stream && v.include_usage);
    assert_eq!(v.max_tokens, Some(100));
    assert_eq!(
        texts(&v),
        [(Message, "be brief"), (Message, "hello"), (Name, "alice")]
    );
    // Unescaped strings are borrowed from the body, not copied.
    assert!(v.texts.iter().all(|t| matches!(t.text, Cow::Borrowed(_))));
}

#[test]
fn openai_parts_tool_calls_and_tools() {
    let body = br#"{"model":"gpt-4.1","messages":[
        {"role":"user","content":[{"type":"text","text":"what is in"},
            {"type":"image_url","image_url":{"url":"https://x/y.png"}},
            {"type":"text","text":"this \"image\"?\n"}]},
        {"role":"assistant","content":null,"tool_calls":[
            {"id":"c1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"zeus\"}"}}]},
        {"role":"assistant","function_call":{"name":"f","arguments":"{}"}},
        {"role":"tool","tool_call_id":"c1","content":"result text"}],
        "tools":[{"type":"function","function":{"name":"lookup","description":"Looks things up",
            "parameters":{"type":"object","description":"not read"}}}],
        "functions":[{"name":"old","description":"legacy function"}]}"#;
    let v = extract(Dialect::OpenAi, body).unwrap();
    assert!(!v.stream && !v.include_usage);
    assert_eq!(v.max_tokens, None);
    assert_eq!(
        texts(&v),
        [
            (Message, "what is in"),
            (Message, "this \"image\"?\n"),
            (ToolArguments, "{\"q\":\"zeus\"}"),
            (ToolArguments, "{}"),
            (Message, "result text"),
            (ToolDescription, "Looks things up"),
            (ToolDescription, "legacy function"),
        ]
    );
    // An escaped string had to be decoded, so it is owned.
    assert!(matches!(v.texts[1].text, Cow::Owned(_)));
}

#[test]
fn openai_max_tokens_takes_the_larger_of_both_fields() {
    let v = extract(
        Dialect::OpenAi,
        br#"{"model":"o3","max_completion_tokens":50,"messages":[]}"#,
    )
    .unwrap();
    assert_eq!(v.max_tokens, Some(50));
    let v = extract(
        Dialect::OpenAi,
        br#"{"model":"o3","max_tokens":70,"max_completion_tokens":50,"messages":[]}"#,
    )
    .unwrap();
    assert_eq!(v.max_tokens, Some(70));
    let v = extract(
        Dialect::OpenAi,
        br#"{"model":"o3","max_tokens":null,"messages":[],"stream":null}"#,
    )
    .unwrap();
    assert_eq!(v.max_tokens, None);
    assert!(!v.stream);
}

#[test]
fn anthropic_string_and_block_forms() {
    let body = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,
        "system":"you are terse",
        "messages":[
            {"role":"user","content":"plain string"},
            {"role":"assistant","content":[{"type":"text","text":"let me check"},
                {"type":"tool_use","id":"t1","name":"search","input":{"query":"zeus","n":3}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"found it"},
                {"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"nested"}]},
                {"type":"image","source":{"type":"base64","data":"AAAA"}}]}],
        "tools":[{"name":"search","description":"web search","input_schema":{"type":"object"}}],
        "stream_options":{"include_usage":true},"max_completion_tokens":99999}"#;
    let v = extract(Dialect::Anthropic, body).unwrap();
    assert_eq!(v.model, "claude-sonnet-4-5");
    assert!(v.stream);
    // OpenAI-only fields are not read for Anthropic.
    assert!(!v.include_usage);
    assert_eq!(v.max_tokens, Some(1024));
    assert_eq!(
        texts(&v),
        [
            (System, "you are terse"),
            (Message, "plain string"),
            (Message, "let me check"),
            (ToolInput, r#"{"query":"zeus","n":3}"#),
            (ToolResult, "found it"),
            (ToolResult, "nested"),
            (ToolDescription, "web search"),
        ]
    );
}

#[test]
fn anthropic_system_blocks() {
    let body = br#"{"model":"claude-3","system":[{"type":"text","text":"rule one","cache_control":{"type":"ephemeral"}},
        {"type":"text","text":"rule two"}],"messages":[{"role":"user","content":"hi"}]}"#;
    let v = extract(Dialect::Anthropic, body).unwrap();
    assert_eq!(
        texts(&v),
        [(System, "rule one"), (System, "rule two"), (Message, "hi")]
    );
}

#[test]
fn system_is_not_read_for_openai() {
    let v = extract(
        Dialect::OpenAi,
        br#"{"model":"m","system":"ignored","messages":[]}"#,
    )
    .unwrap();
    assert!(v.texts.is_empty());
}

#[test]
fn a_block_of_unknown_type_with_text_is_still_read() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"future_kind","text":"secret plan"}]}]}"#;
    let v = extract(Dialect::OpenAi, body).unwrap();
    assert_eq!(texts(&v), [(Message, "secret plan")]);
}

#[test]
fn key_order_does_not_matter() {
    let body = br#"{"messages":[{"content":[{"text":"t","type":"text"}],"role":"user"}],"model":"m"}"#;
    let v = extract(Dialect::OpenAi, body).unwrap();
    assert_eq!(texts(&v), [(Message, "t")]);
}

#[test]
fn escaped_keys_are_recognised() {
    // `"mod\u0065l"` is `"model"`: a parser that skipped escaped keys could be
    // fooled into reading a different model than the provider does.
    let v = extract(Dialect::OpenAi, br#"{"mod\u0065l":"gpt-4o","messages":[]}"#).unwrap();
    assert_eq!(v.model, "gpt-4o");
}

#[test]
fn errors() {
    use ExtractError::*;
    let cases: &[(&[u8], ExtractError)] = &[
        (b"", NotJson),
        (b"{", NotJson),
        (b"not json", NotJson),
        (br#"{"model":"m","messages":[]} trailing"#, NotJson),
        (br#"{"model":"m","messages":[{"content":"x"]}"#, NotJson),
        (b"[1,2]", NotObject),
        (b" \"str\"", NotObject),
        (b"42", NotObject),
        (br#"{"messages":[]}"#, MissingModel),
        (br#"{"model":null,"messages":[]}"#, MissingModel),
        (br#"{"model":"","messages":[]}"#, MissingModel),
        (br#"{"model":"m"}"#, MissingMessages),
        (br#"{"model":"m","messages":null}"#, MissingMessages),
        (br#"{"model":5,"messages":[]}"#, BadField("model")),
        (
            br#"{"model":"m","stream":"yes","messages":[]}"#,
            BadField("stream"),
        ),
        (
            br#"{"model":"m","max_tokens":-1,"messages":[]}"#,
            BadField("max_tokens"),
        ),
        (
            br#"{"model":"m","max_tokens":1.5,"messages":[]}"#,
            BadField("max_tokens"),
        ),
        (br#"{"model":"m","messages":{}}"#, BadField("messages")),
        (br#"{"model":"m","messages":["hi"]}"#, BadField("messages")),
        (
            br#"{"model":"m","messages":[{"content":5}]}"#,
            BadField("content"),
        ),
        (
            br#"{"model":"m","messages":[{"content":[{"text":7}]}]}"#,
            BadField("text"),
        ),
        (br#"{"model":"m","messages":[{"name":["a"]}]}"#, BadField("name")),
        (
            br#"{"model":"m","messages":[],"stream_options":{"include_usage":1}}"#,
            BadField("stream_options"),
        ),
        (
            br#"{"model":"m","messages":[],"tools":[{"description":false}]}"#,
            BadField("description"),
        ),
        (br#"{"model":"m","model":"n","messages":[]}"#, BadField("model")),
        (
            br#"{"model":"m","messages":[],"messages":[]}"#,
            BadField("messages"),
        ),
        (
            br#"{"model":"m","messages":[{"content":"a","content":"b"}]}"#,
            BadField("content"),
        ),
    ];
    for (body, want) in cases {
        let got = extract(Dialect::OpenAi, body).unwrap_err();
        assert_eq!(got, *want, "{}", String::from_utf8_lossy(body));
        assert!(!got.to_string().is_empty() && !got.label().is_empty());
    }
    let got = extract(Dialect::Anthropic, br#"{"model":"m","messages":[],"system":3}"#).unwrap_err();
    assert_eq!(got, BadField("system"));
}

#[test]
fn invalid_utf8_is_not_json() {
    let body = b"{\"model\":\"m\",\"messages\":[{\"content\":\"\xff\"}]}";
    assert_eq!(extract(Dialect::OpenAi, body).unwrap_err(), ExtractError::NotJson);
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let mut body = String::from(r#"{"model":"m","messages":[],"x":"#);
    body.push_str(&"[".repeat(100_000));
    assert_eq!(
        extract(Dialect::OpenAi, body.as_bytes()).unwrap_err(),
        ExtractError::TooDeep
    );
}

#[test]
fn embeddings_input_in_each_form() {
    fn e(body: &str) -> Result<RequestView<'_>, ExtractError> {
        extract(Dialect::OpenAiEmbeddings, body.as_bytes())
    }
    let v = e(r#"{"model":"text-embedding-3-small","input":"hello","encoding_format":"base64"}"#).unwrap();
    assert_eq!(texts(&v), [(Message, "hello")]);
    assert_eq!((v.token_ids, v.stream, v.max_tokens), (0, false, None));
    let v = e(r#"{"model":"m","input":["a","b\u00e9"]}"#).unwrap();
    assert_eq!(texts(&v), [(Message, "a"), (Message, "bé")]);
    let v = e(r#"{"model":"m","input":[1,2,3]}"#).unwrap();
    assert!(v.texts.is_empty());
    assert_eq!(v.token_ids, 3);
    let v = e(r#"{"model":"m","input":[[1,2],[3],[]]}"#).unwrap();
    assert_eq!(v.token_ids, 3);
    // A chat body's `messages` is not an embeddings input.
    assert_eq!(
        e(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#),
        Err(ExtractError::MissingInput)
    );
    for bad in [
        r#"{"model":"m","input":7}"#,
        r#"{"model":"m","input":[["a"]]}"#,
        r#"{"model":"m","input":[[[1]]]}"#,
        r#"{"model":"m","input":{"a":1}}"#,
        r#"{"model":"m","input":"a","input":"b"}"#,
    ] {
        assert_eq!(e(bad), Err(ExtractError::BadField("input")), "{bad}");
    }
    assert_eq!(e(r#"{"input":"x"}"#), Err(ExtractError::MissingModel));
}

#[test]
fn nesting_is_bounded_everywhere() {
    let nest = |depth: usize| {
        let mut b = br#"{"model":"m","messages":[],"extra":"#.to_vec();
        b.extend(std::iter::repeat_n(b'[', depth - 1));
        b.extend(std::iter::repeat_n(b']', depth - 1));
        b.push(b'}');
        b
    };
    // The top-level object is depth 1; `extra` holds the rest.
    assert!(extract(Dialect::OpenAi, &nest(MAX_DEPTH)).is_ok());
    assert_eq!(
        extract(Dialect::OpenAi, &nest(MAX_DEPTH + 1)),
        Err(ExtractError::TooDeep)
    );
    // Brackets inside strings, escaped quotes included, do not count.
    let mut b = br#"{"model":"m","messages":[],"x":"\"["#.to_vec();
    b.extend(std::iter::repeat_n(b'[', 500));
    b.extend_from_slice(br#"\\"}"#);
    assert!(
        extract(Dialect::OpenAi, &b).is_ok(),
        "{}",
        String::from_utf8_lossy(&b)
    );
}

#[test]
fn model_length_is_bounded() {
    let body = |n: usize| format!(r#"{{"model":"{}","messages":[]}}"#, "m".repeat(n));
    assert!(extract(Dialect::OpenAi, body(MAX_MODEL_LEN).as_bytes()).is_ok());
    assert_eq!(
        extract(Dialect::OpenAi, body(MAX_MODEL_LEN + 1).as_bytes()),
        Err(ExtractError::ModelTooLong)
    );
}

#[test]
fn n_and_present_keys() {
    let v = extract(
        Dialect::OpenAi,
        br#"{"model":"m","messages":[],"n":3,"stream\u005foptions":null}"#,
    )
    .unwrap();
    assert_eq!(v.n, Some(3));
    assert!(v.keys.contains("stream_options") && v.keys.contains("model") && v.keys.contains("n"));
    assert!(!v.keys.contains("max_tokens") && !v.keys.contains("temperature"));
}

#[test]
fn responses_input_in_each_form() {
    fn r(body: &str) -> Result<RequestView<'_>, ExtractError> {
        extract(Dialect::OpenAiResponses, body.as_bytes())
    }
    let v = r(r#"{"model":"gpt-4o","input":"hello","instructions":"be brief","max_output_tokens":64,"stream":true,"store":false}"#).unwrap();
    assert_eq!(texts(&v), [(Message, "hello"), (System, "be brief")]);
    assert_eq!((v.stream, v.max_tokens), (true, Some(64)));
    let v = r(r#"{"model":"m","instructions":"sys","input":[
        {"role":"user","content":"plain"},
        {"type":"message","role":"user","content":[{"type":"input_text","text":"part one"},{"type":"input_image","image_url":"data:x"}]},
        {"type":"message","role":"assistant","content":[{"type":"output_text","text":"earlier answer","annotations":[]}]},
        {"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
        {"type":"function_call_output","call_id":"c1","output":"sunny"},
        {"type":"item_reference","id":"msg_1"}
    ],"tools":[{"type":"function","name":"get_weather","description":"the weather","parameters":{}}],"previous_response_id":"resp_1"}"#)
    .unwrap();
    assert_eq!(
        texts(&v),
        [
            (System, "sys"),
            (Message, "plain"),
            (Message, "part one"),
            (Message, "earlier answer"),
            (ToolArguments, "{\"city\":\"Paris\"}"),
            (ToolResult, "sunny"),
            (ToolDescription, "the weather"),
        ]
    );
    assert_eq!(v.max_tokens, None);
    // `functions` is chat's: not read (nor redacted) in a Responses body,
    // but not repeatable either.
    let v = r(r#"{"model":"m","functions":[{"description":"d"}],"input":"x"}"#).unwrap();
    assert_eq!(texts(&v), [(Message, "x")]);
    assert_eq!(
        r(r#"{"model":"m","input":"x","functions":[],"functions":[]}"#),
        Err(ExtractError::BadField("functions"))
    );
    // `max_tokens` is not Responses' limit; `messages` is not its input.
    let v = r(r#"{"model":"m","input":"x","max_tokens":5}"#).unwrap();
    assert_eq!(v.max_tokens, None);
    assert_eq!(
        r(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#),
        Err(ExtractError::MissingInput)
    );
    for (bad, field) in [
        (r#"{"model":"m","input":7}"#, "input"),
        (r#"{"model":"m","input":"a","input":"b"}"#, "input"),
        (r#"{"model":"m","input":"a","instructions":3}"#, "instructions"),
        (
            r#"{"model":"m","input":"a","max_output_tokens":-1}"#,
            "max_output_tokens",
        ),
        (
            r#"{"model":"m","input":[{"type":"function_call","arguments":{"a":1}}]}"#,
            "arguments",
        ),
    ] {
        assert_eq!(r(bad), Err(ExtractError::BadField(field)), "{bad}");
    }
    assert!(extract(
        Dialect::OpenAi,
        br#"{"model":"m","messages":[],"max_output_tokens":1}"#
    )
    .unwrap()
    .keys
    .contains("max_output_tokens"));
}

#[test]
fn media_parts_are_counted_in_every_dialect() {
    let media = |api, body: &str| extract(api, body.as_bytes()).unwrap().media;
    assert_eq!(
        media(
            Dialect::OpenAi,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x/y.png"}},{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}},{"type":"file","file":{"file_id":"f"}}]}]}"#
        ),
        3
    );
    assert_eq!(
        media(
            Dialect::Anthropic,
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"document","source":{"type":"url","url":"https://x/a.pdf"}},{"type":"text","text":"b"}]}]}"#
        ),
        2
    );
    assert_eq!(
        media(
            Dialect::OpenAiResponses,
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"c"},{"type":"input_image","image_url":"data:x"}]}]}"#
        ),
        1
    );
    assert_eq!(
        media(
            Dialect::Gemini,
            r#"{"contents":[{"parts":[{"text":"d"},{"inlineData":{"mimeType":"image/png","data":"AA=="}},{"file_data":{"file_uri":"gs://x"}}]}]}"#
        ),
        2
    );
    assert_eq!(
        media(
            Dialect::OpenAi,
            r#"{"model":"m","messages":[{"role":"user","content":"plain"}]}"#
        ),
        0
    );
}
