//! The shipped `demo/sample_config.env` names every key the tools read, each with a comment,
//! and loads without warnings.

use cloud_provider::config::{parse_env_text, KNOWN_KEYS};

#[test]
fn sample_config_lists_every_known_key_with_a_comment() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/sample_config.env");
    let text = std::fs::read_to_string(path).expect("demo/sample_config.env exists");
    let lines: Vec<&str> = text.lines().collect();
    for spec in KNOWN_KEYS {
        let pos = lines
            .iter()
            .position(|l| {
                let l = l.trim_start_matches('#');
                l.starts_with(&format!("{}=", spec.key))
            })
            .unwrap_or_else(|| panic!("{} is missing from sample_config.env", spec.key));
        let commented = lines[..pos]
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#'))
            .any(|l| !l.contains('='));
        assert!(
            commented,
            "{} has no explanatory comment above it",
            spec.key
        );
    }
    let env = |name: &str| (name == "HOME").then(|| "/home/op".to_string());
    let parsed = parse_env_text(&text, "sample_config.env", &env).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert_eq!(
        parsed.get("SSH_SOURCE_VM_KEY_PATH"),
        Some("/home/op/.ssh/source_vm_key")
    );
}
