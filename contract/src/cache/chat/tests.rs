use super::*;

const STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
    "data: [DONE]\n\n",
);

fn built(split: usize) -> Events {
    let mut b = EventsBuilder::new(1 << 20);
    b.push(&STREAM.as_bytes()[..split], 0);
    b.push(&STREAM.as_bytes()[split..], 7);
    b.finish().unwrap()
}

#[test]
fn a_stream_is_stored_as_its_events_however_it_was_cut() {
    let whole = built(STREAM.len());
    for split in [1, 50, 200, STREAM.len() - 3] {
        assert_eq!(built(split).data, whole.data);
    }
    assert_eq!(whole.events.len(), 6);
    let usage_only: Vec<bool> = whole.events.iter().map(|e| e.usage_only).collect();
    assert_eq!(usage_only, [false, false, false, false, true, false]);
    let mut out = Vec::new();
    for (d, _) in whole.iter() {
        Events::write_event(d, &mut out);
    }
    assert_eq!(out, STREAM.as_bytes());
}

#[test]
fn a_stream_converts_to_the_completion_and_back() {
    let ev = built(STREAM.len());
    let json = events_to_json(&ev).unwrap();
    let v: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["id"], "c1");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["total_tokens"], 5);
    let back = json_to_events(&json).unwrap();
    assert_eq!(events_to_json(&back).unwrap(), json);
    assert!(back.events.iter().any(|e| e.usage_only));
    assert_eq!(back.iter().last().unwrap().0, b"[DONE]");
}

#[test]
fn tool_calls_and_several_choices_do_not_convert() {
    let tools = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t"}]},"finish_reason":"tool_calls"}]}"#;
    assert!(json_to_events(tools).is_none());
    let two = br#"{"id":"x","choices":[{"index":0,"message":{"content":"a"},"finish_reason":"stop"},{"index":1,"message":{"content":"b"},"finish_reason":"stop"}]}"#;
    assert!(json_to_events(two).is_none());
    let mut b = EventsBuilder::new(1 << 20);
    b.push(b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0}]},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n", 0);
    assert!(events_to_json(&b.finish().unwrap()).is_none());
}

#[test]
fn an_unfinished_or_oversized_stream_is_not_stored() {
    let mut b = EventsBuilder::new(1 << 20);
    b.push(b"data: {\"a\":1}\n\ndata: {\"b\"", 0);
    assert!(b.finish().is_none());
    let mut b = EventsBuilder::new(10);
    b.push(STREAM.as_bytes(), 0);
    assert!(b.finish().is_none());
}
