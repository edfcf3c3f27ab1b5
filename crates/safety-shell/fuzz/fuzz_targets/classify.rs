//! Feeds arbitrary bytes (lossily decoded as UTF-8) to the classifier and to
//! `simple_argv`: neither may panic, and classification must be deterministic.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use safety_shell::{classify, simple_argv, ClassifyContext};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ctx = ClassifyContext {
        output_dir: Some(PathBuf::from("/work/out")),
        read_paths: vec![PathBuf::from("/var/log")],
        trusted_programs: vec![],
    };
    let first = classify(&text, &ctx);
    let second = classify(&text, &ctx);
    assert_eq!(first, second, "classification must be deterministic");
    if let Some(argv) = simple_argv(&text) {
        assert!(!argv.is_empty(), "simple_argv returned an empty argv");
    }
});
