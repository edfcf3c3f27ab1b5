//! A small pcap/pcapng writer and packet builders, used by the tests, the fuzz seeds and
//! the benchmark generator to produce exact scenarios. Checksums are computed correctly
//! so tshark accepts the frames.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::dissect::tcpflag::*;

/// Writes classic pcap (micro- or nanosecond, either byte order).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    nanos: bool,
    be: bool,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut w: W, link_type: u16, nanos: bool, big_endian: bool) -> io::Result<Self> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut h = Vec::with_capacity(24);
        let p32 = |h: &mut Vec<u8>, v: u32| {
            h.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        p32(&mut h, magic);
        let p16 = |h: &mut Vec<u8>, v: u16| {
            h.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        p16(&mut h, 2);
        p16(&mut h, 4);
        p32(&mut h, 0);
        p32(&mut h, 0);
        p32(&mut h, 262_144);
        p32(&mut h, u32::from(link_type));
        w.write_all(&h)?;
        Ok(PcapWriter {
            w,
            nanos,
            be: big_endian,
        })
    }

    pub fn write(&mut self, ts_ns: i64, data: &[u8], orig_len: u32) -> io::Result<()> {
        let sec = (ts_ns.div_euclid(1_000_000_000)) as u32;
        let sub = ts_ns.rem_euclid(1_000_000_000) as u32;
        let frac = if self.nanos { sub } else { sub / 1000 };
        for v in [
            sec,
            frac,
            data.len() as u32,
            orig_len.max(data.len() as u32),
        ] {
            self.w.write_all(&if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })?;
        }
        self.w.write_all(data)
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

/// Writes little-endian pcapng with section/packet comments.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    w: W,
    /// Exponent of each interface's 10^-n resolution.
    res: Vec<u8>,
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn opt(v: &mut Vec<u8>, code: u16, val: &[u8]) {
    v.extend_from_slice(&code.to_le_bytes());
    v.extend_from_slice(&(val.len() as u16).to_le_bytes());
    v.extend_from_slice(val);
    pad4(v);
}

impl<W: Write> PcapngWriter<W> {
    pub fn new(mut w: W, comment: Option<&str>) -> io::Result<Self> {
        let mut body = Vec::new();
        body.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes());
        if let Some(c) = comment {
            opt(&mut body, 1, c.as_bytes());
            opt(&mut body, 0, &[]);
        }
        Self::block(&mut w, 0x0a0d_0d0a, &body)?;
        Ok(PcapngWriter { w, res: Vec::new() })
    }

    fn block(w: &mut W, t: u32, body: &[u8]) -> io::Result<()> {
        let total = (12 + body.len()) as u32;
        w.write_all(&t.to_le_bytes())?;
        w.write_all(&total.to_le_bytes())?;
        w.write_all(body)?;
        w.write_all(&total.to_le_bytes())
    }

    /// Add an interface with resolution 10^-`res_exp` s; returns its id.
    pub fn add_interface(&mut self, link_type: u16, res_exp: u8) -> io::Result<u32> {
        let mut body = Vec::new();
        body.extend_from_slice(&link_type.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&262_144u32.to_le_bytes());
        if res_exp != 6 {
            opt(&mut body, 9, &[res_exp]);
            opt(&mut body, 0, &[]);
        }
        Self::block(&mut self.w, 1, &body)?;
        self.res.push(res_exp);
        Ok(self.res.len() as u32 - 1)
    }

    pub fn write_epb(
        &mut self,
        iface: u32,
        ts_ns: i64,
        data: &[u8],
        comment: Option<&str>,
    ) -> io::Result<()> {
        let exp = self.res.get(iface as usize).copied().unwrap_or(6);
        let units: u64 = if exp <= 9 {
            (ts_ns.max(0) as u64) / 10u64.pow(9 - u32::from(exp))
        } else {
            (ts_ns.max(0) as u64) * 10u64.pow(u32::from(exp) - 9)
        };
        let mut body = Vec::with_capacity(32 + data.len());
        body.extend_from_slice(&iface.to_le_bytes());
        body.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(units as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        pad4(&mut body);
        if let Some(c) = comment {
            opt(&mut body, 1, c.as_bytes());
            opt(&mut body, 0, &[]);
        }
        Self::block(&mut self.w, 6, &body)
    }

    pub fn write_spb(&mut self, data: &[u8]) -> io::Result<()> {
        let mut body = Vec::new();
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        pad4(&mut body);
        Self::block(&mut self.w, 3, &body)
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

// ---------------------------------------------------------------- packet builders

fn csum_add(mut sum: u32, b: &[u8]) -> u32 {
    let mut i = 0;
    while i + 1 < b.len() {
        sum += u32::from(u16::from_be_bytes([b[i], b[i + 1]]));
        i += 2;
    }
    if i < b.len() {
        sum += u32::from(b[i]) << 8;
    }
    sum
}

fn csum_fin(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut s = 0;
    match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            s = csum_add(s, &a.octets());
            s = csum_add(s, &b.octets());
            s += u32::from(proto) + len as u32;
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            s = csum_add(s, &a.octets());
            s = csum_add(s, &b.octets());
            s += len as u32 + u32::from(proto);
        }
        _ => {}
    }
    s
}

/// A MAC derived from an address (02:00 + last four bytes).
pub fn mac_of(ip: IpAddr) -> [u8; 6] {
    let o = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let x = a.octets();
            [x[12], x[13], x[14], x[15]]
        }
    };
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + payload.len());
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn ethernet_vlan(
    dst: [u8; 6],
    src: [u8; 6],
    vlan: u16,
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(18 + payload.len());
    v.extend_from_slice(&dst);
    v.extend_from_slice(&src);
    v.extend_from_slice(&0x8100u16.to_be_bytes());
    v.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Linux cooked v1 header (packet type 0 = to us) around a payload.
pub fn sll(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&6u16.to_be_bytes());
    v.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Linux cooked v2 header around a payload.
pub fn sll2(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&2u32.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v.push(0);
    v.push(6);
    v.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
    v.extend_from_slice(payload);
    v
}

/// An IPv4 header (no options unless given) plus payload, with a correct checksum.
#[allow(clippy::too_many_arguments)]
pub fn ipv4_full(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    id: u16,
    frag_off_bytes: u16,
    more: bool,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let ihl = 20 + options.len().div_ceil(4) * 4;
    let total = ihl + payload.len();
    let mut h = vec![0u8; ihl];
    h[0] = 0x40 | (ihl / 4) as u8;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let ff = (frag_off_bytes / 8) | if more { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&ff.to_be_bytes());
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    h[20..20 + options.len()].copy_from_slice(options);
    let c = csum_fin(csum_add(0, &h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(src, dst, proto, ttl, 0x1234, 0, false, &[], payload)
}

/// `payload` (an upper-layer datagram) cut into IPv4 fragments of at most `chunk` bytes
/// (rounded down to a multiple of 8, at least 8), in order.
pub fn ipv4_fragments(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    id: u16,
    payload: &[u8],
    chunk: usize,
) -> Vec<Vec<u8>> {
    let chunk = (chunk / 8).max(1) * 8;
    let n = payload.len().div_ceil(chunk).max(1);
    (0..n)
        .map(|i| {
            let s = i * chunk;
            let e = (s + chunk).min(payload.len());
            ipv4_full(
                src,
                dst,
                proto,
                64,
                id,
                s as u16,
                i + 1 < n,
                &[],
                &payload[s..e],
            )
        })
        .collect()
}

/// `payload` cut into IPv6 fragments (a Fragment header with next header `next` and
/// identification `id`) of at most `chunk` bytes (rounded down to a multiple of 8), in order.
pub fn ipv6_fragments(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    id: u32,
    payload: &[u8],
    chunk: usize,
) -> Vec<Vec<u8>> {
    let chunk = (chunk / 8).max(1) * 8;
    let n = payload.len().div_ceil(chunk).max(1);
    (0..n)
        .map(|i| {
            let s = i * chunk;
            let e = (s + chunk).min(payload.len());
            let fo = (s as u16) | u16::from(i + 1 < n);
            let mut fh = vec![next, 0];
            fh.extend_from_slice(&fo.to_be_bytes());
            fh.extend_from_slice(&id.to_be_bytes());
            fh.extend_from_slice(&payload[s..e]);
            ipv6(src, dst, 44, 64, &fh)
        })
        .collect()
}

/// IPv6 header plus payload (`next` is the first next-header value).
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    h[6] = next;
    h[7] = hop;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

/// A TCP segment with a correct checksum. `opts` are raw option bytes (padded to 4).
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let hl = 20 + opts.len().div_ceil(4) * 4;
    let mut h = vec![0u8; hl];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&seq.to_be_bytes());
    h[8..12].copy_from_slice(&ack.to_be_bytes());
    h[12] = ((hl / 4) as u8) << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&window.to_be_bytes());
    h[20..20 + opts.len()].copy_from_slice(opts);
    h.extend_from_slice(payload);
    let s = csum_add(pseudo(src, dst, 6, h.len()), &h);
    let c = csum_fin(s);
    h[16..18].copy_from_slice(&c.to_be_bytes());
    h
}

pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut h = vec![0u8; 8];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    h.extend_from_slice(payload);
    let mut c = csum_fin(csum_add(pseudo(src, dst, 17, len), &h));
    if c == 0 {
        c = 0xffff;
    }
    h[6..8].copy_from_slice(&c.to_be_bytes());
    h
}

/// ICMP (v4: `v6_pseudo` None) or ICMPv6 (pseudo-header addresses given) message.
pub fn icmp(
    t: u8,
    code: u8,
    rest: [u8; 4],
    body: &[u8],
    v6_pseudo: Option<(Ipv6Addr, Ipv6Addr)>,
) -> Vec<u8> {
    let mut h = vec![t, code, 0, 0];
    h.extend_from_slice(&rest);
    h.extend_from_slice(body);
    let s = match v6_pseudo {
        Some((a, b)) => pseudo(IpAddr::V6(a), IpAddr::V6(b), 58, h.len()),
        None => 0,
    };
    let c = csum_fin(csum_add(s, &h));
    h[2..4].copy_from_slice(&c.to_be_bytes());
    h
}

pub fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut v = Vec::with_capacity(28);
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&0x0800u16.to_be_bytes());
    v.push(6);
    v.push(4);
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&sha);
    v.extend_from_slice(&spa.octets());
    v.extend_from_slice(&tha);
    v.extend_from_slice(&tpa.octets());
    v
}

fn dns_name(v: &mut Vec<u8>, name: &str) {
    for l in name.split('.').filter(|l| !l.is_empty()) {
        let b = l.as_bytes();
        let n = b.len().min(63);
        v.push(n as u8);
        v.extend_from_slice(&b[..n]);
    }
    v.push(0);
}

/// A DNS message: query when `response` is None, else a response with (rcode, answers, tc).
pub fn dns(id: u16, name: &str, qtype: u16, response: Option<(u8, u16, bool)>) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    let flags: u16 = match response {
        None => 0x0100,
        Some((rcode, _, tc)) => 0x8180 | u16::from(rcode & 0x0f) | if tc { 0x0200 } else { 0 },
    };
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    let an = response.map(|r| r.1).unwrap_or(0);
    v.extend_from_slice(&an.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    dns_name(&mut v, name);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    for i in 0..an {
        // Answer: pointer to the question name, type A, class IN, TTL 60, 4 bytes.
        v.extend_from_slice(&[
            0xc0,
            12,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            60,
            0,
            4,
            198,
            18,
            9,
            (i & 0xff) as u8,
        ]);
    }
    v
}

// ---------------------------------------------------------------- scenario helpers

/// An in-memory capture: Ethernet frames with timestamps.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub frames: Vec<(i64, Vec<u8>)>,
    /// Current time (ns) for helpers that append.
    pub now: i64,
}

/// Base time of generated captures: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000_000_000;

impl Capture {
    pub fn new() -> Self {
        Capture {
            frames: Vec::new(),
            now: T0,
        }
    }

    /// Advance time by `ms` milliseconds.
    pub fn wait_ms(&mut self, ms: f64) -> &mut Self {
        self.now += (ms * 1e6) as i64;
        self
    }

    pub fn push(&mut self, frame: Vec<u8>) -> u64 {
        self.frames.push((self.now, frame));
        self.frames.len() as u64
    }

    /// An IPv4 packet in an Ethernet frame between MACs derived from the addresses.
    pub fn ip4(&mut self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, l4: &[u8]) -> u64 {
        let f = ethernet(
            mac_of(IpAddr::V4(dst)),
            mac_of(IpAddr::V4(src)),
            0x0800,
            &ipv4(src, dst, proto, ttl, l4),
        );
        self.push(f)
    }

    pub fn ip6(&mut self, src: Ipv6Addr, dst: Ipv6Addr, next: u8, l4: &[u8]) -> u64 {
        let f = ethernet(
            mac_of(IpAddr::V6(dst)),
            mac_of(IpAddr::V6(src)),
            0x86dd,
            &ipv6(src, dst, next, 64, l4),
        );
        self.push(f)
    }

    pub fn to_pcap(&self, link_type: u16) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), link_type, false, false).expect("vec write");
        for (t, f) in &self.frames {
            w.write(*t, f, f.len() as u32).expect("vec write");
        }
        w.into_inner()
    }

    pub fn to_pcapng(&self, link_type: u16) -> Vec<u8> {
        let mut w =
            PcapngWriter::new(Vec::new(), Some("pcap-forensics test capture")).expect("vec write");
        let i = w.add_interface(link_type, 9).expect("vec write");
        for (t, f) in &self.frames {
            w.write_epb(i, *t, f, None).expect("vec write");
        }
        w.into_inner()
    }
}

/// A TCP conversation between a client and a server (IPv4 or IPv6), tracking sequence
/// numbers so scenarios read like a script.
#[derive(Debug, Clone)]
pub struct TcpConv {
    pub c: IpAddr,
    pub s: IpAddr,
    pub cport: u16,
    pub sport: u16,
    pub cseq: u32,
    pub sseq: u32,
    pub window: u16,
}

/// Option bytes of a SYN: MSS 1460, window scale 7, NOP padding.
pub const SYN_OPTS: [u8; 8] = [2, 4, 0x05, 0xb4, 1, 3, 3, 7];

impl TcpConv {
    pub fn new(c: IpAddr, cport: u16, s: IpAddr, sport: u16) -> Self {
        TcpConv {
            c,
            s,
            cport,
            sport,
            cseq: 1000,
            sseq: 50_000,
            window: 512,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        cap: &mut Capture,
        from_client: bool,
        seq: u32,
        ack: u32,
        flags: u8,
        opts: &[u8],
        payload: &[u8],
    ) -> u64 {
        let (src, dst, sp, dp) = if from_client {
            (self.c, self.s, self.cport, self.sport)
        } else {
            (self.s, self.c, self.sport, self.cport)
        };
        let seg = tcp(
            src,
            dst,
            sp,
            dp,
            seq,
            ack,
            flags,
            self.window,
            opts,
            payload,
        );
        match (src, dst) {
            (IpAddr::V4(a), IpAddr::V4(b)) => cap.ip4(a, b, 6, 64, &seg),
            (IpAddr::V6(a), IpAddr::V6(b)) => cap.ip6(a, b, 6, &seg),
            _ => 0,
        }
    }

    /// A SYN (repeating it keeps the same ISN: an attempt, not a new connection).
    pub fn syn(&mut self, cap: &mut Capture) -> u64 {
        self.emit(cap, true, self.cseq, 0, SYN, &SYN_OPTS, &[])
    }
    pub fn synack(&mut self, cap: &mut Capture) -> u64 {
        self.emit(
            cap,
            false,
            self.sseq,
            self.cseq.wrapping_add(1),
            SYN | ACK,
            &SYN_OPTS,
            &[],
        )
    }
    /// The client's ACK completing the handshake (advances both ISNs past the SYNs).
    pub fn ack(&mut self, cap: &mut Capture) -> u64 {
        self.cseq = self.cseq.wrapping_add(1);
        self.sseq = self.sseq.wrapping_add(1);
        self.emit(cap, true, self.cseq, self.sseq, ACK, &[], &[])
    }
    /// SYN, SYN-ACK (after `rtt_ms`), ACK.
    pub fn handshake(&mut self, cap: &mut Capture, rtt_ms: f64) {
        self.syn(cap);
        cap.wait_ms(rtt_ms / 2.0);
        self.synack(cap);
        cap.wait_ms(rtt_ms / 2.0);
        self.ack(cap);
    }
    /// Client data of `len` bytes (advances the client sequence number).
    pub fn send_c(&mut self, cap: &mut Capture, len: usize) -> u64 {
        let payload = vec![0x61u8; len];
        let f = self.emit(cap, true, self.cseq, self.sseq, ACK | PSH, &[], &payload);
        self.cseq = self.cseq.wrapping_add(len as u32);
        f
    }
    /// Server data of `len` bytes.
    pub fn send_s(&mut self, cap: &mut Capture, len: usize) -> u64 {
        let payload = vec![0x62u8; len];
        let f = self.emit(cap, false, self.sseq, self.cseq, ACK | PSH, &[], &payload);
        self.sseq = self.sseq.wrapping_add(len as u32);
        f
    }
    /// Client data with the given bytes (advances the client sequence number).
    pub fn data_c(&mut self, cap: &mut Capture, payload: &[u8]) -> u64 {
        let f = self.emit(cap, true, self.cseq, self.sseq, ACK | PSH, &[], payload);
        self.cseq = self.cseq.wrapping_add(payload.len() as u32);
        f
    }
    /// Server data with the given bytes (advances the server sequence number).
    pub fn data_s(&mut self, cap: &mut Capture, payload: &[u8]) -> u64 {
        let f = self.emit(cap, false, self.sseq, self.cseq, ACK | PSH, &[], payload);
        self.sseq = self.sseq.wrapping_add(payload.len() as u32);
        f
    }
    /// Given bytes at an explicit sequence number (out of order, retransmitted or
    /// rewritten data), not advancing either side.
    pub fn data_at(
        &mut self,
        cap: &mut Capture,
        from_client: bool,
        seq: u32,
        payload: &[u8],
    ) -> u64 {
        let ack = if from_client { self.sseq } else { self.cseq };
        self.emit(cap, from_client, seq, ack, ACK | PSH, &[], payload)
    }
    /// Client data at an explicit sequence number (retransmission), not advancing.
    pub fn resend_c(&mut self, cap: &mut Capture, seq: u32, len: usize) -> u64 {
        let payload = vec![0x61u8; len];
        self.emit(cap, true, seq, self.sseq, ACK | PSH, &[], &payload)
    }
    /// A pure ACK from the server acknowledging `ack`.
    pub fn ack_s(&mut self, cap: &mut Capture, ack: u32) -> u64 {
        self.emit(cap, false, self.sseq, ack, ACK, &[], &[])
    }
    /// A pure ACK from the client acknowledging everything the server sent.
    pub fn ack_c(&mut self, cap: &mut Capture) -> u64 {
        self.emit(cap, true, self.cseq, self.sseq, ACK, &[], &[])
    }
    /// A server ACK advertising a window of `win` (0 = zero window).
    pub fn window_s(&mut self, cap: &mut Capture, win: u16) -> u64 {
        let old = self.window;
        self.window = win;
        let f = self.emit(cap, false, self.sseq, self.cseq, ACK, &[], &[]);
        self.window = old;
        f
    }
    /// RST from the server (refusing a SYN when no handshake happened).
    pub fn rst_s(&mut self, cap: &mut Capture) -> u64 {
        self.emit(
            cap,
            false,
            0,
            self.cseq.wrapping_add(1),
            RST | ACK,
            &[],
            &[],
        )
    }
    /// RST from the client.
    pub fn rst_c(&mut self, cap: &mut Capture) -> u64 {
        self.emit(cap, true, self.cseq, 0, RST, &[], &[])
    }
    /// FIN from client, FIN from server, final ACK.
    pub fn close(&mut self, cap: &mut Capture) {
        self.emit(cap, true, self.cseq, self.sseq, FIN | ACK, &[], &[]);
        self.cseq = self.cseq.wrapping_add(1);
        self.emit(cap, false, self.sseq, self.cseq, FIN | ACK, &[], &[]);
        self.sseq = self.sseq.wrapping_add(1);
        self.emit(cap, true, self.cseq, self.sseq, ACK, &[], &[]);
    }
}

/// The ICMP error body quoting an IPv4 packet: its header plus the first 8 bytes.
pub fn quote_v4(original_ip: &[u8]) -> Vec<u8> {
    let ihl = usize::from(original_ip.first().copied().unwrap_or(0x45) & 0x0f) * 4;
    original_ip[..original_ip.len().min(ihl + 8)].to_vec()
}
