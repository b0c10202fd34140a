//! What the unit tests share.

/// A xorshift64 sequence from `seed` (non-zero): deterministic inputs for
/// the generated and differential tests.
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
