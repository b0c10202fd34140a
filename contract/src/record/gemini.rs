//! Gemini's methods as API routes: `models/{model}:{method}`, the model in
//! the path rather than the body.

use super::ApiRoute;

/// Gemini's methods, by the name after the model in the path.
const METHODS: [(&str, ApiRoute); 5] = [
    ("generateContent", ApiRoute::GeminiGenerate),
    ("streamGenerateContent", ApiRoute::GeminiStream),
    ("countTokens", ApiRoute::GeminiCountTokens),
    ("embedContent", ApiRoute::GeminiEmbed),
    ("batchEmbedContents", ApiRoute::GeminiBatchEmbed),
];

impl ApiRoute {
    /// The Gemini method named `name` (`generateContent`, …).
    pub fn of_gemini_method(name: &[u8]) -> Option<ApiRoute> {
        METHODS
            .iter()
            .find(|(m, _)| m.as_bytes() == name)
            .map(|&(_, r)| r)
    }

    /// The Gemini method this route calls; `None` for the other APIs.
    pub fn gemini_method(self) -> Option<&'static str> {
        METHODS.iter().find(|(_, r)| *r == self).map(|&(m, _)| m)
    }

    /// A request the provider does not charge for (token counting).
    pub fn is_free(self) -> bool {
        matches!(self, ApiRoute::CountTokens | ApiRoute::GeminiCountTokens)
    }

    /// Whether the API generates output tokens (not counting, not
    /// embeddings).
    pub fn generates(self) -> bool {
        !self.is_free()
            && !matches!(
                self,
                ApiRoute::Embeddings | ApiRoute::GeminiEmbed | ApiRoute::GeminiBatchEmbed
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip() {
        for (name, route) in METHODS {
            assert_eq!(ApiRoute::of_gemini_method(name.as_bytes()), Some(route));
            assert_eq!(route.gemini_method(), Some(name));
            assert_eq!(route.dialect(), Some(crate::dialect::Dialect::Gemini));
        }
        assert_eq!(ApiRoute::of_gemini_method(b"generatecontent"), None);
        assert_eq!(ApiRoute::ChatCompletions.gemini_method(), None);
        assert!(ApiRoute::GeminiCountTokens.is_free() && !ApiRoute::GeminiGenerate.is_free());
        assert!(!ApiRoute::GeminiBatchEmbed.generates() && ApiRoute::GeminiStream.generates());
    }
}
