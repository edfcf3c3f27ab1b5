//! Anthropic Messages API (`POST {base}/v1/messages`): `tools` with `input_schema`,
//! `tool_use` / `tool_result` content blocks, and prompt caching with `cache_control`
//! breakpoints on the system prompt and on the last tool definition.

use serde_json::{json, Map, Value};

use crate::llm::error::LlmError;
use crate::llm::http::{
    classify_common, error_message, join_url, plain, secret, HttpCall, HttpFailure, Wire,
};
use crate::llm::types::{
    system_text, ChatRequest, ChatResponse, Part, Role, StopReason, ToolCall, Usage,
};
use crate::llm::ApiKey;

/// Default endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` header value this client speaks.
pub const API_VERSION: &str = "2023-06-01";

/// Anthropic configuration.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// Model id, e.g. `claude-sonnet-4-20250514`.
    pub model: String,
    /// API key (sent as `x-api-key`).
    pub api_key: ApiKey,
    /// Base URL (no trailing `/v1`).
    pub base_url: String,
    /// Put `cache_control: {type: ephemeral}` on the system prompt and the last tool.
    pub prompt_caching: bool,
}

impl AnthropicConfig {
    /// Defaults: public endpoint, prompt caching on.
    pub fn new(model: impl Into<String>, api_key: ApiKey) -> AnthropicConfig {
        AnthropicConfig {
            model: model.into(),
            api_key,
            base_url: DEFAULT_BASE_URL.to_string(),
            prompt_caching: true,
        }
    }
}

pub(crate) struct AnthropicWire {
    pub config: AnthropicConfig,
}

const NAME: &str = "anthropic";

fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
}

impl AnthropicWire {
    fn block(part: &Part) -> Value {
        match part {
            Part::Text { text } => json!({"type": "text", "text": text}),
            Part::ToolCall(call) => json!({
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                // The wire requires an object; a malformed call is echoed as `{}` (the error
                // tool result that follows tells the model what was wrong).
                "input": if call.arguments.is_object() { call.arguments.clone() } else { json!({}) },
            }),
            Part::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                let mut b =
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
                if *is_error {
                    b["is_error"] = json!(true);
                }
                b
            }
        }
    }
}

impl Wire for AnthropicWire {
    fn name(&self) -> &str {
        NAME
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    fn build(&self, req: &ChatRequest) -> Result<HttpCall, LlmError> {
        let caching = self.config.prompt_caching;
        // Wire roles: user (user text and tool results) and assistant. Consecutive messages
        // of one wire role are merged into one.
        let mut messages: Vec<Value> = Vec::new();
        for m in &req.messages {
            let role = match m.role {
                Role::System => continue,
                Role::User | Role::Tool => "user",
                Role::Assistant => "assistant",
            };
            // The API rejects empty text blocks; an empty text part carries nothing anyway.
            let blocks: Vec<Value> = m
                .content
                .iter()
                .filter(|p| !matches!(p, Part::Text { text } if text.is_empty()))
                .map(Self::block)
                .collect();
            if blocks.is_empty() {
                continue;
            }
            match messages.last_mut() {
                Some(last) if last["role"] == role => {
                    if let Some(arr) = last["content"].as_array_mut() {
                        arr.extend(blocks);
                    }
                }
                _ => messages.push(json!({"role": role, "content": blocks})),
            }
        }
        let mut body = Map::new();
        body.insert("model".into(), json!(self.config.model));
        body.insert("max_tokens".into(), json!(req.max_tokens));
        if let Some(system) = system_text(req) {
            let mut block = json!({"type": "text", "text": system});
            if caching {
                block["cache_control"] = ephemeral();
            }
            body.insert("system".into(), json!([block]));
        }
        body.insert("messages".into(), Value::Array(messages));
        if !req.tools.is_empty() {
            let n = req.tools.len();
            let tools: Vec<Value> = req
                .tools
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let mut v = json!({
                        "name": t.name,
                        "description": t.description,
                        "input_schema": t.input_schema,
                    });
                    if caching && i + 1 == n {
                        v["cache_control"] = ephemeral();
                    }
                    v
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        if let Some(t) = req.temperature {
            body.insert(
                "temperature".into(),
                crate::llm::types::temperature_value(t),
            );
        }
        Ok(HttpCall {
            url: join_url(&self.config.base_url, "/v1/messages"),
            headers: vec![
                secret("x-api-key", self.config.api_key.expose()),
                plain("anthropic-version", API_VERSION),
                plain("content-type", "application/json"),
            ],
            body: Value::Object(body),
        })
    }

    fn parse(&self, body: &Value) -> Result<ChatResponse, LlmError> {
        let malformed = |detail: String| LlmError::Malformed {
            provider: NAME.to_string(),
            detail,
        };
        let content = match body.get("content") {
            Some(Value::Array(a)) => a.as_slice(),
            Some(Value::Null) | None => &[],
            Some(_) => return Err(malformed("`content` is not an array".into())),
        };
        let mut parts = Vec::new();
        for block in content {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                    parts.push(Part::text(text));
                }
                Some("tool_use") => {
                    let id = block.get("id").and_then(Value::as_str);
                    let name = block.get("name").and_then(Value::as_str);
                    let (Some(id), Some(name)) = (id, name) else {
                        return Err(malformed("a `tool_use` block lacks `id` or `name`".into()));
                    };
                    parts.push(Part::ToolCall(ToolCall {
                        id: id.to_string(),
                        name: name.to_string(),
                        arguments: block.get("input").cloned().unwrap_or(Value::Null),
                    }));
                }
                // thinking, redacted_thinking, server tool blocks: not used by this client.
                _ => {}
            }
        }
        let stop_reason = match body.get("stop_reason").and_then(Value::as_str) {
            Some("end_turn") | Some("stop_sequence") | None => StopReason::EndTurn,
            Some("tool_use") => StopReason::ToolUse,
            Some("max_tokens") => StopReason::MaxTokens,
            Some(other) => StopReason::Other(other.to_string()),
        };
        let u = |k: &str| {
            body.pointer(&format!("/usage/{k}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let (plain_in, cache_read, cache_write) = (
            u("input_tokens"),
            u("cache_read_input_tokens"),
            u("cache_creation_input_tokens"),
        );
        Ok(ChatResponse {
            parts,
            stop_reason,
            usage: Usage {
                input_tokens: plain_in + cache_read + cache_write,
                output_tokens: u("output_tokens"),
                cached_input_tokens: cache_read,
                cache_write_input_tokens: cache_write,
            },
        })
    }

    fn classify(&self, failure: &HttpFailure) -> LlmError {
        let kind = serde_json::from_str::<Value>(&failure.body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/type")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        classify_common(
            NAME,
            failure,
            error_message(&failure.body),
            kind == "overloaded_error" || failure.status == 529,
            kind == "authentication_error" || kind == "permission_error",
        )
    }
}
