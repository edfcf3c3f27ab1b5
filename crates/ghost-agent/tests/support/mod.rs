//! Test support: cloud-provider's replay HTTP server (panicking on failure), fixture paths;
//! plus a recording sleeper and the shared neutral request.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ghost_agent::{ChatRequest, HttpSettings, Message, RetryPolicy, Sleeper, ToolSpec};
use serde_json::{json, Value};

pub use cloud_provider::llm::replay::{Fixture, Recorded};

pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn load_fixture(rel: &str) -> Fixture {
    Fixture::load(&fixture_path(rel)).unwrap_or_else(|e| panic!("{e}"))
}

/// The shared replay server, panicking on failure as tests want.
pub struct ReplayServer {
    pub base_url: String,
    inner: cloud_provider::llm::replay::ReplayServer,
}

impl ReplayServer {
    pub fn start(fixture: Fixture) -> ReplayServer {
        let inner =
            cloud_provider::llm::replay::ReplayServer::start(fixture).expect("replay server");
        ReplayServer {
            base_url: inner.base_url.clone(),
            inner,
        }
    }

    pub fn verify(self) -> Vec<Recorded> {
        self.inner.verify().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A sleeper that only records the waits asked of it.
#[derive(Debug, Default)]
pub struct RecordingSleeper {
    pub waits: Mutex<Vec<Duration>>,
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, d: Duration) {
        self.waits.lock().unwrap().push(d);
    }
}

/// Test settings: short timeout, instant recorded sleeps, seeded jitter.
pub fn settings(sleeper: Arc<RecordingSleeper>) -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            empty_response_retries: 1,
        },
        sleeper,
        jitter_seed: Some(7),
    }
}

pub const SYSTEM: &str =
    "You are ghost-agent, a network investigator. Cite evidence for every claim.";
pub const QUESTION: &str = "Why can vm-a not reach vm-b on tcp/443?";
pub const TEST_KEY: &str = "test-key-0123";

pub fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "inspect_nsg".into(),
            description: "Effective NSG verdict for a flow on a VM's NIC.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "vm": {"type": "string", "description": "VM name"},
                    "direction": {"type": "string", "enum": ["inbound", "outbound"]}
                },
                "required": ["vm", "direction"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: "inspect_routes".into(),
            description: "Effective route verdict for a destination from a VM.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {"vm": {"type": "string"}, "destination": {"type": "string"}},
                "required": ["vm", "destination"]
            }),
        },
    ]
}

/// The request with tools (tool scenarios).
pub fn tool_request() -> ChatRequest {
    ChatRequest {
        system: Some(SYSTEM.into()),
        messages: vec![Message::user(QUESTION)],
        tools: tools(),
        max_tokens: 1024,
        temperature: Some(0.2),
    }
}

/// The request without tools (text, empty, retry, auth scenarios).
pub fn plain_request() -> ChatRequest {
    ChatRequest {
        system: Some(SYSTEM.into()),
        messages: vec![Message::user("Say which layer you would check first.")],
        tools: vec![],
        max_tokens: 256,
        temperature: None,
    }
}

/// The executor of the tool scenarios: answers `inspect_nsg(vm-b, inbound)` and records calls.
pub fn nsg_executor(
    calls: &mut Vec<ghost_agent::ToolCall>,
) -> impl FnMut(&ghost_agent::ToolCall) -> ghost_agent::ToolOutput + '_ {
    move |call| {
        calls.push(call.clone());
        if call.name == "inspect_nsg"
            && call.arguments == json!({"vm": "vm-b", "direction": "inbound"})
        {
            ghost_agent::ToolOutput::ok("DENY: rule deny-443 (priority 100) on nsg-b")
        } else {
            ghost_agent::ToolOutput::error(format!(
                "unexpected call {} {}",
                call.name, call.arguments
            ))
        }
    }
}

/// Replaces the `@@FEEDBACK@@` placeholder of a malformed-call fixture with the exact
/// sentence the loop must send back (computed from the typed error).
pub fn with_feedback(mut fixture: Fixture, feedback: &str) -> Fixture {
    fn walk(v: &mut Value, f: &str) {
        match v {
            Value::String(s) if s.contains("@@FEEDBACK@@") => *s = s.replace("@@FEEDBACK@@", f),
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
            Value::Object(m) => m.values_mut().for_each(|x| walk(x, f)),
            _ => {}
        }
    }
    for ex in &mut fixture.exchanges {
        walk(&mut ex.request.body, feedback);
    }
    fixture
}
