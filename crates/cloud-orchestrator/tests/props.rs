//! Property tests: the parsers never panic on hostile input, and names round-trip.

use cloud_orchestrator::capfile::{blob_of_storage_path, sniff};
use cloud_orchestrator::model::{capture_name, parse_capture_name, CaptureFilter, Role, TaskId};
use proptest::prelude::*;

proptest! {
    #[test]
    fn filter_parser_never_panics(s in ".{0,200}") {
        if let Ok(f) = CaptureFilter::parse(&s) {
            // Whatever is accepted renders as a JSON object with a protocol.
            let v = f.to_azure();
            prop_assert!(v.get("protocol").is_some());
            prop_assert_eq!(f.mirrored().mirrored(), f);
        }
    }

    #[test]
    fn storage_path_parser_never_panics_and_stays_in_the_account(s in ".{0,300}") {
        if let Ok(b) = blob_of_storage_path(&s, "capsa") {
            prop_assert_eq!(b.account, "capsa");
            prop_assert!(!b.name.split('/').any(|p| p == ".." || p.is_empty()));
        }
    }

    #[test]
    fn header_sniffing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = sniff(&bytes);
    }

    #[test]
    fn task_ids_are_path_safe_and_capture_names_round_trip(s in "t[a-z0-9-]{0,45}", r in 0u8..3) {
        if let Ok(id) = TaskId::parse(&s) {
            prop_assert!(!id.as_str().contains('/') && !id.as_str().contains(".."));
            let role = [Role::Vm, Role::Source, Role::Dest][r as usize];
            prop_assert_eq!(parse_capture_name(&capture_name(&id, role)), Some((id, role)));
        }
    }
}
