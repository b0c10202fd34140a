//! Model-name globs: `*` matches any run of characters (none included), `?`
//! exactly one character; everything else matches itself, case-sensitively.
//!
//! `[`, `]`, `{`, `}` and `\` are refused rather than taken literally, so that
//! a richer syntax can be added later without silently changing what an
//! existing policy means.

/// A compiled glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: Box<str>,
    literal: bool,
    /// Only `*` is special (the usual `gpt-4o*`, `*-mini`, `claude-*-4-*`).
    stars_only: bool,
}

impl Glob {
    /// Parses `pattern`, or says what is wrong with it.
    pub(crate) fn parse(pattern: &str) -> Result<Glob, &'static str> {
        if pattern.is_empty() {
            return Err("a glob cannot be empty");
        }
        if pattern.chars().any(|c| matches!(c, '[' | ']' | '{' | '}' | '\\')) {
            return Err(
                "only `*` and `?` are special in a glob; `[`, `]`, `{`, `}` and `\\` are not allowed",
            );
        }
        if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("a glob cannot contain whitespace or control characters");
        }
        let literal = !pattern.contains(['*', '?']);
        Ok(Glob {
            pattern: pattern.into(),
            literal,
            stars_only: !pattern.contains('?'),
        })
    }

    /// True when `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        if self.literal {
            return *self.pattern == *name;
        }
        if self.stars_only {
            return stars_match(&self.pattern, name);
        }
        wildcard_match(&self.pattern, name)
    }
}

/// General matching, `?` included.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    // Iterative wildcard matching with one backtrack point (the last `*`):
    // linear in practice, O(|pattern| * |name|) at worst, no recursion.
    let p: &[u8] = pattern.as_bytes();
    let t: &[u8] = name.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(b'?') => {
                pi += 1;
                ti += char_len(t[ti]);
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry.
                Some((sp, st)) => {
                    let st = st + char_len(t[st]);
                    star = Some((sp, st));
                    pi = sp + 1;
                    ti = st;
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// Matching for a pattern whose only wildcard is `*`: the text before the
/// first star is a prefix, the text after the last a suffix, and the parts
/// between them occur in order in what is left; taking each at its first
/// occurrence leaves the most room for the rest, so that is exact.
fn stars_match(pattern: &str, name: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == name;
    };
    let (middle, tail) = rest.rsplit_once('*').unwrap_or(("", rest));
    let Some(mut left) = name.strip_prefix(head).and_then(|n| n.strip_suffix(tail)) else {
        return false;
    };
    for part in middle.split('*').filter(|p| !p.is_empty()) {
        match left.find(part) {
            Some(at) => left = &left[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Length of the UTF-8 sequence a lead byte starts (1 for a stray byte, which
/// cannot occur in a `&str` at the positions this is called for).
fn char_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The star-only shortcut agrees with the general matcher on every
    /// pattern and name drawn from a small alphabet (so that parts repeat
    /// and overlap).
    #[test]
    fn stars_agree_with_the_general_matcher() {
        let mut next = crate::testing::xorshift(0x6A09_E667_F3BC_C908u64);
        let alphabet = ["a", "b", "-", "é", "*"];
        let draw = |next: &mut dyn FnMut() -> u64, stars: bool| -> String {
            let n = (next() % 7) as usize;
            let letters = if stars { 5 } else { 4 };
            (0..n).map(|_| alphabet[(next() % letters) as usize]).collect()
        };
        let mut matched = 0;
        for _ in 0..100_000 {
            let pattern = draw(&mut next, true);
            let name = draw(&mut next, false);
            let want = wildcard_match(&pattern, &name);
            assert_eq!(stars_match(&pattern, &name), want, "{pattern:?} on {name:?}");
            matched += usize::from(want);
        }
        assert!(matched > 5_000, "only {matched} matches");
    }
}
