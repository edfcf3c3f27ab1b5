//! The blob service as the lab runs it: `netlab __blobd`, stopped by SIGTERM (no root).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netlab::storage_state::{StorageAccountState, StorageState};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http(port: u16, request: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0usize;
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        if l.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, body)
}

#[test]
fn blobd_binary_serves_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("storage.json");
    StorageState {
        accounts: vec![StorageAccountState {
            name: "labstore".into(),
            containers: vec!["captures".into()],
            default_action: "Allow".into(),
            vnet_rules: vec![],
            ip_rules: vec![],
        }],
        subnets: vec![],
    }
    .save(&state)
    .unwrap();
    let port = free_port();
    let log = dir.path().join("blobd.log");
    let child = Command::new(env!("CARGO_BIN_EXE_netlab"))
        .arg("__blobd")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--state")
        .arg(&state)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "blobd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (st, _) = http(
        port,
        b"PUT /labstore/captures/a.txt HTTP/1.1\r\nHost: x\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(st, 201);
    let (st, body) = http(
        port,
        b"GET /labstore/captures/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((st, body.as_slice()), (200, &b"abc"[..]));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "blobd ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("blobd: PUT /labstore/captures/a.txt peer=127.0.0.1 status=201"),
        "{text}"
    );
    assert!(
        text.contains("blobd: GET /labstore/captures/a.txt peer=127.0.0.1 status=200"),
        "{text}"
    );
}

#[test]
fn blobd_binary_refuses_a_missing_state_file_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_netlab"))
        .arg("__blobd")
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--state")
        .arg(dir.path().join("missing.json"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.json"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
