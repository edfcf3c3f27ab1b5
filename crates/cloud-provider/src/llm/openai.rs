//! OpenAI Chat Completions (`POST {base}/chat/completions`) and the endpoints that speak it:
//! OpenAI, Azure OpenAI (deployment URL, `api-key` header, `api-version` query), Ollama,
//! vLLM and llama.cpp servers. Tools are `{"type": "function", "function": {...}}`, calls
//! come back in `message.tool_calls` with `arguments` as a JSON *string*, and results go
//! back as `role: "tool"` messages with `tool_call_id`.

use serde_json::{json, Map, Value};

use crate::llm::error::LlmError;
use crate::llm::http::{
    classify_common, error_message, join_url, plain, secret, HttpCall, HttpFailure, Wire,
};
use crate::llm::types::{
    join_text, system_text, ChatRequest, ChatResponse, Part, Role, StopReason, ToolCall, Usage,
};
use crate::llm::ApiKey;

/// Default endpoint (OpenAI).
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Default Azure OpenAI data-plane API version.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// Which flavour of the API to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenAiFlavor {
    /// `{base}/chat/completions`, `Authorization: Bearer KEY` (no header without a key, as
    /// local servers such as Ollama need none).
    Standard,
    /// `{base}/openai/deployments/{deployment}/chat/completions?api-version=V`, `api-key: KEY`.
    Azure {
        /// Deployment name.
        deployment: String,
        /// `api-version` query value.
        api_version: String,
    },
}

/// OpenAI-compatible configuration.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Model id (sent as `model`; Azure routes by deployment but accepts it).
    pub model: String,
    /// API key, if the endpoint needs one.
    pub api_key: Option<ApiKey>,
    /// Base URL: `https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama), or the
    /// Azure resource endpoint `https://NAME.openai.azure.com`.
    pub base_url: String,
    /// Standard or Azure.
    pub flavor: OpenAiFlavor,
    /// Send `max_completion_tokens` instead of `max_tokens` (OpenAI reasoning models need it;
    /// many compatible servers only know `max_tokens`).
    pub use_max_completion_tokens: bool,
}

impl OpenAiConfig {
    /// OpenAI defaults.
    pub fn new(model: impl Into<String>, api_key: Option<ApiKey>) -> OpenAiConfig {
        OpenAiConfig {
            model: model.into(),
            api_key,
            base_url: DEFAULT_BASE_URL.to_string(),
            flavor: OpenAiFlavor::Standard,
            use_max_completion_tokens: false,
        }
    }

    /// Azure OpenAI: `endpoint` is `https://RESOURCE.openai.azure.com`.
    pub fn azure(
        endpoint: impl Into<String>,
        deployment: impl Into<String>,
        model: impl Into<String>,
        api_key: ApiKey,
    ) -> OpenAiConfig {
        OpenAiConfig {
            model: model.into(),
            api_key: Some(api_key),
            base_url: endpoint.into(),
            flavor: OpenAiFlavor::Azure {
                deployment: deployment.into(),
                api_version: DEFAULT_AZURE_API_VERSION.to_string(),
            },
            use_max_completion_tokens: false,
        }
    }
}

pub(crate) struct OpenAiWire {
    pub config: OpenAiConfig,
    pub name: String,
}

fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Wire for OpenAiWire {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    fn build(&self, req: &ChatRequest) -> Result<HttpCall, LlmError> {
        let mut messages: Vec<Value> = Vec::new();
        if let Some(system) = system_text(req) {
            messages.push(json!({"role": "system", "content": system}));
        }
        for m in &req.messages {
            match m.role {
                Role::System => {}
                Role::User => {
                    let text = join_text(&m.content);
                    let has_results = m
                        .content
                        .iter()
                        .any(|p| matches!(p, Part::ToolResult { .. }));
                    if !text.is_empty() || !has_results {
                        messages.push(json!({"role": "user", "content": text}));
                    }
                    // Tool results misplaced in a user message still go out as tool messages.
                    push_tool_results(&mut messages, &m.content);
                }
                Role::Tool => push_tool_results(&mut messages, &m.content),
                Role::Assistant => {
                    let text = join_text(&m.content);
                    let calls: Vec<Value> = m
                        .content
                        .iter()
                        .filter_map(|p| match p {
                            Part::ToolCall(c) => Some(json!({
                                "id": c.id,
                                "type": "function",
                                "function": {
                                    "name": c.name,
                                    "arguments": match &c.arguments {
                                        Value::String(raw) => raw.clone(),
                                        other => other.to_string(),
                                    },
                                },
                            })),
                            _ => None,
                        })
                        .collect();
                    let mut msg = json!({
                        "role": "assistant",
                        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
                    });
                    if !calls.is_empty() {
                        msg["tool_calls"] = Value::Array(calls);
                    }
                    messages.push(msg);
                }
            }
        }
        let mut body = Map::new();
        body.insert("model".into(), json!(self.config.model));
        body.insert("messages".into(), Value::Array(messages));
        if !req.tools.is_empty() {
            let tools: Vec<Value> = req
                .tools
                .iter()
                .map(|t| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": t.name,
                            "description": t.description,
                            "parameters": t.input_schema,
                        },
                    })
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        let max_key = if self.config.use_max_completion_tokens {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body.insert(max_key.into(), json!(req.max_tokens));
        if let Some(t) = req.temperature {
            body.insert(
                "temperature".into(),
                crate::llm::types::temperature_value(t),
            );
        }
        let mut headers = vec![plain("content-type", "application/json")];
        let url = match &self.config.flavor {
            OpenAiFlavor::Standard => {
                if let Some(key) = &self.config.api_key {
                    headers.push(secret("authorization", format!("Bearer {}", key.expose())));
                }
                join_url(&self.config.base_url, "/chat/completions")
            }
            OpenAiFlavor::Azure {
                deployment,
                api_version,
            } => {
                let Some(key) = &self.config.api_key else {
                    return Err(LlmError::Config(
                        "Azure OpenAI needs an API key; set LLM_API_KEY".into(),
                    ));
                };
                headers.push(secret("api-key", key.expose()));
                format!(
                    "{}?api-version={}",
                    join_url(
                        &self.config.base_url,
                        &format!(
                            "/openai/deployments/{}/chat/completions",
                            encode_query(deployment)
                        )
                    ),
                    encode_query(api_version)
                )
            }
        };
        Ok(HttpCall {
            url,
            headers,
            body: Value::Object(body),
        })
    }

    fn parse(&self, body: &Value) -> Result<ChatResponse, LlmError> {
        let malformed = |detail: &str| LlmError::Malformed {
            provider: self.name.clone(),
            detail: detail.to_string(),
        };
        let choice = match body.get("choices") {
            Some(Value::Array(a)) => a.first(),
            None | Some(Value::Null) => None,
            Some(_) => return Err(malformed("`choices` is not an array")),
        };
        let mut parts = Vec::new();
        let mut finish = None;
        if let Some(choice) = choice {
            finish = choice.get("finish_reason").and_then(Value::as_str);
            let message = choice.get("message").unwrap_or(&Value::Null);
            match message.get("content") {
                Some(Value::String(text)) if !text.is_empty() => parts.push(Part::text(text)),
                // Some compatible servers send content as an array of typed parts.
                Some(Value::Array(items)) => {
                    for item in items {
                        if let Some(text) = item.get("text").and_then(Value::as_str) {
                            if !text.is_empty() {
                                parts.push(Part::text(text));
                            }
                        }
                    }
                }
                _ => {}
            }
            if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
                for (i, c) in calls.iter().enumerate() {
                    let name = c.pointer("/function/name").and_then(Value::as_str);
                    let Some(name) = name else {
                        return Err(malformed("a tool call lacks `function.name`"));
                    };
                    let id = c
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("ghost-call-{i}"));
                    let arguments = match c.pointer("/function/arguments") {
                        Some(Value::String(raw)) => match serde_json::from_str::<Value>(raw) {
                            Ok(v @ Value::Object(_)) => v,
                            _ => Value::String(raw.clone()),
                        },
                        // Some compatible servers send the object itself.
                        Some(v @ Value::Object(_)) => v.clone(),
                        Some(other) => Value::String(other.to_string()),
                        None => Value::String(String::new()),
                    };
                    parts.push(Part::ToolCall(ToolCall {
                        id,
                        name: name.to_string(),
                        arguments,
                    }));
                }
            }
        }
        let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
        let stop_reason = match finish {
            Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
            Some("length") => StopReason::MaxTokens,
            Some("stop") | None => {
                if has_calls {
                    StopReason::ToolUse
                } else {
                    StopReason::EndTurn
                }
            }
            Some(other) => StopReason::Other(other.to_string()),
        };
        let u = |p: &str| body.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        Ok(ChatResponse {
            parts,
            stop_reason,
            usage: Usage {
                input_tokens: u("/usage/prompt_tokens"),
                output_tokens: u("/usage/completion_tokens"),
                cached_input_tokens: u("/usage/prompt_tokens_details/cached_tokens"),
                cache_write_input_tokens: 0,
            },
        })
    }

    fn classify(&self, failure: &HttpFailure) -> LlmError {
        let v = serde_json::from_str::<Value>(&failure.body).ok();
        let field = |k: &str| {
            v.as_ref()
                .and_then(|v| v.pointer(&format!("/error/{k}")))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (kind, code) = (field("type"), field("code"));
        classify_common(
            &self.name,
            failure,
            error_message(&failure.body),
            kind.contains("overloaded") || code.contains("overloaded"),
            code == "invalid_api_key" || kind == "authentication_error",
        )
    }
}

fn push_tool_results(messages: &mut Vec<Value>, parts: &[Part]) {
    for p in parts {
        if let Part::ToolResult {
            call_id,
            content,
            is_error,
        } = p
        {
            // The wire has no error flag: errors are marked in the text.
            let content = if *is_error {
                format!("ERROR: {content}")
            } else {
                content.clone()
            };
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
        }
    }
}
