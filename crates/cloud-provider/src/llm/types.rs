//! The neutral message format: what the investigator speaks, whatever the provider.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::llm::error::LlmError;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions (prefer [`ChatRequest::system`]; system messages in the list are merged into it).
    System,
    /// The human, or the investigator speaking for them.
    User,
    /// The model.
    Assistant,
    /// Results of tool calls, answering the previous assistant message.
    Tool,
}

/// A tool call requested by the model.
///
/// `arguments` is the JSON object the model produced. When the model produced something that
/// is not a JSON object (for example a truncated JSON string), the provider keeps the raw text
/// as `Value::String` so the exchange can be replayed faithfully; [`ToolCall::arguments_object`]
/// then returns [`LlmError::MalformedToolCall`], whose message can be fed back to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-given id (synthesized as `ghost-call-N` when the provider gives none).
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments (a JSON object when well formed).
    pub arguments: Value,
}

impl ToolCall {
    /// The arguments as a JSON object, or a typed error describing why they are unusable.
    pub fn arguments_object(&self) -> Result<&Map<String, Value>, LlmError> {
        match &self.arguments {
            Value::Object(map) => Ok(map),
            Value::String(raw) => Err(LlmError::MalformedToolCall {
                call_id: self.id.clone(),
                name: self.name.clone(),
                detail: match serde_json::from_str::<Value>(raw) {
                    Err(e) => format!("the arguments are not valid JSON ({e})"),
                    Ok(_) => "the arguments are JSON but not a JSON object".to_string(),
                },
            }),
            other => Err(LlmError::MalformedToolCall {
                call_id: self.id.clone(),
                name: self.name.clone(),
                detail: format!(
                    "the arguments are a JSON {} instead of a JSON object",
                    json_kind(other)
                ),
            }),
        }
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call (assistant messages only).
    ToolCall(ToolCall),
    /// The result of a tool call (tool messages only).
    ToolResult {
        /// The id of the [`ToolCall`] this answers.
        call_id: String,
        /// What the tool returned (compact text or JSON text).
        content: String,
        /// True when the tool failed or refused; the model sees it as an error.
        is_error: bool,
    },
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Part {
        Part::Text { text: text.into() }
    }
}

/// A message in the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Content, in order.
    pub content: Vec<Part>,
}

impl Message {
    /// A user message holding one text part.
    pub fn user(text: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: vec![Part::text(text)],
        }
    }

    /// An assistant message holding one text part.
    pub fn assistant(text: impl Into<String>) -> Message {
        Message {
            role: Role::Assistant,
            content: vec![Part::text(text)],
        }
    }

    /// The concatenated text parts (joined with newlines).
    pub fn text(&self) -> String {
        join_text(&self.content)
    }
}

pub(crate) fn join_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name (letters, digits, `_` and `-`; all three providers accept that alphabet).
    pub name: String,
    /// What it does and when to use it.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
}

/// One request to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// System prompt (cached where the provider supports prompt caching).
    pub system: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools offered.
    pub tools: Vec<ToolSpec>,
    /// Upper bound on output tokens.
    pub max_tokens: u32,
    /// Sampling temperature (provider default when `None`).
    pub temperature: Option<f32>,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A final answer (or a natural pause).
    EndTurn,
    /// The model wants tool results.
    ToolUse,
    /// Output hit `max_tokens`.
    MaxTokens,
    /// The provider reported that the model produced a tool call it could not parse
    /// (Gemini's `MALFORMED_FUNCTION_CALL`); no call is in the parts.
    MalformedToolCall,
    /// Anything else, as the provider named it (e.g. `SAFETY`, `content_filter`).
    Other(String),
}

/// Token counts of one call (or a sum of calls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All input tokens, cached ones included.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens served from the provider's prompt cache (a subset of `input_tokens`).
    pub cached_input_tokens: u64,
    /// Input tokens written to the prompt cache (Anthropic; a subset of `input_tokens`).
    pub cache_write_input_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cached_input_tokens += o.cached_input_tokens;
        self.cache_write_input_tokens += o.cache_write_input_tokens;
    }
}

/// A model's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Text and tool calls, in the order the model produced them.
    pub parts: Vec<Part>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Tokens of this call.
    pub usage: Usage,
}

impl ChatResponse {
    /// The tool calls in the reply.
    pub fn tool_calls(&self) -> Vec<&ToolCall> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::ToolCall(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// The concatenated text parts.
    pub fn text(&self) -> String {
        join_text(&self.parts)
    }

    /// True when the reply holds neither a tool call nor non-blank text.
    pub fn is_empty(&self) -> bool {
        self.stop_reason != StopReason::MalformedToolCall
            && !self.parts.iter().any(|p| match p {
                Part::Text { text } => !text.trim().is_empty(),
                _ => true,
            })
    }

    /// The reply as an assistant message for the conversation history.
    pub fn to_message(&self) -> Message {
        Message {
            role: Role::Assistant,
            content: self.parts.clone(),
        }
    }
}

/// Collects the system text: `request.system` followed by any `Role::System` messages.
pub(crate) fn system_text(req: &ChatRequest) -> Option<String> {
    let mut pieces: Vec<String> = Vec::new();
    if let Some(s) = &req.system {
        if !s.is_empty() {
            pieces.push(s.clone());
        }
    }
    for m in req.messages.iter().filter(|m| m.role == Role::System) {
        let t = m.text();
        if !t.is_empty() {
            pieces.push(t);
        }
    }
    if pieces.is_empty() {
        None
    } else {
        Some(pieces.join("\n\n"))
    }
}

/// A temperature as JSON with its shortest decimal form (`0.2`, not `0.20000000298023224`).
pub(crate) fn temperature_value(t: f32) -> serde_json::Value {
    format!("{t}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}
