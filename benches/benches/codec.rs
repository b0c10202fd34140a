//! Throughput of the response-side wire codecs: chunked decoding, SSE framing,
//! usage scanning, and the three together as the proxy runs them on every
//! streamed response ("pipeline", the number the README quotes).
//!
//! Inputs are built once, deterministically: a realistic OpenAI chat stream
//! of ~200 events (role chunk, content chunks, finish chunk, usage-only
//! chunk, `[DONE]`), chunk-encoded one event per chunk as providers send it,
//! and read in pieces of 1–4 KiB as a socket would deliver them.
//!
//! Run: `cargo bench -p sluice-benches --bench codec`.

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use sluice_benches::{reads, Rng};
use sluice_contract::codec::chunked::ChunkedDecoder;
use sluice_contract::codec::sse::{SseEvent, SseFramer};
use sluice_contract::codec::usage::UsageScanner;
use sluice_contract::dialect::Dialect;

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
];

fn chunk_json(content: &str, finish: &str) -> String {
    format!(
        "{{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\
         \"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\
         \"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{{\"index\":0,\"delta\":{content},\
         \"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}"
    )
}

/// The SSE events of a ~200-event OpenAI stream, each with its blank line.
fn openai_events() -> Vec<String> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut events = vec![format!(
        "data: {}\n\n",
        chunk_json(r#"{"role":"assistant","content":"","refusal":null}"#, "null")
    )];
    for _ in 0..197 {
        let mut text = String::new();
        for _ in 0..1 + rng.below(3) {
            text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        }
        events.push(format!(
            "data: {}\n\n",
            chunk_json(&format!(r#"{{"content":"{text}"}}"#), "null")
        ));
    }
    events.push(format!("data: {}\n\n", chunk_json("{}", "\"stop\"")));
    events.push(
        "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\
         \"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":1117,\
         \"completion_tokens\":198,\"total_tokens\":1315,\"prompt_tokens_details\":{\"cached_tokens\":1024,\
         \"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\
         \"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n"
            .to_string(),
    );
    events.push("data: [DONE]\n\n".to_string());
    events
}

/// Chunk-encodes each piece as one chunk, then the last chunk.
fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn bench_codecs(c: &mut Criterion) {
    let events = openai_events();
    let stream: Vec<u8> = events.concat().into_bytes();
    let stream_reads = reads(&stream, 7);

    // ~64 KiB of payload in chunks of 1–4 KiB, read in 1–4 KiB pieces.
    let payload: Vec<u8> = stream.iter().copied().cycle().take(64 * 1024).collect();
    let payload_pieces = reads(&payload, 11);
    let body64 = chunked(&payload_pieces);
    let body64_reads = reads(&body64, 13);

    // The stream as providers send it: one chunk per event.
    let event_pieces: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
    let body = chunked(&event_pieces);
    let body_reads = reads(&body, 17);

    // Sanity: the pipeline sees every event and the final usage.
    let (n, usage) = pipeline(&body_reads);
    assert_eq!(n, events.len() as u64);
    assert_eq!(usage.map(|u| u.output_tokens), Some(198));

    let mut g = c.benchmark_group("codec");

    g.throughput(Throughput::Bytes(body64.len() as u64));
    g.bench_function(BenchmarkId::new("chunked_decode", "64KiB"), |b| {
        b.iter(|| {
            let mut d = ChunkedDecoder::new();
            let mut sum = 0usize;
            for r in &body64_reads {
                let fed = d.feed(r, |p| sum += p.len());
                black_box(fed.ok());
            }
            black_box((sum, d.is_done()))
        })
    });

    g.throughput(Throughput::Bytes(stream.len() as u64));
    let mut framer = SseFramer::default();
    g.bench_function(BenchmarkId::new("sse_frame", "openai_200_events"), |b| {
        b.iter(|| {
            framer.reset();
            let mut n = 0usize;
            for r in &stream_reads {
                framer.feed(r, |ev| n += ev.data.len());
            }
            black_box(n)
        })
    });

    let mut owned: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    SseFramer::default().feed(&stream, |ev| owned.push((ev.event.to_vec(), ev.data.to_vec())));
    g.bench_function(BenchmarkId::new("usage_scan", "openai_200_events"), |b| {
        b.iter(|| {
            let mut s = UsageScanner::new(Dialect::OpenAi);
            for (event, data) in &owned {
                s.on_event(&SseEvent { event, data });
            }
            black_box((s.usage(), s.completed()))
        })
    });

    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function(BenchmarkId::new("pipeline", "dechunk_frame_usage"), |b| {
        b.iter(|| black_box(pipeline(&body_reads)))
    });
    g.finish();
}

/// De-chunk, frame and scan, as the proxy does for each streamed response.
fn pipeline(reads: &[&[u8]]) -> (u64, Option<sluice_contract::record::Usage>) {
    let mut dechunk = ChunkedDecoder::new();
    let mut framer = SseFramer::default();
    let mut scanner = UsageScanner::new(Dialect::OpenAi);
    for r in reads {
        let fed = dechunk.feed(r, |payload| {
            framer.feed(&r[payload], |ev| {
                scanner.on_event(ev);
            })
        });
        black_box(fed.ok());
    }
    (framer.events(), scanner.usage())
}

// What `criterion_group!`/`criterion_main!` expand to, written out because the
// macro's generated `pub fn` has no docs and the workspace denies that.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_codecs(&mut c);
    c.final_summary();
}
