//! Test support: a replay HTTP server bound to 127.0.0.1:0 that answers scripted exchanges
//! read from fixture files, records what the client sent, and checks it against the
//! fixture's request expectations; plus a recording sleeper and the shared neutral request.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ghost_agent::{ChatRequest, HttpSettings, Message, RetryPolicy, Sleeper, ToolSpec};
use serde::Deserialize;
use serde_json::{json, Value};

/// A fixture: the exchanges of one scenario, in order.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    /// What the scenario shows (documentation only).
    pub description: String,
    pub exchanges: Vec<Exchange>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Exchange {
    pub request: ExpectedRequest,
    pub response: CannedResponse,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExpectedRequest {
    pub method: String,
    /// Path and query, exactly.
    pub path: String,
    /// Headers that must be present with exactly these values (names lower case).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers that must be absent.
    #[serde(default)]
    pub absent_headers: Vec<String>,
    /// The exact JSON body.
    pub body: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CannedResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body ...
    #[serde(default)]
    pub body: Option<Value>,
    /// ... or a raw one.
    #[serde(default)]
    pub body_raw: Option<String>,
}

/// What the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn load_fixture(rel: &str) -> Fixture {
    let path = fixture_path(rel);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

pub struct ReplayServer {
    pub base_url: String,
    fixture: Fixture,
    handle: Option<JoinHandle<Result<Vec<Recorded>, String>>>,
}

impl ReplayServer {
    /// Starts serving `fixture`'s responses, one connection per exchange.
    pub fn start(fixture: Fixture) -> ReplayServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let responses: Vec<CannedResponse> = fixture
            .exchanges
            .iter()
            .map(|e| e.response.clone())
            .collect();
        let handle = std::thread::spawn(move || {
            let mut recorded = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            for resp in responses {
                let stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            if Instant::now() > deadline {
                                return Ok(recorded);
                            }
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err(e) => return Err(format!("accept: {e}")),
                    }
                };
                stream.set_nonblocking(false).map_err(|e| e.to_string())?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                recorded.push(serve_one(stream, &resp)?);
            }
            Ok(recorded)
        });
        ReplayServer {
            base_url,
            fixture,
            handle: Some(handle),
        }
    }

    /// Waits for the server and asserts every exchange happened with the expected request.
    pub fn verify(mut self) -> Vec<Recorded> {
        let recorded = self
            .handle
            .take()
            .unwrap()
            .join()
            .expect("server thread")
            .expect("server");
        assert_eq!(
            recorded.len(),
            self.fixture.exchanges.len(),
            "the client made {} request(s), the fixture scripts {}",
            recorded.len(),
            self.fixture.exchanges.len()
        );
        for (i, (got, ex)) in recorded.iter().zip(&self.fixture.exchanges).enumerate() {
            let want = &ex.request;
            assert_eq!(got.method, want.method, "exchange {i}: method");
            assert_eq!(got.path, want.path, "exchange {i}: path and query");
            for (k, v) in &want.headers {
                assert_eq!(got.headers.get(k), Some(v), "exchange {i}: header {k}");
            }
            for k in &want.absent_headers {
                assert!(
                    !got.headers.contains_key(k),
                    "exchange {i}: header {k} must be absent"
                );
            }
            let body: Value = serde_json::from_str(&got.body).unwrap_or_else(|e| {
                panic!("exchange {i}: request body is not JSON ({e}): {}", got.body)
            });
            assert_eq!(
                body,
                want.body,
                "exchange {i}: request body differs\n got: {}\nwant: {}",
                serde_json::to_string_pretty(&body).unwrap(),
                serde_json::to_string_pretty(&want.body).unwrap()
            );
        }
        recorded
    }
}

fn serve_one(stream: TcpStream, resp: &CannedResponse) -> Result<Recorded, String> {
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let mut it = line.split_whitespace();
    let method = it.next().unwrap_or("").to_string();
    let path = it.next().unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).map_err(|e| e.to_string())?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(n) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(n, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else if headers
        .get("transfer-encoding")
        .map(|v| v.contains("chunked"))
        == Some(true)
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).map_err(|e| e.to_string())?;
            let n = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let payload = match (&resp.body, &resp.body_raw) {
        (Some(v), _) => serde_json::to_string(v).unwrap(),
        (None, Some(raw)) => raw.clone(),
        (None, None) => String::new(),
    };
    let mut out = format!("HTTP/1.1 {} Scripted\r\n", resp.status);
    out.push_str("content-type: application/json\r\n");
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    ));
    let mut s = stream;
    s.write_all(out.as_bytes()).map_err(|e| e.to_string())?;
    s.flush().map_err(|e| e.to_string())?;
    Ok(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
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
