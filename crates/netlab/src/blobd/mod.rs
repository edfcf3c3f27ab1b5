//! The lab blob service: a small HTTP/1.1 server that imitates enough of Azure Blob Storage
//! for the lab, and enforces the storage account firewall from the lab's storage state file.
//!
//! URLs are path style (`http://198.19.0.10/<account>/<container>/<blob>`, as Azurite) or
//! host style (`Host: <account>.blob.core.windows.net`, then `/<container>/<blob>`).
//! Operations: Put Blob (block blobs), Get Blob (with `Range`/`x-ms-range`), Get Blob
//! Properties (`HEAD`), Delete Blob, List Blobs (`restype=container&comp=list`, with
//! `prefix` and `delimiter`), Create Container, Get Container Properties and List
//! Containers (`GET /<account>?comp=list`). No authentication is checked (the lab has no
//! keys); the firewall is. See `docs/netlab-emulator-blobd.md`.
//!
//! The state file is re-read whenever it changes (inode, size or modification time), so an
//! `az storage account network-rule` or subnet change through the lab takes effect on the
//! next request.

pub mod firewall;
pub mod http;
pub mod store;

use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::storage_state::{StorageAccountState, StorageState};
use http::{BodyFraming, BodyReader, HttpError, Request};
use store::{BlobProps, PutError, Store};

/// The `x-ms-version` the service answers with.
pub const API_VERSION: &str = "2021-08-06";

/// Command-line arguments of the blob service (`netlab __blobd …`).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct BlobdArgs {
    /// Address and port to listen on, e.g. 198.19.0.10:80.
    #[arg(long, default_value = "198.19.0.10:80")]
    pub listen: SocketAddr,
    /// The lab's storage state file (storage.json), re-read when it changes.
    #[arg(long)]
    pub state: PathBuf,
    /// Where blobs are stored (`<data-dir>/<account>/<container>/<blob>`).
    #[arg(long = "data-dir")]
    pub data_dir: PathBuf,
    /// Most connections served at once; more are answered 503 ServerBusy.
    #[arg(long = "max-connections", default_value_t = 64)]
    pub max_connections: usize,
    /// Largest request body accepted, in MiB.
    #[arg(long = "max-body-mib", default_value_t = 256)]
    pub max_body_mib: u64,
}

/// Runs the blob service until SIGTERM or SIGINT. Runs inside the storage namespace.
pub fn run_blobd(args: &BlobdArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install the SIGTERM/SIGINT handler")?;
    }
    let listener = TcpListener::bind(args.listen).with_context(|| {
        format!(
            "cannot listen on {}; is the address configured in this namespace and the port free?",
            args.listen
        )
    })?;
    eprintln!("blobd: listening on {}", args.listen);
    serve_until(listener, args, stop)?;
    eprintln!("blobd: stopped");
    Ok(())
}

/// Serves on an already bound listener until `stop` becomes true (checked every 20 ms).
/// `args.listen` is not used.
pub fn serve_until(
    listener: TcpListener,
    args: &BlobdArgs,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let service = Arc::new(Service::new(args)?);
    listener
        .set_nonblocking(true)
        .context("cannot make the listener non-blocking")?;
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let _ = stream.set_nonblocking(false);
                if active.load(Ordering::SeqCst) >= args.max_connections.max(1) {
                    refuse_busy(stream, peer);
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let guard = ActiveGuard(Arc::clone(&active));
                let svc = Arc::clone(&service);
                let spawned = std::thread::Builder::new()
                    .name("blobd-conn".to_string())
                    .spawn(move || {
                        let _guard = guard;
                        svc.serve_connection(stream, peer);
                    });
                if let Err(e) = spawned {
                    eprintln!("blobd: cannot start a connection thread: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                eprintln!("blobd: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    Ok(())
}

struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn refuse_busy(mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let err = ApiError::new(
        503,
        "ServerBusy",
        "The server is currently unable to receive requests. Please retry your request.",
    );
    let body = err.xml();
    let headers = vec![
        ("Content-Type".to_string(), "application/xml".to_string()),
        ("Content-Length".to_string(), body.len().to_string()),
        ("x-ms-error-code".to_string(), err.code.to_string()),
        ("Connection".to_string(), "close".to_string()),
    ];
    let _ = http::write_head(&mut stream, 503, &headers);
    let _ = stream.write_all(body.as_bytes());
    eprintln!(
        "blobd: - - peer={} status=503 (connection limit)",
        peer.ip()
    );
}

/// An Azure-style error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Azure error code, e.g. `AuthorizationFailure`.
    pub code: &'static str,
    /// Human message (first line of `<Message>`).
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// Azure's XML error body: `<Error><Code>…</Code><Message>…\nRequestId:…\nTime:…</Message></Error>`.
    pub fn xml(&self) -> String {
        self.xml_with(&request_id(), Utc::now())
    }

    fn xml_with(&self, request_id: &str, now: DateTime<Utc>) -> String {
        format!(
            "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}\nRequestId:{}\nTime:{}</Message></Error>",
            self.code,
            xml_escape(&self.message),
            request_id,
            azure_time(now)
        )
    }
}

/// `2026-11-22T06:00:00.5000000Z`: Azure's 7-digit fractional seconds.
fn azure_time(t: DateTime<Utc>) -> String {
    use chrono::Timelike;
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        (t.nanosecond() % 1_000_000_000) / 100
    )
}

fn authorization_failure() -> ApiError {
    ApiError::new(
        403,
        "AuthorizationFailure",
        "This request is not authorized to perform this operation.",
    )
}

/// A random request id shaped like Azure's (a UUID).
fn request_id() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Escapes text for XML content and attributes.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn http_date(t: SystemTime) -> String {
    DateTime::<Utc>::from(t)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// What a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Storage account.
    pub account: String,
    /// Container, if the path names one.
    pub container: Option<String>,
    /// Blob, if the path names one.
    pub blob: Option<String>,
}

/// Resolves account, container and blob from the Host header (`<account>.blob.core.windows.net`)
/// or, otherwise, from the path (`/<account>/<container>/<blob>`). Names are validated.
pub fn resolve_target(host: Option<&str>, raw_path: &str) -> Result<Target, ApiError> {
    let invalid = |m: String| ApiError::new(400, "InvalidUri", m);
    let mut segs: Vec<&str> = raw_path.split('/').skip(1).collect();
    if segs.last() == Some(&"") {
        segs.pop();
    }
    let host_account = host.and_then(|h| {
        h.strip_suffix(".blob.core.windows.net")
            .filter(|a| !a.is_empty() && !a.contains('.'))
    });
    let (account, rest): (String, &[&str]) = match host_account {
        Some(a) => (a.to_string(), &segs[..]),
        None => match segs.split_first() {
            Some((a, rest)) => (
                http::percent_decode(a, false).map_err(|e| invalid(e.to_string()))?,
                rest,
            ),
            None => {
                return Err(invalid(
                    "The request URI does not name a storage account (use /<account>/<container>/<blob>).".to_string(),
                ))
            }
        },
    };
    store::validate_account(&account)
        .map_err(|e| ApiError::new(400, "InvalidResourceName", e.to_string()))?;
    let container = match rest.first() {
        Some(c) => {
            let c = http::percent_decode(c, false).map_err(|e| invalid(e.to_string()))?;
            store::validate_container(&c)
                .map_err(|e| ApiError::new(400, "InvalidResourceName", e.to_string()))?;
            Some(c)
        }
        None => None,
    };
    let blob = if rest.len() > 1 {
        let joined = rest[1..].join("/");
        let b = http::percent_decode(&joined, false).map_err(|e| invalid(e.to_string()))?;
        store::validate_blob(&b)
            .map_err(|e| ApiError::new(400, "InvalidResourceName", e.to_string()))?;
        Some(b)
    } else {
        None
    };
    Ok(Target {
        account,
        container,
        blob,
    })
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` against a blob of `len` bytes. `None`
/// means "ignore the header" (malformed); `Some(Err(()))` an unsatisfiable range.
pub fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(n), len - 1)));
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        u64::MAX
    } else {
        b.parse().ok()?
    };
    if end < start {
        return None;
    }
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end.min(len - 1))))
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct StateKey {
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

struct Service {
    state_path: PathBuf,
    store: Store,
    max_body: u64,
    cache: Mutex<Option<(StateKey, Arc<StorageState>)>>,
}

/// How a handled request ended.
struct Outcome {
    status: u16,
    close: bool,
}

impl Service {
    fn new(args: &BlobdArgs) -> anyhow::Result<Service> {
        let store = Store::new(&args.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                args.data_dir.display()
            )
        })?;
        let svc = Service {
            state_path: args.state.clone(),
            store,
            max_body: args.max_body_mib.saturating_mul(1024 * 1024),
            cache: Mutex::new(None),
        };
        // Fail at start, with a clear message, when the state file is unusable.
        svc.state().map_err(|e| anyhow::anyhow!(e.message))?;
        Ok(svc)
    }

    /// The storage state, reloaded when the file changed.
    fn state(&self) -> Result<Arc<StorageState>, ApiError> {
        use std::os::unix::fs::MetadataExt;
        let fail = |m: String| ApiError::new(500, "InternalError", m);
        let meta = std::fs::metadata(&self.state_path).map_err(|e| {
            fail(format!(
                "The lab storage state {} cannot be read: {e}.",
                self.state_path.display()
            ))
        })?;
        let key = StateKey {
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.modified().ok(),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, s)) = cache.as_ref() {
            if *k == key {
                return Ok(Arc::clone(s));
            }
        }
        let state =
            Arc::new(StorageState::load(&self.state_path).map_err(|e| fail(format!("{e}.")))?);
        *cache = Some((key, Arc::clone(&state)));
        Ok(state)
    }

    fn serve_connection(&self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
        let _ = stream.set_nodelay(true);
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::with_capacity(64 * 1024, read_half);
        let mut writer = stream;
        loop {
            let req = match http::read_request(&mut reader) {
                Ok(Some(r)) => r,
                Ok(None) | Err(HttpError::Io(_)) => return,
                Err(e) => {
                    let err = ApiError::new(
                        400,
                        "InvalidInput",
                        format!("One of the request inputs is not valid: {e}."),
                    );
                    let _ = self.send_error(&mut writer, &err, false, true);
                    eprintln!("blobd: - - peer={} status=400 ({e})", peer.ip());
                    return;
                }
            };
            let outcome = match self.handle(&req, peer.ip(), &mut reader, &mut writer) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!(
                        "blobd: {} {} peer={} status=- (connection error: {e})",
                        req.method,
                        log_target(&req),
                        peer.ip()
                    );
                    return;
                }
            };
            eprintln!(
                "blobd: {} {} peer={} status={}",
                req.method,
                log_target(&req),
                peer.ip(),
                outcome.status
            );
            if outcome.close || !req.keep_alive() {
                return;
            }
        }
    }

    fn send_error<W: Write>(
        &self,
        w: &mut W,
        err: &ApiError,
        head_only: bool,
        close: bool,
    ) -> io::Result<Outcome> {
        let body = err.xml();
        let mut headers = common_headers();
        headers.push(("Content-Type".into(), "application/xml".into()));
        headers.push(("x-ms-error-code".into(), err.code.to_string()));
        headers.push((
            "Content-Length".into(),
            if head_only {
                "0".to_string()
            } else {
                body.len().to_string()
            },
        ));
        if close {
            headers.push(("Connection".into(), "close".into()));
        }
        http::write_head(w, err.status, &headers)?;
        if !head_only {
            w.write_all(body.as_bytes())?;
        }
        w.flush()?;
        Ok(Outcome {
            status: err.status,
            close,
        })
    }

    fn handle<R: io::BufRead, W: Write>(
        &self,
        req: &Request,
        peer: IpAddr,
        reader: &mut R,
        w: &mut W,
    ) -> io::Result<Outcome> {
        let head_only = req.method == "HEAD";
        let framing = match req.framing() {
            Ok(f) => f,
            Err(e) => {
                let err = ApiError::new(
                    400,
                    "InvalidInput",
                    format!("One of the request inputs is not valid: {e}."),
                );
                return self.send_error(w, &err, head_only, true);
            }
        };
        let has_body = framing != BodyFraming::None;
        // Any early answer leaves the body unread: close the connection then.
        let early =
            |svc: &Self, w: &mut W, err: ApiError| svc.send_error(w, &err, head_only, has_body);
        let target = match resolve_target(req.host().as_deref(), &req.raw_path) {
            Ok(t) => t,
            Err(e) => return early(self, w, e),
        };
        let state = match self.state() {
            Ok(s) => s,
            Err(e) => return early(self, w, e),
        };
        let Some(account) = state.accounts.iter().find(|a| a.name == target.account) else {
            return early(
                self,
                w,
                ApiError::new(404, "ResourceNotFound", format!("The specified resource does not exist (no storage account {} in this lab).", target.account)),
            );
        };
        let verdict = firewall::evaluate(&state, account, peer);
        if !verdict.allowed() {
            if let firewall::Verdict::Denied(why) = &verdict {
                eprintln!(
                    "blobd: firewall denied {peer} for account {}: {why}",
                    account.name
                );
            }
            return early(self, w, authorization_failure());
        }
        let restype = req.query_param("restype");
        let comp = req.query_param("comp");
        match (&target.container, &target.blob) {
            (None, _) => {
                if req.method == "GET" && comp == Some("list") {
                    if has_body {
                        return early(
                            self,
                            w,
                            ApiError::new(
                                400,
                                "InvalidInput",
                                "List Containers takes no request body.",
                            ),
                        );
                    }
                    let xml = self.list_containers_xml(req, account);
                    return self.send_xml(w, 200, xml, false);
                }
                early(
                    self,
                    w,
                    ApiError::new(400, "UnsupportedQueryParameter", "Only List Containers (GET /<account>?comp=list) is supported at the account level."),
                )
            }
            (Some(container), None) => {
                let exists = self.container_exists(account, container);
                match (req.method.as_str(), restype, comp) {
                    ("PUT", Some("container"), None) => {
                        if exists {
                            return early(self, w, ApiError::new(409, "ContainerAlreadyExists", "The specified container already exists."));
                        }
                        match self.store.create_container(&account.name, container) {
                            Ok(_) => {
                                let mut h = common_headers();
                                h.push(("Content-Length".into(), "0".into()));
                                h.push(("Last-Modified".into(), http_date(SystemTime::now())));
                                h.push(("ETag".into(), format!("\"0x{:X}\"", rand::random::<u64>())));
                                if has_body {
                                    h.push(("Connection".into(), "close".into()));
                                }
                                http::write_head(w, 201, &h)?;
                                w.flush()?;
                                Ok(Outcome { status: 201, close: has_body })
                            }
                            Err(e) => early(self, w, ApiError::new(500, "InternalError", format!("Cannot create the container: {e}."))),
                        }
                    }
                    ("GET", Some("container"), Some("list")) => {
                        if !exists {
                            return early(self, w, container_not_found());
                        }
                        match self.list_blobs_xml(req, account, container) {
                            Ok(xml) => {
                                if has_body {
                                    return early(self, w, ApiError::new(400, "InvalidInput", "List Blobs takes no request body."));
                                }
                                self.send_xml(w, 200, xml, false)
                            }
                            Err(e) => early(self, w, ApiError::new(500, "InternalError", format!("Cannot list blobs: {e}."))),
                        }
                    }
                    ("GET" | "HEAD", Some("container"), None) => {
                        if !exists {
                            return early(self, w, container_not_found());
                        }
                        let mut h = common_headers();
                        h.push(("Content-Length".into(), "0".into()));
                        h.push(("x-ms-lease-status".into(), "unlocked".into()));
                        h.push(("x-ms-lease-state".into(), "available".into()));
                        h.push(("x-ms-has-immutability-policy".into(), "false".into()));
                        h.push(("x-ms-has-legal-hold".into(), "false".into()));
                        if has_body {
                            h.push(("Connection".into(), "close".into()));
                        }
                        http::write_head(w, 200, &h)?;
                        w.flush()?;
                        Ok(Outcome { status: 200, close: has_body })
                    }
                    (m, _, _) if !["GET", "HEAD", "PUT", "DELETE"].contains(&m) => {
                        early(self, w, ApiError::new(405, "UnsupportedHttpVerb", format!("The resource doesn't support the specified HTTP verb {m}.")))
                    }
                    _ => early(
                        self,
                        w,
                        ApiError::new(400, "UnsupportedQueryParameter", "This container operation is not supported by the lab blob service (supported: Create Container, Get Container Properties, List Blobs)."),
                    ),
                }
            }
            (Some(container), Some(blob)) => {
                if !self.container_exists(account, container) {
                    return early(self, w, container_not_found());
                }
                if comp.is_some() || restype.is_some() {
                    return early(
                        self,
                        w,
                        ApiError::new(400, "UnsupportedQueryParameter", "Blob sub-operations (comp=…) are not supported by the lab blob service."),
                    );
                }
                match req.method.as_str() {
                    "PUT" => self.put_blob(req, framing, reader, w, account, container, blob),
                    "GET" | "HEAD" => {
                        if has_body {
                            return early(
                                self,
                                w,
                                ApiError::new(
                                    400,
                                    "InvalidInput",
                                    "Get Blob takes no request body.",
                                ),
                            );
                        }
                        self.get_blob(req, w, account, container, blob, head_only)
                    }
                    "DELETE" => {
                        if has_body {
                            return early(
                                self,
                                w,
                                ApiError::new(
                                    400,
                                    "InvalidInput",
                                    "Delete Blob takes no request body.",
                                ),
                            );
                        }
                        match self.store.delete(&account.name, container, blob) {
                            Ok(true) => {
                                let mut h = common_headers();
                                h.push(("Content-Length".into(), "0".into()));
                                h.push(("x-ms-delete-type-permanent".into(), "true".into()));
                                http::write_head(w, 202, &h)?;
                                w.flush()?;
                                Ok(Outcome {
                                    status: 202,
                                    close: false,
                                })
                            }
                            Ok(false) => early(self, w, blob_not_found()),
                            Err(e) => early(
                                self,
                                w,
                                ApiError::new(
                                    500,
                                    "InternalError",
                                    format!("Cannot delete the blob: {e}."),
                                ),
                            ),
                        }
                    }
                    m => early(
                        self,
                        w,
                        ApiError::new(
                            405,
                            "UnsupportedHttpVerb",
                            format!("The resource doesn't support the specified HTTP verb {m}."),
                        ),
                    ),
                }
            }
        }
    }

    fn container_exists(&self, account: &StorageAccountState, container: &str) -> bool {
        account.containers.iter().any(|c| c == container)
            || self.store.container_exists(&account.name, container)
    }

    fn send_xml<W: Write>(
        &self,
        w: &mut W,
        status: u16,
        xml: String,
        close: bool,
    ) -> io::Result<Outcome> {
        let mut h = common_headers();
        h.push(("Content-Type".into(), "application/xml".into()));
        h.push(("Content-Length".into(), xml.len().to_string()));
        if close {
            h.push(("Connection".into(), "close".into()));
        }
        http::write_head(w, status, &h)?;
        w.write_all(xml.as_bytes())?;
        w.flush()?;
        Ok(Outcome { status, close })
    }

    #[allow(clippy::too_many_arguments)]
    fn put_blob<R: io::BufRead, W: Write>(
        &self,
        req: &Request,
        framing: BodyFraming,
        reader: &mut R,
        w: &mut W,
        account: &StorageAccountState,
        container: &str,
        blob: &str,
    ) -> io::Result<Outcome> {
        let has_body = framing != BodyFraming::None;
        match req.header("x-ms-blob-type") {
            Some(t) if t.eq_ignore_ascii_case("BlockBlob") => {}
            Some(t) => {
                return self.send_error(
                    w,
                    &ApiError::new(400, "InvalidHeaderValue", format!("x-ms-blob-type {t:?} is not supported by the lab blob service (only BlockBlob).")),
                    false,
                    has_body,
                )
            }
            None => {
                return self.send_error(
                    w,
                    &ApiError::new(400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified: x-ms-blob-type."),
                    false,
                    has_body,
                )
            }
        }
        if req.header("content-length").is_none() && framing != BodyFraming::Chunked {
            return self.send_error(
                w,
                &ApiError::new(
                    411,
                    "MissingContentLengthHeader",
                    "The Content-Length header must be specified.",
                ),
                false,
                false,
            );
        }
        if let BodyFraming::Length(n) = framing {
            if n > self.max_body {
                return self.send_error(
                    w,
                    &ApiError::new(413, "RequestBodyTooLarge", format!("The request body is too large and exceeds the maximum permissible limit ({} bytes).", self.max_body)),
                    false,
                    true,
                );
            }
        }
        if has_body && req.expects_continue() {
            w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            w.flush()?;
        }
        let mut body = BodyReader::new(reader, framing, self.max_body);
        let result = self.store.put_blob(
            &account.name,
            container,
            blob,
            &mut body as &mut dyn Read,
            req.header("content-md5"),
        );
        let finished = body.finished();
        match result {
            Ok(props) => {
                let mut h = common_headers();
                h.push(("Content-Length".into(), "0".into()));
                h.push(("ETag".into(), props.etag.clone()));
                h.push(("Last-Modified".into(), http_date(props.modified)));
                h.push(("Content-MD5".into(), props.md5.clone()));
                h.push(("x-ms-request-server-encrypted".into(), "true".into()));
                http::write_head(w, 201, &h)?;
                w.flush()?;
                Ok(Outcome { status: 201, close: !finished })
            }
            Err(PutError::Body(e)) => {
                if e.kind() == io::ErrorKind::UnexpectedEof || e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock {
                    return Err(e);
                }
                let err = if e.to_string().contains(http::TOO_LARGE_MARKER) {
                    ApiError::new(413, "RequestBodyTooLarge", format!("The request body is too large and exceeds the maximum permissible limit ({} bytes).", self.max_body))
                } else {
                    ApiError::new(400, "InvalidInput", format!("One of the request inputs is not valid: {e}."))
                };
                self.send_error(w, &err, false, true)
            }
            Err(PutError::Md5Mismatch) => self.send_error(
                w,
                &ApiError::new(400, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server."),
                false,
                !finished,
            ),
            Err(PutError::Conflict) => self.send_error(
                w,
                &ApiError::new(409, "InvalidBlobOrBlock", "The blob name conflicts with an existing blob path in the lab's file-system store (a blob cannot be both a file and a directory)."),
                false,
                !finished,
            ),
            Err(PutError::Io(e)) => self.send_error(
                w,
                &ApiError::new(500, "InternalError", format!("Cannot store the blob: {e}.")),
                false,
                !finished,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn get_blob<W: Write>(
        &self,
        req: &Request,
        w: &mut W,
        account: &StorageAccountState,
        container: &str,
        blob: &str,
        head_only: bool,
    ) -> io::Result<Outcome> {
        let path = self.store.blob_path(&account.name, container, blob);
        let props = match self.store.props(&account.name, container, blob) {
            Ok(Some(p)) => p,
            Ok(None) => return self.send_error(w, &blob_not_found(), head_only, false),
            Err(e) => {
                return self.send_error(
                    w,
                    &ApiError::new(500, "InternalError", format!("Cannot read the blob: {e}.")),
                    head_only,
                    false,
                )
            }
        };
        let range_header = req.header("x-ms-range").or_else(|| req.header("range"));
        let range = match range_header.and_then(|h| parse_range(h, props.len)) {
            None => None,
            Some(Ok(r)) => Some(r),
            Some(Err(())) => {
                return self.send_error(
                    w,
                    &ApiError::new(
                        416,
                        "InvalidRange",
                        "The range specified is invalid for the current size of the resource.",
                    ),
                    head_only,
                    false,
                )
            }
        };
        let mut h = common_headers();
        h.push(("Content-Type".into(), "application/octet-stream".into()));
        h.push(("ETag".into(), props.etag.clone()));
        h.push(("Last-Modified".into(), http_date(props.modified)));
        h.push(("x-ms-blob-type".into(), "BlockBlob".into()));
        h.push(("x-ms-lease-status".into(), "unlocked".into()));
        h.push(("x-ms-lease-state".into(), "available".into()));
        h.push(("x-ms-server-encrypted".into(), "true".into()));
        h.push(("x-ms-creation-time".into(), http_date(props.modified)));
        h.push(("Accept-Ranges".into(), "bytes".into()));
        let (status, start, count) = match range {
            Some((a, b)) => {
                h.push((
                    "Content-Range".into(),
                    format!("bytes {a}-{b}/{}", props.len),
                ));
                h.push(("x-ms-blob-content-md5".into(), props.md5.clone()));
                (206, a, b - a + 1)
            }
            None => {
                h.push(("Content-MD5".into(), props.md5.clone()));
                (200, 0, props.len)
            }
        };
        h.push(("Content-Length".into(), count.to_string()));
        if head_only {
            http::write_head(w, status, &h)?;
            w.flush()?;
            return Ok(Outcome {
                status,
                close: false,
            });
        }
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => return self.send_error(w, &blob_not_found(), false, false),
        };
        if start > 0 {
            use std::io::Seek;
            f.seek(io::SeekFrom::Start(start))?;
        }
        http::write_head(w, status, &h)?;
        let copied = io::copy(&mut f.take(count), w)?;
        w.flush()?;
        if copied != count {
            // The blob shrank while being sent: the framing is broken, close.
            return Ok(Outcome {
                status,
                close: true,
            });
        }
        Ok(Outcome {
            status,
            close: false,
        })
    }

    fn list_blobs_xml(
        &self,
        req: &Request,
        account: &StorageAccountState,
        container: &str,
    ) -> io::Result<String> {
        let prefix = req.query_param("prefix").unwrap_or("");
        let delimiter = req.query_param("delimiter").filter(|d| !d.is_empty());
        let blobs = self.store.list(&account.name, container, prefix)?;
        Ok(list_blobs_document(
            &endpoint(req, &account.name),
            container,
            prefix,
            delimiter,
            &blobs,
        ))
    }

    fn list_containers_xml(&self, req: &Request, account: &StorageAccountState) -> String {
        let mut names: Vec<String> = account.containers.clone();
        names.extend(self.store.container_names(&account.name));
        names.sort();
        names.dedup();
        let prefix = req.query_param("prefix").unwrap_or("");
        names.retain(|n| n.starts_with(prefix));
        let mut x = String::from("\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>");
        x.push_str(&format!(
            "<EnumerationResults ServiceEndpoint=\"{}/\">",
            xml_escape(&endpoint(req, &account.name))
        ));
        if !prefix.is_empty() {
            x.push_str(&format!("<Prefix>{}</Prefix>", xml_escape(prefix)));
        }
        x.push_str("<Containers>");
        let now = http_date(SystemTime::now());
        for n in names {
            x.push_str(&format!(
                "<Container><Name>{}</Name><Properties><Last-Modified>{now}</Last-Modified><Etag>\"0x0\"</Etag><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><HasImmutabilityPolicy>false</HasImmutabilityPolicy><HasLegalHold>false</HasLegalHold></Properties></Container>",
                xml_escape(&n)
            ));
        }
        x.push_str("</Containers><NextMarker /></EnumerationResults>");
        x
    }
}

fn endpoint(req: &Request, account: &str) -> String {
    match req.host() {
        Some(h) if h.ends_with(".blob.core.windows.net") => format!("http://{h}"),
        Some(h) => format!("http://{h}/{account}"),
        None => format!("http:///{account}"),
    }
}

/// Renders Azure's List Blobs `EnumerationResults` document.
pub fn list_blobs_document(
    service_endpoint: &str,
    container: &str,
    prefix: &str,
    delimiter: Option<&str>,
    blobs: &[BlobProps],
) -> String {
    let mut x = String::from("\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    x.push_str(&format!(
        "<EnumerationResults ServiceEndpoint=\"{}/\" ContainerName=\"{}\">",
        xml_escape(service_endpoint),
        xml_escape(container)
    ));
    if !prefix.is_empty() {
        x.push_str(&format!("<Prefix>{}</Prefix>", xml_escape(prefix)));
    }
    if let Some(d) = delimiter {
        x.push_str(&format!("<Delimiter>{}</Delimiter>", xml_escape(d)));
    }
    x.push_str("<Blobs>");
    let mut last_prefix: Option<String> = None;
    for b in blobs {
        if let Some(d) = delimiter {
            let rest = &b.name[prefix.len().min(b.name.len())..];
            if let Some(i) = rest.find(d) {
                let p = format!("{prefix}{}", &rest[..i + d.len()]);
                if last_prefix.as_deref() != Some(p.as_str()) {
                    x.push_str(&format!(
                        "<BlobPrefix><Name>{}</Name></BlobPrefix>",
                        xml_escape(&p)
                    ));
                    last_prefix = Some(p);
                }
                continue;
            }
        }
        let modified = http_date(b.modified);
        x.push_str(&format!(
            "<Blob><Name>{}</Name><Properties><Creation-Time>{modified}</Creation-Time><Last-Modified>{modified}</Last-Modified><Etag>{}</Etag><Content-Length>{}</Content-Length><Content-Type>application/octet-stream</Content-Type><Content-Encoding /><Content-Language /><Content-MD5>{}</Content-MD5><Cache-Control /><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties></Blob>",
            xml_escape(&b.name),
            xml_escape(b.etag.trim_matches('"')),
            b.len,
            b.md5
        ));
    }
    x.push_str("</Blobs><NextMarker /></EnumerationResults>");
    x
}

fn container_not_found() -> ApiError {
    ApiError::new(
        404,
        "ContainerNotFound",
        "The specified container does not exist.",
    )
}

fn blob_not_found() -> ApiError {
    ApiError::new(404, "BlobNotFound", "The specified blob does not exist.")
}

fn common_headers() -> Vec<(String, String)> {
    vec![
        ("Server".into(), "netlab-blobd".into()),
        ("x-ms-request-id".into(), request_id()),
        ("x-ms-version".into(), API_VERSION.into()),
        ("Date".into(), http_date(SystemTime::now())),
    ]
}

fn log_target(req: &Request) -> String {
    let mut s = req.raw_path.clone();
    if !req.query.is_empty() {
        s.push('?');
        let q: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&q.join("&"));
    }
    s.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_xml_has_azure_shape() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T06:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let x = authorization_failure().xml_with("abc", t);
        assert_eq!(
            x,
            "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationFailure</Code><Message>This request is not authorized to perform this operation.\nRequestId:abc\nTime:2026-11-22T06:00:00.5000000Z</Message></Error>"
        );
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }

    #[test]
    fn targets_path_and_host_style() {
        let t = resolve_target(Some("198.19.0.10"), "/labstore/captures/dir/a%20b.pcap").unwrap();
        assert_eq!(t.account, "labstore");
        assert_eq!(t.container.as_deref(), Some("captures"));
        assert_eq!(t.blob.as_deref(), Some("dir/a b.pcap"));
        let t = resolve_target(Some("labstore.blob.core.windows.net"), "/captures/x").unwrap();
        assert_eq!(
            (t.account.as_str(), t.blob.as_deref()),
            ("labstore", Some("x"))
        );
        let t = resolve_target(None, "/labstore/captures/").unwrap();
        assert_eq!((t.container.as_deref(), t.blob), (Some("captures"), None));
        let t = resolve_target(None, "/labstore").unwrap();
        assert_eq!(t.container, None);
        for bad in [
            "/",
            "/labstore/captures/../../etc/passwd",
            "/labstore/captures/a/%2e%2e/b",
            "/labstore/captures/%2e%2e",
            "/labstore/../x",
            "/Bad/captures/x",
            "/labstore/captures/a%00b",
            "/labstore/captures/a%5cb",
        ] {
            let e = resolve_target(None, bad).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
    }

    #[test]
    fn resolved_names_never_escape() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let parts = [
            "/", "..", ".", "%2e", "%2E", "%2f", "%5c", "a", "abc", "%00", "%", "\\", "-", "x y",
        ];
        for _ in 0..5_000 {
            let mut p = String::from("/labstore/captures/");
            for _ in 0..rng.gen_range(0..8) {
                p.push_str(parts[rng.gen_range(0..parts.len())]);
            }
            if let Ok(t) = resolve_target(None, &p) {
                if let Some(b) = t.blob {
                    assert!(store::validate_blob(&b).is_ok(), "{p} -> {b}");
                    assert!(
                        !b.split('/').any(|s| s == ".." || s == "." || s.is_empty()),
                        "{p} -> {b}"
                    );
                    assert!(!b.contains('\\') && !b.contains('\0'), "{p} -> {b}");
                }
            }
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-4", 10), Some(Ok((0, 4))));
        assert_eq!(parse_range("bytes=5-", 10), Some(Ok((5, 9))));
        assert_eq!(parse_range("bytes=0-33554431", 10), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=-3", 10), Some(Ok((7, 9))));
        assert_eq!(parse_range("bytes=10-", 10), Some(Err(())));
        assert_eq!(parse_range("bytes=0-0", 0), Some(Err(())));
        assert_eq!(parse_range("bytes=5-2", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("bytes=x-", 10), None);
    }

    #[test]
    fn list_document_shape_and_delimiter() {
        let p = |n: &str| BlobProps {
            name: n.into(),
            len: 3,
            md5: "AAA=".into(),
            modified: SystemTime::UNIX_EPOCH,
            etag: "\"0x1\"".into(),
        };
        let blobs = vec![p("a/1"), p("a/2"), p("b&c"), p("d/x/y")];
        let x = list_blobs_document("http://h/acct", "cont", "", Some("/"), &blobs);
        assert!(x.contains(
            "<EnumerationResults ServiceEndpoint=\"http://h/acct/\" ContainerName=\"cont\">"
        ));
        assert_eq!(
            x.matches("<BlobPrefix><Name>a/</Name></BlobPrefix>")
                .count(),
            1
        );
        assert!(x.contains("<BlobPrefix><Name>d/</Name></BlobPrefix>"));
        assert!(x.contains("<Blob><Name>b&amp;c</Name><Properties><Creation-Time>Thu, 01 Jan 1970 00:00:00 GMT</Creation-Time>"));
        assert!(x.contains("<Content-Length>3</Content-Length>"));
        assert!(x.contains("<Etag>0x1</Etag>"));
        assert!(x.ends_with("</Blobs><NextMarker /></EnumerationResults>"));
        let x = list_blobs_document("http://h/acct", "cont", "a/", None, &blobs[..2]);
        assert!(x.contains("<Prefix>a/</Prefix>"));
        assert_eq!(x.matches("<Blob>").count(), 2);
    }
}
