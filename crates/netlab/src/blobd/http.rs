//! A small, defensive HTTP/1.1 request reader and response writer for the blob service.
//!
//! Limits: request head (request line plus headers) at most [`MAX_HEAD_BYTES`], at most
//! [`MAX_HEADERS`] headers, chunk-size lines at most 1 KiB. Every malformed input is an
//! [`HttpError`], never a panic.

use std::io::{self, BufRead, Read, Write};

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers accepted in one request.
pub const MAX_HEADERS: usize = 100;

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request is not valid HTTP/1.x.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The request head or body exceeds a limit.
    #[error("request too large: {0}")]
    TooLarge(String),
    /// The connection failed or timed out.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
}

/// One parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method, e.g. `PUT`.
    pub method: String,
    /// The path part of the target, still percent-encoded, starting with `/`.
    pub raw_path: String,
    /// Decoded query parameters in order.
    pub query: Vec<(String, String)>,
    /// `true` for HTTP/1.1, `false` for HTTP/1.0.
    pub http11: bool,
    /// Headers with lower-cased names.
    pub headers: Vec<(String, String)>,
    /// Host taken from an absolute-form target, if any.
    pub target_host: Option<String>,
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Request {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter with this name (case-sensitive, as Azure).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The host the request is for (absolute-form target first, then the Host header),
    /// lower-cased and without the port.
    pub fn host(&self) -> Option<String> {
        let h = self
            .target_host
            .as_deref()
            .or_else(|| self.header("host"))?;
        let h = h.trim();
        let without_port = if h.starts_with('[') {
            h.split(']').next().map(|s| s.trim_start_matches('['))?
        } else {
            h.rsplit_once(':').map(|(a, _)| a).unwrap_or(h)
        };
        Some(without_port.to_ascii_lowercase())
    }

    /// How the body is framed; an error when the framing headers are invalid.
    pub fn framing(&self) -> Result<BodyFraming, HttpError> {
        if let Some(te) = self.header("transfer-encoding") {
            if te.trim().eq_ignore_ascii_case("chunked") {
                return Ok(BodyFraming::Chunked);
            }
            return Err(HttpError::Malformed(format!(
                "unsupported Transfer-Encoding {te:?}"
            )));
        }
        let lens: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == "content-length")
            .map(|(_, v)| v.trim())
            .collect();
        match lens.as_slice() {
            [] => Ok(BodyFraming::None),
            [one] => {
                if one.is_empty() || !one.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HttpError::Malformed(format!("bad Content-Length {one:?}")));
                }
                let n: u64 = one
                    .parse()
                    .map_err(|_| HttpError::Malformed(format!("bad Content-Length {one:?}")))?;
                Ok(if n == 0 {
                    BodyFraming::None
                } else {
                    BodyFraming::Length(n)
                })
            }
            _ => Err(HttpError::Malformed(
                "several Content-Length headers".to_string(),
            )),
        }
    }

    /// Whether the client wants the connection kept open after this request.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").map(|c| c.to_ascii_lowercase());
        match conn.as_deref() {
            Some(c) if c.split(',').any(|t| t.trim() == "close") => false,
            Some(c) if c.split(',').any(|t| t.trim() == "keep-alive") => true,
            _ => self.http11,
        }
    }

    /// Whether the client waits for `100 Continue` before sending the body.
    pub fn expects_continue(&self) -> bool {
        self.http11
            && self
                .header("expect")
                .is_some_and(|e| e.trim().eq_ignore_ascii_case("100-continue"))
    }
}

/// Reads one line ending in LF (CR before it removed), charging its length to `budget`.
/// `Ok(None)` on end of stream before any byte.
fn read_line_limited<R: BufRead>(
    r: &mut R,
    budget: &mut usize,
) -> Result<Option<Vec<u8>>, HttpError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            return Err(HttpError::Malformed(
                "connection closed mid-line".to_string(),
            ));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if take > *budget {
            return Err(HttpError::TooLarge(format!(
                "request head larger than {MAX_HEAD_BYTES} bytes"
            )));
        }
        *budget -= take;
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Some(line));
        }
    }
}

/// Decodes `%XX` escapes. `plus_is_space` applies form decoding of `+` (query strings).
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, HttpError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| HttpError::Malformed(format!("bad percent escape in {s:?}")))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| HttpError::Malformed(format!("{s:?} is not UTF-8")))
}

/// Reads one request head. `Ok(None)` when the peer closed the connection cleanly before
/// sending anything.
pub fn read_request<R: BufRead>(r: &mut R) -> Result<Option<Request>, HttpError> {
    let mut budget = MAX_HEAD_BYTES;
    // Tolerate empty lines before the request line (RFC 9112 §2.2).
    let line = loop {
        match read_line_limited(r, &mut budget)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let line = String::from_utf8(line)
        .map_err(|_| HttpError::Malformed("request line is not UTF-8".to_string()))?;
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(HttpError::Malformed(format!("bad request line {line:?}"))),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::Malformed(format!("bad method {method:?}")));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => {
            return Err(HttpError::Malformed(format!(
                "unsupported version {version:?}"
            )))
        }
    };
    let (target_host, origin) = if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        (Some(host.to_string()), path)
    } else if target.starts_with('/') {
        (None, target)
    } else {
        return Err(HttpError::Malformed(format!(
            "bad request target {target:?}"
        )));
    };
    let (raw_path, raw_query) = match origin.split_once('?') {
        Some((p, q)) => (p, q),
        None => (origin, ""),
    };
    if raw_path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(HttpError::Malformed(
            "control character in path".to_string(),
        ));
    }
    let mut query = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    let mut headers = Vec::new();
    loop {
        let l = read_line_limited(r, &mut budget)?
            .ok_or_else(|| HttpError::Malformed("connection closed in headers".to_string()))?;
        if l.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(HttpError::TooLarge(format!(
                "more than {MAX_HEADERS} headers"
            )));
        }
        let l = String::from_utf8(l)
            .map_err(|_| HttpError::Malformed("header is not UTF-8".to_string()))?;
        let (name, value) = l
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed(format!("header without colon: {l:?}")))?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(HttpError::Malformed(format!("bad header name {name:?}")));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Some(Request {
        method: method.to_string(),
        raw_path: raw_path.to_string(),
        query,
        http11,
        headers,
        target_host,
    }))
}

/// Reads a request body with the given framing, refusing more than `max` bytes.
#[derive(Debug)]
pub struct BodyReader<'a, R: BufRead> {
    inner: &'a mut R,
    framing: BodyFraming,
    /// Bytes left in the current chunk (or in the whole body for `Length`).
    left: u64,
    done: bool,
    total: u64,
    max: u64,
}

impl<'a, R: BufRead> BodyReader<'a, R> {
    /// A reader over the body that follows a request head.
    pub fn new(inner: &'a mut R, framing: BodyFraming, max: u64) -> Self {
        let (left, done) = match framing {
            BodyFraming::None => (0, true),
            BodyFraming::Length(n) => (n, false),
            BodyFraming::Chunked => (0, false),
        };
        BodyReader {
            inner,
            framing,
            left,
            done,
            total: 0,
            max,
        }
    }

    /// Whether the whole body (and chunked trailer) has been consumed.
    pub fn finished(&self) -> bool {
        self.done
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut budget = 1024;
        let line = read_line_limited(self.inner, &mut budget)
            .map_err(to_io)?
            .ok_or_else(|| bad("connection closed before a chunk size"))?;
        let line = std::str::from_utf8(&line).map_err(|_| bad("chunk size is not ASCII"))?;
        let size = line.split(';').next().unwrap_or("").trim();
        if size.is_empty() || size.len() > 15 {
            return Err(bad("bad chunk size"));
        }
        let n = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if n == 0 {
            // Trailer section: lines until an empty one.
            let mut budget = MAX_HEAD_BYTES;
            loop {
                let l = read_line_limited(self.inner, &mut budget)
                    .map_err(to_io)?
                    .ok_or_else(|| bad("connection closed in chunked trailer"))?;
                if l.is_empty() {
                    break;
                }
            }
            self.done = true;
        } else {
            self.left = n;
        }
        Ok(())
    }

    fn chunk_end(&mut self) -> io::Result<()> {
        let mut budget = 2;
        let l = read_line_limited(self.inner, &mut budget)
            .map_err(to_io)?
            .ok_or_else(|| bad("connection closed after a chunk"))?;
        if !l.is_empty() {
            return Err(bad("chunk not followed by CRLF"));
        }
        Ok(())
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn to_io(e: HttpError) -> io::Error {
    match e {
        HttpError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

/// The error kind used when a body exceeds the limit.
pub const TOO_LARGE_MARKER: &str = "request body exceeds the limit";

impl<R: BufRead> Read for BodyReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.done {
                return Ok(0);
            }
            if self.left == 0 {
                match self.framing {
                    BodyFraming::Chunked => {
                        self.next_chunk()?;
                        continue;
                    }
                    _ => {
                        self.done = true;
                        return Ok(0);
                    }
                }
            }
            let want = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the end of the body",
                ));
            }
            self.left -= n as u64;
            self.total += n as u64;
            if self.total > self.max {
                return Err(io::Error::new(io::ErrorKind::InvalidData, TOO_LARGE_MARKER));
            }
            if self.left == 0 {
                match self.framing {
                    BodyFraming::Chunked => self.chunk_end()?,
                    _ => self.done = true,
                }
            }
            return Ok(n);
        }
    }
}

/// The reason phrase of the status codes the service uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Request Entity Too Large",
        416 => "Requested Range Not Satisfiable",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes a status line and headers (and the blank line).
pub fn write_head<W: Write>(
    w: &mut W,
    status: u16,
    headers: &[(String, String)],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (n, v) in headers {
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn parse(s: &[u8]) -> Result<Option<Request>, HttpError> {
        read_request(&mut BufReader::new(s))
    }

    #[test]
    fn parses_a_put_with_query_and_headers() {
        let r = parse(b"PUT /acct/c/a%20b.txt?restype=container&comp=list&prefix=a%2Fb HTTP/1.1\r\nHost: 198.19.0.10\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(r.method, "PUT");
        assert_eq!(r.raw_path, "/acct/c/a%20b.txt");
        assert_eq!(r.query_param("prefix"), Some("a/b"));
        assert_eq!(r.query_param("comp"), Some("list"));
        assert_eq!(r.header("x-ms-blob-type"), Some("BlockBlob"));
        assert_eq!(r.framing().unwrap(), BodyFraming::Length(5));
        assert_eq!(r.host().as_deref(), Some("198.19.0.10"));
        assert!(r.keep_alive());
    }

    #[test]
    fn absolute_form_and_host_ports() {
        let r = parse(b"GET http://acct.blob.core.windows.net:80/c/b HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.host().as_deref(), Some("acct.blob.core.windows.net"));
        assert_eq!(r.raw_path, "/c/b");
        assert!(!r.keep_alive());
    }

    #[test]
    fn rejects_malformed_heads() {
        for bad in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET /x HTTP/2.0\r\n\r\n",
            b"get /x HTTP/1.1\r\n\r\n",
            b"GET x HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n",
            b"GET /%zz HTTP/1.1\r\n\r\n",
            b"GET /x?a=%ff HTTP/1.1\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: a",
            b"\xff\xfe /x HTTP/1.1\r\n\r\n",
        ] {
            let r = parse(bad);
            // Bad escapes in the path are caught when the path is decoded.
            if let Ok(Some(req)) = &r {
                assert!(percent_decode(&req.raw_path, false).is_err(), "{bad:?}");
            } else {
                assert!(r.is_err(), "{bad:?} -> {r:?}");
            }
        }
        assert!(parse(b"").unwrap().is_none());
    }

    #[test]
    fn enforces_head_limits() {
        let mut big = b"GET /x HTTP/1.1\r\nX-A: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        big.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(parse(&big), Err(HttpError::TooLarge(_))));
        let mut many = b"GET /x HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&many), Err(HttpError::TooLarge(_))));
    }

    #[test]
    fn framing_errors() {
        let r = parse(b"PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(r.framing().is_err());
        let r = parse(b"PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(r.framing().is_err());
        let r = parse(b"PUT /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(r.framing().is_err());
        let r = parse(b"PUT /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(r.framing().is_err());
    }

    #[test]
    fn chunked_bodies_decode_and_are_limited() {
        let mut src =
            BufReader::new(&b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT"[..]);
        let mut out = String::new();
        BodyReader::new(&mut src, BodyFraming::Chunked, 100)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello world");
        let mut rest = String::new();
        src.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");

        let mut src = BufReader::new(&b"5\r\nhello\r\n0\r\n\r\n"[..]);
        let mut out = Vec::new();
        let e = BodyReader::new(&mut src, BodyFraming::Chunked, 3)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(e.to_string().contains(TOO_LARGE_MARKER));

        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhel",
            b"ffffffffffffffffff\r\n",
        ] {
            let mut src = BufReader::new(bad);
            let mut out = Vec::new();
            assert!(
                BodyReader::new(&mut src, BodyFraming::Chunked, 1 << 20)
                    .read_to_end(&mut out)
                    .is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn length_bodies_stop_at_the_length() {
        let mut src = BufReader::new(&b"abcdefGET"[..]);
        let mut out = Vec::new();
        let mut r = BodyReader::new(&mut src, BodyFraming::Length(6), 100);
        r.read_to_end(&mut out).unwrap();
        assert!(r.finished());
        assert_eq!(out, b"abcdef");
        let mut src = BufReader::new(&b"abc"[..]);
        let mut out = Vec::new();
        assert!(BodyReader::new(&mut src, BodyFraming::Length(6), 100)
            .read_to_end(&mut out)
            .is_err());
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let valid: &[u8] = b"PUT /acct/c/b?comp=list&x=%41 HTTP/1.1\r\nHost: a.blob.core.windows.net:80\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let alphabet = b"\r\n :/%?&=;0123456789abcdefABCDEF\xff\x00-";
        for i in 0..5_000 {
            let input: Vec<u8> = if i % 2 == 0 {
                let n = rng.gen_range(0..200);
                (0..n)
                    .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                    .collect()
            } else {
                let mut v = valid.to_vec();
                for _ in 0..rng.gen_range(1..6) {
                    let at = rng.gen_range(0..v.len());
                    match rng.gen_range(0..3) {
                        0 => v[at] = alphabet[rng.gen_range(0..alphabet.len())],
                        1 => {
                            v.remove(at);
                        }
                        _ => v.insert(at, alphabet[rng.gen_range(0..alphabet.len())]),
                    }
                }
                v
            };
            let mut r = BufReader::new(input.as_slice());
            if let Ok(Some(req)) = read_request(&mut r) {
                let _ = req.host();
                let _ = req.keep_alive();
                let _ = percent_decode(&req.raw_path, false);
                if let Ok(f) = req.framing() {
                    let mut out = Vec::new();
                    let _ = BodyReader::new(&mut r, f, 1 << 16).read_to_end(&mut out);
                    assert!(out.len() <= 1 << 16);
                }
            }
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c", false).unwrap(), "a/b+c");
        assert_eq!(percent_decode("a%2Fb+c", true).unwrap(), "a/b c");
        assert!(percent_decode("%", false).is_err());
        assert!(percent_decode("%4", false).is_err());
        assert!(percent_decode("%c3%28", false).is_err());
    }
}
