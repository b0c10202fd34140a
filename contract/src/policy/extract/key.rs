//! The object keys the extraction pass reads.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// Every object key the gateway reads or writes, at any level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Key {
    Model,
    Stream,
    StreamOptions,
    IncludeUsage,
    MaxTokens,
    MaxCompletionTokens,
    Messages,
    Tools,
    Functions,
    System,
    Content,
    Name,
    ToolCalls,
    FunctionCall,
    Function,
    Arguments,
    Description,
    Text,
    Input,
    N,
    Instructions,
    MaxOutputTokens,
    Output,
    /// A media part's payload: `image_url`, `input_audio`, `file`,
    /// `file_data` (OpenAI), `source` (Anthropic images and documents).
    Media,
    Other,
}

impl Key {
    pub(super) fn of(s: &str) -> Key {
        match s {
            "model" => Key::Model,
            "stream" => Key::Stream,
            "stream_options" => Key::StreamOptions,
            "include_usage" => Key::IncludeUsage,
            "max_tokens" => Key::MaxTokens,
            "max_completion_tokens" => Key::MaxCompletionTokens,
            "messages" => Key::Messages,
            "tools" => Key::Tools,
            "functions" => Key::Functions,
            "system" => Key::System,
            "content" => Key::Content,
            "name" => Key::Name,
            "tool_calls" => Key::ToolCalls,
            "function_call" => Key::FunctionCall,
            "function" => Key::Function,
            "arguments" => Key::Arguments,
            "description" => Key::Description,
            "text" => Key::Text,
            "input" => Key::Input,
            "n" => Key::N,
            "instructions" => Key::Instructions,
            "max_output_tokens" => Key::MaxOutputTokens,
            "output" => Key::Output,
            "image_url" | "input_audio" | "file" | "file_data" | "file_id" | "file_url" | "source" => {
                Key::Media
            }
            _ => Key::Other,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Key::Model => "model",
            Key::Stream => "stream",
            Key::StreamOptions => "stream_options",
            Key::IncludeUsage => "include_usage",
            Key::MaxTokens => "max_tokens",
            Key::MaxCompletionTokens => "max_completion_tokens",
            Key::Messages => "messages",
            Key::Tools => "tools",
            Key::Functions => "functions",
            Key::System => "system",
            Key::Content => "content",
            Key::Name => "name",
            Key::ToolCalls => "tool_calls",
            Key::FunctionCall => "function_call",
            Key::Function => "function",
            Key::Arguments => "arguments",
            Key::Description => "description",
            Key::Text => "text",
            Key::Input => "input",
            Key::N => "n",
            Key::Instructions => "instructions",
            Key::MaxOutputTokens => "max_output_tokens",
            Key::Output => "output",
            Key::Media => "media",
            Key::Other => "other",
        }
    }
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key::of(v))
            }
        }
        d.deserialize_identifier(V)
    }
}
