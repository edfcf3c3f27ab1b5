//! The artifact store: every tool's results as pretty JSON with a `.sha256` sidecar, written
//! atomically, verified on every read.
//!
//! Artifact names are `{session_id}_{kind}.json` (e.g. `fw_20261122T063005Z_snapshot.json`);
//! the sidecar `{name}.sha256` holds one line in `sha256sum` format
//! (`<64 hex digits>  <file name>`), so `sha256sum -c` verifies it too.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::session::SessionId;

/// The version of the envelope fields below.
pub const SCHEMA_VERSION: &str = "1";

/// Why an artifact could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Reading or writing failed.
    #[error("artifact store I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The artifact does not exist.
    #[error("artifact {name} not found in {store}")]
    NotFound {
        /// The artifact name.
        name: String,
        /// Where it was looked for.
        store: String,
    },
    /// The content does not match its sidecar, or the sidecar is missing or malformed.
    #[error("integrity failure: {name}: {detail}")]
    Integrity {
        /// The artifact name.
        name: String,
        /// What did not match.
        detail: String,
    },
    /// The content is not the JSON the caller expected.
    #[error("artifact {name} is not valid: {detail}")]
    Malformed {
        /// The artifact name.
        name: String,
        /// The parse error.
        detail: String,
    },
    /// An artifact kind or name was refused before touching a path.
    #[error("invalid artifact name {0:?}: use letters, digits, _ and - only")]
    InvalidName(String),
    /// A backend-specific failure (e.g. the blob backend's `az` call failed).
    #[error("{0}")]
    Backend(String),
}

impl ArtifactError {
    /// The process exit code of the conventions (4 for integrity failures, 3 otherwise).
    pub fn exit_code(&self) -> i32 {
        match self {
            ArtifactError::Integrity { .. } => 4,
            ArtifactError::InvalidName(_) => 2,
            _ => 3,
        }
    }
}

/// The envelope fields every artifact carries, before its own body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactHeader {
    /// Envelope version ([`SCHEMA_VERSION`]).
    pub schema_version: String,
    /// The tool that wrote it, e.g. `netfilter-inspector`.
    pub tool: String,
    /// That tool's version.
    pub tool_version: String,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// The artifact kind, e.g. `snapshot`, `result`, `baseline`.
    pub kind: String,
    /// When it was written (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// An optional lookup key (e.g. `198.18.1.4->198.18.1.5:latency` for a baseline), used
    /// by [`ArtifactStore::latest`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl ArtifactHeader {
    /// A header for `tool`/`tool_version` in `session`, created at `now`.
    pub fn new(
        tool: &str,
        tool_version: &str,
        session_id: SessionId,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Self {
        ArtifactHeader {
            schema_version: SCHEMA_VERSION.to_string(),
            tool: tool.to_string(),
            tool_version: tool_version.to_string(),
            session_id,
            kind: kind.to_string(),
            created_at: now,
            key: None,
        }
    }

    /// The same header with a lookup key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The artifact's file name, `{session_id}_{kind}.json`.
    pub fn file_name(&self) -> Result<String, ArtifactError> {
        artifact_name(&self.session_id, &self.kind)
    }
}

/// An artifact: the header fields followed by the body's fields, in one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact<T> {
    /// Envelope fields.
    #[serde(flatten)]
    pub header: ArtifactHeader,
    /// The tool's own content.
    #[serde(flatten)]
    pub body: T,
}

/// `{session}_{kind}.json`, with the kind validated.
pub fn artifact_name(session: &SessionId, kind: &str) -> Result<String, ArtifactError> {
    let ok = (1..=64).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(ArtifactError::InvalidName(kind.to_string()));
    }
    Ok(format!("{session}_{kind}.json"))
}

/// What a listing returns about one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactMeta {
    /// File name, e.g. `fw_20261122T063005Z_snapshot.json`.
    pub name: String,
    /// Last modification time.
    pub modified: SystemTime,
    /// Size in bytes.
    pub size: u64,
}

/// The SHA-256 of `bytes` as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The sidecar line for `name` with content `bytes` (`sha256sum` format).
pub fn sidecar_line(name: &str, bytes: &[u8]) -> String {
    format!("{}  {name}\n", sha256_hex(bytes))
}

/// Checks `bytes` against a sidecar's text. The sidecar must name the same file.
pub fn verify_sidecar(name: &str, bytes: &[u8], sidecar: &str) -> Result<(), ArtifactError> {
    let integrity = |detail: String| ArtifactError::Integrity {
        name: name.to_string(),
        detail,
    };
    let line = sidecar.lines().next().unwrap_or("");
    let (hash, file) = line
        .split_once("  ")
        .or_else(|| line.split_once(" *"))
        .ok_or_else(|| integrity("the .sha256 sidecar is not in sha256sum format".into()))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(integrity(
            "the .sha256 sidecar holds no SHA-256 digest".into(),
        ));
    }
    if file.trim_end() != name {
        return Err(integrity(format!(
            "the .sha256 sidecar names {:?}, not this file",
            file.trim_end()
        )));
    }
    let actual = sha256_hex(bytes);
    if !actual.eq_ignore_ascii_case(hash) {
        return Err(integrity(format!(
            "content hash {actual} does not match the recorded {hash}; the file was changed after it was written"
        )));
    }
    Ok(())
}

/// A place artifacts live: a local directory, or a blob container.
pub trait ArtifactStore: Send + Sync {
    /// A short description for messages (`./audit`, `blob:account/container`).
    fn describe(&self) -> String;
    /// Stores `bytes` under `name` with its sidecar, atomically; returns the SHA-256.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<String, ArtifactError>;
    /// Loads `name` and verifies its sidecar.
    fn get(&self, name: &str) -> Result<Vec<u8>, ArtifactError>;
    /// Whether `name` exists.
    fn exists(&self, name: &str) -> Result<bool, ArtifactError>;
    /// Artifacts whose names start with `prefix`, newest first.
    fn list(&self, prefix: &str) -> Result<Vec<ArtifactMeta>, ArtifactError>;

    /// Serialises an artifact as pretty JSON and stores it under its file name.
    fn put_json<T: Serialize>(
        &self,
        artifact: &Artifact<T>,
    ) -> Result<StoredArtifact, ArtifactError>
    where
        Self: Sized,
    {
        let name = artifact.header.file_name()?;
        let mut bytes =
            serde_json::to_vec_pretty(artifact).map_err(|e| ArtifactError::Malformed {
                name: name.clone(),
                detail: e.to_string(),
            })?;
        bytes.push(b'\n');
        let sha256 = self.put(&name, &bytes)?;
        Ok(StoredArtifact { name, sha256 })
    }

    /// Loads, verifies and parses an artifact.
    fn get_json<T: DeserializeOwned>(&self, name: &str) -> Result<Artifact<T>, ArtifactError>
    where
        Self: Sized,
    {
        let bytes = self.get(name)?;
        serde_json::from_slice(&bytes).map_err(|e| ArtifactError::Malformed {
            name: name.to_string(),
            detail: e.to_string(),
        })
    }

    /// The newest artifact of `kind` whose session id starts with `session_prefix` and, when
    /// `key` is given, whose header key equals it. Every candidate read is verified.
    fn latest(
        &self,
        session_prefix: &str,
        kind: &str,
        key: Option<&str>,
    ) -> Result<Option<Artifact<serde_json::Value>>, ArtifactError>
    where
        Self: Sized,
    {
        let suffix = format!("_{kind}.json");
        for meta in self.list(session_prefix)? {
            if !meta.name.ends_with(&suffix) {
                continue;
            }
            let artifact: Artifact<serde_json::Value> = self.get_json(&meta.name)?;
            if artifact.header.kind != kind {
                continue;
            }
            if key.is_none() || artifact.header.key.as_deref() == key {
                return Ok(Some(artifact));
            }
        }
        Ok(None)
    }
}

/// Where an artifact was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredArtifact {
    /// File name.
    pub name: String,
    /// SHA-256 of the content.
    pub sha256: String,
}

/// Artifacts in a local directory (the default, `./audit`).
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of an artifact (after validating the name).
    pub fn path_of(&self, name: &str) -> Result<PathBuf, ArtifactError> {
        check_file_name(name)?;
        Ok(self.dir.join(name))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
        move |source| ArtifactError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn check_file_name(name: &str) -> Result<(), ArtifactError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ArtifactError::InvalidName(name.to_string()))
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync,
/// rename, then fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.tmp.{}.{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl LocalStore {
    /// Serialises `artifact` as pretty JSON straight into a temporary file in the store,
    /// hashing on the way (the document is never held in memory as a whole, which matters
    /// for snapshots of hundreds of megabytes), then fsyncs and renames it into place.
    fn write_json_streaming<T: Serialize>(
        &self,
        name: &str,
        artifact: &Artifact<T>,
    ) -> Result<String, ArtifactError> {
        let path = self.path_of(name)?;
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let tmp = self.dir.join(format!(
            ".{name}.tmp.{}.{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let result = (|| -> Result<String, ArtifactError> {
            let file = std::fs::File::create(&tmp).map_err(Self::io(&tmp))?;
            // The buffer sits outside the hasher, so the hasher sees large blocks rather than
            // every small write of the serializer.
            let mut w = std::io::BufWriter::with_capacity(
                1 << 20,
                Hashing {
                    inner: file,
                    hash: Sha256::new(),
                },
            );
            serde_json::to_writer_pretty(&mut w, artifact).map_err(|e| {
                ArtifactError::Malformed {
                    name: name.to_string(),
                    detail: e.to_string(),
                }
            })?;
            w.write_all(b"\n").map_err(Self::io(&tmp))?;
            let h = w.into_inner().map_err(|e| Self::io(&tmp)(e.into_error()))?;
            let sha = hex::encode(h.hash.finalize());
            h.inner.sync_all().map_err(Self::io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(Self::io(&path))?;
            if let Ok(d) = std::fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
            Ok(sha)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

impl ArtifactStore for LocalStore {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    /// Streams the document to disk (see [`LocalStore`]'s writer); the bytes and the sidecar
    /// are exactly those of the default `put_json`.
    fn put_json<T: Serialize>(
        &self,
        artifact: &Artifact<T>,
    ) -> Result<StoredArtifact, ArtifactError> {
        let name = artifact.header.file_name()?;
        let sha256 = self.write_json_streaming(&name, artifact)?;
        let sidecar = self.dir.join(format!("{name}.sha256"));
        write_atomic(&sidecar, format!("{sha256}  {name}\n").as_bytes())
            .map_err(Self::io(&sidecar))?;
        Ok(StoredArtifact { name, sha256 })
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<String, ArtifactError> {
        let path = self.path_of(name)?;
        let sidecar = self.dir.join(format!("{name}.sha256"));
        // Content first, then the sidecar: a crash in between leaves an artifact that fails
        // verification (loudly) rather than a sidecar for content that never landed.
        write_atomic(&path, bytes).map_err(Self::io(&path))?;
        write_atomic(&sidecar, sidecar_line(name, bytes).as_bytes()).map_err(Self::io(&sidecar))?;
        Ok(sha256_hex(bytes))
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, ArtifactError> {
        let path = self.path_of(name)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactError::NotFound {
                    name: name.to_string(),
                    store: self.describe(),
                })
            }
            Err(e) => return Err(Self::io(&path)(e)),
        };
        let sidecar_path = self.dir.join(format!("{name}.sha256"));
        let sidecar = match std::fs::read_to_string(&sidecar_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactError::Integrity {
                    name: name.to_string(),
                    detail: format!("the sidecar {} is missing", sidecar_path.display()),
                })
            }
            Err(e) => return Err(Self::io(&sidecar_path)(e)),
        };
        verify_sidecar(name, &bytes, &sidecar)?;
        Ok(bytes)
    }

    fn exists(&self, name: &str) -> Result<bool, ArtifactError> {
        Ok(self.path_of(name)?.exists())
    }

    fn list(&self, prefix: &str) -> Result<Vec<ArtifactMeta>, ArtifactError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Self::io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(prefix) || !name.ends_with(".json") || name.starts_with('.') {
                continue;
            }
            let meta = entry.metadata().map_err(Self::io(&entry.path()))?;
            out.push(ArtifactMeta {
                name,
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                size: meta.len(),
            });
        }
        // Newest first; names carry the session timestamp, so they break ties.
        out.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.name.cmp(&a.name)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn header(session: &str, kind: &str) -> ArtifactHeader {
        ArtifactHeader::new(
            "test-tool",
            "0.1.0",
            SessionId::parse(session).unwrap(),
            kind,
            Utc.with_ymd_and_hms(2026, 11, 22, 7, 0, 0).unwrap(),
        )
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Body {
        drift_detected: bool,
        rules: Vec<String>,
    }

    #[test]
    fn round_trip_with_envelope_and_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let art = Artifact {
            header: header("fw_20261122T070000Z", "snapshot"),
            body: Body {
                drift_detected: false,
                rules: vec!["-A INPUT -j DROP".into()],
            },
        };
        let stored = store.put_json(&art).unwrap();
        assert_eq!(stored.name, "fw_20261122T070000Z_snapshot.json");
        let text = std::fs::read_to_string(dir.path().join(&stored.name)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for k in [
            "schema_version",
            "tool",
            "tool_version",
            "session_id",
            "created_at",
            "drift_detected",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["created_at"], "2026-11-22T07:00:00Z");
        let sidecar =
            std::fs::read_to_string(dir.path().join(format!("{}.sha256", stored.name))).unwrap();
        assert_eq!(sidecar, format!("{}  {}\n", stored.sha256, stored.name));
        let back: Artifact<Body> = store.get_json(&stored.name).unwrap();
        assert_eq!(back, art);
    }

    #[test]
    fn streamed_put_json_equals_the_buffered_form() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let art = Artifact {
            header: header("fw_20261122T070000Z", "snapshot"),
            body: serde_json::json!({"rules": ["-A INPUT -j DROP"], "n": 3}),
        };
        let stored = store.put_json(&art).unwrap();
        let mut expected = serde_json::to_vec_pretty(&art).unwrap();
        expected.push(b'\n');
        assert_eq!(
            std::fs::read(dir.path().join(&stored.name)).unwrap(),
            expected
        );
        assert_eq!(stored.sha256, sha256_hex(&expected));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(format!("{}.sha256", stored.name))).unwrap(),
            sidecar_line(&stored.name, &expected)
        );
        // Nothing but the artifact and its sidecar is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn sidecar_is_sha256sum_compatible() {
        if std::process::Command::new("sha256sum")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("sha256sum not installed: skipping the coreutils cross-check");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        store.put("x_result.json", b"{}\n").unwrap();
        let out = std::process::Command::new("sha256sum")
            .arg("-c")
            .arg("x_result.json.sha256")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn tampering_is_an_integrity_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        store.put("s_snapshot.json", b"{\"a\":1}\n").unwrap();
        std::fs::write(dir.path().join("s_snapshot.json"), b"{\"a\":2}\n").unwrap();
        let err = store.get("s_snapshot.json").unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(err.to_string().contains("does not match"), "{err}");

        std::fs::remove_file(dir.path().join("s_snapshot.json.sha256")).unwrap();
        let err = store.get("s_snapshot.json").unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(err.to_string().contains("missing"), "{err}");

        store.put("t_snapshot.json", b"x").unwrap();
        std::fs::write(
            dir.path().join("t_snapshot.json.sha256"),
            sidecar_line("other.json", b"x"),
        )
        .unwrap();
        assert_eq!(store.get("t_snapshot.json").unwrap_err().exit_code(), 4);
    }

    #[test]
    fn missing_and_invalid_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let err = store.get("nope_result.json").unwrap_err();
        assert!(matches!(err, ArtifactError::NotFound { .. }));
        assert_eq!(err.exit_code(), 3);
        for bad in ["../x.json", "a/b.json", ".hidden.json", ""] {
            assert!(
                matches!(store.get(bad), Err(ArtifactError::InvalidName(_))),
                "{bad}"
            );
        }
        let sid = SessionId::parse("s").unwrap();
        assert!(artifact_name(&sid, "../../etc").is_err());
    }

    #[test]
    fn list_newest_first_and_latest_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let base = std::time::SystemTime::now();
        for (i, (session, key)) in [
            ("pmeter_20261101T000000Z", "a->b:latency"),
            ("pmeter_20261102T000000Z", "a->b:throughput"),
            ("pmeter_20261103T000000Z", "a->b:latency"),
            ("pmeter_20261104T000000Z", "c->d:latency"),
        ]
        .iter()
        .enumerate()
        {
            let art = Artifact {
                header: header(session, "baseline").with_key(*key),
                body: serde_json::json!({ "n": i }),
            };
            let stored = store.put_json(&art).unwrap();
            let f = std::fs::File::options()
                .write(true)
                .open(dir.path().join(&stored.name))
                .unwrap();
            f.set_modified(base + std::time::Duration::from_secs(i as u64))
                .unwrap();
        }
        let names: Vec<String> = store
            .list("pmeter_")
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names[0], "pmeter_20261104T000000Z_baseline.json");
        assert_eq!(names.len(), 4);
        let latest = store
            .latest("pmeter_", "baseline", Some("a->b:latency"))
            .unwrap()
            .unwrap();
        assert_eq!(latest.header.session_id.as_str(), "pmeter_20261103T000000Z");
        assert!(store
            .latest("pmeter_", "baseline", Some("x"))
            .unwrap()
            .is_none());
        assert!(store.latest("fw_", "baseline", None).unwrap().is_none());
    }

    #[test]
    fn latest_refuses_a_tampered_candidate() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let art = Artifact {
            header: header("eni_20261101T000000Z", "snapshot"),
            body: serde_json::json!({}),
        };
        let stored = store.put_json(&art).unwrap();
        std::fs::write(dir.path().join(&stored.name), b"{}").unwrap();
        assert_eq!(
            store
                .latest("eni_", "snapshot", None)
                .unwrap_err()
                .exit_code(),
            4
        );
    }
}
