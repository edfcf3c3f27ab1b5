//! HTTP-level tests of the lab blob service on loopback (no root needed).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

use netlab::blobd::{serve_until, BlobdArgs};
use netlab::storage_state::{StorageAccountState, StorageState, SubnetState};

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    state_path: PathBuf,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn account(default_action: &str, ip_rules: &[&str], vnet_rules: &[&str]) -> StorageAccountState {
    StorageAccountState {
        name: "labstore".into(),
        containers: vec!["captures".into()],
        default_action: default_action.into(),
        vnet_rules: vnet_rules.iter().map(|s| s.to_string()).collect(),
        ip_rules: ip_rules.iter().map(|s| s.to_string()).collect(),
    }
}

fn state(acct: StorageAccountState, loopback_endpoints: &[&str]) -> StorageState {
    StorageState {
        accounts: vec![acct],
        subnets: vec![SubnetState {
            // Loopback plays the VM subnet here.
            name: "labvnet/default".into(),
            prefix: "127.0.0.0/8".into(),
            service_endpoints: loopback_endpoints.iter().map(|s| s.to_string()).collect(),
        }],
    }
}

fn start(st: &StorageState, max_connections: usize, max_body_mib: u64) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("storage.json");
    st.save(&state_path).unwrap();
    let data_dir = dir.path().join("data");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let args = BlobdArgs {
        listen: addr,
        state: state_path.clone(),
        data_dir: data_dir.clone(),
        max_connections,
        max_body_mib,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let handle = std::thread::spawn(move || serve_until(listener, &args, s2));
    // Ready once the data directory exists.
    let t = Instant::now();
    while !data_dir.join(".tmp").is_dir() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "blob service did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Server {
        addr,
        stop,
        handle: Some(handle),
        state_path,
        data_dir,
        _dir: dir,
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, n: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

fn read_response(r: &mut impl BufRead, head: bool) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if !head {
        let len: usize = resp.header("content-length").unwrap().parse().unwrap();
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body).unwrap();
    }
    resp
}

/// Sends raw bytes on a fresh connection and reads one response.
fn raw(addr: SocketAddr, bytes: &[u8], head: bool) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    read_response(&mut BufReader::new(s), head)
}

fn req(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "PUT" {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes, method == "HEAD")
}

fn put_blob(addr: SocketAddr, path: &str, body: &[u8]) -> Resp {
    req(addr, "PUT", path, &[("x-ms-blob-type", "BlockBlob")], body)
}

fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("x-ms-error-code"), Some(code), "{r:?}");
    let t = r.text();
    assert!(
        t.contains(&format!("<Error><Code>{code}</Code><Message>")),
        "{t}"
    );
    assert!(t.contains("\nRequestId:") && t.contains("\nTime:"), "{t}");
}

#[test]
fn put_get_head_list_delete_round_trip() {
    let srv = start(&state(account("Allow", &[], &[]), &[]), 16, 8);
    let a = srv.addr;
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();

    // The container from the state file works without being created.
    let r = put_blob(a, "/labstore/captures/run1/bytes.bin", &data);
    assert_eq!(r.status, 201, "{}", r.text());
    let md5 = r.header("content-md5").unwrap().to_string();
    assert_eq!(md5.len(), 24);
    assert!(r.header("etag").unwrap().starts_with("\"0x"));

    let g = req(a, "GET", "/labstore/captures/run1/bytes.bin", &[], b"");
    assert_eq!(g.status, 200);
    assert_eq!(g.body, data, "exact bytes back");
    assert_eq!(g.header("content-md5"), Some(md5.as_str()));

    let h = req(a, "HEAD", "/labstore/captures/run1/bytes.bin", &[], b"");
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some("70000"));
    assert_eq!(h.header("content-md5"), Some(md5.as_str()));
    assert_eq!(h.header("x-ms-blob-type"), Some("BlockBlob"));
    assert!(h.header("last-modified").unwrap().ends_with(" GMT"));
    assert_eq!(h.header("etag"), r.header("etag"));

    // Ranges (the Azure SDK downloads with x-ms-range).
    let g = req(
        a,
        "GET",
        "/labstore/captures/run1/bytes.bin",
        &[("x-ms-range", "bytes=10-19")],
        b"",
    );
    assert_eq!(g.status, 206);
    assert_eq!(g.body, &data[10..20]);
    assert_eq!(g.header("content-range"), Some("bytes 10-19/70000"));
    let g = req(
        a,
        "GET",
        "/labstore/captures/run1/bytes.bin",
        &[("Range", "bytes=90000-")],
        b"",
    );
    assert_error(&g, 416, "InvalidRange");

    // A second blob, host-style addressing, and an empty blob.
    let r = req(
        a,
        "PUT",
        "/captures/notes.txt",
        &[
            ("x-ms-blob-type", "BlockBlob"),
            ("Host", "labstore.blob.core.windows.net"),
        ],
        b"hello",
    );
    // Host header given twice: ours (127.0.0.1) first, so this is path style and fails.
    assert_eq!(r.status, 400, "{}", r.text());
    let r = raw(
        a,
        b"PUT /captures/notes.txt HTTP/1.1\r\nHost: labstore.blob.core.windows.net\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        false,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(put_blob(a, "/labstore/captures/empty", b"").status, 201);
    let g = req(a, "GET", "/labstore/captures/notes.txt", &[], b"");
    assert_eq!(g.body, b"hello");

    // List Blobs: Azure's EnumerationResults shape.
    let l = req(
        a,
        "GET",
        "/labstore/captures?restype=container&comp=list",
        &[],
        b"",
    );
    assert_eq!(l.status, 200);
    assert_eq!(l.header("content-type"), Some("application/xml"));
    let x = l.text();
    assert!(x.contains("<EnumerationResults ServiceEndpoint=\"http://127.0.0.1/labstore/\" ContainerName=\"captures\"><Blobs><Blob><Name>empty</Name>"), "{x}");
    let names: Vec<&str> = x
        .split("<Name>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap())
        .collect();
    assert_eq!(names, ["empty", "notes.txt", "run1/bytes.bin"]);
    assert!(x.contains("<Content-Length>70000</Content-Length>"));
    assert!(x.contains(&format!("<Content-MD5>{md5}</Content-MD5>")));
    assert!(x.contains("<BlobType>BlockBlob</BlobType>"));
    let l = req(
        a,
        "GET",
        "/labstore/captures?restype=container&comp=list&prefix=run1%2F",
        &[],
        b"",
    );
    assert_eq!(l.text().matches("<Blob>").count(), 1);
    assert!(l.text().contains("<Prefix>run1/</Prefix>"));

    // Create Container.
    assert_eq!(
        req(a, "PUT", "/labstore/newbox?restype=container", &[], b"").status,
        201
    );
    assert_error(
        &req(a, "PUT", "/labstore/newbox?restype=container", &[], b""),
        409,
        "ContainerAlreadyExists",
    );
    assert_eq!(put_blob(a, "/labstore/newbox/x", b"1").status, 201);
    let lc = req(a, "GET", "/labstore?comp=list", &[], b"");
    assert!(
        lc.text().contains("<Name>captures</Name>") && lc.text().contains("<Name>newbox</Name>"),
        "{}",
        lc.text()
    );

    // Delete.
    let d = req(a, "DELETE", "/labstore/captures/run1/bytes.bin", &[], b"");
    assert_eq!(d.status, 202);
    assert_error(
        &req(a, "GET", "/labstore/captures/run1/bytes.bin", &[], b""),
        404,
        "BlobNotFound",
    );
    assert_error(
        &req(a, "DELETE", "/labstore/captures/run1/bytes.bin", &[], b""),
        404,
        "BlobNotFound",
    );
    let h = req(a, "HEAD", "/labstore/captures/run1/bytes.bin", &[], b"");
    assert_eq!(h.status, 404);
    assert_eq!(h.header("x-ms-error-code"), Some("BlobNotFound"));

    // Missing container and unknown account.
    assert_error(
        &put_blob(a, "/labstore/nosuch/x", b"1"),
        404,
        "ContainerNotFound",
    );
    assert_error(
        &req(
            a,
            "GET",
            "/labstore/nosuch?restype=container&comp=list",
            &[],
            b"",
        ),
        404,
        "ContainerNotFound",
    );
    assert_error(
        &req(a, "GET", "/otherstore/captures/x", &[], b""),
        404,
        "ResourceNotFound",
    );

    // Stored where documented, written atomically (no temporary left behind).
    assert_eq!(
        std::fs::read(srv.data_dir.join("labstore/captures/notes.txt")).unwrap(),
        b"hello"
    );
    assert_eq!(
        std::fs::read_dir(srv.data_dir.join(".tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn keep_alive_and_expect_continue() {
    let srv = start(&state(account("Allow", &[], &[]), &[]), 16, 8);
    let s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"PUT /labstore/captures/k HTTP/1.1\r\nHost: x\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let cont = read_response(&mut r, true);
    assert_eq!(cont.status, 100);
    w.write_all(b"abc").unwrap();
    assert_eq!(read_response(&mut r, false).status, 201);
    // Same connection, chunked upload then a GET.
    w.write_all(b"PUT /labstore/captures/c HTTP/1.1\r\nHost: x\r\nx-ms-blob-type: BlockBlob\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r, false).status, 201);
    w.write_all(b"GET /labstore/captures/c HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let g = read_response(&mut r, false);
    assert_eq!(g.body, b"abcde");
}

fn write_state(srv: &Server, st: &StorageState) {
    st.save(&srv.state_path).unwrap();
}

#[test]
fn firewall_is_enforced_per_request_and_state_changes_apply_at_once() {
    let srv = start(&state(account("Deny", &[], &[]), &[]), 16, 8);
    let a = srv.addr;
    // Deny, nothing matches loopback.
    let r = put_blob(a, "/labstore/captures/x", b"1");
    assert_error(&r, 403, "AuthorizationFailure");
    assert!(r.text().contains(
        "<Message>This request is not authorized to perform this operation.\nRequestId:"
    ));
    assert_error(
        &req(
            a,
            "GET",
            "/labstore/captures?restype=container&comp=list",
            &[],
            b"",
        ),
        403,
        "AuthorizationFailure",
    );

    // IP rule for loopback: allowed on the next request, no restart.
    write_state(&srv, &state(account("Deny", &["127.0.0.0/8"], &[]), &[]));
    assert_eq!(put_blob(a, "/labstore/captures/x", b"1").status, 201);

    // VNet rule for the subnet, but the subnet lacks the endpoint (scenario F): 403.
    write_state(
        &srv,
        &state(
            account("Deny", &[], &["labvnet/default"]),
            &["Microsoft.Sql"],
        ),
    );
    assert_error(
        &put_blob(a, "/labstore/captures/y", b"2"),
        403,
        "AuthorizationFailure",
    );
    assert_error(
        &req(a, "GET", "/labstore/captures/x", &[], b""),
        403,
        "AuthorizationFailure",
    );

    // The endpoint restored: allowed.
    write_state(
        &srv,
        &state(
            account("Deny", &[], &["labvnet/default"]),
            &["Microsoft.Sql", "Microsoft.Storage"],
        ),
    );
    assert_eq!(put_blob(a, "/labstore/captures/y", b"2").status, 201);

    // Endpoint present but no VNet rule: 403.
    write_state(
        &srv,
        &state(account("Deny", &[], &[]), &["Microsoft.Storage"]),
    );
    assert_error(
        &req(a, "GET", "/labstore/captures/y", &[], b""),
        403,
        "AuthorizationFailure",
    );

    // Default Allow again.
    write_state(&srv, &state(account("Allow", &[], &[]), &[]));
    assert_eq!(req(a, "GET", "/labstore/captures/y", &[], b"").body, b"2");

    // A broken state file fails closed with a clear 500, and recovers when fixed.
    std::fs::write(&srv.state_path, b"{not json").unwrap();
    assert_error(
        &req(a, "GET", "/labstore/captures/y", &[], b""),
        500,
        "InternalError",
    );
    write_state(&srv, &state(account("Allow", &[], &[]), &[]));
    assert_eq!(req(a, "GET", "/labstore/captures/y", &[], b"").status, 200);
}

fn outside_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn hostile_requests_are_refused_and_the_server_survives() {
    let srv = start(&state(account("Allow", &[], &[]), &[]), 16, 1);
    let a = srv.addr;
    let before = outside_files(srv._dir.path());
    // Path traversal, raw and encoded.
    for path in [
        "/labstore/captures/../../escape",
        "/labstore/captures/%2e%2e/%2e%2e/escape",
        "/labstore/captures/a/..%2f..%2f..%2fescape",
        "/labstore/captures/a%5c..%5cescape",
        "/labstore/captures//escape",
    ] {
        let r = put_blob(a, path, b"x");
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    assert_eq!(
        outside_files(srv._dir.path()),
        before,
        "nothing written outside the data dir"
    );
    assert!(!srv._dir.path().join("escape").exists());

    // Malformed requests: 400, connection closed, server alive.
    let bad: Vec<Vec<u8>> = vec![
        b"NONSENSE\r\n\r\n".to_vec(),
        b"GET /labstore/captures/x HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /labstore/captures/x HTTP/1.1\r\nBroken header\r\n\r\n".to_vec(),
        b"PUT /labstore/captures/x HTTP/1.1\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: abc\r\n\r\n".to_vec(),
        b"PUT /labstore/captures/x HTTP/1.1\r\nx-ms-blob-type: BlockBlob\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        [b"GET /x HTTP/1.1\r\nX-Big: ".to_vec(), vec![b'a'; 20_000], b"\r\n\r\n".to_vec()].concat(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
    ];
    for b in &bad {
        let r = raw(a, b, false);
        assert_eq!(
            r.status,
            400,
            "{:?} -> {}",
            String::from_utf8_lossy(&b[..b.len().min(60)]),
            r.text()
        );
        assert_eq!(r.header("connection"), Some("close"));
    }
    // Missing blob type, missing length, unsupported blob type.
    assert_error(
        &req(a, "PUT", "/labstore/captures/x", &[], b"1"),
        400,
        "MissingRequiredHeader",
    );
    assert_error(
        &req(
            a,
            "PUT",
            "/labstore/captures/x",
            &[("x-ms-blob-type", "PageBlob")],
            b"1",
        ),
        400,
        "InvalidHeaderValue",
    );
    let r = raw(a, b"PUT /labstore/captures/x HTTP/1.1\r\nx-ms-blob-type: BlockBlob\r\nConnection: close\r\n\r\n", false);
    assert_error(&r, 411, "MissingContentLengthHeader");
    // Bodies over the limit (1 MiB here): declared, and chunked.
    let r = raw(
        a,
        b"PUT /labstore/captures/big HTTP/1.1\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 2000000\r\n\r\n",
        false,
    );
    assert_error(&r, 413, "RequestBodyTooLarge");
    let mut chunked = b"PUT /labstore/captures/big HTTP/1.1\r\nx-ms-blob-type: BlockBlob\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(b"10000\r\n");
        chunked.extend(std::iter::repeat_n(b'z', 0x10000));
        chunked.extend_from_slice(b"\r\n");
    }
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may close before reading everything; a failed write is fine.
    let _ = s.write_all(&chunked);
    let r = read_response(&mut BufReader::new(s), false);
    assert_error(&r, 413, "RequestBodyTooLarge");
    assert_error(
        &req(a, "GET", "/labstore/captures/big", &[], b""),
        404,
        "BlobNotFound",
    );
    assert_eq!(
        std::fs::read_dir(srv.data_dir.join(".tmp"))
            .unwrap()
            .count(),
        0
    );
    // Unsupported verb.
    assert_error(
        &req(a, "PATCH", "/labstore/captures/x", &[], b""),
        405,
        "UnsupportedHttpVerb",
    );
    // Abrupt disconnects mid-head and mid-body.
    for b in [&b"GET /labstore/capt"[..], b"PUT /labstore/captures/half HTTP/1.1\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 100\r\n\r\nabc"] {
        let mut s = TcpStream::connect(a).unwrap();
        s.write_all(b).unwrap();
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_error(
        &req(a, "GET", "/labstore/captures/half", &[], b""),
        404,
        "BlobNotFound",
    );
    // Still serving.
    assert_eq!(put_blob(a, "/labstore/captures/ok", b"fine").status, 201);
    assert_eq!(
        req(a, "GET", "/labstore/captures/ok", &[], b"").body,
        b"fine"
    );
}

#[test]
fn connection_cap_answers_busy_and_recovers() {
    let srv = start(&state(account("Allow", &[], &[]), &[]), 2, 1);
    let a = srv.addr;
    let idle1 = TcpStream::connect(a).unwrap();
    let idle2 = TcpStream::connect(a).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let r = req(
        a,
        "GET",
        "/labstore/captures?restype=container&comp=list",
        &[],
        b"",
    );
    assert_error(&r, 503, "ServerBusy");
    drop(idle1);
    drop(idle2);
    let mut ok = false;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(50));
        if req(
            a,
            "GET",
            "/labstore/captures?restype=container&comp=list",
            &[],
            b"",
        )
        .status
            == 200
        {
            ok = true;
            break;
        }
    }
    assert!(ok, "server did not recover after idle connections closed");
}

#[test]
fn curl_round_trip_when_curl_is_installed() {
    let have_curl = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_curl {
        println!("SKIP curl round trip: curl is not installed (sudo apt-get install curl)");
        return;
    }
    let srv = start(&state(account("Allow", &[], &[]), &[]), 16, 8);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("up.bin");
    // Over 1 MiB so curl uses Expect: 100-continue.
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let url = format!("http://{}/labstore/captures/curl/up.bin", srv.addr);
    let out = std::process::Command::new("curl")
        .args(["-sS", "-f", "-T"])
        .arg(&src)
        .args(["-H", "x-ms-blob-type: BlockBlob", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl upload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst = dir.path().join("down.bin");
    let out = std::process::Command::new("curl")
        .args(["-sS", "-f", "-o"])
        .arg(&dst)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl download: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&dst).unwrap(), data);
}
