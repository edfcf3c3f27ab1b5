//! Zero-copy dissectors: link layers (Ethernet, Linux cooked SLL/SLL2, raw IP, BSD
//! loopback), 802.1Q/802.1ad VLANs, ARP, IPv4 (options, fragments), IPv6 (extension
//! headers, fragments), TCP (options), UDP, ICMP and ICMPv6.
//!
//! Every access is bounds-checked; hostile input yields `Truncated`/`Other`, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const LINKTYPE_NULL: u16 = 0;
pub const LINKTYPE_ETHERNET: u16 = 1;
pub const LINKTYPE_RAW: u16 = 101;
pub const LINKTYPE_LINUX_SLL: u16 = 113;
pub const LINKTYPE_IPV4: u16 = 228;
pub const LINKTYPE_IPV6: u16 = 229;
pub const LINKTYPE_LINUX_SLL2: u16 = 276;

/// A human name for a link type.
pub fn link_type_name(lt: u16) -> String {
    match lt {
        LINKTYPE_NULL => "NULL (BSD loopback)".into(),
        LINKTYPE_ETHERNET => "Ethernet".into(),
        LINKTYPE_RAW | 12 | 14 => "Raw IP".into(),
        LINKTYPE_LINUX_SLL => "Linux cooked (SLL)".into(),
        LINKTYPE_LINUX_SLL2 => "Linux cooked v2 (SLL2)".into(),
        LINKTYPE_IPV4 => "Raw IPv4".into(),
        LINKTYPE_IPV6 => "Raw IPv6".into(),
        other => format!("link type {other} (not dissected)"),
    }
}

pub mod tcpflag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPkt {
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tha: [u8; 6],
    pub tpa: Ipv4Addr,
    /// Ethernet destination when known (for gratuitous-reply detection).
    pub eth_dst: Option<[u8; 6]>,
}

#[derive(Debug, Clone, Copy)]
pub struct TcpSeg<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub wscale: Option<u8>,
    pub mss: Option<u16>,
    /// Segment length from the IP length (independent of snap length).
    pub seg_len: u32,
    /// Captured payload bytes (may be shorter than `seg_len`).
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
pub struct UdpDg<'a> {
    pub sport: u16,
    pub dport: u16,
    pub len: u32,
    pub payload: &'a [u8],
}

/// The packet embedded in an ICMP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub ttl: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// TCP sequence number of the embedded segment, when present.
    pub tcp_seq: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct IcmpMsg<'a> {
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    /// The four bytes after the checksum (id/seq, MTU, gateway...).
    pub rest: [u8; 4],
    pub body: &'a [u8],
}

impl IcmpMsg<'_> {
    /// The embedded original datagram of an error message.
    pub fn embedded(&self) -> Option<Embedded> {
        parse_embedded(self.body)
    }
}

#[derive(Debug, Clone, Copy)]
pub enum L4<'a> {
    Tcp(TcpSeg<'a>),
    Udp(UdpDg<'a>),
    Icmp(IcmpMsg<'a>),
    /// A non-first fragment: no transport header.
    Fragment,
    /// Transport header cut short by the snap length.
    Truncated,
    Other,
}

#[derive(Debug, Clone, Copy)]
pub struct IpPkt<'a> {
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub proto: u8,
    pub ip_id: u32,
    /// (offset in bytes, more fragments) when the packet is a fragment.
    pub frag: Option<(u32, bool)>,
    pub total_len: u32,
    /// Captured bytes after the IP header (IPv6: after the Fragment header when there is
    /// one, else after every extension header), for fragment reassembly.
    pub payload: &'a [u8],
    /// Length of that payload on the wire (from the IP length).
    pub payload_len: u32,
    pub l4: L4<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum L3<'a> {
    Ip(IpPkt<'a>),
    Arp(ArpPkt),
    /// Ethertype not dissected (or link type unknown).
    Other(u16),
    /// Header cut short or malformed.
    Malformed,
}

#[derive(Debug, Clone, Copy)]
pub struct Decoded<'a> {
    pub vlan: Option<u16>,
    pub eth_src: Option<[u8; 6]>,
    pub l3: L3<'a>,
}

#[inline]
fn be16(b: &[u8], o: usize) -> Option<u16> {
    let s = b.get(o..o + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn be32(b: &[u8], o: usize) -> Option<u32> {
    let s = b.get(o..o + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn mac(b: &[u8], o: usize) -> Option<[u8; 6]> {
    let s = b.get(o..o + 6)?;
    let mut m = [0u8; 6];
    m.copy_from_slice(s);
    Some(m)
}

fn v4(b: &[u8], o: usize) -> Option<Ipv4Addr> {
    let s = b.get(o..o + 4)?;
    Some(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
}

fn v6(b: &[u8], o: usize) -> Option<Ipv6Addr> {
    let s = b.get(o..o + 16)?;
    let mut a = [0u8; 16];
    a.copy_from_slice(s);
    Some(Ipv6Addr::from(a))
}

/// Dissect a frame of the given link type.
pub fn dissect(link_type: u16, data: &[u8]) -> Decoded<'_> {
    let mut d = Decoded {
        vlan: None,
        eth_src: None,
        l3: L3::Malformed,
    };
    match link_type {
        LINKTYPE_ETHERNET => {
            let (Some(et), Some(dst), Some(src)) = (be16(data, 12), mac(data, 0), mac(data, 6))
            else {
                return d;
            };
            d.eth_src = Some(src);
            let mut et = et;
            let mut off = 14;
            let mut depth = 0;
            while (et == 0x8100 || et == 0x88a8 || et == 0x9100) && depth < 4 {
                let Some(tci) = be16(data, off) else {
                    return d;
                };
                if d.vlan.is_none() {
                    d.vlan = Some(tci & 0x0fff);
                }
                let Some(n) = be16(data, off + 2) else {
                    return d;
                };
                et = n;
                off += 4;
                depth += 1;
            }
            d.l3 = dissect_l3(et, data.get(off..).unwrap_or(&[]), Some(dst));
        }
        LINKTYPE_LINUX_SLL => {
            let Some(proto) = be16(data, 14) else {
                return d;
            };
            d.l3 = dissect_l3(proto, data.get(16..).unwrap_or(&[]), None);
        }
        LINKTYPE_LINUX_SLL2 => {
            let Some(proto) = be16(data, 0) else {
                return d;
            };
            if data.len() < 20 {
                return d;
            }
            d.l3 = dissect_l3(proto, &data[20..], None);
        }
        LINKTYPE_RAW | 12 | 14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
            d.l3 = match data.first().map(|b| b >> 4) {
                Some(4) => dissect_l3(0x0800, data, None),
                Some(6) => dissect_l3(0x86dd, data, None),
                _ => L3::Malformed,
            };
        }
        LINKTYPE_NULL => {
            let Some(af) = data.get(0..4) else {
                return d;
            };
            let fam = u32::from_le_bytes([af[0], af[1], af[2], af[3]]);
            let fam = if fam > 0xffff { fam.swap_bytes() } else { fam };
            let rest = &data[4..];
            d.l3 = match fam {
                2 => dissect_l3(0x0800, rest, None),
                24 | 28 | 30 => dissect_l3(0x86dd, rest, None),
                _ => L3::Other(0),
            };
        }
        _ => d.l3 = L3::Other(0),
    }
    d
}

fn dissect_l3<'a>(ethertype: u16, b: &'a [u8], eth_dst: Option<[u8; 6]>) -> L3<'a> {
    match ethertype {
        0x0800 => parse_ipv4(b).map_or(L3::Malformed, L3::Ip),
        0x86dd => parse_ipv6(b).map_or(L3::Malformed, L3::Ip),
        0x0806 => parse_arp(b, eth_dst).map_or(L3::Malformed, L3::Arp),
        other => L3::Other(other),
    }
}

fn parse_arp(b: &[u8], eth_dst: Option<[u8; 6]>) -> Option<ArpPkt> {
    // Only Ethernet/IPv4 ARP.
    if be16(b, 0)? != 1 || be16(b, 2)? != 0x0800 || *b.get(4)? != 6 || *b.get(5)? != 4 {
        return None;
    }
    Some(ArpPkt {
        op: be16(b, 6)?,
        sha: mac(b, 8)?,
        spa: v4(b, 14)?,
        tha: mac(b, 18)?,
        tpa: v4(b, 24)?,
        eth_dst,
    })
}

fn parse_ipv4(b: &[u8]) -> Option<IpPkt<'_>> {
    let vihl = *b.first()?;
    if vihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < 20 || b.len() < 20 {
        return None;
    }
    let total_len = u32::from(be16(b, 2)?);
    let ip_id = u32::from(be16(b, 4)?);
    let ff = be16(b, 6)?;
    let more = ff & 0x2000 != 0;
    let offset = u32::from(ff & 0x1fff) * 8;
    let ttl = b[8];
    let proto = b[9];
    let src = IpAddr::V4(v4(b, 12)?);
    let dst = IpAddr::V4(v4(b, 16)?);
    let frag = if more || offset > 0 {
        Some((offset, more))
    } else {
        None
    };
    // Payload: bounded by both the captured bytes and the IP total length
    // (a TSO-offloaded capture may say total length 0: then use the captured bytes).
    let cap_end = b.len();
    let ip_end = if total_len as usize >= ihl {
        total_len as usize
    } else {
        cap_end
    };
    let payload_wire_len = ip_end.saturating_sub(ihl) as u32;
    let payload = b.get(ihl..cap_end.min(ip_end).max(ihl)).unwrap_or(&[]);
    let l4 = if offset > 0 {
        L4::Fragment
    } else if b.len() < ihl {
        L4::Truncated
    } else {
        parse_l4(proto, payload, payload_wire_len, false)
    };
    Some(IpPkt {
        v6: false,
        src,
        dst,
        ttl,
        proto,
        ip_id,
        frag,
        total_len,
        payload,
        payload_len: payload_wire_len,
        l4,
    })
}

fn parse_ipv6(b: &[u8]) -> Option<IpPkt<'_>> {
    if b.first()? >> 4 != 6 || b.len() < 40 {
        return None;
    }
    let plen = u32::from(be16(b, 4)?);
    let mut next = b[6];
    let hop = b[7];
    let src = IpAddr::V6(v6(b, 8)?);
    let dst = IpAddr::V6(v6(b, 24)?);
    let mut off = 40usize;
    let wire_end = if plen == 0 {
        b.len()
    } else {
        40 + plen as usize
    };
    let mut frag = None;
    let mut frag_off = None;
    let mut frag_next = None;
    let mut ip_id = 0u32;
    let mut guard = 0;
    // Extension headers: hop-by-hop 0, routing 43, fragment 44, dest opts 60, AH 51, mobility 135.
    while matches!(next, 0 | 43 | 44 | 60 | 51 | 135) && guard < 16 {
        guard += 1;
        let Some(h) = b.get(off..off + 8) else {
            return Some(IpPkt {
                v6: true,
                src,
                dst,
                ttl: hop,
                proto: next,
                ip_id,
                frag,
                total_len: plen + 40,
                payload: &[],
                payload_len: 0,
                l4: L4::Truncated,
            });
        };
        let nh = h[0];
        let is_frag = next == 44 && frag.is_none();
        let len = match next {
            44 => {
                let fo = u16::from_be_bytes([h[2], h[3]]);
                let offset = u32::from(fo >> 3) * 8;
                let more = fo & 1 != 0;
                ip_id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                frag = Some((offset, more));
                8
            }
            51 => (usize::from(h[1]) + 2) * 4,
            _ => (usize::from(h[1]) + 1) * 8,
        };
        next = nh;
        off += len;
        if is_frag {
            frag_off = Some(off);
            frag_next = Some(nh);
            // After the Fragment header of a non-first fragment comes fragment data, not
            // headers (the reassembled datagram is dissected by `dissect_reassembled`).
            if frag.is_some_and(|(o, _)| o > 0) {
                break;
            }
        }
    }
    let payload_wire_len = wire_end.saturating_sub(off) as u32;
    let cap_end = b.len().min(wire_end);
    let payload = b.get(off..cap_end.max(off)).unwrap_or(&[]);
    // For fragments, the reassembler needs the data right after the Fragment header.
    let (frag_payload, frag_payload_len) = match frag_off {
        Some(fo) => (
            b.get(fo..cap_end.max(fo)).unwrap_or(&[]),
            wire_end.saturating_sub(fo) as u32,
        ),
        None => (payload, payload_wire_len),
    };
    let l4 = match frag {
        Some((o, _)) if o > 0 => L4::Fragment,
        _ => {
            if off > b.len() {
                L4::Truncated
            } else {
                parse_l4(next, payload, payload_wire_len, true)
            }
        }
    };
    Some(IpPkt {
        v6: true,
        src,
        dst,
        ttl: hop,
        proto: frag_next.unwrap_or(next),
        ip_id,
        frag,
        total_len: plen + 40,
        payload: frag_payload,
        payload_len: frag_payload_len,
        l4,
    })
}

/// Dissects a reassembled datagram's payload: `proto` is the upper-layer protocol (IPv6:
/// the next header named by the Fragment header; extension headers that follow it are
/// walked here). Returns the transport protocol and its dissection.
pub fn dissect_reassembled(v6: bool, proto: u8, b: &[u8]) -> (u8, L4<'_>) {
    let mut next = proto;
    let mut off = 0usize;
    if v6 {
        let mut guard = 0;
        while matches!(next, 0 | 43 | 60 | 51 | 135) && guard < 16 {
            guard += 1;
            let Some(h) = b.get(off..off + 8) else {
                return (next, L4::Truncated);
            };
            let len = if next == 51 {
                (usize::from(h[1]) + 2) * 4
            } else {
                (usize::from(h[1]) + 1) * 8
            };
            next = h[0];
            off += len;
        }
        if next == 44 {
            // A Fragment header inside a reassembled datagram: not reassembled twice.
            return (next, L4::Other);
        }
    }
    let Some(rest) = b.get(off..) else {
        return (next, L4::Truncated);
    };
    (next, parse_l4(next, rest, rest.len() as u32, v6))
}

fn parse_l4(proto: u8, b: &[u8], wire_len: u32, is_v6: bool) -> L4<'_> {
    match proto {
        6 => parse_tcp(b, wire_len).map_or(L4::Truncated, L4::Tcp),
        17 => {
            let (Some(sport), Some(dport), Some(len)) = (be16(b, 0), be16(b, 2), be16(b, 4)) else {
                return L4::Truncated;
            };
            let payload = b.get(8..).unwrap_or(&[]);
            let declared = u32::from(len).saturating_sub(8);
            let payload = &payload[..payload.len().min(declared as usize)];
            L4::Udp(UdpDg {
                sport,
                dport,
                len: declared,
                payload,
            })
        }
        1 if !is_v6 => parse_icmp(b, false),
        58 if is_v6 => parse_icmp(b, true),
        _ => L4::Other,
    }
}

fn parse_icmp(b: &[u8], v6: bool) -> L4<'_> {
    let Some(h) = b.get(0..8) else {
        return L4::Truncated;
    };
    L4::Icmp(IcmpMsg {
        v6,
        icmp_type: h[0],
        code: h[1],
        rest: [h[4], h[5], h[6], h[7]],
        body: &b[8..],
    })
}

fn parse_tcp(b: &[u8], wire_len: u32) -> Option<TcpSeg<'_>> {
    let sport = be16(b, 0)?;
    let dport = be16(b, 2)?;
    let seq = be32(b, 4)?;
    let ack = be32(b, 8)?;
    let doff = usize::from(*b.get(12)? >> 4) * 4;
    let flags = *b.get(13)?;
    let window = be16(b, 14)?;
    if doff < 20 {
        return None;
    }
    let mut wscale = None;
    let mut mss = None;
    if let Some(opts) = b.get(20..doff.min(b.len())) {
        let mut i = 0;
        while i < opts.len() {
            match opts[i] {
                0 => break,
                1 => i += 1,
                kind => {
                    let Some(&l) = opts.get(i + 1) else { break };
                    let l = usize::from(l);
                    if l < 2 || i + l > opts.len() {
                        break;
                    }
                    if kind == 2 && l == 4 {
                        mss = Some(u16::from_be_bytes([opts[i + 2], opts[i + 3]]));
                    } else if kind == 3 && l == 3 {
                        wscale = Some(opts[i + 2].min(14));
                    }
                    i += l;
                }
            }
        }
    }
    let seg_len = wire_len.saturating_sub(doff as u32);
    let payload = b.get(doff..).unwrap_or(&[]);
    Some(TcpSeg {
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        wscale,
        mss,
        seg_len,
        payload,
    })
}

/// Parse the original datagram inside an ICMP/ICMPv6 error.
pub fn parse_embedded(b: &[u8]) -> Option<Embedded> {
    let ver = b.first()? >> 4;
    let (src, dst, proto, ttl, l4) = if ver == 4 {
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        (
            IpAddr::V4(v4(b, 12)?),
            IpAddr::V4(v4(b, 16)?),
            *b.get(9)?,
            *b.get(8)?,
            b.get(ihl..).unwrap_or(&[]),
        )
    } else if ver == 6 {
        (
            IpAddr::V6(v6(b, 8)?),
            IpAddr::V6(v6(b, 24)?),
            *b.get(6)?,
            *b.get(7)?,
            b.get(40..).unwrap_or(&[]),
        )
    } else {
        return None;
    };
    let (sport, dport) = if matches!(proto, 6 | 17) {
        (be16(l4, 0), be16(l4, 2))
    } else {
        (None, None)
    };
    let tcp_seq = if proto == 6 { be32(l4, 4) } else { None };
    Some(Embedded {
        src,
        dst,
        proto,
        ttl,
        sport,
        dport,
        tcp_seq,
    })
}

/// IANA protocol name for the protocols we count.
pub fn ip_proto_name(p: u8) -> &'static str {
    match p {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        47 => "gre",
        50 => "esp",
        58 => "icmpv6",
        89 => "ospf",
        112 => "vrrp",
        132 => "sctp",
        _ => "ip-other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_frames_do_not_panic() {
        for lt in [0u16, 1, 101, 113, 228, 229, 276, 999] {
            for n in 0..64 {
                let data = vec![0x45u8; n];
                let _ = dissect(lt, &data);
                let data = vec![0x60u8; n];
                let _ = dissect(lt, &data);
            }
        }
    }

    #[test]
    fn embedded_ipv4_udp() {
        let mut b = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 1, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ];
        b.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
        let e = parse_embedded(&b).expect("embedded");
        assert_eq!(e.proto, 17);
        assert_eq!(e.dport, Some(53));
        assert_eq!(e.ttl, 1);
    }
}
