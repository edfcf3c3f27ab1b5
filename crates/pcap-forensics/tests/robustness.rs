//! Arbitrary and mutated bytes never make the reader or the analysis panic.

mod support;

use pcap_forensics::analysis::{analyze_reader, AnalysisOptions};
use pcap_forensics::semantic::{semantic_json, Meta};
use proptest::prelude::*;

fn run(bytes: &[u8]) {
    let opts = AnalysisOptions::default();
    if let Ok(a) = analyze_reader(bytes, "fuzz", &opts, None) {
        let j = semantic_json(
            &a,
            &opts,
            &Meta::at(chrono::DateTime::from_timestamp(0, 0).expect("t")),
        );
        let _ = pcap_forensics::report::markdown(
            &a,
            &j,
            &Meta::at(chrono::DateTime::from_timestamp(0, 0).expect("t")),
            &pcap_forensics::narrator::Narrative::NotRequested,
        );
    }
}

fn seeds() -> Vec<Vec<u8>> {
    vec![
        support::retrans_burst().to_pcap(1),
        support::dns_mix().to_pcapng(1),
        support::pmtud_black_hole().to_pcap(1),
        support::ipv6_mix().to_pcapng(1),
        support::arp_conflict_and_vrrp().to_pcap(1),
        support::ttl_loop_and_traceroute().to_pcap(1),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        run(&bytes);
        // Behind a valid pcap header too, so the dissectors see the garbage.
        let mut v = pcap_forensics::testsupport::PcapWriter::new(Vec::new(), 1, false, false).expect("w").into_inner();
        v.extend_from_slice(&bytes);
        run(&v);
    }

    #[test]
    fn mutated_captures_do_not_panic(
        seed in 0usize..6,
        flips in proptest::collection::vec((any::<u32>(), any::<u8>()), 1..32),
        cut in any::<u32>(),
    ) {
        let mut v = seeds()[seed].clone();
        for (pos, val) in flips {
            let i = pos as usize % v.len();
            v[i] = val;
        }
        let keep = (cut as usize % (v.len() + 1)).max(1);
        v.truncate(keep);
        run(&v);
    }
}

#[test]
fn every_link_type_with_every_short_frame() {
    for lt in [0u16, 1, 12, 14, 101, 113, 228, 229, 276, 9999] {
        for len in 0..80usize {
            let frame: Vec<u8> = (0..len).map(|i| (i * 37 + lt as usize) as u8).collect();
            let mut w = pcap_forensics::testsupport::PcapWriter::new(Vec::new(), lt, false, false)
                .expect("w");
            w.write(0, &frame, 1500).expect("w");
            run(&w.into_inner());
        }
    }
}
