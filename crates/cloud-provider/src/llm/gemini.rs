//! Google Gemini API `generateContent`
//! (`POST {base}/v1beta/models/{model}:generateContent`, key in `x-goog-api-key`): tools as
//! `functionDeclarations`, calls as `functionCall` parts, results as `functionResponse`
//! parts in a `user` turn, the system prompt in `systemInstruction`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};

use crate::llm::error::LlmError;
use crate::llm::http::{
    classify_common, error_message, join_url, parse_seconds, plain, secret, HttpCall, HttpFailure,
    Wire,
};
use crate::llm::types::{
    system_text, ChatRequest, ChatResponse, Part, Role, StopReason, ToolCall, Usage,
};
use crate::llm::ApiKey;

/// Default endpoint.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// Prefix of call ids this client invents when Gemini gives none; such ids are not echoed.
const SYNTH_PREFIX: &str = "ghost-call-";

/// Gemini configuration.
#[derive(Debug, Clone)]
pub struct GeminiConfig {
    /// Model id, e.g. `gemini-2.0-flash`.
    pub model: String,
    /// API key (sent as `x-goog-api-key`, never in the URL).
    pub api_key: ApiKey,
    /// Base URL (without `/v1beta`).
    pub base_url: String,
}

impl GeminiConfig {
    /// Defaults: the public endpoint.
    pub fn new(model: impl Into<String>, api_key: ApiKey) -> GeminiConfig {
        GeminiConfig {
            model: model.into(),
            api_key,
            base_url: DEFAULT_BASE_URL.to_string(),
        }
    }
}

pub(crate) struct GeminiWire {
    pub config: GeminiConfig,
    /// Numbers the call ids this client invents, unique over the provider's life.
    pub next_call: AtomicU64,
}

const NAME: &str = "gemini";

/// Gemini's `parameters` is an OpenAPI-style Schema subset: drop JSON Schema keywords it
/// rejects.
fn sanitize_schema(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, val) in map {
                if matches!(
                    k.as_str(),
                    "$schema" | "$id" | "additionalProperties" | "definitions" | "$defs"
                ) {
                    continue;
                }
                // `properties` maps names to schemas: keep every name.
                if k == "properties" {
                    if let Value::Object(props) = val {
                        let cleaned: Map<String, Value> = props
                            .iter()
                            .map(|(n, s)| (n.clone(), sanitize_schema(s)))
                            .collect();
                        out.insert(k.clone(), Value::Object(cleaned));
                        continue;
                    }
                }
                out.insert(k.clone(), sanitize_schema(val));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sanitize_schema).collect()),
        other => other.clone(),
    }
}

impl Wire for GeminiWire {
    fn name(&self) -> &str {
        NAME
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    fn build(&self, req: &ChatRequest) -> Result<HttpCall, LlmError> {
        // functionResponse needs the function name; tool results carry only the call id.
        // The map is filled while walking the conversation, so a result always finds the
        // latest call with its id made before it.
        let mut names: HashMap<&str, &str> = HashMap::new();
        let mut contents: Vec<Value> = Vec::new();
        for m in &req.messages {
            let role = match m.role {
                Role::System => continue,
                Role::User | Role::Tool => "user",
                Role::Assistant => "model",
            };
            let mut parts = Vec::new();
            for p in &m.content {
                if matches!(p, Part::Text { text } if text.is_empty()) {
                    continue;
                }
                parts.push(match p {
                    Part::Text { text } => json!({"text": text}),
                    Part::ToolCall(c) => {
                        names.insert(c.id.as_str(), c.name.as_str());
                        let mut call = json!({
                            "name": c.name,
                            "args": if c.arguments.is_object() { c.arguments.clone() } else { json!({}) },
                        });
                        if !c.id.starts_with(SYNTH_PREFIX) {
                            call["id"] = json!(c.id);
                        }
                        json!({"functionCall": call})
                    }
                    Part::ToolResult {
                        call_id,
                        content,
                        is_error,
                    } => {
                        let Some(name) = names.get(call_id.as_str()) else {
                            return Err(LlmError::Config(format!(
                                "tool result {call_id} answers no tool call in the conversation; keep the assistant message that made the call"
                            )));
                        };
                        let key = if *is_error { "error" } else { "content" };
                        let mut resp = json!({"name": name, "response": {key: content}});
                        if !call_id.starts_with(SYNTH_PREFIX) {
                            resp["id"] = json!(call_id);
                        }
                        json!({"functionResponse": resp})
                    }
                });
            }
            if parts.is_empty() {
                continue;
            }
            match contents.last_mut() {
                Some(last) if last["role"] == role => {
                    if let Some(arr) = last["parts"].as_array_mut() {
                        arr.extend(parts);
                    }
                }
                _ => contents.push(json!({"role": role, "parts": parts})),
            }
        }
        let mut body = Map::new();
        if let Some(system) = system_text(req) {
            body.insert(
                "systemInstruction".into(),
                json!({"parts": [{"text": system}]}),
            );
        }
        body.insert("contents".into(), Value::Array(contents));
        if !req.tools.is_empty() {
            let decls: Vec<Value> = req
                .tools
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "description": t.description,
                        "parameters": sanitize_schema(&t.input_schema),
                    })
                })
                .collect();
            body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        }
        let mut gen = Map::new();
        gen.insert("maxOutputTokens".into(), json!(req.max_tokens));
        if let Some(t) = req.temperature {
            gen.insert(
                "temperature".into(),
                crate::llm::types::temperature_value(t),
            );
        }
        body.insert("generationConfig".into(), Value::Object(gen));
        Ok(HttpCall {
            url: join_url(
                &self.config.base_url,
                &format!("/v1beta/models/{}:generateContent", self.config.model),
            ),
            headers: vec![
                secret("x-goog-api-key", self.config.api_key.expose()),
                plain("content-type", "application/json"),
            ],
            body: Value::Object(body),
        })
    }

    fn parse(&self, body: &Value) -> Result<ChatResponse, LlmError> {
        let malformed = |detail: &str| LlmError::Malformed {
            provider: NAME.to_string(),
            detail: detail.to_string(),
        };
        let candidate = match body.get("candidates") {
            Some(Value::Array(a)) => a.first(),
            None | Some(Value::Null) => None,
            Some(_) => return Err(malformed("`candidates` is not an array")),
        };
        let mut parts = Vec::new();
        let mut finish = None;
        if let Some(c) = candidate {
            finish = c.get("finishReason").and_then(Value::as_str);
            let wire_parts = c
                .pointer("/content/parts")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for p in wire_parts {
                if p.get("thought").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                if let Some(text) = p.get("text").and_then(Value::as_str) {
                    parts.push(Part::text(text));
                } else if let Some(call) = p.get("functionCall") {
                    let Some(name) = call.get("name").and_then(Value::as_str) else {
                        return Err(malformed("a `functionCall` lacks `name`"));
                    };
                    let id = call
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            let n = self.next_call.fetch_add(1, Ordering::Relaxed);
                            format!("{SYNTH_PREFIX}{n}")
                        });
                    parts.push(Part::ToolCall(ToolCall {
                        id,
                        name: name.to_string(),
                        arguments: call.get("args").cloned().unwrap_or(json!({})),
                    }));
                }
            }
        }
        let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
        let stop_reason = match finish {
            Some("MALFORMED_FUNCTION_CALL") => StopReason::MalformedToolCall,
            Some("MAX_TOKENS") => StopReason::MaxTokens,
            _ if has_calls => StopReason::ToolUse,
            Some("STOP") | None => StopReason::EndTurn,
            Some(other) => StopReason::Other(other.to_string()),
        };
        let u = |k: &str| {
            body.pointer(&format!("/usageMetadata/{k}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Ok(ChatResponse {
            parts,
            stop_reason,
            usage: Usage {
                input_tokens: u("promptTokenCount"),
                output_tokens: u("candidatesTokenCount") + u("thoughtsTokenCount"),
                cached_input_tokens: u("cachedContentTokenCount"),
                cache_write_input_tokens: 0,
            },
        })
    }

    fn classify(&self, failure: &HttpFailure) -> LlmError {
        let v = serde_json::from_str::<Value>(&failure.body).ok();
        let status_name = v
            .as_ref()
            .and_then(|v| v.pointer("/error/status"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let details = v
            .as_ref()
            .and_then(|v| v.pointer("/error/details"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let key_invalid = details
            .iter()
            .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"));
        let mut failure = failure.clone();
        if failure.retry_after.is_none() {
            // google.rpc.RetryInfo: {"retryDelay": "30s"}
            failure.retry_after = details
                .iter()
                .filter_map(|d| d.get("retryDelay").and_then(Value::as_str))
                .find_map(parse_seconds);
        }
        classify_common(
            NAME,
            &failure,
            error_message(&failure.body),
            status_name == "UNAVAILABLE",
            key_invalid || status_name == "UNAUTHENTICATED" || status_name == "PERMISSION_DENIED",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::types::Message;

    fn wire() -> GeminiWire {
        GeminiWire {
            config: GeminiConfig::new("g", ApiKey::new("k")),
            next_call: Default::default(),
        }
    }

    #[test]
    fn invented_ids_are_unique_and_results_find_their_function_name() {
        let w = wire();
        let reply = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "inspect_nsg", "args": {}}}]}, "finishReason": "STOP"}]});
        let r1 = w.parse(&reply).unwrap();
        let reply2 = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "inspect_routes", "args": {}}}]}, "finishReason": "STOP"}]});
        let r2 = w.parse(&reply2).unwrap();
        let (c1, c2) = (r1.tool_calls()[0].clone(), r2.tool_calls()[0].clone());
        assert_ne!(c1.id, c2.id);
        assert_eq!(r1.stop_reason, StopReason::ToolUse);
        let result = |id: &str| Message {
            role: Role::Tool,
            content: vec![Part::ToolResult {
                call_id: id.into(),
                content: "ok".into(),
                is_error: false,
            }],
        };
        let req = ChatRequest {
            system: None,
            messages: vec![
                Message::user("go"),
                r1.to_message(),
                result(&c1.id),
                r2.to_message(),
                result(&c2.id),
            ],
            tools: vec![],
            max_tokens: 5,
            temperature: None,
        };
        let body = w.build(&req).unwrap().body;
        assert_eq!(
            body.pointer("/contents/2/parts/0/functionResponse/name"),
            Some(&json!("inspect_nsg"))
        );
        assert_eq!(
            body.pointer("/contents/4/parts/0/functionResponse/name"),
            Some(&json!("inspect_routes"))
        );
        // Invented ids are not sent.
        assert_eq!(
            body.pointer("/contents/2/parts/0/functionResponse/id"),
            None
        );
    }

    #[test]
    fn a_result_without_its_call_is_a_config_error() {
        let req = ChatRequest {
            system: None,
            messages: vec![Message {
                role: Role::Tool,
                content: vec![Part::ToolResult {
                    call_id: "x".into(),
                    content: "ok".into(),
                    is_error: false,
                }],
            }],
            tools: vec![],
            max_tokens: 5,
            temperature: None,
        };
        assert!(matches!(wire().build(&req), Err(LlmError::Config(_))));
    }

    #[test]
    fn schema_sanitizing_keeps_property_names() {
        let s = json!({"$schema": "x", "type": "object", "additionalProperties": false,
            "properties": {"additionalProperties": {"type": "string", "additionalProperties": true}}});
        assert_eq!(
            sanitize_schema(&s),
            json!({"type": "object", "properties": {"additionalProperties": {"type": "string"}}})
        );
    }
}
