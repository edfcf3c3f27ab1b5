//! Atomic artifact writing (temp file, fsync, rename) with a `sha256sum`-format sidecar,
//! and verification on load.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::PcapError;

fn werr(path: &Path, source: std::io::Error) -> PcapError {
    PcapError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), PcapError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "artifact".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(|e| werr(path, e))
}

/// Write `bytes` to `path` atomically, plus `path.sha256` ("<hex>  <file name>\n").
/// Returns the hex digest.
pub fn write_with_sidecar(path: &Path, bytes: &[u8]) -> Result<String, PcapError> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| werr(dir, e))?;
    }
    atomic_write(path, bytes)?;
    let digest = hex::encode(Sha256::digest(bytes));
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let side = sidecar_path(path);
    atomic_write(&side, format!("{digest}  {name}\n").as_bytes())?;
    Ok(digest)
}

/// The sidecar path of an artifact.
pub fn sidecar_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Read an artifact and verify its sidecar.
pub fn read_verified(path: &Path) -> Result<Vec<u8>, PcapError> {
    let bytes = fs::read(path).map_err(|source| PcapError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let side = sidecar_path(path);
    let text = fs::read_to_string(&side).map_err(|e| PcapError::Integrity {
        path: path.to_path_buf(),
        reason: format!("sidecar {} unreadable ({e})", side.display()),
    })?;
    let want = text.split_whitespace().next().unwrap_or("");
    let got = hex::encode(Sha256::digest(&bytes));
    if want != got {
        return Err(PcapError::Integrity {
            path: path.to_path_buf(),
            reason: format!("sha256 is {got} but the sidecar says {want}"),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_roundtrip_and_tamper() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x_semantic.json");
        write_with_sidecar(&p, b"{}\n").expect("write");
        assert_eq!(read_verified(&p).expect("verify"), b"{}\n");
        let side = fs::read_to_string(sidecar_path(&p)).expect("sidecar");
        assert!(side.ends_with("  x_semantic.json\n"));
        fs::write(&p, b"{\"x\":1}\n").expect("tamper");
        assert!(matches!(
            read_verified(&p),
            Err(PcapError::Integrity { .. })
        ));
    }
}
