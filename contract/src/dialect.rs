//! The one type for an API's wire shape.
//!
//! Requests are read (policy, counting), usage is found in responses, and
//! errors are written in the shape of the API the caller speaks; records
//! name it, and each upstream kind speaks one. Those are all this type.
//! The OpenAI Responses API and Gemini's Generative Language API join it as
//! variants of their own: their bodies, streams and usage differ from chat.

/// An API's wire shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI chat completions (and compatible providers). Its error shape,
    /// `{"error":{"message","type","code"}}`, is every OpenAI API's.
    OpenAi,
    /// Anthropic messages; errors `{"type":"error","error":{"type","message"}}`.
    Anthropic,
    /// OpenAI embeddings: `input` (a string, strings, or token ids) in, one
    /// JSON body with `usage.prompt_tokens` out; OpenAI's errors.
    OpenAiEmbeddings,
    /// OpenAI Responses: `input` (a string or items) and `instructions` in;
    /// streams of named events (`response.output_text.delta`, …) that end
    /// with `response.completed` carrying `response.usage`; OpenAI's errors.
    OpenAiResponses,
    /// Google's Generative Language API (Gemini): `contents[].parts[].text`
    /// and `systemInstruction` in, the model in the path; streams of
    /// data-only events each a `GenerateContentResponse`, the last with
    /// `finishReason` and the final `usageMetadata`; errors
    /// `{"error":{"code","message","status"}}`.
    Gemini,
}

impl Dialect {
    /// A short label, stable for metrics and records.
    pub fn label(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::OpenAiEmbeddings => "openai_embeddings",
            Dialect::OpenAiResponses => "openai_responses",
            Dialect::Gemini => "gemini",
        }
    }

    /// Whether errors, usage and streams take OpenAI's shapes.
    pub fn is_openai(self) -> bool {
        matches!(
            self,
            Dialect::OpenAi | Dialect::OpenAiEmbeddings | Dialect::OpenAiResponses
        )
    }
}
