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
        })
    }

    /// True when `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        if self.literal {
            return *self.pattern == *name;
        }
        // Iterative wildcard matching with one backtrack point (the last `*`):
        // linear in practice, O(|pattern| * |name|) at worst, no recursion.
        let p: &[u8] = self.pattern.as_bytes();
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
