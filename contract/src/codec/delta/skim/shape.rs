//! The shape memo: most events of a stream are the previous one with
//! another text.
//!
//! A provider's text deltas differ only in the text: OpenAI repeats id,
//! model, index and the nulls after the delta in every chunk, Anthropic its
//! type and index. So when an event read whole carried exactly one text, its
//! bytes are kept with the place of that text's string token; a later event
//! that has the same bytes before the token's opening quote and the same
//! bytes after its closing quote, and a valid string token between them, is
//! that event with one string token replaced by another. Its reading is the
//! same but for that token: the reader only ever looks at a string value to
//! see that it is a string, and a key's place, not its bytes, says it is a
//! key. Such an event costs two comparisons and one string scan. (Its
//! UTF-8 is checked once, where the text is taken out.)

use super::Dialect;
use crate::codec::delta::token_replaced;
use std::ops::Range;

/// The last event read whole with exactly one text.
#[derive(Debug, Default)]
pub(in crate::codec::delta) struct Shape {
    /// Whose reader read it.
    dialect: Option<Dialect>,
    bytes: Vec<u8>,
    /// Where its text's string token lies (quotes included).
    text: Range<usize>,
}

impl Shape {
    /// Longer events are not kept.
    pub(super) const MAX: usize = 2048;

    /// When `data` is the kept event with another string token in place of
    /// its text, sets `texts` to that token's span and returns whether the
    /// token has escapes. Its UTF-8 is not checked: the caller turns it
    /// into text, which checks it anyway.
    pub(super) fn fits(&self, dialect: Dialect, data: &[u8], texts: &mut Vec<Range<usize>>) -> Option<bool> {
        if self.dialect != Some(dialect) {
            return None;
        }
        let (close, escaped) = token_replaced(&self.bytes, self.text.clone(), data)?;
        // All of it: nothing may follow the kept event's last byte.
        if close + (self.bytes.len() - self.text.end) != data.len() {
            return None;
        }
        texts.clear();
        texts.push(self.text.start..close);
        Some(escaped)
    }

    /// After `data` was read whole into `texts`: keeps it when it carried
    /// exactly one text (an event with none or several leaves the last
    /// shape in place: it is still a valid one).
    pub(super) fn learn(&mut self, dialect: Dialect, data: &[u8], texts: &[Range<usize>]) {
        if let [one] = texts {
            if data.len() <= Self::MAX {
                self.dialect = Some(dialect);
                self.bytes.clear();
                self.bytes.extend_from_slice(data);
                self.text = one.clone();
            }
        }
    }

    /// The kept event's bytes.
    #[cfg(test)]
    pub(super) fn kept(&self) -> &[u8] {
        &self.bytes
    }
}
