//! Feed arbitrary bytes to the reader, the dissectors, the analysis and the renderers.
//! Run (nightly + cargo-fuzz): `cd crates/pcap-forensics/fuzz && cargo +nightly fuzz run reader_dissect`
#![no_main]

use libfuzzer_sys::fuzz_target;
use pcap_forensics::analysis::{analyze_reader, AnalysisOptions};
use pcap_forensics::narrator::Narrative;
use pcap_forensics::semantic::{semantic_json, Meta};

fuzz_target!(|data: &[u8]| {
    // Raw dissectors on every link type.
    for lt in [0u16, 1, 101, 113, 228, 229, 276] {
        let _ = pcap_forensics::dissect::dissect(lt, data);
    }
    // Whole pipeline on the bytes as a capture file.
    let opts = AnalysisOptions::default();
    if let Ok(a) = analyze_reader(data, "fuzz", &opts, None) {
        let meta = Meta::at(chrono::DateTime::from_timestamp(0, 0).unwrap_or_default());
        let j = semantic_json(&a, &opts, &meta);
        let _ = pcap_forensics::report::markdown(&a, &j, &meta, &Narrative::NotRequested);
    }
});
