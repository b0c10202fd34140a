use super::*;

const CORPUS: &str = include_str!("../../../../tests/python/tiktoken_parity/corpus.txt");
const EXPECTED: &str = include_str!("../../../../tests/python/tiktoken_parity/expected.json");

fn corpus() -> Vec<(&'static str, serde_json::Value)> {
    let expected: serde_json::Value = serde_json::from_str(EXPECTED).unwrap();
    let sep = expected["separator"].as_str().unwrap();
    let texts: Vec<&str> = CORPUS.strip_suffix(sep).unwrap().split(sep).collect();
    let entries = expected["entries"].as_array().unwrap();
    assert_eq!(
        texts.len(),
        entries.len(),
        "corpus.txt and expected.json disagree on the entry count"
    );
    texts.into_iter().zip(entries.iter().cloned()).collect()
}

#[test]
fn parity_with_python_tiktoken() {
    let mut checked = 0;
    for (i, (text, want)) in corpus().into_iter().enumerate() {
        assert_eq!(
            text.len() as u64,
            want["bytes"].as_u64().unwrap(),
            "entry {i}: corpus.txt was altered"
        );
        for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
            let want = want[enc.name()].as_u64().unwrap();
            assert_eq!(
                count(enc, text) as u64,
                want,
                "entry {i} ({:?}...) with {}",
                &text.get(..40),
                enc.name()
            );
            checked += 1;
        }
    }
    assert!(checked >= 80, "the corpus should have at least 40 entries");
}

#[test]
fn completion_counter_is_exact_on_the_corpus_whatever_the_deltas() {
    for (i, (text, want)) in corpus().into_iter().enumerate() {
        let want = want["o200k_base"].as_u64().unwrap();
        for step in [1, 3, 7, 64] {
            let mut c = CompletionCounter::new(Encoding::O200kBase);
            for d in char_chunks(text, step) {
                c.push(d);
            }
            assert_eq!(c.finish(), want, "entry {i}, deltas of {step} chars");
        }
    }
}

/// `text` in pieces of `n` characters.
fn char_chunks(text: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (k, (i, _)) in text.char_indices().enumerate() {
        if k > 0 && k % n == 0 {
            out.push(&text[start..i]);
            start = i;
        }
    }
    out.push(&text[start..]);
    out
}

#[test]
fn completion_counter_counts_as_it_goes_and_matches_a_long_text() {
    let para = "The gateway counts tokens while it streams, and never holds a byte back. ";
    let text = para.repeat(200);
    let mut c = CompletionCounter::new(Encoding::Cl100kBase);
    let mut seen_progress = false;
    for d in char_chunks(&text, 5) {
        c.push(d);
        seen_progress |= c.counted > 0;
        // The pending buffer stays small: it is cut at spaces.
        assert!(c.pending.len() < CompletionCounter::FLUSH_AT + 16);
    }
    assert!(seen_progress, "the counter should count before the end");
    let est = c.tokens();
    let total = c.finish();
    assert_eq!(total, count(Encoding::Cl100kBase, &text) as u64);
    assert!(est.abs_diff(total) < 64, "running estimate {est} vs {total}");
}

#[test]
fn completion_counter_without_spaces_is_forced_and_drifts_little() {
    let text = "中文没有空格所以只能强制切分。".repeat(400); // ~18 KB, no spaces
    let mut c = CompletionCounter::new(Encoding::O200kBase);
    for d in char_chunks(&text, 4) {
        c.push(d);
        assert!(c.pending.len() < CompletionCounter::FORCE_AT + 16);
    }
    let total = c.finish();
    let exact = count(Encoding::O200kBase, &text) as u64;
    let cuts = text.len() as u64 / CompletionCounter::FORCE_AT as u64 + 1;
    assert!(total.abs_diff(exact) <= 2 * cuts, "{total} vs {exact}");
}

#[test]
fn completion_counter_can_finish_twice_and_go_on() {
    let mut c = CompletionCounter::new(Encoding::O200kBase);
    c.push("hello world");
    let a = c.finish();
    assert_eq!(a, 2);
    assert_eq!(c.finish(), 2);
    c.push(" again");
    assert_eq!(c.finish(), 3);
}

/// Streams open with an empty delta (OpenAI's role chunk has `content: ""`)
/// and may send more; none of them may upset the counter.
#[test]
fn empty_and_tiny_deltas_count_as_nothing() {
    let mut c = CompletionCounter::new(Encoding::O200kBase);
    for d in ["", "", " ", "", "a", "", " b", ""] {
        c.push(d);
    }
    assert_eq!(c.finish(), count(Encoding::O200kBase, " a b") as u64);
    c.push("");
    assert_eq!(c.finish(), count(Encoding::O200kBase, " a b") as u64);
}

#[test]
fn encoding_for_known_and_unknown_models() {
    use Encoding::*;
    for m in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-2024-08-06",
        "chatgpt-4o-latest",
        "gpt-4.1",
        "gpt-4.1-nano",
    ] {
        assert_eq!(encoding_for(m), (O200kBase, false), "{m}");
    }
    for m in [
        "gpt-5",
        "gpt-5-mini",
        "gpt-4.5-preview",
        "o1",
        "o1-mini",
        "o3",
        "o3-pro",
        "o4-mini",
        "gpt-oss-20b",
    ] {
        assert_eq!(encoding_for(m), (O200kBase, false), "{m}");
    }
    for m in [
        "gpt-4",
        "gpt-4-turbo",
        "gpt-4-0613",
        "gpt-4-32k",
        "gpt-3.5-turbo",
        "gpt-35-turbo",
    ] {
        assert_eq!(encoding_for(m), (Cl100kBase, false), "{m}");
    }
    for m in ["text-embedding-ada-002", "text-embedding-3-small", "openai/gpt-4"] {
        assert_eq!(encoding_for(m), (Cl100kBase, false), "{m}");
    }
    assert_eq!(encoding_for("openai/gpt-4o"), (O200kBase, false));
    for m in [
        "claude-sonnet-4-5",
        "gemini-2.5-pro",
        "llama-3",
        "o1x",
        "gpt-4x",
        "",
        "anthropic/claude-3",
    ] {
        assert_eq!(encoding_for(m), (O200kBase, true), "{m}");
    }
    // A foreign router's copy of an OpenAI model: right encoding, but unverified.
    assert_eq!(encoding_for("azure/gpt-4"), (Cl100kBase, true));
}

#[test]
fn special_tokens_are_plain_text() {
    let n = count(Encoding::Cl100kBase, "<|endoftext|>");
    assert!(n > 1, "the ordinary encoder must not emit the special token: {n}");
}

#[test]
fn huge_whitespace_runs_do_not_panic() {
    // tiktoken's pre-split regex fails on ~1M whitespace characters.
    let text = format!("a{}b", " ".repeat(1_500_000));
    let n = count(Encoding::O200kBase, &text);
    // Counted for real: more than one token per 1,024 spaces, and far fewer
    // than the one-per-four-bytes fallback would say.
    assert!(n > 1_500_000 / 1024 && n < 1_500_000 / 8, "{n}");
    let tabs = "\t".repeat(1_200_000);
    assert!(count(Encoding::O200kBase, &tabs) > 0);
}

#[test]
fn cutting_long_runs_changes_little() {
    // Just above the cut size: compare with the uncut count.
    let text = format!("x{}y", " ".repeat(MAX_WS_RUN + 10));
    let bpe = bpe(Encoding::O200kBase).unwrap();
    let uncut = bpe.count(&text);
    assert!(count(Encoding::O200kBase, &text).abs_diff(uncut) <= 2);
}

#[test]
fn count_all_sums() {
    let n = count_all(Encoding::O200kBase, ["hello world", "", "hello"]);
    assert_eq!(n, 3);
    assert!(warm_up());
}

#[test]
fn remembered_pieces_count_as_fresh_ones() {
    // More distinct pieces than the cache holds, twice over: every count
    // goes through hits, misses and a cache that starts over, and must
    // equal the encoder's own.
    let text: String = (0..3 * PieceCache::MAX_ENTRIES)
        .map(|i| format!(" w{i:x}"))
        .collect();
    let bpe = bpe(Encoding::O200kBase).unwrap();
    let direct = bpe.count(text.as_str());
    for _ in 0..2 {
        assert_eq!(count(Encoding::O200kBase, &text), direct);
    }
    PIECES.with_borrow(|c| assert!(c[Encoding::O200kBase as usize].map.len() <= PieceCache::MAX_ENTRIES));
    // The two encodings never share an entry: "gpt-4" style text differs.
    let code = "    for (int i = 0; i < n; i++) {\n        total += values[i];\n    }\n";
    for enc in [Encoding::O200kBase, Encoding::Cl100kBase, Encoding::O200kBase] {
        assert_eq!(count(enc, code), bpe_count(enc, code), "{enc:?}");
    }
}

fn bpe_count(enc: Encoding, text: &str) -> usize {
    bpe(enc).unwrap().count(text)
}

#[test]
fn remembered_prompts_count_as_fresh_ones() {
    let system = "You are a careful assistant. ".repeat(20);
    let history = "User: what is the capital of France?\nAssistant: Paris.\n".repeat(8);
    let texts = [system.as_str(), history.as_str(), "and of Italy?"];
    let fresh: u64 = texts
        .iter()
        .map(|t| bpe_count(Encoding::O200kBase, t) as u64)
        .sum();
    for _ in 0..3 {
        assert_eq!(count_all(Encoding::O200kBase, texts), fresh);
    }
    // Per encoding: the same text counted with cl100k is not served o200k's count.
    let cl: u64 = texts
        .iter()
        .map(|t| bpe_count(Encoding::Cl100kBase, t) as u64)
        .sum();
    assert_eq!(count_all(Encoding::Cl100kBase, texts), cl);
    // Many distinct texts: the cache starts over and stays exact.
    for i in 0..(TextCache::MAX_BYTES / 300) + 10 {
        let t = format!("{i:08} {}", "filler words here ".repeat(16));
        assert_eq!(
            count_all(Encoding::O200kBase, [t.as_str()]),
            bpe_count(Encoding::O200kBase, &t) as u64
        );
    }
    TEXTS.with_borrow(|c| assert!(c[0].bytes <= TextCache::MAX_BYTES));
}

/// Counting by segments (with their memory) equals the encoder's count of
/// the whole text, on generated text that puts every kind of whitespace,
/// letter case, digit, apostrophe, mark and script next to spaces.
#[test]
fn counts_add_up_across_safe_cuts() {
    const PARTS: &[&str] = &[
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\u{a0}",
        "\u{3000}",
        "\u{2003}",
        "a",
        "Hello",
        "WORLD",
        "'s",
        "'LL",
        "'re",
        "123",
        "4567",
        ".",
        ",",
        "!?",
        "/",
        "(",
        "\"",
        "é",
        "\u{301}",
        "世界",
        "日本語",
        "🚀",
        "Ω",
        "ǅ",
        "ʰ",
        "٣",
        "-",
        "_",
        "::",
        "<|endoftext|>",
    ];
    let mut next = crate::testing::xorshift(0x2545_F491_4F6C_DD1Du64);
    for round in 0..6_000 {
        let n = 1 + (next() % 24) as usize;
        let text: String = (0..n)
            .map(|_| PARTS[(next() % PARTS.len() as u64) as usize])
            .collect();
        let enc = if round % 2 == 0 {
            Encoding::O200kBase
        } else {
            Encoding::Cl100kBase
        };
        assert_eq!(count(enc, &text), bpe_count(enc, &text), "{enc:?} {text:?}");
    }
    // The segments cover the text, in order, and each but the first starts
    // at a safe cut (not after whitespace, ideographic space included).
    let text = "a  b\u{3000} c, d\n e";
    let segs: Vec<&str> = segments(text).collect();
    assert_eq!(segs, ["a", "  b\u{3000} c,", " d\n e"]);
    assert_eq!(segments("").count(), 0);
    assert_eq!(segments(" x").collect::<Vec<_>>(), [" x"]);
}
