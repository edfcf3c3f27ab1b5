//! The blob artifact store over a fake `az storage blob` that keeps blobs in memory (upload
//! reads `--file`, download writes it), behind the real gate.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::TimeZone;
use cloud_provider::artifact::{Artifact, ArtifactError, ArtifactHeader, ArtifactStore};
use cloud_provider::blob::BlobStore;
use cloud_provider::provider::{BlobAuth, BlobLocation, CloudProvider};
use cloud_provider::session::SessionId;
use common::*;

type Blobs = Arc<Mutex<BTreeMap<String, (Vec<u8>, u32)>>>;

fn fake_storage(
    blobs: Blobs,
) -> impl Fn(&safety_shell::Target, &[String]) -> safety_shell::exec::RawOutput {
    let clock = Arc::new(Mutex::new(0u32));
    move |_, a| {
        let name = opt(a, "--name").map(str::to_string);
        let not_found = || {
            fail(
                3,
                "ERROR: The specified blob does not exist.\nRequestId:0\nErrorCode:BlobNotFound\n",
            )
        };
        if is_cmd(a, "storage blob upload") {
            let bytes = std::fs::read(opt(a, "--file").unwrap()).unwrap();
            let mut t = clock.lock().unwrap();
            *t += 1;
            blobs.lock().unwrap().insert(name.unwrap(), (bytes, *t));
            ok(r#"{"etag": "\"0x1\"", "lastModified": "2026-11-22T07:00:00+00:00"}"#)
        } else if is_cmd(a, "storage blob download") {
            match blobs.lock().unwrap().get(&name.unwrap()) {
                Some((b, _)) => {
                    std::fs::write(opt(a, "--file").unwrap(), b).unwrap();
                    ok("{}")
                }
                None => not_found(),
            }
        } else if is_cmd(a, "storage blob show") {
            match blobs.lock().unwrap().get(&name.unwrap()) {
                Some((b, _)) => ok(&format!(
                    r#"{{"name": "x", "properties": {{"contentLength": {}}}}}"#,
                    b.len()
                )),
                None => not_found(),
            }
        } else if is_cmd(a, "storage blob list") {
            let prefix = opt(a, "--prefix").unwrap_or("");
            let items: Vec<serde_json::Value> = blobs
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, (b, t))| {
                    serde_json::json!({"name": k, "deleted": null, "snapshot": null,
                        "properties": {"contentLength": b.len(), "blobType": "BlockBlob",
                            "lastModified": format!("2026-11-22T07:{:02}:00+00:00", t)}})
                })
                .collect();
            ok(&serde_json::to_string(&items).unwrap())
        } else {
            fail(2, "az: 'x' is not in the 'az storage blob' command group.")
        }
    }
}

fn artifact(session: &str, kind: &str, key: Option<&str>, n: i64) -> Artifact<serde_json::Value> {
    let mut header = ArtifactHeader::new(
        "test-tool",
        "0.1.0",
        SessionId::parse(session).unwrap(),
        kind,
        chrono::Utc.with_ymd_and_hms(2026, 11, 22, 7, 0, 0).unwrap(),
    );
    if let Some(k) = key {
        header = header.with_key(k);
    }
    Artifact {
        header,
        body: serde_json::json!({"n": n}),
    }
}

fn store(h: &Harness, auth: BlobAuth) -> BlobStore {
    let cloud: Arc<dyn CloudProvider> = h.az.clone();
    BlobStore::new(
        cloud,
        BlobLocation {
            account: "stlab".into(),
            container: "artifacts".into(),
            auth,
        },
        h.dir.path().join("scratch"),
    )
}

#[test]
fn round_trip_list_latest_and_tamper() {
    let blobs: Blobs = Arc::default();
    let h = harness(fake_storage(blobs.clone()));
    let s = store(&h, BlobAuth::Login);
    assert_eq!(s.describe(), "blob:stlab/artifacts");

    let a1 = artifact("pmeter_20261122T070000Z", "baseline", Some("a->b"), 1);
    let a2 = artifact("pmeter_20261122T071000Z", "baseline", Some("a->b"), 2);
    let a3 = artifact("pmeter_20261122T072000Z", "baseline", Some("c->d"), 3);
    let stored = s.put_json(&a1).unwrap();
    s.put_json(&a2).unwrap();
    s.put_json(&a3).unwrap();
    assert_eq!(stored.name, "pmeter_20261122T070000Z_baseline.json");
    assert!(blobs
        .lock()
        .unwrap()
        .contains_key("pmeter_20261122T070000Z_baseline.json.sha256"));

    let back: Artifact<serde_json::Value> = s.get_json(&stored.name).unwrap();
    assert_eq!(back, a1);
    assert!(s.exists(&stored.name).unwrap());
    assert!(!s.exists("pmeter_20261122T000000Z_nothing.json").unwrap());

    // Newest first, sidecars not listed.
    let names: Vec<String> = s
        .list("pmeter_")
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        vec![
            "pmeter_20261122T072000Z_baseline.json",
            "pmeter_20261122T071000Z_baseline.json",
            "pmeter_20261122T070000Z_baseline.json"
        ]
    );
    let latest = s
        .latest("pmeter_", "baseline", Some("a->b"))
        .unwrap()
        .unwrap();
    assert_eq!(latest.body["n"], 2);

    // Missing artifact: not found (exit 3).
    let e = s.get("pmeter_20261122T000000Z_nothing.json").unwrap_err();
    assert!(matches!(e, ArtifactError::NotFound { .. }), "{e}");
    assert_eq!(e.exit_code(), 3);

    // Tampered content: integrity failure (exit 4).
    {
        let mut b = blobs.lock().unwrap();
        let entry = b.get_mut(&stored.name).unwrap();
        let text = String::from_utf8(entry.0.clone())
            .unwrap()
            .replace("\"n\": 1", "\"n\": 9");
        entry.0 = text.into_bytes();
    }
    let e = s.get(&stored.name).unwrap_err();
    assert!(matches!(e, ArtifactError::Integrity { .. }), "{e}");
    assert_eq!(e.exit_code(), 4);

    // Missing sidecar: integrity failure too.
    blobs
        .lock()
        .unwrap()
        .remove("pmeter_20261122T071000Z_baseline.json.sha256");
    let e = s.get("pmeter_20261122T071000Z_baseline.json").unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");

    // Scratch files do not accumulate.
    let left = std::fs::read_dir(h.dir.path().join("scratch"))
        .unwrap()
        .count();
    assert_eq!(left, 0);
}

#[test]
fn key_mode_never_puts_a_key_on_the_command_line() {
    let blobs: Blobs = Arc::default();
    let h = harness(fake_storage(blobs));
    let s = store(&h, BlobAuth::Key);
    s.put_json(&artifact("fw_20261122T070000Z", "snapshot", None, 1))
        .unwrap();
    let _ = s.get("fw_20261122T070000Z_snapshot.json").unwrap();
    let audit = std::fs::read_to_string(h.gate.audit().path()).unwrap();
    assert!(audit.contains("--auth-mode key"));
    for a in h.argvs() {
        assert_eq!(opt(&a, "--auth-mode"), Some("key"));
        assert!(!a
            .iter()
            .any(|x| x.contains("account-key") || x.contains("sas")));
    }
}

#[test]
fn backend_failures_and_bad_names() {
    let h = harness(|_, _| {
        fail(1, "ERROR: (AuthorizationPermissionMismatch) This request is not authorized to perform this operation using this permission.\n")
    });
    let s = store(&h, BlobAuth::Login);
    let e = s.get("fw_20261122T070000Z_snapshot.json").unwrap_err();
    assert!(matches!(e, ArtifactError::Backend(_)), "{e}");
    assert!(e.to_string().contains("authorization failed"), "{e}");
    assert_eq!(e.exit_code(), 3);
    let e = s.put("../etc/passwd", b"x").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(h.argvs().len() <= 1);
}
