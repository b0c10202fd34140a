use super::*;

const OPENAI: &[u8] = b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}],\"usage\":null}\n\n\
: keep-alive comment\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\"},\"finish_reason\":null}]}\r\n\r\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n\
data: [DONE]\n\n";

const ANTHROPIC: &[u8] = b"event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\n\
data: {\"type\":\"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\r\n\r\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

fn run(api: Api, pieces: &[(&[u8], u64)]) -> Tally {
    let mut m = StreamMetrics::new(api);
    for (bytes, t) in pieces {
        m.feed(bytes, *t);
    }
    m.tally
}

#[test]
fn split_at_every_byte_gives_the_same_counts() {
    for (api, stream) in [(Api::Openai, OPENAI), (Api::Anthropic, ANTHROPIC)] {
        for split in 0..=stream.len() {
            let t = run(api, &[(&stream[..split], 10), (&stream[split..], 20)]);
            assert_eq!(t.content_events, 3, "{api:?} split {split}");
            assert_eq!(t.reported_tokens, Some(3), "{api:?} split {split}");
            assert!(
                t.done && !t.error_event && !t.malformed,
                "{api:?} split {split}: {t:?}"
            );
            assert_eq!(t.itl_ns.len(), 2);
            let first = t.first_content_ns.unwrap();
            assert!(first == 10 || first == 20);
        }
        let bytes: Vec<(&[u8], u64)> = stream.chunks(1).map(|b| (b, 0)).collect();
        let t = run(api, &bytes);
        assert_eq!(
            (t.content_events, t.reported_tokens, t.done),
            (3, Some(3), true),
            "{api:?} bytewise"
        );
    }
}

/// Feeds each event at its own time: TTFT is the first content event (not
/// the role-only chunk or message_start), ITL the gaps between content.
#[test]
fn content_event_times_and_gaps() {
    for (api, stream) in [(Api::Openai, OPENAI), (Api::Anthropic, ANTHROPIC)] {
        let mut m = StreamMetrics::new(api);
        let mut t = 0;
        let mut rest = stream;
        loop {
            let lf = memchr::memmem::find(rest, b"\n\n").map(|i| i + 2);
            let crlf = memchr::memmem::find(rest, b"\r\n\r\n").map(|i| i + 4);
            let Some(end) = [lf, crlf].into_iter().flatten().min() else {
                break;
            };
            t += 1000;
            m.feed(&rest[..end], t);
            rest = &rest[end..];
        }
        let tally = m.tally;
        let first = tally.first_content_ns.unwrap();
        assert!(first > 1000, "{api:?}: the first event carries no content");
        assert_eq!(
            tally.last_content_ns.unwrap() - first,
            tally.itl_ns.iter().sum::<u64>()
        );
        assert!(
            tally.itl_ns.iter().all(|&g| g >= 1000),
            "{api:?}: {:?}",
            tally.itl_ns
        );
    }
}

#[test]
fn missing_terminator_is_not_done() {
    let cut = &OPENAI[..OPENAI.len() - b"data: [DONE]\n\n".len()];
    assert!(!run(Api::Openai, &[(cut, 1)]).done);
    let cut = &ANTHROPIC[..ANTHROPIC.len() - 30];
    assert!(!run(Api::Anthropic, &[(cut, 1)]).done);
}

#[test]
fn errors_and_garbage_are_flagged() {
    let t = run(
        Api::Openai,
        &[(b"data: {\"error\":{\"message\":\"boom\"}}\n\n", 1)],
    );
    assert!(t.error_event && !t.done);
    let t = run(
        Api::Anthropic,
        &[(b"event: error\ndata: {\"type\":\"error\"}\n\n", 1)],
    );
    assert!(t.error_event);
    let t = run(Api::Openai, &[(b"data: {not json\n\n", 1)]);
    assert!(t.malformed);
}

#[test]
fn events_after_the_terminator_are_ignored() {
    let t = run(
        Api::Openai,
        &[(
            b"data: [DONE]\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n",
            1,
        )],
    );
    assert_eq!((t.done, t.content_events), (true, 0));
}

#[test]
fn usage_from_json_bodies() {
    let oa = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":7}}"#;
    assert_eq!(json_usage(Api::Openai, oa), Ok(Some(7)));
    let an = br#"{"type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":1,"output_tokens":5}}"#;
    assert_eq!(json_usage(Api::Anthropic, an), Ok(Some(5)));
    assert_eq!(json_usage(Api::Openai, b"{}"), Ok(None));
    assert_eq!(json_usage(Api::Openai, b"<html>"), Err(()));
}
