//! Blob storage on the local file system: `<data-dir>/<account>/<container>/<blob path>`.
//!
//! Names are validated before they touch a path (no `..`, `.`, empty segments, control
//! characters or backslashes), so nothing escapes the data directory; symbolic links are
//! never followed when listing. Writes go to `<data-dir>/.tmp/` (no account name starts
//! with a dot) and are renamed into place after fsync.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use md5::{Digest, Md5};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Invalid account name.
    #[error("account name {0:?} is invalid (3-24 lowercase letters and digits)")]
    Account(String),
    /// Invalid container name.
    #[error("container name {0:?} is invalid (3-63 lowercase letters, digits and single hyphens, starting with a letter or digit)")]
    Container(String),
    /// Invalid blob name.
    #[error("blob name {0:?} is invalid (1-1024 characters; no empty, '.' or '..' path segments, backslashes or control characters)")]
    Blob(String),
}

/// Validates an account name (3-24 lowercase letters and digits).
pub fn validate_account(name: &str) -> Result<(), NameError> {
    let ok = (3..=24).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(NameError::Account(name.to_string()))
    }
}

/// Validates a container name as Azure does.
pub fn validate_container(name: &str) -> Result<(), NameError> {
    let b = name.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(NameError::Container(name.to_string()))
    }
}

/// Validates a blob name so that it maps to a path inside the container directory.
pub fn validate_blob(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 1024
        && !name.chars().any(|c| c.is_control() || c == '\\')
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if ok {
        Ok(())
    } else {
        Err(NameError::Blob(name.to_string()))
    }
}

/// Standard base64 (with padding).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Properties of one stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProps {
    /// Blob name.
    pub name: String,
    /// Size in bytes.
    pub len: u64,
    /// Base64 MD5 of the content.
    pub md5: String,
    /// Last modification time.
    pub modified: SystemTime,
    /// Quoted ETag derived from the modification time and size.
    pub etag: String,
}

/// The blob tree under a data directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    tmp_seq: AtomicU64,
    /// MD5 of files already hashed, keyed by path and checked against (inode, size, mtime),
    /// so HEAD and List do not re-read large blobs.
    md5_cache: Mutex<HashMap<PathBuf, (FileKey, String)>>,
}

/// Identity of a file version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileKey {
    fn of(meta: &fs::Metadata) -> FileKey {
        use std::os::unix::fs::MetadataExt;
        FileKey {
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// Most MD5 cache entries kept; the cache is emptied when it grows past this.
const MD5_CACHE_MAX: usize = 100_000;

/// MD5 of a whole file, base64.
pub fn file_md5(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(base64(&h.finalize()))
}

fn etag_for(meta: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let nanos = (meta.mtime() as i128) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    format!(
        "\"0x{:X}{:X}\"",
        nanos as u128 & 0xFFFF_FFFF_FFFF,
        meta.ino() & 0xFFFF
    )
}

impl Store {
    /// A store rooted at `root` (created if missing).
    pub fn new(root: &Path) -> io::Result<Store> {
        fs::create_dir_all(root.join(".tmp"))?;
        Ok(Store {
            root: root.to_path_buf(),
            tmp_seq: AtomicU64::new(0),
            md5_cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached_md5(&self, path: &Path, meta: &fs::Metadata) -> io::Result<String> {
        let key = FileKey::of(meta);
        {
            let cache = self.md5_cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((k, md5)) = cache.get(path) {
                if *k == key {
                    return Ok(md5.clone());
                }
            }
        }
        let md5 = file_md5(path)?;
        self.remember_md5(path, meta, &md5);
        Ok(md5)
    }

    fn remember_md5(&self, path: &Path, meta: &fs::Metadata, md5: &str) {
        let mut cache = self.md5_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MD5_CACHE_MAX {
            cache.clear();
        }
        cache.insert(path.to_path_buf(), (FileKey::of(meta), md5.to_string()));
    }

    /// The directory of a container (names must be validated).
    pub fn container_dir(&self, account: &str, container: &str) -> PathBuf {
        self.root.join(account).join(container)
    }

    /// The file of a blob (names must be validated).
    pub fn blob_path(&self, account: &str, container: &str, blob: &str) -> PathBuf {
        let mut p = self.container_dir(account, container);
        for seg in blob.split('/') {
            p.push(seg);
        }
        p
    }

    /// Whether the container directory exists.
    pub fn container_exists(&self, account: &str, container: &str) -> bool {
        self.container_dir(account, container).is_dir()
    }

    /// Creates the container directory; `Ok(false)` when it already existed.
    pub fn create_container(&self, account: &str, container: &str) -> io::Result<bool> {
        let dir = self.container_dir(account, container);
        if dir.is_dir() {
            return Ok(false);
        }
        fs::create_dir_all(&dir)?;
        Ok(true)
    }

    /// Names of container directories of an account.
    pub fn container_names(&self, account: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(self.root.join(account)) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    if let Some(n) = e.file_name().to_str() {
                        if validate_container(n).is_ok() {
                            out.push(n.to_string());
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// A fresh temporary file path.
    fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        self.root.join(".tmp").join(format!(
            "{}-{n}-{}",
            std::process::id(),
            rand::random::<u32>()
        ))
    }

    /// Streams `body` into the blob atomically. `expected_md5` (base64), if given, must
    /// match. Returns the new properties.
    pub fn put_blob(
        &self,
        account: &str,
        container: &str,
        blob: &str,
        body: &mut dyn Read,
        expected_md5: Option<&str>,
    ) -> Result<BlobProps, PutError> {
        let target = self.blob_path(account, container, blob);
        let container_dir = self.container_dir(account, container);
        // A path component that already exists as a file (or the target as a directory)
        // cannot hold this blob on a file system.
        let mut p = target.parent();
        while let Some(dir) = p {
            if dir == container_dir {
                break;
            }
            if dir.is_file() {
                return Err(PutError::Conflict);
            }
            p = dir.parent();
        }
        if target.is_dir() {
            return Err(PutError::Conflict);
        }
        let tmp = self.tmp_path();
        let result = (|| -> Result<String, PutError> {
            let mut f = File::create(&tmp)?;
            let mut h = Md5::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = body.read(&mut buf).map_err(PutError::Body)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                f.write_all(&buf[..n])?;
            }
            f.sync_all()?;
            Ok(base64(&h.finalize()))
        })();
        let md5 = match result {
            Ok(m) => m,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Some(exp) = expected_md5 {
            if exp.trim() != md5 {
                let _ = fs::remove_file(&tmp);
                return Err(PutError::Md5Mismatch);
            }
        }
        if let Some(parent) = target.parent() {
            if let Err(e) = fs::create_dir_all(parent) {
                let _ = fs::remove_file(&tmp);
                return Err(e.into());
            }
        }
        if let Err(e) = fs::rename(&tmp, &target) {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        let meta = fs::metadata(&target)?;
        self.remember_md5(&target, &meta, &md5);
        Ok(BlobProps {
            name: blob.to_string(),
            len: meta.len(),
            md5,
            modified: meta.modified()?,
            etag: etag_for(&meta),
        })
    }

    /// Properties of a blob; `Ok(None)` when it does not exist.
    pub fn props(
        &self,
        account: &str,
        container: &str,
        blob: &str,
    ) -> io::Result<Option<BlobProps>> {
        let path = self.blob_path(account, container, blob);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(None),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        Ok(Some(BlobProps {
            name: blob.to_string(),
            len: meta.len(),
            md5: self.cached_md5(&path, &meta)?,
            modified: meta.modified()?,
            etag: etag_for(&meta),
        }))
    }

    /// Deletes a blob and the directories it leaves empty; `Ok(false)` when absent.
    pub fn delete(&self, account: &str, container: &str, blob: &str) -> io::Result<bool> {
        let path = self.blob_path(account, container, blob);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Ok(false),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e),
        }
        fs::remove_file(&path)?;
        let stop = self.container_dir(account, container);
        let mut p = path.parent();
        while let Some(dir) = p {
            if dir == stop || fs::remove_dir(dir).is_err() {
                break;
            }
            p = dir.parent();
        }
        Ok(true)
    }

    /// All blobs of a container whose names start with `prefix`, sorted by name.
    pub fn list(&self, account: &str, container: &str, prefix: &str) -> io::Result<Vec<BlobProps>> {
        let root = self.container_dir(account, container);
        let mut names = Vec::new();
        let mut stack = vec![(root.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for e in rd.flatten() {
                let Some(n) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let name = if rel.is_empty() {
                    n
                } else {
                    format!("{rel}/{n}")
                };
                let ft = match e.file_type() {
                    Ok(t) => t,
                    Err(_) => continue,
                };
                if ft.is_dir() {
                    stack.push((e.path(), name));
                } else if ft.is_file() && name.starts_with(prefix) && validate_blob(&name).is_ok() {
                    names.push(name);
                }
            }
        }
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(p) = self.props(account, container, &n)? {
                out.push(p);
            }
        }
        Ok(out)
    }
}

/// Why a Put Blob failed.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The client's body could not be read (too large, malformed, connection lost).
    #[error("cannot read the request body: {0}")]
    Body(io::Error),
    /// The given Content-MD5 does not match the content.
    #[error("Content-MD5 does not match the content")]
    Md5Mismatch,
    /// The name collides with an existing blob used as a directory (or the reverse).
    #[error("blob name conflicts with an existing blob path")]
    Conflict,
    /// File system failure.
    #[error("storage error: {0}")]
    Io(#[from] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // MD5("") as Azure shows it.
        assert_eq!(base64(&Md5::digest(b"")), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[test]
    fn names() {
        assert!(validate_account("labstore1").is_ok());
        assert!(validate_account("Lab").is_err());
        assert!(validate_account("ab").is_err());
        assert!(validate_container("captures").is_ok());
        assert!(validate_container("a-b-c").is_ok());
        assert!(validate_container("a--b").is_err());
        assert!(validate_container("-ab").is_err());
        assert!(validate_container(".tmp").is_err());
        assert!(validate_blob("dir/file.pcap").is_ok());
        assert!(validate_blob("ünïcode name.txt").is_ok());
        for bad in [
            "", "../x", "a/../b", "a//b", "./a", "a/.", "a\\b", "a\0b", "a\nb", "/a", "a/",
        ] {
            assert!(validate_blob(bad).is_err(), "{bad:?}");
        }
        assert!(validate_blob(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path()).unwrap();
        assert!(s.create_container("acct", "cont").unwrap());
        assert!(!s.create_container("acct", "cont").unwrap());
        let p = s
            .put_blob("acct", "cont", "a/b.bin", &mut &b"hello"[..], None)
            .unwrap();
        assert_eq!(p.len, 5);
        assert_eq!(p.md5, base64(&Md5::digest(b"hello")));
        s.put_blob("acct", "cont", "c.txt", &mut &b""[..], None)
            .unwrap();
        assert!(matches!(
            s.put_blob("acct", "cont", "a", &mut &b"x"[..], None),
            Err(PutError::Conflict)
        ));
        assert!(matches!(
            s.put_blob("acct", "cont", "a/b.bin/c", &mut &b"x"[..], None),
            Err(PutError::Conflict)
        ));
        assert!(matches!(
            s.put_blob("acct", "cont", "d", &mut &b"x"[..], Some("AAAA")),
            Err(PutError::Md5Mismatch)
        ));
        let names: Vec<String> = s
            .list("acct", "cont", "")
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["a/b.bin", "c.txt"]);
        assert_eq!(s.list("acct", "cont", "a/").unwrap().len(), 1);
        assert!(s.delete("acct", "cont", "a/b.bin").unwrap());
        assert!(!s.delete("acct", "cont", "a/b.bin").unwrap());
        assert!(!s.container_dir("acct", "cont").join("a").exists());
        assert!(s.props("acct", "cont", "a/b.bin").unwrap().is_none());
        // The MD5 cache follows changes made behind the store's back.
        s.put_blob("acct", "cont", "m", &mut &b"hello"[..], None)
            .unwrap();
        let before = s.props("acct", "cont", "m").unwrap().unwrap().md5;
        assert_eq!(before, base64(&Md5::digest(b"hello")));
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(s.blob_path("acct", "cont", "m"), b"world").unwrap();
        let after = s.props("acct", "cont", "m").unwrap().unwrap().md5;
        assert_eq!(after, base64(&Md5::digest(b"world")));
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 0);
    }
}
