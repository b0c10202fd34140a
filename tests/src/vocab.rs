//! The mock's completion text, reproduced from `loadtest/src/mock/text.rs`:
//! token `i` of every completion is `VOCAB[i % VOCAB.len()]`.

/// The mock's vocabulary, in order (multi-byte UTF-8, a quote and a newline
/// on purpose).
pub const VOCAB: &[&str] = &[
    " Hello",
    " héllo",
    " 世界",
    " 🚀",
    " naïve",
    " Ω",
    " stream",
    " café",
    " 日本語",
    ",",
    " über",
    " \"quoted\"",
    " ☃",
    " señor",
    " 💡",
    ".\n",
];

/// The text of an `n`-token completion.
pub fn text(n: usize) -> String {
    (0..n).map(|i| VOCAB[i % VOCAB.len()]).collect()
}
