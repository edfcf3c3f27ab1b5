//! Artifacts of this tool, through cloud-provider's verified store.

use chrono::{DateTime, Utc};
use cloud_provider::artifact::{
    artifact_name, sha256_hex, Artifact, ArtifactHeader, ArtifactStore, LocalStore, StoredArtifact,
};
use cloud_provider::session::SessionId;
use serde::Serialize;

use crate::snapshot::{diff, Diff, Snapshot, SnapshotRef};
use crate::{EniError, TOOL, VERSION};

/// A new session id with `prefix` (`eni`, `rt`, `nsg`) that does not collide with an
/// existing `{id}_{kind}.json`.
pub fn new_session(
    store: &LocalStore,
    prefix: &str,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<SessionId, EniError> {
    let mut rng = rand::thread_rng();
    SessionId::generate(prefix, now, &mut rng, |id| {
        store.exists(&format!("{id}_{kind}.json")).unwrap_or(true)
    })
    .map_err(|e| EniError::Usage(e.to_string()))
}

/// Stores `body` as `{session}_{kind}.json`.
pub fn put<T: Serialize>(
    store: &LocalStore,
    session: &SessionId,
    kind: &str,
    body: T,
    now: DateTime<Utc>,
) -> Result<(StoredArtifact, Artifact<T>), EniError> {
    let header = ArtifactHeader::new(TOOL, VERSION, session.clone(), kind, now);
    let artifact = Artifact { header, body };
    let stored = store.put_json(&artifact)?;
    Ok((stored, artifact))
}

/// Loads and verifies `{id}_snapshot.json`; returns it and its reference (with the hash of
/// the verified bytes).
pub fn load_snapshot(
    store: &LocalStore,
    id: &SessionId,
) -> Result<(Snapshot, SnapshotRef), EniError> {
    let name = artifact_name(id, "snapshot")?;
    let bytes = store.get(&name)?;
    let artifact: Artifact<Snapshot> =
        serde_json::from_slice(&bytes).map_err(|e| EniError::Input(format!("{name}: {e}")))?;
    if artifact.header.tool != TOOL {
        return Err(EniError::Input(format!(
            "{name} was written by {}, not {TOOL}",
            artifact.header.tool
        )));
    }
    Ok((
        artifact.body,
        SnapshotRef {
            session_id: id.to_string(),
            artifact: name,
            sha256: sha256_hex(&bytes),
        },
    ))
}

/// Compares two stored snapshots (both verified) and stores `{current}_diff.json`.
/// Comparing a snapshot with itself is refused.
pub fn compare(
    store: &LocalStore,
    baseline: &SessionId,
    current: &SessionId,
    now: DateTime<Utc>,
) -> Result<(StoredArtifact, Artifact<Diff>), EniError> {
    if baseline == current {
        return Err(EniError::Usage(format!(
            "refusing to compare snapshot {baseline} with itself; pass a different baseline id"
        )));
    }
    let (b, bref) = load_snapshot(store, baseline)?;
    let (c, cref) = load_snapshot(store, current)?;
    let d = diff(&b, &c, bref, cref);
    put(store, current, "diff", d, now)
}
