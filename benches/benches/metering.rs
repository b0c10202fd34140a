//! Inline completion counting, as the proxy runs it on every streamed
//! response of a metered request: SSE framing, the usage scanner, the text
//! of each delta event ([`DeltaReader`], one per stream) and the BPE completion
//! counter ([`tokens::CompletionCounter`]), all on one pass over the bytes.
//! Reported in bytes of stream per second (MB/s), next to the same pass
//! without counting, so the cost of counting is the difference.
//!
//! Inputs are built once, deterministically: an OpenAI chat stream and an
//! Anthropic messages stream, ~400 text deltas each (a few words per delta,
//! with multi-byte characters and escapes), read in pieces of 1–4 KiB.
//!
//! Run: `cargo bench -p sluice-benches --bench metering`.
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_benches::{reads, Rng};
use sluice_contract::codec::delta::DeltaReader;
use sluice_contract::codec::sse::SseFramer;
use sluice_contract::codec::usage::UsageScanner;
use sluice_contract::cut::{EventCut, EventReader};
use sluice_contract::dialect::Dialect;
use sluice_contract::policy::tokens::{self, CompletionCounter, Encoding};
use std::ops::Range;

/// JSON-escaped pieces of text (as they appear inside a JSON string).
const WORDS: &[&str] = &[
    " the",
    " gateway",
    " streams",
    " tokens",
    " h\u{e9}llo",
    " \u{4e16}\u{754c}",
    " \u{1f680}",
    ",",
    " and",
    " counts",
    " usage",
    "\\n",
    " \\\"quoted\\\"",
    " API",
    " request",
    ".",
    " fn",
    " main()",
    " {",
    " }",
];

const DELTAS: usize = 400;

fn text(rng: &mut Rng) -> String {
    let mut t = String::new();
    for _ in 0..1 + rng.below(4) {
        t.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    t
}

/// An OpenAI chat stream: role chunk, content chunks, finish chunk, the
/// usage-only chunk and `[DONE]`.
fn openai_stream() -> Vec<u8> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\
             \"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_fc9f1d7035\",\
             \"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}],\
             \"usage\":null}}\n\n"
        )
    };
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut out = chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null");
    for _ in 0..DELTAS {
        out.push_str(&chunk(&format!(r#"{{"content":"{}"}}"#, text(&mut rng)), "null"));
    }
    out.push_str(&chunk("{}", "\"stop\""));
    out.push_str(
        "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\
         \"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":1117,\
         \"completion_tokens\":900,\"total_tokens\":2017,\"prompt_tokens_details\":{\"cached_tokens\":1024},\
         \"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
    );
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

/// An Anthropic messages stream: message_start, a text block of deltas,
/// message_delta with the output usage, message_stop.
fn anthropic_stream() -> Vec<u8> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\
         \"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\
         \"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":1117,\
         \"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\
         \"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    for _ in 0..DELTAS {
        out.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\
             \"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n",
            text(&mut rng)
        ));
    }
    out.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
         event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\
         \"stop_sequence\":null},\"usage\":{\"output_tokens\":900}}\n\n\
         event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    out.into_bytes()
}

/// One pass over a response as the proxy makes it: framing, usage and,
/// with `counting`, the completion tokens of the deltas. Returns (output
/// tokens reported, tokens counted).
fn pass(dialect: Dialect, pieces: &[&[u8]], counting: Option<Encoding>) -> (u64, u64) {
    let mut framer = SseFramer::new(1 << 20);
    let mut usage = UsageScanner::new(dialect);
    let mut counter = counting.map(CompletionCounter::new);
    let mut deltas = DeltaReader::default();
    for piece in pieces {
        framer.feed(piece, |ev| {
            usage.on_event(ev);
            if let Some(c) = counter.as_mut() {
                deltas.for_each_text(dialect, ev, |t| c.push(t));
            }
        });
    }
    let reported = usage.usage().map_or(0, |u| u.output_tokens);
    (reported, counter.map_or(0, |mut c| c.finish()))
}

/// The counter's side of the event cut, as the relay has it.
struct Texts {
    deltas: DeltaReader,
    counter: Option<CompletionCounter>,
}

impl EventReader for Texts {
    fn event(&mut self, ev: &sluice_contract::codec::sse::SseEvent<'_>, learn: bool) -> Option<Range<usize>> {
        match self.counter.as_mut() {
            Some(c) => self.deltas.for_each_text(Dialect::OpenAi, ev, |t| c.push(t)),
            None if learn => self.deltas.one_text(Dialect::OpenAi, ev),
            None => None,
        }
    }
    fn repeat(&mut self, ev: &sluice_contract::codec::sse::SseEvent<'_>, text: Range<usize>, escaped: bool) {
        if let Some(c) = self.counter.as_mut() {
            self.deltas
                .for_each_text_at(Dialect::OpenAi, ev, text, escaped, |t| c.push(t));
        }
    }
}

/// [`pass`] as the relay makes it for an OpenAI stream whose client did not
/// ask for usage: through the event cut, which removes the usage event and
/// recognises events that repeat the one before. Returns the same.
fn cut_pass(pieces: &[&[u8]], counting: Option<Encoding>) -> (u64, u64) {
    let mut framer = SseFramer::new(1 << 20);
    let mut usage = UsageScanner::new(Dialect::OpenAi);
    let mut cut = EventCut::default();
    let mut texts = Texts {
        deltas: DeltaReader::default(),
        counter: counting.map(CompletionCounter::new),
    };
    let mut out = Vec::with_capacity(8 * 1024);
    for piece in pieces {
        out.clear();
        cut.feed(piece, &mut framer, &mut usage, &mut texts, &mut out);
    }
    let reported = usage.usage().map_or(0, |u| u.output_tokens);
    (reported, texts.counter.map_or(0, |mut c| c.finish()))
}

/// Bytes of completion text in the deltas of a stream.
fn text_bytes(dialect: Dialect, pieces: &[&[u8]]) -> usize {
    let mut framer = SseFramer::new(1 << 20);
    let mut deltas = DeltaReader::default();
    let mut n = 0;
    for piece in pieces {
        framer.feed(piece, |ev| {
            deltas.for_each_text(dialect, ev, |t| n += t.len());
        });
    }
    n
}

fn bench(c: &mut Criterion) {
    tokens::warm_up();
    let streams = [
        ("openai", Dialect::OpenAi, openai_stream()),
        ("anthropic", Dialect::Anthropic, anthropic_stream()),
    ];
    let mut g = c.benchmark_group("metering");
    for (name, dialect, stream) in &streams {
        let pieces = reads(stream, 7);
        // Sanity: the usage is found and the deltas are counted.
        let (reported, counted) = pass(*dialect, &pieces, Some(Encoding::O200kBase));
        assert_eq!(reported, 900, "{name}: usage not found");
        assert!(counted > DELTAS as u64, "{name}: only {counted} tokens counted");
        eprintln!(
            "{name}: {} stream bytes carrying {} bytes of completion text, {counted} tokens (o200k)",
            stream.len(),
            text_bytes(*dialect, &pieces)
        );
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(format!("{name}_stream_frame_usage_only"), |b| {
            b.iter(|| pass(*dialect, black_box(&pieces), None))
        });
        g.bench_function(format!("{name}_stream_count_o200k"), |b| {
            b.iter(|| pass(*dialect, black_box(&pieces), Some(Encoding::O200kBase)))
        });
    }
    let (_, _, openai) = &streams[0];
    let pieces = reads(openai, 7);
    g.throughput(Throughput::Bytes(openai.len() as u64));
    let (reported, counted) = cut_pass(&pieces, Some(Encoding::O200kBase));
    assert_eq!(
        (reported, counted),
        pass(Dialect::OpenAi, &pieces, Some(Encoding::O200kBase)),
        "the cut reads the stream as the framer does"
    );
    g.bench_function("openai_cut_frame_usage_only", |b| {
        b.iter(|| cut_pass(black_box(&pieces), None))
    });
    g.bench_function("openai_cut_count_o200k", |b| {
        b.iter(|| cut_pass(black_box(&pieces), Some(Encoding::O200kBase)))
    });
    g.bench_function("openai_stream_count_cl100k", |b| {
        b.iter(|| pass(Dialect::OpenAi, black_box(&pieces), Some(Encoding::Cl100kBase)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
