//! The HTTP engine shared by every provider: one exchange over `ureq`, classification of
//! failures into [`LlmError`], bounded retries with exponential backoff and jitter that
//! honour `retry-after`, and recovery from empty answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::llm::error::LlmError;
use crate::llm::types::{ChatRequest, ChatResponse};

/// A secret API key. Its `Debug` never shows the value; it only ever goes into a header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Waits between retries. Injected so tests run instantly and can check the waits.
pub trait Sleeper: Send + Sync {
    /// Blocks for `d` (or pretends to).
    fn sleep(&self, d: Duration);
}

/// The real sleeper: `std::thread::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// How failures are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// Backoff before retry `n` (0-based) is `base_delay * 2^n`, capped at `max_delay`, of
    /// which a random half is jitter ("equal jitter").
    pub base_delay: Duration,
    /// Cap on one wait. A `retry-after` longer than this is not waited for: the error is
    /// returned at once so the caller can decide.
    pub max_delay: Duration,
    /// Extra attempts when the model answers with nothing at all.
    pub empty_response_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            empty_response_retries: 1,
        }
    }
}

/// Transport settings shared by all providers.
#[derive(Clone)]
pub struct HttpSettings {
    /// Whole-exchange timeout of one attempt.
    pub timeout: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Sleeper used between retries.
    pub sleeper: Arc<dyn Sleeper>,
    /// Seed of the jitter RNG (`None`: from the OS).
    pub jitter_seed: Option<u64>,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("jitter_seed", &self.jitter_seed)
            .finish_non_exhaustive()
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            sleeper: Arc::new(ThreadSleeper),
            jitter_seed: None,
        }
    }
}

/// One HTTP request as a provider wants it sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpCall {
    pub url: String,
    /// Header names in lower case. Secret values are marked so they are never logged.
    pub headers: Vec<(String, HeaderValue)>,
    pub body: Value,
}

#[derive(Clone, PartialEq)]
pub(crate) enum HeaderValue {
    Plain(String),
    Secret(String),
}

impl std::fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderValue::Plain(v) => write!(f, "{v:?}"),
            HeaderValue::Secret(_) => f.write_str("<redacted>"),
        }
    }
}

impl HeaderValue {
    fn as_str(&self) -> &str {
        match self {
            HeaderValue::Plain(v) | HeaderValue::Secret(v) => v,
        }
    }
}

/// A non-2xx answer, as read off the wire.
#[derive(Debug, Clone)]
pub(crate) struct HttpFailure {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

/// What a provider's wire format must supply.
pub(crate) trait Wire: Send + Sync {
    fn name(&self) -> &str;
    fn model(&self) -> &str;
    fn build(&self, req: &ChatRequest) -> Result<HttpCall, LlmError>;
    fn parse(&self, body: &Value) -> Result<ChatResponse, LlmError>;
    /// Turns a non-2xx answer into a typed error.
    fn classify(&self, failure: &HttpFailure) -> LlmError;
}

/// A provider over HTTP: a wire format plus the shared engine.
pub struct HttpProvider {
    wire: Box<dyn Wire>,
    agent: ureq::Agent,
    settings: HttpSettings,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("provider", &self.wire.name())
            .field("model", &self.wire.model())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HttpProvider {
    pub(crate) fn new(wire: Box<dyn Wire>, settings: HttpSettings) -> HttpProvider {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            .build();
        let rng = match settings.jitter_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        HttpProvider {
            wire,
            agent: ureq::Agent::new_with_config(config),
            settings,
            rng: Mutex::new(rng),
        }
    }

    /// One attempt: send, read, and classify.
    fn exchange(&self, call: &HttpCall) -> Result<Value, LlmError> {
        let provider = self.wire.name().to_string();
        let mut builder = self.agent.post(&call.url);
        for (k, v) in &call.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let body = serde_json::to_string(&call.body).map_err(|e| LlmError::Malformed {
            provider: provider.clone(),
            detail: format!("request body could not be serialized: {e}"),
        })?;
        let mut response = builder.send(body).map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let retry_after = retry_after_of(response.headers());
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        if !(200..300).contains(&status) {
            return Err(self.wire.classify(&HttpFailure {
                status,
                retry_after,
                body: text,
            }));
        }
        serde_json::from_str(&text).map_err(|e| LlmError::Malformed {
            provider,
            detail: format!("the body of a {status} answer is not JSON: {e}"),
        })
    }

    fn transport_error(&self, e: ureq::Error) -> LlmError {
        let provider = self.wire.name().to_string();
        match e {
            ureq::Error::Timeout(_) => LlmError::Timeout {
                provider,
                after: self.settings.timeout,
            },
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => LlmError::Timeout {
                provider,
                after: self.settings.timeout,
            },
            ureq::Error::BadUri(detail) => LlmError::Config(format!(
                "the {provider} endpoint URL is invalid ({detail}); check LLM_BASE_URL"
            )),
            ureq::Error::Http(e) => LlmError::Config(format!(
                "the {provider} request could not be built ({e}); check LLM_BASE_URL"
            )),
            other => LlmError::Transport {
                provider,
                detail: other.to_string(),
            },
        }
    }

    /// Sends with bounded retries on retryable errors.
    fn send_with_retries(&self, call: &HttpCall) -> Result<Value, LlmError> {
        let policy = &self.settings.retry;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let err = match self.exchange(call) {
                Ok(v) => return Ok(v),
                Err(e) => with_attempts(e, attempt),
            };
            if !err.is_retryable() || attempt > policy.max_retries {
                return Err(err);
            }
            let backoff = self.backoff(attempt - 1);
            let delay = match retry_after_hint(&err) {
                Some(hint) if hint > policy.max_delay => return Err(err),
                Some(hint) => hint.max(backoff),
                None => backoff,
            };
            self.settings.sleeper.sleep(delay);
        }
    }

    /// Equal-jitter exponential backoff for retry number `n` (0-based).
    fn backoff(&self, n: u32) -> Duration {
        let policy = &self.settings.retry;
        let exp = policy
            .base_delay
            .saturating_mul(2u32.saturating_pow(n.min(20)))
            .min(policy.max_delay);
        let half = exp / 2;
        let jitter_ms = half.as_millis() as u64;
        let extra = if jitter_ms == 0 {
            0
        } else {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            rng.gen_range(0..=jitter_ms)
        };
        half + Duration::from_millis(extra)
    }
}

fn with_attempts(e: LlmError, n: u32) -> LlmError {
    match e {
        LlmError::RateLimited {
            provider,
            retry_after,
            message,
            ..
        } => LlmError::RateLimited {
            provider,
            retry_after,
            message,
            attempts: n,
        },
        LlmError::Overloaded {
            provider,
            status,
            message,
            ..
        } => LlmError::Overloaded {
            provider,
            status,
            message,
            attempts: n,
        },
        other => other,
    }
}

fn retry_after_hint(e: &LlmError) -> Option<Duration> {
    match e {
        LlmError::RateLimited { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// Reads `retry-after-ms` (OpenAI) or `retry-after` in seconds. An HTTP-date form is ignored
/// (the backoff applies instead).
fn retry_after_of(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    parse_seconds(get("retry-after")?)
}

/// Parses `"30"`, `"1.5"` or `"30s"` (Gemini's RetryInfo) as seconds.
pub(crate) fn parse_seconds(s: &str) -> Option<Duration> {
    let s = s.trim();
    let s = s.strip_suffix('s').unwrap_or(s);
    let v: f64 = s.parse().ok()?;
    if v.is_finite() && (0.0..=86_400.0).contains(&v) {
        Some(Duration::from_secs_f64(v))
    } else {
        None
    }
}

/// Classification every provider shares: status first, then provider hints.
pub(crate) fn classify_common(
    provider: &str,
    failure: &HttpFailure,
    message: String,
    overloaded_hint: bool,
    auth_hint: bool,
) -> LlmError {
    let provider = provider.to_string();
    let status = failure.status;
    if auth_hint || status == 401 || status == 403 {
        return LlmError::Auth {
            provider,
            status,
            message,
        };
    }
    if status == 429 && !overloaded_hint {
        return LlmError::RateLimited {
            provider,
            retry_after: failure.retry_after,
            message,
            attempts: 1,
        };
    }
    if overloaded_hint || status >= 500 || status == 429 {
        return LlmError::Overloaded {
            provider,
            status,
            message,
            attempts: 1,
        };
    }
    LlmError::BadRequest {
        provider,
        status,
        message,
    }
}

/// The provider's error message from a JSON error body (`{"error": {"message": ...}}`), or a
/// short excerpt of the raw body.
pub(crate) fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if let Some(m) = v.pointer("/error/message").and_then(Value::as_str) {
            return m.to_string();
        }
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            return m.to_string();
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        "no details given".to_string()
    } else {
        trimmed.chars().take(200).collect()
    }
}

impl crate::llm::LlmProvider for HttpProvider {
    fn name(&self) -> &str {
        self.wire.name()
    }

    fn model(&self) -> &str {
        self.wire.model()
    }

    fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let call = self.wire.build(req)?;
        let attempts = self.settings.retry.empty_response_retries + 1;
        let mut usage = crate::llm::types::Usage::default();
        for _ in 0..attempts {
            let body = self.send_with_retries(&call)?;
            let mut response = self.wire.parse(&body)?;
            usage += response.usage;
            if !response.is_empty() {
                response.usage = usage;
                return Ok(response);
            }
        }
        Err(LlmError::EmptyResponse {
            provider: self.wire.name().to_string(),
            attempts,
        })
    }
}

/// Joins a base URL and a path without doubling or dropping the slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

pub(crate) fn plain(name: &str, value: impl Into<String>) -> (String, HeaderValue) {
    (name.to_string(), HeaderValue::Plain(value.into()))
}

pub(crate) fn secret(name: &str, value: impl Into<String>) -> (String, HeaderValue) {
    (name.to_string(), HeaderValue::Secret(value.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::anthropic::{AnthropicConfig, AnthropicWire};
    use crate::llm::gemini::{GeminiConfig, GeminiWire};
    use crate::llm::openai::{OpenAiConfig, OpenAiWire};
    use serde_json::json;

    fn wires() -> Vec<Box<dyn Wire>> {
        vec![
            Box::new(AnthropicWire {
                config: AnthropicConfig::new("m", ApiKey::new("k")),
            }),
            Box::new(OpenAiWire {
                config: OpenAiConfig::new("m", None),
                name: "openai".into(),
            }),
            Box::new(GeminiWire {
                config: GeminiConfig::new("m", ApiKey::new("k")),
                next_call: Default::default(),
            }),
        ]
    }

    /// Type confusion at every path the parsers read: never a panic, only Ok or Malformed.
    #[test]
    fn hostile_bodies_never_panic() {
        let odd = [
            json!(null),
            json!(1),
            json!("x"),
            json!([]),
            json!({}),
            json!([1, {"a": null}]),
            json!({"type": 3, "text": ["no"], "id": {}, "name": 1.5}),
        ];
        let mut bodies = vec![json!(null), json!([]), json!("text"), json!(42)];
        for o in &odd {
            bodies.push(json!({"content": o, "stop_reason": o, "usage": o}));
            bodies.push(json!({"content": [o], "usage": {"input_tokens": o}}));
            bodies.push(json!({"content": [{"type": "tool_use", "id": o, "name": o, "input": o}]}));
            bodies.push(json!({"content": [{"type": "text", "text": o}]}));
            bodies.push(json!({"choices": o, "usage": {"prompt_tokens": o}}));
            bodies.push(json!({"choices": [o]}));
            bodies.push(json!({"choices": [{"message": o, "finish_reason": o}]}));
            bodies.push(json!({"choices": [{"message": {"content": o, "tool_calls": o}}]}));
            bodies.push(json!({"choices": [{"message": {"tool_calls": [o]}}]}));
            bodies.push(
                json!({"choices": [{"message": {"tool_calls": [{"id": o, "function": o}]}}]}),
            );
            bodies.push(json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "n", "arguments": o}}]}}]}));
            bodies.push(json!({"candidates": o, "usageMetadata": o}));
            bodies.push(json!({"candidates": [o]}));
            bodies.push(json!({"candidates": [{"content": o, "finishReason": o}]}));
            bodies.push(json!({"candidates": [{"content": {"parts": o}}]}));
            bodies.push(json!({"candidates": [{"content": {"parts": [o]}}]}));
            bodies.push(json!({"candidates": [{"content": {"parts": [{"functionCall": o}]}}]}));
            bodies.push(json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": o, "args": o, "id": o}}]}}]}));
        }
        for w in wires() {
            for b in &bodies {
                match w.parse(b) {
                    Ok(_) | Err(LlmError::Malformed { .. }) => {}
                    Err(other) => panic!("{}: unexpected {other:?} for {b}", w.name()),
                }
            }
            for status in [400u16, 401, 403, 404, 429, 500, 503, 529] {
                for body in [
                    "",
                    "not json",
                    "{\"error\": 3}",
                    "{\"error\": {\"details\": [1, {\"retryDelay\": 5}]}}",
                ] {
                    let e = w.classify(&HttpFailure {
                        status,
                        retry_after: None,
                        body: body.into(),
                    });
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn status_classification() {
        let f = |status: u16, body: &str| HttpFailure {
            status,
            retry_after: Some(Duration::from_secs(1)),
            body: body.into(),
        };
        let c = |status, body| classify_common("p", &f(status, body), "m".into(), false, false);
        assert!(matches!(c(401, ""), LlmError::Auth { .. }));
        assert!(matches!(c(403, ""), LlmError::Auth { .. }));
        assert!(matches!(
            c(429, ""),
            LlmError::RateLimited {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            c(503, ""),
            LlmError::Overloaded { status: 503, .. }
        ));
        assert!(matches!(c(529, ""), LlmError::Overloaded { .. }));
        assert!(matches!(c(400, ""), LlmError::BadRequest { .. }));
        assert!(matches!(c(404, ""), LlmError::BadRequest { .. }));
        // Anthropic's overloaded_error is an overload even when sent with another status.
        let w = AnthropicWire {
            config: AnthropicConfig::new("m", ApiKey::new("k")),
        };
        let e = w.classify(&f(
            500,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ));
        assert!(matches!(e, LlmError::Overloaded { .. }), "{e:?}");
        assert!(c(429, "").is_retryable() && c(503, "").is_retryable());
        assert!(!c(401, "").is_retryable() && !c(400, "").is_retryable());
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_seconds("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_seconds("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_seconds("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_seconds("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("NaN"), None);
        assert_eq!(parse_seconds("1e300"), None);
    }

    #[test]
    fn request_debug_redacts_secret_headers() {
        let w = AnthropicWire {
            config: AnthropicConfig::new("m", ApiKey::new("sekrit-9")),
        };
        let req = ChatRequest {
            system: None,
            messages: vec![crate::llm::Message::user("hi")],
            tools: vec![],
            max_tokens: 1,
            temperature: None,
        };
        let call = w.build(&req).unwrap();
        let dbg = format!("{call:?}");
        assert!(!dbg.contains("sekrit-9"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn url_join() {
        assert_eq!(join_url("http://h/v1/", "/chat"), "http://h/v1/chat");
        assert_eq!(join_url("http://h", "v1/messages"), "http://h/v1/messages");
    }
}
