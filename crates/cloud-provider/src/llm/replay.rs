//! A local HTTP server that replays recorded LLM exchanges, so that anything speaking to an
//! LLM provider can be tested offline over real HTTP: it binds 127.0.0.1 on a free port,
//! answers the scripted responses in order (one connection each), records what the client
//! sent and checks it against the fixture's expectations.
//!
//! A fixture is JSON: `{"description": "...", "exchanges": [{"request": {"method", "path",
//! "headers", "absent_headers", "body"}, "response": {"status", "headers", "body" |
//! "body_raw"}}]}`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

/// A fixture: the exchanges of one scenario, in order.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    /// What the scenario shows (documentation only).
    pub description: String,
    pub exchanges: Vec<Exchange>,
}

impl Fixture {
    /// Reads a fixture file.
    pub fn load(path: &Path) -> Result<Fixture, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read fixture {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("fixture {} is not valid: {e}", path.display()))
    }
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

pub struct ReplayServer {
    pub base_url: String,
    fixture: Fixture,
    handle: Option<JoinHandle<Result<Vec<Recorded>, String>>>,
}

impl ReplayServer {
    /// Starts serving `fixture`'s responses on 127.0.0.1 (a free port), one connection per
    /// exchange; the server stops after the last one or 20 s without a client.
    pub fn start(fixture: Fixture) -> std::io::Result<ReplayServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base_url = format!("http://{}", listener.local_addr()?);
        listener.set_nonblocking(true)?;
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
        Ok(ReplayServer {
            base_url,
            fixture,
            handle: Some(handle),
        })
    }

    /// Waits for the server and checks that every scripted exchange happened with the
    /// expected request (method, path and query, headers, exact JSON body). `Err` names
    /// the first difference.
    pub fn verify(mut self) -> Result<Vec<Recorded>, String> {
        let recorded = self
            .handle
            .take()
            .ok_or("the replay server was already verified")?
            .join()
            .map_err(|_| "the replay server thread panicked".to_string())??;
        if recorded.len() != self.fixture.exchanges.len() {
            return Err(format!(
                "the client made {} request(s), the fixture scripts {}",
                recorded.len(),
                self.fixture.exchanges.len()
            ));
        }
        for (i, (got, ex)) in recorded.iter().zip(&self.fixture.exchanges).enumerate() {
            let want = &ex.request;
            if got.method != want.method {
                return Err(format!(
                    "exchange {i}: method {} != {}",
                    got.method, want.method
                ));
            }
            if got.path != want.path {
                return Err(format!("exchange {i}: path {} != {}", got.path, want.path));
            }
            for (k, v) in &want.headers {
                if got.headers.get(k) != Some(v) {
                    return Err(format!(
                        "exchange {i}: header {k} is {:?}, expected {v:?}",
                        got.headers.get(k)
                    ));
                }
            }
            if let Some(k) = want
                .absent_headers
                .iter()
                .find(|k| got.headers.contains_key(*k))
            {
                return Err(format!("exchange {i}: header {k} must be absent"));
            }
            let body: Value = serde_json::from_str(&got.body).map_err(|e| {
                format!("exchange {i}: request body is not JSON ({e}): {}", got.body)
            })?;
            if body != want.body {
                return Err(format!(
                    "exchange {i}: request body differs\n got: {}\nwant: {}",
                    serde_json::to_string_pretty(&body).unwrap_or_default(),
                    serde_json::to_string_pretty(&want.body).unwrap_or_default()
                ));
            }
        }
        Ok(recorded)
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
        (Some(v), _) => v.to_string(),
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
