//! Feed arbitrary fragment and segment sequences to the IP defragmenter and the TCP stream
//! reassembler (small caps, so eviction and hole skipping are exercised too).
//! Run (nightly + cargo-fuzz): `cd crates/pcap-forensics/fuzz && cargo +nightly fuzz run reassembly`
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use pcap_forensics::reassembly::ip::{DefragLimits, Defragmenter, Fragment};
use pcap_forensics::reassembly::tcp::{Stream, StreamLimits};

fuzz_target!(|data: &[u8]| {
    let mut d = Defragmenter::new(DefragLimits {
        max_datagrams: 8,
        max_per_pair: 4,
        max_bytes: 1 << 16,
        max_fragments: 32,
        ..Default::default()
    });
    let mut st = Stream::new(StreamLimits {
        max_pending: 2048,
        history: 256,
    });
    let mut out = Vec::new();
    // Records: 12-byte header (kind, id, offset/seq, flags, length, time) then data.
    let mut rest = data;
    let mut frame = 0u64;
    while rest.len() >= 12 {
        let h = &rest[..12];
        let len = usize::from(u16::from_le_bytes([h[8], h[9]])) % 1500;
        let body = &rest[12..(12 + len).min(rest.len())];
        frame += 1;
        if h[0] & 1 == 0 {
            let f = Fragment {
                v6: h[0] & 2 != 0,
                src: IpAddr::V4(Ipv4Addr::new(198, 18, 0, h[1] % 4)),
                dst: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)),
                proto: 17,
                id: u32::from(h[2] % 8),
                offset: u32::from(u16::from_le_bytes([h[3], h[4]])) & !7,
                more: h[5] & 1 != 0,
                data: body,
                wire_len: u32::from(u16::from_le_bytes([h[6], h[7]])) % 1600,
                ts_ns: i64::from(h[10]) * 1_000_000_000,
                frame,
                frame_len: u32::from(h[11]) * 8,
            };
            let _ = d.feed(&f);
        } else {
            let seq = u32::from_le_bytes([h[1], h[2], h[3], h[4]]);
            let seg_len = u32::from(u16::from_le_bytes([h[6], h[7]])) % 1600;
            let _ = st.push(seq, h[5], body, seg_len, &mut out);
            out.truncate(4096);
        }
        rest = &rest[(12 + len).min(rest.len())..];
    }
    d.finish(i64::MAX);
});
