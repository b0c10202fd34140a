//! Pieces the criterion benchmarks in `benches/` share: a deterministic
//! source of variety, and the cutting of a response into reads.

/// A tiny deterministic PRNG (xorshift64), so every run measures the same bytes.
pub struct Rng(pub u64);

impl Rng {
    /// The next number, below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Cuts `data` into reads of 1–4 KiB, as they come off a socket.
pub fn reads(data: &[u8], seed: u64) -> Vec<&[u8]> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (1024 + rng.below(3 * 1024 + 1) as usize).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}
