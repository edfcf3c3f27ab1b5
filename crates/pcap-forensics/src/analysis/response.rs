//! Application response times over TCP: for every connection, the time from the client's
//! request (its first data segment since the server last answered) to the server's first
//! data segment after it. Seen from the client, that is server think time plus the round
//! trip; seen from the server, it is the server's think time alone, so comparing both
//! captures says where a delay is made.
//!
//! Memory is bounded: at most [`MAX_CONNS`] connections are followed and [`MAX_SAMPLES`]
//! response times kept per server endpoint (counts stay exact beyond that).

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{Endpoint, FlowKey, FxMap};
use crate::dissect::{IpPkt, TcpSeg};
use crate::reader::Packet;

/// Connections followed at once.
pub const MAX_CONNS: usize = 200_000;
/// Response times kept per server endpoint.
pub const MAX_SAMPLES: usize = 20_000;
/// A response is slow from this many milliseconds on (and 4 times the median).
pub const SLOW_FLOOR_MS: f64 = 200.0;
/// A response is slow at this multiple of the server's median response time.
pub const SLOW_FACTOR: f64 = 4.0;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

#[derive(Debug, Clone)]
struct ConnTiming {
    client: Endpoint,
    server: Endpoint,
    /// (timestamp ns, frame) of the pending request.
    request: Option<(i64, u64)>,
}

/// One response: time, the response's frame, the connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub ms: f64,
    pub frame: u64,
    pub client: Endpoint,
}

/// Response times of one server endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerTiming {
    /// Responses seen (exact).
    pub responses: u64,
    /// The first [`MAX_SAMPLES`] response times.
    pub samples: Vec<Sample>,
}

impl ServerTiming {
    /// Median response time (ms) of the kept samples.
    pub fn median_ms(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.samples.iter().map(|s| s.ms).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }

    /// The slow threshold for this server: max(200 ms, 4 × median).
    pub fn slow_threshold_ms(&self) -> f64 {
        self.median_ms()
            .map(|m| (m * SLOW_FACTOR).max(SLOW_FLOOR_MS))
            .unwrap_or(SLOW_FLOOR_MS)
    }

    /// The slow responses.
    pub fn slow(&self) -> Vec<&Sample> {
        let t = self.slow_threshold_ms();
        self.samples.iter().filter(|s| s.ms >= t).collect()
    }

    /// Largest response time (ms).
    pub fn max_ms(&self) -> f64 {
        self.samples.iter().map(|s| s.ms).fold(0.0, f64::max)
    }

    /// Median of the slow responses (ms).
    pub fn slow_median_ms(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.slow().iter().map(|s| s.ms).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }
}

/// Streaming state.
#[derive(Debug, Default)]
pub struct ResponseState {
    conns: FxMap<FlowKey, ConnTiming>,
    servers: BTreeMap<Endpoint, ServerTiming>,
    /// Connections not followed because the table was full.
    pub skipped_conns: u64,
}

/// What [`ResponseState::finish`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseResult {
    /// Per server endpoint.
    pub servers: BTreeMap<Endpoint, ServerTiming>,
    /// Connections not followed because the table was full.
    pub skipped_conns: u64,
}

impl ResponseState {
    /// One TCP segment (of a whole datagram).
    pub fn feed(&mut self, p: &Packet<'_>, ip: &IpPkt<'_>, seg: &TcpSeg<'_>) {
        let src = Endpoint {
            ip: ip.src,
            port: seg.sport,
        };
        let dst = Endpoint {
            ip: ip.dst,
            port: seg.dport,
        };
        let (key, _) = FlowKey::new(src, dst);
        if seg.flags & RST != 0 {
            self.conns.remove(&key);
            return;
        }
        let at_cap = self.conns.len() >= MAX_CONNS;
        let c = match self.conns.entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                if at_cap {
                    self.skipped_conns += 1;
                    return;
                }
                // The client is the side that sent the SYN; without one (a capture that
                // started mid-connection), the side with the higher port.
                let (client, server) = if seg.flags & SYN != 0 && seg.flags & ACK == 0 {
                    (src, dst)
                } else if seg.flags & SYN != 0 {
                    (dst, src)
                } else if src.port >= dst.port {
                    (src, dst)
                } else {
                    (dst, src)
                };
                v.insert(ConnTiming {
                    client,
                    server,
                    request: None,
                })
            }
        };
        if seg.seg_len == 0 {
            return;
        }
        if src == c.client {
            if c.request.is_none() {
                c.request = Some((p.ts_ns, p.frame));
            }
        } else if let Some((t0, _)) = c.request.take() {
            let ms = (p.ts_ns.saturating_sub(t0)).max(0) as f64 / 1e6;
            let st = self.servers.entry(c.server).or_default();
            st.responses += 1;
            if st.samples.len() < MAX_SAMPLES {
                st.samples.push(Sample {
                    ms,
                    frame: p.frame,
                    client: c.client,
                });
            }
        }
    }

    /// Done.
    pub fn finish(self) -> ResponseResult {
        ResponseResult {
            servers: self.servers,
            skipped_conns: self.skipped_conns,
        }
    }
}

/// Sender versus receiver: for each server endpoint with slow responses in either capture,
/// where the delay is made. At the server the response time is its own think time; at the
/// client it adds the network's round trip. Slow responses of similar size at both ends
/// mean the server makes the delay; slow only (or much slower) at the client means the
/// network adds it.
pub fn compare(a: &ResponseResult, b: &ResponseResult) -> Value {
    let mut out = Vec::new();
    let servers: std::collections::BTreeSet<&Endpoint> =
        a.servers.keys().chain(b.servers.keys()).collect();
    for s in servers {
        let ta = a.servers.get(s);
        let tb = b.servers.get(s);
        let slow_a = ta.map(|t| t.slow().len()).unwrap_or(0);
        let slow_b = tb.map(|t| t.slow().len()).unwrap_or(0);
        if slow_a == 0 && slow_b == 0 {
            continue;
        }
        let ma = ta.and_then(ServerTiming::slow_median_ms);
        let mb = tb.and_then(ServerTiming::slow_median_ms);
        let where_ = match (ma, mb) {
            (Some(x), Some(y)) => {
                let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
                if hi - lo <= (0.25 * hi).max(50.0) {
                    "server"
                } else {
                    "network"
                }
            }
            (Some(_), None) | (None, Some(_)) => {
                // Seen slow at one end only: if the other end saw the server's responses
                // at all, they were fast there, so the delay is on the path.
                let other = if ma.is_some() { tb } else { ta };
                if other.is_some_and(|t| t.responses > 0) {
                    "network"
                } else {
                    "unknown"
                }
            }
            (None, None) => "unknown",
        };
        out.push(json!({
            "server": s.to_string(),
            "responses_at_a": ta.map(|t| t.responses).unwrap_or(0),
            "responses_at_b": tb.map(|t| t.responses).unwrap_or(0),
            "slow_at_a": slow_a,
            "slow_at_b": slow_b,
            "slow_median_ms_at_a": ma.map(r1),
            "slow_median_ms_at_b": mb.map(r1),
            "delay_made_at": where_,
        }));
    }
    Value::Array(out)
}

fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: ip.parse::<IpAddr>().unwrap(),
            port,
        }
    }

    fn timing(ms: &[f64]) -> ServerTiming {
        ServerTiming {
            responses: ms.len() as u64,
            samples: ms
                .iter()
                .enumerate()
                .map(|(i, m)| Sample {
                    ms: *m,
                    frame: i as u64 + 1,
                    client: ep("198.18.1.4", 40000),
                })
                .collect(),
        }
    }

    #[test]
    fn slow_threshold_is_the_larger_of_the_floor_and_four_medians() {
        let t = timing(&[1.0, 1.2, 1.1, 1500.0]);
        assert_eq!(t.slow_threshold_ms(), SLOW_FLOOR_MS);
        assert_eq!(t.slow().len(), 1);
        let t = timing(&[100.0, 110.0, 120.0, 300.0]);
        assert!((t.slow_threshold_ms() - 480.0).abs() < 1e-9);
        assert!(t.slow().is_empty());
    }

    #[test]
    fn compare_places_the_delay() {
        let s = ep("198.18.1.5", 8080);
        let mut a = ResponseResult::default();
        let mut b = ResponseResult::default();
        a.servers.insert(s, timing(&[1.0, 1.0, 801.0]));
        b.servers.insert(s, timing(&[0.2, 0.2, 800.2]));
        let v = compare(&a, &b);
        assert_eq!(v[0]["delay_made_at"], "server");
        // Slow at the client only: the path adds it.
        b.servers.insert(s, timing(&[0.2, 0.2, 0.3]));
        assert_eq!(compare(&a, &b)[0]["delay_made_at"], "network");
        // Nothing slow: nothing to say.
        a.servers.insert(s, timing(&[1.0, 1.0, 1.1]));
        assert!(compare(&a, &b).as_array().unwrap().is_empty());
    }
}
