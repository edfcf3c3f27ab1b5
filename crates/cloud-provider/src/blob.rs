//! [`BlobStore`]: the artifact store in an Azure Blob container, through `az storage blob`
//! (so through the safety-shell gate). Each artifact is a blob `{name}` with a sidecar blob
//! `{name}.sha256` in `sha256sum` format, exactly as in the local store; every read
//! downloads both and verifies them (a mismatch is an integrity failure, exit code 4).
//!
//! Authentication: `--auth-mode login` (the default and the recommended mode: the signed-in
//! identity needs a Storage Blob Data role) or `--auth-mode key`. The gate has no per-call
//! environment, so key mode needs the operator to export `AZURE_STORAGE_KEY` before starting
//! the tool; the key never appears on a command line or in the audit log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::artifact::{
    sha256_hex, sidecar_line, verify_sidecar, write_atomic, ArtifactError, ArtifactMeta,
    ArtifactStore,
};
use crate::config::{Environment, Settings};
use crate::error::CloudError;
use crate::provider::{BlobAuth, BlobLocation, CloudProvider};

/// The environment variable `az` reads the account key from in key mode.
pub const STORAGE_KEY_VAR: &str = "AZURE_STORAGE_KEY";

/// Artifacts in a blob container.
pub struct BlobStore {
    cloud: Arc<dyn CloudProvider>,
    at: BlobLocation,
    scratch: PathBuf,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("at", &self.at)
            .field("scratch", &self.scratch)
            .finish()
    }
}

impl BlobAuth {
    /// `STORAGE_AUTH_MODE` from the settings (flag > environment > file); `login` when
    /// unset.
    pub fn from_settings(settings: &Settings) -> Result<BlobAuth, CloudError> {
        match settings.get("STORAGE_AUTH_MODE") {
            None => Ok(BlobAuth::Login),
            Some(v) => BlobAuth::parse(&v).ok_or_else(|| CloudError::InvalidArgument {
                what: "STORAGE_AUTH_MODE".into(),
                value: v.clone(),
                message: "use login (recommended) or key".into(),
            }),
        }
    }
}

impl BlobStore {
    /// A store in `at`, using `scratch` (a local directory, created on demand) for the
    /// files `az` uploads from and downloads into. Downloads are SAFE for the gate only when
    /// `scratch` is inside the gate's output directory.
    pub fn new(
        cloud: Arc<dyn CloudProvider>,
        at: BlobLocation,
        scratch: impl Into<PathBuf>,
    ) -> Self {
        BlobStore {
            cloud,
            at,
            scratch: scratch.into(),
        }
    }

    /// A store in `STORAGE_ACCOUNT_NAME`/`STORAGE_CONTAINER_NAME`, with scratch files in
    /// `{AUDIT_DIR}/.blob`. Key mode requires `AZURE_STORAGE_KEY` in the environment.
    pub fn from_environment(
        cloud: Arc<dyn CloudProvider>,
        env: &Environment,
        auth: BlobAuth,
    ) -> Result<Self, CloudError> {
        let missing = |key: &str| CloudError::InvalidArgument {
            what: key.to_string(),
            value: String::new(),
            message: format!("the blob artifact store needs it; set {key}"),
        };
        let account = env
            .storage_account
            .clone()
            .ok_or_else(|| missing("STORAGE_ACCOUNT_NAME"))?;
        let container = env
            .storage_container
            .clone()
            .ok_or_else(|| missing("STORAGE_CONTAINER_NAME"))?;
        if auth == BlobAuth::Key && std::env::var_os(STORAGE_KEY_VAR).is_none() {
            return Err(CloudError::InvalidArgument {
                what: "STORAGE_AUTH_MODE".into(),
                value: "key".into(),
                message: format!("key mode reads the account key from {STORAGE_KEY_VAR}, which is not exported; export it, or use STORAGE_AUTH_MODE=login"),
            });
        }
        Ok(BlobStore::new(
            cloud,
            BlobLocation {
                account,
                container,
                auth,
            },
            env.audit_dir.join(".blob"),
        ))
    }

    /// Where the store is.
    pub fn location(&self) -> &BlobLocation {
        &self.at
    }

    fn scratch_file(&self, name: &str) -> Result<PathBuf, ArtifactError> {
        std::fs::create_dir_all(&self.scratch).map_err(|source| ArtifactError::Io {
            path: self.scratch.clone(),
            source,
        })?;
        Ok(self.scratch.join(format!(
            "{name}.{}.{:08x}.tmp",
            std::process::id(),
            rand::random::<u32>()
        )))
    }

    fn backend(&self, e: CloudError) -> ArtifactError {
        ArtifactError::Backend(format!("{}: {e}", self.describe()))
    }

    fn upload_bytes(&self, blob: &str, bytes: &[u8]) -> Result<(), ArtifactError> {
        let tmp = self.scratch_file(blob)?;
        let _guard = RemoveOnDrop(tmp.clone());
        write_atomic(&tmp, bytes).map_err(|source| ArtifactError::Io {
            path: tmp.clone(),
            source,
        })?;
        self.cloud
            .blob_upload(
                &self.at,
                blob,
                &tmp,
                &format!("store artifact {blob} in {}", self.describe()),
            )
            .map_err(|e| self.backend(e))
    }

    /// Downloads a blob; `Ok(None)` when it does not exist.
    fn download_bytes(&self, blob: &str) -> Result<Option<Vec<u8>>, ArtifactError> {
        let tmp = self.scratch_file(blob)?;
        let _guard = RemoveOnDrop(tmp.clone());
        match self.cloud.blob_download(
            &self.at,
            blob,
            &tmp,
            &format!("read artifact {blob} from {}", self.describe()),
        ) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(self.backend(e)),
        }
        std::fs::read(&tmp)
            .map(Some)
            .map_err(|source| ArtifactError::Io { path: tmp, source })
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn check_artifact_name(name: &str) -> Result<(), ArtifactError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    ok.then_some(())
        .ok_or_else(|| ArtifactError::InvalidName(name.to_string()))
}

impl ArtifactStore for BlobStore {
    fn describe(&self) -> String {
        format!("blob:{}/{}", self.at.account, self.at.container)
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<String, ArtifactError> {
        check_artifact_name(name)?;
        // Content first, then the sidecar (as in the local store): an interrupted write
        // leaves an artifact that fails verification rather than a sidecar without content.
        self.upload_bytes(name, bytes)?;
        self.upload_bytes(
            &format!("{name}.sha256"),
            sidecar_line(name, bytes).as_bytes(),
        )?;
        Ok(sha256_hex(bytes))
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, ArtifactError> {
        check_artifact_name(name)?;
        let bytes = self
            .download_bytes(name)?
            .ok_or_else(|| ArtifactError::NotFound {
                name: name.to_string(),
                store: self.describe(),
            })?;
        let sidecar_name = format!("{name}.sha256");
        let sidecar =
            self.download_bytes(&sidecar_name)?
                .ok_or_else(|| ArtifactError::Integrity {
                    name: name.to_string(),
                    detail: format!("the sidecar blob {sidecar_name} is missing"),
                })?;
        verify_sidecar(name, &bytes, &String::from_utf8_lossy(&sidecar))?;
        Ok(bytes)
    }

    fn exists(&self, name: &str) -> Result<bool, ArtifactError> {
        check_artifact_name(name)?;
        match self.cloud.blob_show(&self.at, name) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(self.backend(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ArtifactMeta>, ArtifactError> {
        if !prefix.is_empty() {
            check_artifact_name(prefix)?;
        }
        let items = self
            .cloud
            .blob_list(&self.at, prefix)
            .map_err(|e| self.backend(e))?;
        let mut out: Vec<ArtifactMeta> = items
            .into_iter()
            .filter(|b| b.name.starts_with(prefix) && b.name.ends_with(".json"))
            .filter(|b| !b.name.contains('/') && !b.name.starts_with('.'))
            .map(|b| ArtifactMeta {
                modified: b
                    .last_modified()
                    .map(SystemTime::from)
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                size: b.properties.content_length.unwrap_or(0),
                name: b.name,
            })
            .collect();
        out.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.name.cmp(&a.name)));
        Ok(out)
    }
}

/// The scratch directory a store uses (for callers that set the gate's output directory).
pub fn default_scratch(audit_dir: &Path) -> PathBuf {
    audit_dir.join(".blob")
}
