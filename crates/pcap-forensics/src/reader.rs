//! Streaming capture reader for pcap (micro/nanosecond, both byte orders) and pcapng
//! (several interfaces and link types, enhanced/simple/obsolete packet blocks, comments).
//!
//! Memory is constant in the file size: one reusable record buffer. Truncated or corrupt
//! input ends the stream with a warning (see [`CaptureReader::warnings`]); it never panics.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read};

use crate::error::PcapError;

/// Largest record accepted (bytes). Anything larger is treated as corruption.
pub const MAX_RECORD: usize = 16 * 1024 * 1024;
/// Largest packet body accepted inside a record.
pub const MAX_PACKET: usize = 262_144;
/// Latest timestamp accepted (2^62 ns, about year 2116); later or negative ones are clamped.
pub const MAX_TS_NS: i64 = 1 << 62;
/// Comments kept from a pcapng file.
pub const MAX_COMMENTS: usize = 32;

/// The container format of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Pcap,
    Pcapng,
}

/// One captured frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// 1-based frame number, as Wireshark numbers frames.
    pub frame: u64,
    /// Timestamp in nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Link type (LINKTYPE_* value).
    pub link_type: u16,
    /// Original length on the wire.
    pub orig_len: u32,
    /// Interface index (always 0 for pcap).
    pub interface: u32,
    /// Captured bytes.
    pub data: &'a [u8],
}

#[derive(Debug, Clone)]
struct Iface {
    link_type: u16,
    snaplen: u32,
    /// Timestamp resolution: (is_power_of_two, exponent).
    res: (bool, u8),
    offset_s: i64,
}

#[derive(Debug)]
enum State {
    Pcap {
        swapped: bool,
        nanos: bool,
        link_type: u16,
    },
    Pcapng {
        big_endian: bool,
        ifaces: Vec<Iface>,
    },
}

/// A streaming reader over any [`Read`].
#[derive(Debug)]
pub struct CaptureReader<R: Read> {
    inner: R,
    state: State,
    buf: Vec<u8>,
    frame: u64,
    bytes_read: u64,
    last_ts: i64,
    done: bool,
    warnings: Vec<String>,
    comments: Vec<String>,
    link_types: BTreeSet<u16>,
}

fn u16_at(b: &[u8], off: usize, be: bool) -> Option<u16> {
    let s = b.get(off..off + 2)?;
    let a = [s[0], s[1]];
    Some(if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    })
}

fn u32_at(b: &[u8], off: usize, be: bool) -> Option<u32> {
    let s = b.get(off..off + 4)?;
    let a = [s[0], s[1], s[2], s[3]];
    Some(if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    })
}

/// Read exactly `buf.len()` bytes; Ok(false) on a clean EOF before the first byte,
/// Err(UnexpectedEof) on EOF in the middle.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                if got == 0 {
                    return Ok(false);
                }
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("record cut after {got} of {} bytes", buf.len()),
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn ts_to_ns(units: u64, res: (bool, u8), offset_s: i64) -> i64 {
    let (pow2, exp) = res;
    let ns: u128 = if pow2 {
        if exp >= 64 {
            0
        } else {
            (units as u128).saturating_mul(1_000_000_000) >> exp
        }
    } else if exp <= 9 {
        (units as u128).saturating_mul(10u128.pow(9 - u32::from(exp)))
    } else if exp <= 30 {
        (units as u128) / 10u128.pow(u32::from(exp) - 9)
    } else {
        0
    };
    let ns = i64::try_from(ns).unwrap_or(i64::MAX);
    ns.saturating_add(offset_s.saturating_mul(1_000_000_000))
}

impl<R: Read> CaptureReader<R> {
    /// Open a capture: reads and checks the file header.
    pub fn new(mut inner: R) -> Result<Self, PcapError> {
        let mut magic = [0u8; 4];
        match read_full(&mut inner, &mut magic) {
            Ok(true) => {}
            Ok(false) => return Err(PcapError::Empty),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Err(PcapError::Empty),
            Err(e) => return Err(PcapError::Io(e)),
        }
        let mut reader = CaptureReader {
            inner,
            state: State::Pcap {
                swapped: false,
                nanos: false,
                link_type: 1,
            },
            buf: Vec::with_capacity(65_536),
            frame: 0,
            bytes_read: 4,
            last_ts: 0,
            done: false,
            warnings: Vec::new(),
            comments: Vec::new(),
            link_types: BTreeSet::new(),
        };
        let le = u32::from_le_bytes(magic);
        let (pcap, swapped_be, nanos) =
            match le {
                0xa1b2_c3d4 => (true, false, false),
                0xd4c3_b2a1 => (true, true, false),
                0xa1b2_3c4d => (true, false, true),
                0x4d3c_b2a1 => (true, true, true),
                0x0a0d_0d0a => (false, false, false),
                0xa1b2_cd34 | 0x34cd_b2a1 => return Err(PcapError::Unsupported(
                    "modified (Kuznetzov) pcap is not supported; convert it with `editcap -F pcap`"
                        .into(),
                )),
                _ => return Err(PcapError::NotACapture),
            };
        if pcap {
            let mut rest = [0u8; 20];
            match read_full(&mut reader.inner, &mut rest) {
                Ok(true) => {}
                Ok(false) | Err(_) => return Err(PcapError::Truncated("pcap file header".into())),
            }
            reader.bytes_read += 20;
            let be = swapped_be;
            let lt = u32_at(&rest, 16, be).unwrap_or(1);
            let link_type = (lt & 0xffff) as u16;
            reader.state = State::Pcap {
                swapped: be,
                nanos,
                link_type,
            };
            reader.link_types.insert(link_type);
        } else {
            // pcapng: first block must be a section header; parse it in place.
            reader.state = State::Pcapng {
                big_endian: false,
                ifaces: Vec::new(),
            };
            reader.read_shb_after_type()?;
        }
        Ok(reader)
    }

    /// Warnings collected so far (truncation, corruption, unknown interfaces...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Comments found in a pcapng file (section and packet comments, capped).
    pub fn comments(&self) -> &[String] {
        &self.comments
    }

    /// Link types declared by the file.
    pub fn link_types(&self) -> &BTreeSet<u16> {
        &self.link_types
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The container format.
    pub fn format(&self) -> Format {
        match self.state {
            State::Pcap { .. } => Format::Pcap,
            State::Pcapng { .. } => Format::Pcapng,
        }
    }

    fn warn(&mut self, w: String) {
        if self.warnings.len() < 64 {
            self.warnings.push(w);
        }
    }

    fn stop(&mut self, w: String) {
        self.warn(w);
        self.done = true;
    }

    fn add_comment(&mut self, c: &[u8]) {
        if self.comments.len() < MAX_COMMENTS {
            let s = String::from_utf8_lossy(c);
            let s = s
                .trim_end_matches('\0')
                .chars()
                .take(512)
                .collect::<String>();
            self.comments.push(s);
        }
    }

    /// Parse a section header block whose 4-byte type has already been consumed.
    fn read_shb_after_type(&mut self) -> Result<(), PcapError> {
        let mut hdr = [0u8; 8];
        match read_full(&mut self.inner, &mut hdr) {
            Ok(true) => {}
            _ => return Err(PcapError::Truncated("pcapng section header".into())),
        }
        self.bytes_read += 8;
        let be = match &hdr[4..8] {
            [0x1a, 0x2b, 0x3c, 0x4d] => true,
            [0x4d, 0x3c, 0x2b, 0x1a] => false,
            _ => return Err(PcapError::NotACapture),
        };
        let total = u32_at(&hdr, 0, be).unwrap_or(0) as usize;
        if total < 28 || !total.is_multiple_of(4) || total > MAX_RECORD {
            return Err(PcapError::Corrupt(format!(
                "pcapng section header length {total} is invalid"
            )));
        }
        let mut body = vec![0u8; total - 12];
        match read_full(&mut self.inner, &mut body) {
            Ok(true) => {}
            _ => return Err(PcapError::Truncated("pcapng section header".into())),
        }
        self.bytes_read += body.len() as u64;
        // body: major u16, minor u16, section length i64, options..., trailing length u32
        let opts_end = body.len().saturating_sub(4);
        if opts_end > 12 {
            let opts = body[12..opts_end].to_vec();
            self.parse_options(&opts, be, |_, _| {});
        }
        self.state = State::Pcapng {
            big_endian: be,
            ifaces: Vec::new(),
        };
        Ok(())
    }

    /// Walk pcapng options; comments (code 1) are collected, others passed to `f`.
    fn parse_options(&mut self, opts: &[u8], be: bool, mut f: impl FnMut(u16, &[u8])) {
        let mut off = 0usize;
        while off + 4 <= opts.len() {
            let code = u16_at(opts, off, be).unwrap_or(0);
            let len = u16_at(opts, off + 2, be).unwrap_or(0) as usize;
            off += 4;
            if code == 0 {
                break;
            }
            let Some(val) = opts.get(off..off + len) else {
                break;
            };
            if code == 1 {
                self.add_comment(val);
            } else {
                f(code, val);
            }
            off += (len + 3) & !3;
        }
    }

    /// The next packet, or `None` at the end (clean or after a warning).
    pub fn next_packet(&mut self) -> Option<Packet<'_>> {
        if self.done {
            return None;
        }
        let meta = match self.state {
            State::Pcap { .. } => self.next_pcap(),
            State::Pcapng { .. } => self.next_pcapng(),
        };
        match meta {
            Some((ts_ns, link_type, orig_len, interface, start, end)) => {
                // Clamp so that differences of two timestamps can never overflow.
                let ts_ns = ts_ns.clamp(0, MAX_TS_NS);
                self.frame += 1;
                self.last_ts = ts_ns;
                Some(Packet {
                    frame: self.frame,
                    ts_ns,
                    link_type,
                    orig_len,
                    interface,
                    data: &self.buf[start..end],
                })
            }
            None => None,
        }
    }

    fn next_pcap(&mut self) -> Option<(i64, u16, u32, u32, usize, usize)> {
        let State::Pcap {
            swapped,
            nanos,
            link_type,
        } = self.state
        else {
            return None;
        };
        let mut hdr = [0u8; 16];
        match read_full(&mut self.inner, &mut hdr) {
            Ok(true) => {}
            Ok(false) => {
                self.done = true;
                return None;
            }
            Err(e) => {
                self.stop(format!(
                    "capture truncated after frame {}: packet header cut short ({e})",
                    self.frame
                ));
                return None;
            }
        }
        self.bytes_read += 16;
        let be = swapped;
        let sec = u32_at(&hdr, 0, be).unwrap_or(0);
        let frac = u32_at(&hdr, 4, be).unwrap_or(0);
        let caplen = u32_at(&hdr, 8, be).unwrap_or(0) as usize;
        let orig_len = u32_at(&hdr, 12, be).unwrap_or(0);
        if caplen > MAX_PACKET {
            self.stop(format!(
                "corrupt record after frame {}: captured length {caplen} exceeds {MAX_PACKET}; stopped reading",
                self.frame
            ));
            return None;
        }
        if self.buf.len() < caplen {
            self.buf.resize(caplen, 0);
        }
        match read_full(&mut self.inner, &mut self.buf[..caplen]) {
            Ok(true) => {}
            Ok(false) if caplen == 0 => {}
            Ok(false) | Err(_) => {
                self.stop(format!(
                    "capture truncated in frame {}: packet data cut short",
                    self.frame + 1
                ));
                return None;
            }
        }
        self.bytes_read += caplen as u64;
        let frac_ns = if nanos {
            i64::from(frac)
        } else {
            i64::from(frac) * 1000
        };
        let ts = i64::from(sec) * 1_000_000_000 + frac_ns;
        Some((ts, link_type, orig_len, 0, 0, caplen))
    }

    fn next_pcapng(&mut self) -> Option<(i64, u16, u32, u32, usize, usize)> {
        loop {
            let be = match &self.state {
                State::Pcapng { big_endian, .. } => *big_endian,
                State::Pcap { .. } => return None,
            };
            let mut hdr = [0u8; 8];
            match read_full(&mut self.inner, &mut hdr) {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.stop(format!(
                        "capture truncated after frame {}: block header cut short ({e})",
                        self.frame
                    ));
                    return None;
                }
            }
            self.bytes_read += 8;
            let btype_le = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            if btype_le == 0x0a0d_0d0a {
                // New section: re-read its header. We already consumed 8 bytes (type+len),
                // so rebuild: the byte-order magic follows.
                let mut bom = [0u8; 4];
                if !matches!(read_full(&mut self.inner, &mut bom), Ok(true)) {
                    self.stop("capture truncated in a pcapng section header".into());
                    return None;
                }
                self.bytes_read += 4;
                let nbe = match bom {
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    _ => {
                        self.stop("corrupt pcapng section header (bad byte-order magic)".into());
                        return None;
                    }
                };
                let total = u32_at(&hdr, 4, nbe).unwrap_or(0) as usize;
                if total < 28 || !total.is_multiple_of(4) || total > MAX_RECORD {
                    self.stop(format!("corrupt pcapng section header length {total}"));
                    return None;
                }
                self.buf.resize(total - 12, 0);
                if !matches!(read_full(&mut self.inner, &mut self.buf[..]), Ok(true)) {
                    self.stop("capture truncated in a pcapng section header".into());
                    return None;
                }
                self.bytes_read += (total - 12) as u64;
                let end = self.buf.len().saturating_sub(4);
                if end > 12 {
                    let opts = self.buf[12..end].to_vec();
                    self.parse_options(&opts, nbe, |_, _| {});
                }
                self.state = State::Pcapng {
                    big_endian: nbe,
                    ifaces: Vec::new(),
                };
                continue;
            }
            let btype = u32_at(&hdr, 0, be).unwrap_or(0);
            let total = u32_at(&hdr, 4, be).unwrap_or(0) as usize;
            if total < 12 || !total.is_multiple_of(4) || total > MAX_RECORD {
                self.stop(format!(
                    "corrupt pcapng block after frame {}: length {total} is invalid; stopped reading",
                    self.frame
                ));
                return None;
            }
            let blen = total - 8;
            if self.buf.len() < blen {
                self.buf.resize(blen, 0);
            }
            match read_full(&mut self.inner, &mut self.buf[..blen]) {
                Ok(true) => {}
                _ => {
                    self.stop(format!(
                        "capture truncated after frame {}: pcapng block cut short",
                        self.frame
                    ));
                    return None;
                }
            }
            self.bytes_read += blen as u64;
            let body_len = blen - 4; // trailing total length
            match btype {
                1 => {
                    // Interface description block.
                    if body_len < 8 {
                        self.stop("corrupt pcapng interface block".into());
                        return None;
                    }
                    let link_type = u16_at(&self.buf, 0, be).unwrap_or(0);
                    let snaplen = u32_at(&self.buf, 4, be).unwrap_or(0);
                    let mut iface = Iface {
                        link_type,
                        snaplen,
                        res: (false, 6),
                        offset_s: 0,
                    };
                    let opts = self.buf[8..body_len].to_vec();
                    self.parse_options(&opts, be, |code, val| match code {
                        9 if !val.is_empty() => {
                            iface.res = (val[0] & 0x80 != 0, val[0] & 0x7f);
                        }
                        14 if val.len() >= 8 => {
                            let a = [
                                val[0], val[1], val[2], val[3], val[4], val[5], val[6], val[7],
                            ];
                            iface.offset_s = if be {
                                i64::from_be_bytes(a)
                            } else {
                                i64::from_le_bytes(a)
                            };
                        }
                        _ => {}
                    });
                    self.link_types.insert(link_type);
                    if let State::Pcapng { ifaces, .. } = &mut self.state {
                        if ifaces.len() < 65_536 {
                            ifaces.push(iface);
                        }
                    }
                }
                6 | 2 => {
                    // Enhanced packet block (6) or obsolete packet block (2).
                    if body_len < 20 {
                        self.warn(format!(
                            "corrupt packet block after frame {} skipped",
                            self.frame
                        ));
                        continue;
                    }
                    let (iface_id, ts_hi, ts_lo, caplen, orig) = if btype == 6 {
                        (
                            u32_at(&self.buf, 0, be).unwrap_or(0),
                            u32_at(&self.buf, 4, be).unwrap_or(0),
                            u32_at(&self.buf, 8, be).unwrap_or(0),
                            u32_at(&self.buf, 12, be).unwrap_or(0) as usize,
                            u32_at(&self.buf, 16, be).unwrap_or(0),
                        )
                    } else {
                        (
                            u32::from(u16_at(&self.buf, 0, be).unwrap_or(0)),
                            u32_at(&self.buf, 4, be).unwrap_or(0),
                            u32_at(&self.buf, 8, be).unwrap_or(0),
                            u32_at(&self.buf, 12, be).unwrap_or(0) as usize,
                            u32_at(&self.buf, 16, be).unwrap_or(0),
                        )
                    };
                    if 20 + caplen > body_len {
                        self.warn(format!(
                            "corrupt packet block after frame {}: captured length {caplen} exceeds the block; skipped",
                            self.frame
                        ));
                        continue;
                    }
                    let iface = match &self.state {
                        State::Pcapng { ifaces, .. } => ifaces.get(iface_id as usize).cloned(),
                        State::Pcap { .. } => None,
                    };
                    let Some(iface) = iface else {
                        self.warn(format!(
                            "packet block after frame {} names unknown interface {iface_id}; skipped",
                            self.frame
                        ));
                        continue;
                    };
                    let opt_start = 20 + ((caplen + 3) & !3);
                    if opt_start < body_len {
                        let opts = self.buf[opt_start..body_len].to_vec();
                        self.parse_options(&opts, be, |_, _| {});
                    }
                    let units = (u64::from(ts_hi) << 32) | u64::from(ts_lo);
                    let ts = ts_to_ns(units, iface.res, iface.offset_s);
                    return Some((ts, iface.link_type, orig, iface_id, 20, 20 + caplen));
                }
                3 => {
                    // Simple packet block: interface 0, no timestamp.
                    if body_len < 4 {
                        self.warn("corrupt simple packet block skipped".into());
                        continue;
                    }
                    let iface = match &self.state {
                        State::Pcapng { ifaces, .. } => ifaces.first().cloned(),
                        State::Pcap { .. } => None,
                    };
                    let Some(iface) = iface else {
                        self.warn("simple packet block before any interface; skipped".into());
                        continue;
                    };
                    let orig = u32_at(&self.buf, 0, be).unwrap_or(0);
                    let mut caplen = (orig as usize).min(body_len - 4);
                    if iface.snaplen > 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    return Some((self.last_ts, iface.link_type, orig, 0, 4, 4 + caplen));
                }
                _ => {
                    // Name resolution, statistics, decryption secrets, custom: skipped.
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_and_empty() {
        assert!(matches!(
            CaptureReader::new(&b""[..]),
            Err(PcapError::Empty)
        ));
        assert!(matches!(
            CaptureReader::new(&b"hello world, not a capture"[..]),
            Err(PcapError::NotACapture)
        ));
    }

    #[test]
    fn timestamp_resolutions() {
        assert_eq!(ts_to_ns(1_500_000, (false, 6), 0), 1_500_000_000);
        assert_eq!(ts_to_ns(7, (false, 9), 0), 7);
        assert_eq!(ts_to_ns(1024, (true, 10), 0), 1_000_000_000);
        assert_eq!(ts_to_ns(1, (false, 6), 2), 2_000_001_000);
    }
}
