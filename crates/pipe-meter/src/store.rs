//! Where stored results and baselines are read from: the local audit directory and, when a
//! blob container is configured (`STORAGE_ACCOUNT_NAME`/`STORAGE_CONTAINER_NAME`) and a cloud
//! provider is given, that container too — the layout `--upload` writes (`{name}` plus
//! `{name}.sha256`, as in `cloud_provider::blob::BlobStore`). Every load verifies the sidecar;
//! a mismatch is an [`ArtifactError::Integrity`] (exit 4). Local and stored copies of the same
//! artifact (same session id) are merged: the local copy is read.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cloud_provider::artifact::{
    verify_sidecar, Artifact, ArtifactError, ArtifactStore, LocalStore,
};
use cloud_provider::provider::{BlobLocation, CloudProvider};
use serde::Serialize;
use serde_json::Value;

/// Where a candidate artifact was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The local audit directory.
    Local,
    /// The blob container.
    Blob,
}

/// The scratch directory blob downloads go through (`{absolute audit dir}/.blob`). The CLI
/// makes it the gate's output directory, so the downloads are SAFE.
pub fn scratch_dir(audit_dir: &Path) -> PathBuf {
    let abs = std::path::absolute(audit_dir).unwrap_or_else(|_| audit_dir.to_path_buf());
    cloud_provider::blob::default_scratch(&abs)
}

/// Read access to a blob container through a borrowed provider (every `az` call through
/// the provider's gate).
pub struct BlobReader<'a> {
    provider: &'a dyn CloudProvider,
    at: BlobLocation,
    scratch: PathBuf,
}

impl std::fmt::Debug for BlobReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("at", &self.at)
            .field("scratch", &self.scratch)
            .finish()
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl<'a> BlobReader<'a> {
    /// A reader of `at`, staging downloads in `scratch`.
    pub fn new(provider: &'a dyn CloudProvider, at: BlobLocation, scratch: PathBuf) -> Self {
        BlobReader {
            provider,
            at,
            scratch,
        }
    }

    /// `blob:account/container`.
    pub fn describe(&self) -> String {
        format!("blob:{}/{}", self.at.account, self.at.container)
    }

    /// `.json` blobs whose names start with `prefix`, newest first (by `lastModified`).
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, SystemTime)>, ArtifactError> {
        let items = self
            .provider
            .blob_list(&self.at, prefix)
            .map_err(|e| ArtifactError::Backend(format!("{}: {e}", self.describe())))?;
        let mut out: Vec<(String, SystemTime)> = items
            .into_iter()
            .filter(|b| b.name.starts_with(prefix) && b.name.ends_with(".json"))
            .filter(|b| valid_name(&b.name))
            .map(|b| {
                let t = b
                    .last_modified()
                    .map(SystemTime::from)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (b.name, t)
            })
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        Ok(out)
    }

    fn download(&self, blob: &str) -> Result<Option<Vec<u8>>, ArtifactError> {
        std::fs::create_dir_all(&self.scratch).map_err(|source| ArtifactError::Io {
            path: self.scratch.clone(),
            source,
        })?;
        let tmp = self.scratch.join(format!(
            "{blob}.{}.{:08x}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _guard = RemoveOnDrop(tmp.clone());
        match self.provider.blob_download(
            &self.at,
            blob,
            &tmp,
            &format!(
                "pipe-meter: read the stored artifact {blob} from {}",
                self.describe()
            ),
        ) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(ArtifactError::Backend(format!("{}: {e}", self.describe()))),
        }
        std::fs::read(&tmp)
            .map(Some)
            .map_err(|source| ArtifactError::Io { path: tmp, source })
    }

    /// Downloads `name` and its `.sha256` sidecar and verifies them; `Ok(None)` when the
    /// artifact blob does not exist. A missing sidecar or a mismatch is an integrity failure.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ArtifactError> {
        if !valid_name(name) {
            return Err(ArtifactError::InvalidName(name.to_string()));
        }
        let Some(bytes) = self.download(name)? else {
            return Ok(None);
        };
        let sidecar_name = format!("{name}.sha256");
        let sidecar = self
            .download(&sidecar_name)?
            .ok_or_else(|| ArtifactError::Integrity {
                name: name.to_string(),
                detail: format!(
                    "the sidecar blob {sidecar_name} is missing in {}",
                    self.describe()
                ),
            })?;
        verify_sidecar(name, &bytes, &String::from_utf8_lossy(&sidecar)).map_err(|e| match e {
            ArtifactError::Integrity { name, detail } => ArtifactError::Integrity {
                name,
                detail: format!("{detail} (stored in {})", self.describe()),
            },
            other => other,
        })?;
        Ok(Some(bytes))
    }
}

/// One artifact that may be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `{session}_{kind}.json`.
    pub name: String,
    /// Modification time (local file) or `lastModified` (blob).
    pub modified: SystemTime,
    /// Where it will be read from.
    pub origin: Origin,
}

/// A loaded artifact and where it came from.
#[derive(Debug, Clone)]
pub struct Found {
    /// The artifact (verified).
    pub artifact: Artifact<Value>,
    /// Where it was read.
    pub origin: Origin,
}

/// The local audit directory plus, optionally, the blob container.
#[derive(Debug)]
pub struct Sources<'a> {
    /// The audit directory.
    pub local: LocalStore,
    /// The blob container, when configured.
    pub blob: Option<BlobReader<'a>>,
}

fn parse(name: &str, bytes: &[u8]) -> Result<Artifact<Value>, ArtifactError> {
    serde_json::from_slice(bytes).map_err(|e| ArtifactError::Malformed {
        name: name.to_string(),
        detail: e.to_string(),
    })
}

impl<'a> Sources<'a> {
    /// The local directory only.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        Sources {
            local: LocalStore::new(dir),
            blob: None,
        }
    }

    /// The local directory and, when `provider` is given and both storage names are set,
    /// the container (downloads staged in [`scratch_dir`] of `audit_dir`).
    pub fn new(
        audit_dir: &Path,
        provider: Option<&'a dyn CloudProvider>,
        location: Option<BlobLocation>,
    ) -> Self {
        let blob = match (provider, location) {
            (Some(p), Some(at)) => Some(BlobReader::new(p, at, scratch_dir(audit_dir))),
            _ => None,
        };
        Sources {
            local: LocalStore::new(audit_dir.to_path_buf()),
            blob,
        }
    }

    /// What is searched, for messages: `./audit` or `./audit + blob:acct/container`.
    pub fn describe(&self) -> String {
        match &self.blob {
            Some(b) => format!("{} + {}", self.local.describe(), b.describe()),
            None => self.local.describe(),
        }
    }

    /// Every artifact whose name starts with `prefix` and ends with `suffix`, local and
    /// stored merged (one per name, the local copy preferred), newest first. A container
    /// that cannot be listed is reported in `notes`, and the local ones are still returned.
    pub fn candidates(
        &self,
        prefix: &str,
        suffix: &str,
        notes: &mut Vec<String>,
    ) -> Result<Vec<Candidate>, ArtifactError> {
        let mut out: Vec<Candidate> = self
            .local
            .list(prefix)?
            .into_iter()
            .filter(|m| m.name.ends_with(suffix))
            .map(|m| Candidate {
                name: m.name,
                modified: m.modified,
                origin: Origin::Local,
            })
            .collect();
        if let Some(b) = &self.blob {
            match b.list(prefix) {
                Ok(items) => {
                    let local: std::collections::HashSet<String> =
                        out.iter().map(|c| c.name.clone()).collect();
                    for (name, modified) in items {
                        if name.ends_with(suffix) && !local.contains(&name) {
                            out.push(Candidate {
                                name,
                                modified,
                                origin: Origin::Blob,
                            });
                        }
                    }
                }
                Err(e) => notes.push(format!(
                    "the blob container could not be listed, so only local artifacts were read: {e}"
                )),
            }
        }
        out.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.name.cmp(&a.name)));
        Ok(out)
    }

    /// Loads and verifies one candidate.
    pub fn load(&self, c: &Candidate) -> Result<Artifact<Value>, ArtifactError> {
        match (c.origin, &self.blob) {
            (Origin::Local, _) | (Origin::Blob, None) => self.local.get_json(&c.name),
            (Origin::Blob, Some(b)) => match b.get(&c.name)? {
                Some(bytes) => parse(&c.name, &bytes),
                None => Err(ArtifactError::NotFound {
                    name: c.name.clone(),
                    store: b.describe(),
                }),
            },
        }
    }

    /// The artifact `name` (local first, then the container); `Ok(None)` when neither has it.
    pub fn by_name(&self, name: &str) -> Result<Option<Found>, ArtifactError> {
        if self.local.exists(name)? {
            return Ok(Some(Found {
                artifact: self.local.get_json(name)?,
                origin: Origin::Local,
            }));
        }
        match &self.blob {
            None => Ok(None),
            Some(b) => match b.get(name)? {
                None => Ok(None),
                Some(bytes) => Ok(Some(Found {
                    artifact: parse(name, &bytes)?,
                    origin: Origin::Blob,
                })),
            },
        }
    }

    /// The newest artifact of `kind` in sessions starting with `prefix` whose header key is
    /// `key`, other than the artifact named `skip` (e.g. the baseline the current run has
    /// just written). Candidates are read newest first until one matches; a candidate that
    /// fails verification on the way stops the search with that error (its key cannot be
    /// trusted), as `ArtifactStore::latest` does.
    pub fn latest(
        &self,
        prefix: &str,
        kind: &str,
        key: &str,
        skip: Option<&str>,
        notes: &mut Vec<String>,
    ) -> Result<Option<Found>, ArtifactError> {
        let all = self.candidates(prefix, &format!("_{kind}.json"), notes)?;
        for c in all.iter().filter(|c| Some(c.name.as_str()) != skip) {
            let artifact = match self.load(c) {
                Ok(a) => a,
                // Deleted between the listing and the download: not a candidate any more.
                Err(ArtifactError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if artifact.header.kind == kind && artifact.header.key.as_deref() == Some(key) {
                return Ok(Some(Found {
                    artifact,
                    origin: c.origin,
                }));
            }
        }
        Ok(None)
    }
}
