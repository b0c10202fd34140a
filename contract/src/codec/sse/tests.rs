use super::*;

/// A small deterministic PRNG (xorshift64*) for property-style tests.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Splits `input` into pieces at up to `max_cuts` random places (some
    /// pieces may be empty).
    pub(crate) fn split<'a>(&mut self, input: &'a [u8], max_cuts: usize) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = (0..self.below(max_cuts + 1))
            .map(|_| self.below(input.len() + 1))
            .collect();
        cuts.sort_unstable();
        let mut parts = Vec::new();
        let mut prev = 0;
        for c in cuts {
            parts.push(&input[prev..c]);
            prev = c;
        }
        parts.push(&input[prev..]);
        parts
    }
}

/// An OpenAI chat completion stream with `stream_options.include_usage`, in
/// its wire form: role chunk, content chunks, finish chunk, usage-only chunk,
/// `[DONE]`.
pub(crate) const OPENAI_STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h\u{e9}llo \u{4e16}\u{754c}\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" \u{1f680}!\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[],\"usage\":{\"prompt_tokens\":1117,\"completion_tokens\":46,\"total_tokens\":1163,\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":12,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n",
    "data: [DONE]\n\n",
);

/// An Anthropic Messages stream in its wire form (`event:` + `data:` lines,
/// a ping, several deltas, usage in message_start and message_delta).
pub(crate) const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-20250514\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\n",
    "data: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"h\u{e9}llo\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" \u{4e16}\u{754c} \u{1f680}\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"! \\\"usage\\\" is a word\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

type Events = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything a run of feeds produced.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    events: Events,
    count: u64,
    oversized: u64,
}

fn run_with(f: &mut SseFramer, parts: &[&[u8]]) -> Run {
    let mut events = Vec::new();
    for p in parts {
        f.feed(p, |e| events.push((e.event.to_vec(), e.data.to_vec())));
    }
    Run {
        events,
        count: f.events(),
        oversized: f.oversized(),
    }
}

fn run(max: usize, parts: &[&[u8]]) -> Run {
    run_with(&mut SseFramer::new(max), parts)
}

/// Checks every two-way split, every three-way split of short inputs, and
/// one byte at a time against the whole feed; returns the whole feed's run.
fn check_splits(max: usize, input: &[u8]) -> Run {
    let expect = run(max, &[input]);
    assert_eq!(expect.count as usize, expect.events.len());
    for a in 0..=input.len() {
        assert_eq!(
            run(max, &[&input[..a], &input[a..]]),
            expect,
            "split at {a} of {:?}",
            lossy(input)
        );
        if input.len() <= 64 {
            for b in a..=input.len() {
                assert_eq!(
                    run(max, &[&input[..a], &input[a..b], &input[b..]]),
                    expect,
                    "splits {a},{b}"
                );
            }
        }
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(max, &bytes), expect, "byte at a time: {:?}", lossy(input));
    expect
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ev(event: &str, data: &str) -> (Vec<u8>, Vec<u8>) {
    (event.as_bytes().to_vec(), data.as_bytes().to_vec())
}

const CASES: &[(&str, &[(&str, &str)])] = &[
    ("data: hello\n\n", &[("", "hello")]),
    (
        "data: a\r\n\r\ndata: b\r\rdata: c\n\n",
        &[("", "a"), ("", "b"), ("", "c")],
    ),
    ("data: a\r\ndata: b\rdata: c\n\r\n", &[("", "a\nb\nc")]),
    (
        "data:no space\n\ndata:  two\n\n",
        &[("", "no space"), ("", " two")],
    ),
    ("data: a\ndata: b\ndata\ndata:\n\n", &[("", "a\nb\n\n")]),
    ("data\n\ndata:\n\n", &[("", ""), ("", "")]),
    (": keep-alive\n\n: ping\r\n\r\n", &[]),
    (":\n:x\ndata: x\n: mid\ndata: y\n\n", &[("", "x\ny")]),
    (
        "event: ping\ndata: {}\n\ndata: next\n\n",
        &[("ping", "{}"), ("", "next")],
    ),
    ("event: lost\n\ndata: y\n\n", &[("", "y")]),
    ("event: a\nevent: b\ndata: z\n\n", &[("b", "z")]),
    ("data: z\nevent\n\n", &[("", "z")]),
    (
        "id: 1\nretry: 100\nid: a\0b\nfoo: bar\nDATA: no\ndata : no\ndata: z\n\n",
        &[("", "z")],
    ),
    (
        "data: h\u{e9}llo \u{4e16}\u{754c} \u{1f680}\n\n",
        &[("", "h\u{e9}llo \u{4e16}\u{754c} \u{1f680}")],
    ),
    ("\u{feff}data: bom\n\n", &[("", "bom")]),
    ("\u{feff}\u{feff}data: twice\n\ndata: ok\n\n", &[("", "ok")]),
    ("data: a\n\n\u{feff}data: b\n\n", &[("", "a")]),
    ("\r\n\ndata: blank lines first\n\n", &[("", "blank lines first")]),
    ("data: held", &[]),
    ("data: held\n", &[]),
    ("data: x\n\ndata: held\r", &[("", "x")]),
    ("data: a:b: c\n\n", &[("", "a:b: c")]),
    ("event:e\ndata:{\"a\":1}\n\n", &[("e", "{\"a\":1}")]),
];

#[test]
fn spec_cases_at_every_split() {
    for (input, want) in CASES {
        let got = check_splits(1024, input.as_bytes());
        let want: Events = want.iter().map(|(e, d)| ev(e, d)).collect();
        assert_eq!(got.events, want, "{input:?}");
        assert_eq!(got.oversized, 0);
    }
}

#[test]
fn partial_bom_is_part_of_the_first_line() {
    // A BOM prefix that turns out not to be one is kept as line bytes: the
    // field name is then not `data`.
    for input in [
        &b"\xEF\xBBdata: x\n\n"[..],
        b"\xEFdata: x\n\n",
        b"\xEF\xBB\n\ndata: y\n\n",
    ] {
        let got = check_splits(1024, input);
        assert!(got.events.iter().all(|(_, d)| d == b"y"), "{:?}", got.events);
    }
    let mut f = SseFramer::new(1024);
    f.feed(b"\xEF\xBB", |_| panic!("nothing to dispatch"));
    assert!(f.has_pending());
    let mut n = 0;
    f.feed(b"\xBFdata: x\n\n", |e| {
        n += 1;
        assert_eq!(e.data, b"x");
    });
    assert_eq!(n, 1);
}

#[test]
fn cr_ending_a_feed_and_lf_starting_the_next_are_one_line_end() {
    let got = run(1024, &[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
    assert_eq!(got.events, vec![ev("", "a\nb")]);
    // A lone CR at the end of a feed is still a line end of its own.
    let got = run(1024, &[b"data: a\r", b"\r"]);
    assert_eq!(got.events, vec![ev("", "a")]);
}

#[test]
fn openai_and_anthropic_streams_at_every_split() {
    let got = check_splits(1 << 20, OPENAI_STREAM.as_bytes());
    assert_eq!(got.events.len(), 6);
    assert!(got.events.iter().all(|(e, _)| e.is_empty()));
    assert_eq!(got.events[5].1, b"[DONE]");
    let got = check_splits(1 << 20, ANTHROPIC_STREAM.as_bytes());
    let types: Vec<String> = got.events.iter().map(|(e, _)| lossy(e)).collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(got.events[2].1, b"{\"type\": \"ping\"}");
}

#[test]
fn single_line_data_within_one_feed_is_not_copied() {
    let input = ANTHROPIC_STREAM.as_bytes();
    let range = input.as_ptr_range();
    let mut f = SseFramer::default();
    let mut n = 0;
    f.feed(input, |e| {
        n += 1;
        assert!(range.contains(&e.data.as_ptr()), "data was copied");
        assert!(range.contains(&e.event.as_ptr()), "event type was copied");
    });
    assert_eq!(n, 9);
    assert_eq!(f.data.capacity(), 0);
    assert_eq!(f.event.capacity(), 0);
    assert_eq!(f.carry.capacity(), 0);
}

#[test]
fn steady_state_does_not_reallocate() {
    // Feed the same stream repeatedly in 1 KiB reads: once the buffers have
    // grown for the first pass they are neither grown nor moved again.
    let stream = OPENAI_STREAM.repeat(4) + ANTHROPIC_STREAM;
    let mut f = SseFramer::default();
    let pass = |f: &mut SseFramer| {
        let mut n = 0;
        for part in stream.as_bytes().chunks(1000) {
            f.feed(part, |_| n += 1);
        }
        n
    };
    assert_eq!(pass(&mut f), 33);
    let before = [f.carry.as_ptr(), f.data.as_ptr(), f.event.as_ptr()];
    let caps = [f.carry.capacity(), f.data.capacity(), f.event.capacity()];
    for _ in 0..3 {
        assert_eq!(pass(&mut f), 33);
        assert_eq!([f.carry.as_ptr(), f.data.as_ptr(), f.event.as_ptr()], before);
        assert_eq!([f.carry.capacity(), f.data.capacity(), f.event.capacity()], caps);
    }
    f.reset();
    assert_eq!([f.carry.capacity(), f.data.capacity(), f.event.capacity()], caps);
    assert_eq!((f.events(), f.oversized()), (0, 0));
}

#[test]
fn incomplete_event_is_held_until_its_blank_line() {
    let mut f = SseFramer::new(64);
    let mut got = Vec::new();
    f.feed(b"event: e\ndata: part one\n", |e| got.push(e.data.to_vec()));
    assert!(got.is_empty());
    assert!(f.has_pending());
    f.feed(b"data: part two\n", |e| got.push(e.data.to_vec()));
    assert!(got.is_empty());
    f.feed(b"\n", |e| got.push(e.data.to_vec()));
    assert_eq!(got, vec![b"part one\npart two".to_vec()]);
    assert!(!f.has_pending());
    assert_eq!(f.events(), 1);
}

#[test]
fn oversized_lines_and_events_are_dropped_and_counted() {
    let max = 16;
    // A 22-byte data line.
    let got = check_splits(max, b"data: 0123456789abcdef\n\ndata: ok\n\n");
    assert_eq!((got.events, got.oversized), (vec![ev("", "ok")], 1));
    // Lines within the bound whose joined data is not.
    let got = check_splits(max, b"data: 0123456789\ndata: 0123456789\n\ndata: ok\n\n");
    assert_eq!((got.events, got.oversized), (vec![ev("", "ok")], 1));
    // Exactly at the bound is fine, for a line and for joined data.
    let got = check_splits(max, b"data:0123456789a\n\ndata:0123456\ndata:01234567\n\n");
    assert_eq!(
        got.events,
        vec![ev("", "0123456789a"), ev("", "0123456\n01234567")]
    );
    // A long unknown field drops its event too; a long comment does not.
    let got = check_splits(
        max,
        b"x-long-field: 0123456789\ndata: a\n\ndata: b\n: 0123456789abcdefghij\ndata: c\n\n",
    );
    assert_eq!((got.events, got.oversized), (vec![ev("", "b\nc")], 1));
    // A long line that never ends, then the stream resumes after it ends.
    let mut f = SseFramer::new(max);
    let mut got = Vec::new();
    f.feed(b"data: ", |_| {});
    for _ in 0..100 {
        f.feed(b"0123456789", |_| {});
        assert!(f.carry.capacity() <= max);
    }
    f.feed(b"\r", |_| {});
    f.feed(b"\n\ndata: after\n\n", |e| got.push(e.data.to_vec()));
    assert_eq!(got, vec![b"after".to_vec()]);
    assert_eq!((f.events(), f.oversized()), (1, 1));
}

#[test]
fn buffers_never_grow_past_the_bound() {
    let max = 1000;
    let mut f = SseFramer::new(max);
    let mut rng = Rng::new(3);
    for _ in 0..200 {
        let mut s = Vec::new();
        for _ in 0..rng.below(8) {
            s.extend_from_slice(if rng.below(2) == 0 { b"event: " } else { b"data: " });
            let n = rng.below(1200);
            s.resize(s.len() + n, b'x');
            s.push(b'\n');
        }
        s.push(b'\n');
        for part in rng.split(&s, 6) {
            f.feed(part, |e| assert!(e.data.len() <= max && e.event.len() <= max));
            for cap in [f.carry.capacity(), f.data.capacity(), f.event.capacity()] {
                assert!(cap <= max, "capacity {cap}");
            }
        }
    }
    assert!(f.oversized() > 0 && f.events() > 0);
}

#[test]
fn zero_bound_drops_every_event_with_data() {
    let got = check_splits(0, b"data\n\n: c\n\ndata: x\n\n");
    // `data` (no colon) is a 4-byte line: over a zero bound.
    assert_eq!((got.events.len(), got.oversized), (0, 2));
}

#[test]
fn reset_starts_a_new_stream() {
    let mut f = SseFramer::new(64);
    f.feed(b"\xEF\xBB\xBFdata: a\n\ndata: unfinished\r", |_| {});
    assert_eq!(f.events(), 1);
    f.reset();
    assert!(!f.has_pending());
    let mut got = Vec::new();
    // The held CR is forgotten and a BOM is skipped again.
    f.feed(b"\n\xEF\xBB\xBFdata: b\n\n", |e| got.push(e.data.to_vec()));
    assert!(got.is_empty(), "the BOM is not at the start: {got:?}");
    f.reset();
    f.feed(b"\xEF\xBB\xBFdata: b\n\n", |e| got.push(e.data.to_vec()));
    assert_eq!(got, vec![b"b".to_vec()]);
}

/// A plain, non-incremental reading of the spec (with the same bound rules),
/// used as the reference for random streams.
fn reference(input: &[u8], max: usize) -> (Events, u64) {
    let mut input = input;
    if input.starts_with(BOM) {
        input = &input[3..];
    }
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\n' => {
                lines.push(&input[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&input[start..i]);
                if input.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let (mut events, mut oversized) = (Vec::new(), 0);
    let (mut data, mut event, mut has_data, mut poisoned) = (Vec::new(), Vec::new(), false, false);
    for line in lines {
        if line.is_empty() {
            if poisoned {
                oversized += 1;
            } else if has_data {
                events.push((event.clone(), data.clone()));
            }
            (data, event, has_data, poisoned) = (Vec::new(), Vec::new(), false, false);
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        if line.len() > max {
            poisoned = true;
            continue;
        }
        let (name, mut value) = match line.iter().position(|&b| b == b':') {
            Some(c) => (&line[..c], &line[c + 1..]),
            None => (line, &b""[..]),
        };
        if value.first() == Some(&b' ') {
            value = &value[1..];
        }
        match name {
            b"data" => {
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                has_data = true;
                if data.len() > max {
                    poisoned = true;
                }
            }
            b"event" => event = value.to_vec(),
            _ => {}
        }
    }
    (events, oversized)
}

#[test]
fn random_streams_match_the_reference() {
    let mut rng = Rng::new(0xfeed);
    let alphabet = b"data:event :id\r\n\n\n\xF0\x9F\x9A\x80xy";
    for round in 0..3000 {
        let len = rng.below(if round % 10 == 0 { 400 } else { 60 });
        let mut s: Vec<u8> = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
        if rng.below(4) == 0 {
            s.splice(0..0, BOM.iter().copied());
        }
        let max = [0, 4, 8, 16, 64, 1 << 20][rng.below(6)];
        let (events, oversized) = reference(&s, max);
        let got = run(max, &rng.split(&s, 8));
        assert_eq!(
            (got.events, got.oversized),
            (events, oversized),
            "{:?} max {max}",
            lossy(&s)
        );
    }
}

#[test]
fn random_realistic_streams_at_random_splits() {
    let mut rng = Rng::new(42);
    let words = [
        "h\u{e9}llo",
        "\u{4e16}\u{754c}",
        "\u{1f680}",
        "{\"a\":1}",
        "",
        "x:y",
        " lead",
    ];
    let ends = ["\n", "\r\n", "\r"];
    for _ in 0..300 {
        let mut s = String::new();
        let mut want = Vec::new();
        for _ in 0..rng.below(10) {
            let end = ends[rng.below(3)];
            if rng.below(3) == 0 {
                s += &format!(": keep-alive{end}");
            }
            let event = if rng.below(2) == 0 { "" } else { "delta" };
            if !event.is_empty() {
                s += &format!("event: {event}{end}");
            }
            let lines: Vec<&str> = (0..1 + rng.below(3))
                .map(|_| words[rng.below(words.len())])
                .collect();
            for l in &lines {
                s += &format!("data: {l}{end}");
            }
            // A CR line end followed by a blank line ended by LF would merge
            // into one CRLF: the blank line uses the same end as its event.
            s += end;
            want.push(ev(event, &lines.join("\n")));
        }
        let got = run(1 << 20, &rng.split(s.as_bytes(), 10));
        assert_eq!(got.events, want, "{s:?}");
        assert_eq!(got.events, reference(s.as_bytes(), 1 << 20).0);
    }
}
