//! Generate a synthetic capture with a realistic mix (TCP bulk and request/response with
//! some loss, DNS, ICMP, ARP) for the benchmark.
//!
//! `cargo run --release --example gen_capture -- OUT.pcap SIZE_MB`

use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr};

use pcap_forensics::testsupport::{self as ts, Capture, PcapWriter, TcpConv};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "bench.pcap".into());
    let size_mb: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let target = size_mb * 1_000_000;
    let f = std::fs::File::create(&out)?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, f), 1, false, false)?;
    let mut written: u64 = 24;
    let mut packets: u64 = 0;
    let mut round: u32 = 0;
    let mut now = ts::T0;
    while written < target {
        // One round: a batch of connections and side traffic, flushed to disk.
        let mut cap = Capture::new();
        cap.now = now;
        let c_ip = Ipv4Addr::new(198, 18, (round >> 8) as u8 % 200 + 1, round as u8);
        for k in 0..20u16 {
            let s_ip = Ipv4Addr::new(198, 19, 1, (k % 50) as u8 + 1);
            let mut t = TcpConv::new(
                IpAddr::V4(c_ip),
                20_000 + k + (round % 2000) as u16 * 20,
                IpAddr::V4(s_ip),
                if k % 3 == 0 { 443 } else { 8080 },
            );
            t.handshake(&mut cap, 0.4);
            if k % 4 == 0 {
                // bulk transfer with a loss every 50 segments
                for i in 0..60u32 {
                    let seq = t.cseq;
                    t.send_c(&mut cap, 1448);
                    cap.wait_ms(0.01);
                    if i % 50 == 49 {
                        cap.wait_ms(1.0);
                        t.resend_c(&mut cap, seq, 1448);
                    }
                    if i % 2 == 1 {
                        t.ack_s(&mut cap, t.cseq);
                    }
                }
            } else {
                // request/response
                for _ in 0..4 {
                    t.send_c(&mut cap, 300);
                    cap.wait_ms(0.2);
                    t.send_s(&mut cap, 1200);
                    cap.wait_ms(0.05);
                    t.ack_c(&mut cap);
                }
            }
            t.close(&mut cap);
            cap.wait_ms(0.1);
        }
        // DNS
        let dns_server = Ipv4Addr::new(198, 19, 0, 53);
        for q in 0..10u16 {
            let id = (round as u16).wrapping_mul(31).wrapping_add(q);
            let name = format!("host{}.svc{}.example.com", q, round % 100);
            let qm = ts::dns(id, &name, 1, None);
            let u = ts::udp(
                IpAddr::V4(c_ip),
                IpAddr::V4(dns_server),
                40_000 + q,
                53,
                &qm,
            );
            cap.ip4(c_ip, dns_server, 17, 64, &u);
            cap.wait_ms(0.3);
            let rcode = if q == 9 { 3 } else { 0 };
            let rm = ts::dns(id, &name, 1, Some((rcode, u16::from(rcode == 0), false)));
            let u = ts::udp(
                IpAddr::V4(dns_server),
                IpAddr::V4(c_ip),
                53,
                40_000 + q,
                &rm,
            );
            cap.ip4(dns_server, c_ip, 17, 64, &u);
        }
        // ICMP echo and ARP
        let icmp_req = ts::icmp(8, 0, [0, 1, 0, round as u8], &[0u8; 56], None);
        cap.ip4(c_ip, Ipv4Addr::new(198, 19, 1, 1), 1, 64, &icmp_req);
        cap.wait_ms(0.2);
        let icmp_rep = ts::icmp(0, 0, [0, 1, 0, round as u8], &[0u8; 56], None);
        cap.ip4(Ipv4Addr::new(198, 19, 1, 1), c_ip, 1, 64, &icmp_rep);
        let a = ts::arp(
            1,
            ts::mac_of(IpAddr::V4(c_ip)),
            c_ip,
            [0; 6],
            Ipv4Addr::new(198, 19, 1, 1),
        );
        cap.push(ts::ethernet(
            [0xff; 6],
            ts::mac_of(IpAddr::V4(c_ip)),
            0x0806,
            &a,
        ));
        for (t, fr) in &cap.frames {
            w.write(*t, fr, fr.len() as u32)?;
            written += 16 + fr.len() as u64;
            packets += 1;
        }
        now = cap.now + 1_000_000;
        round = round.wrapping_add(1);
    }
    drop(w.into_inner());
    eprintln!("wrote {out}: {packets} packets, {written} bytes");
    Ok(())
}
