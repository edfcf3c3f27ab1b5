//! The lab's tiny built-in server (`netlab __serve`): a TCP listener that either answers
//! HTTP/1.1 requests (optionally making every Nth response slow) or accepts connections and
//! echoes what it receives (enough for "is PostgreSQL/Redis reachable" scenarios).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `netlab __serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// TCP port to listen on (all addresses of the namespace).
    #[arg(long)]
    pub port: u16,
    /// Answer HTTP requests instead of echoing.
    #[arg(long)]
    pub http: bool,
    /// Every Nth HTTP response is delayed (0 = never).
    #[arg(long, default_value_t = 0)]
    pub slow_every: u64,
    /// Delay of a slow response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub slow_ms: u64,
}

/// Runs the server until killed.
pub fn run_serve(args: &ServeArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", args.port))
        .map_err(|e| anyhow::anyhow!("cannot listen on port {}: {e}", args.port))?;
    let counter = Arc::new(AtomicU64::new(0));
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let a = args.clone();
        let c = Arc::clone(&counter);
        std::thread::spawn(move || {
            let _ = if a.http {
                handle_http(stream, &a, &c)
            } else {
                handle_echo(stream)
            };
        });
    }
    Ok(())
}

/// `read`, retried when a signal interrupts it.
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn handle_echo(mut s: TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut buf = [0u8; 16384];
    loop {
        let n = read_some(&mut s, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n])?;
    }
}

/// Index of the end of the HTTP header block (`\r\n\r\n`), if complete.
pub fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn handle_http(mut s: TcpStream, a: &ServeArgs, counter: &AtomicU64) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // One request per connection would hide keep-alive behaviour; serve until the client
        // closes.
        let end = loop {
            if let Some(e) = header_end(&buf) {
                break e;
            }
            if buf.len() > 64 * 1024 {
                s.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
                return Ok(());
            }
            let n = read_some(&mut s, &mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let body_len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0)
            .min(64 * 1024 * 1024);
        // Discard the request body.
        let mut have = buf.len() - end;
        while have < body_len {
            let n = read_some(&mut s, &mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            have += n;
        }
        let leftover = have - body_len;
        let tail = buf.len() - leftover;
        buf.drain(..tail);
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if a.slow_every > 0 && n.is_multiple_of(a.slow_every) {
            std::thread::sleep(Duration::from_millis(a.slow_ms));
        }
        let first = head.lines().next().unwrap_or("");
        let body = format!("netlab port {} request {n}: {first}\n", a.port);
        let close = head.to_ascii_lowercase().contains("connection: close");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
            body.len(),
            if close { "close" } else { "keep-alive" }
        );
        s.write_all(resp.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_end_found() {
        assert_eq!(
            header_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"),
            Some(27)
        );
        assert_eq!(header_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(header_end(b""), None);
    }

    #[test]
    fn http_round_trip_on_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let a = ServeArgs {
            port,
            http: true,
            slow_every: 2,
            slow_ms: 200,
        };
        let c = Arc::new(AtomicU64::new(0));
        let c2 = Arc::clone(&c);
        std::thread::spawn(move || {
            for conn in l.incoming().take(1) {
                let _ = handle_http(conn.unwrap(), &a, &c2);
            }
        });
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t0 = std::time::Instant::now();
        s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 1024];
        let n = read_some(&mut s, &mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
        assert!(t0.elapsed() < Duration::from_millis(150));
        let t1 = std::time::Instant::now();
        s.write_all(b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let n = read_some(&mut s, &mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("request 2: GET /b"));
        assert!(
            t1.elapsed() >= Duration::from_millis(200),
            "second response is slow"
        );
    }
}
