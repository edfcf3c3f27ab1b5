//! Capture files: header verification and the blob behind Azure's `storagePath`.

use std::io::Read;
use std::path::Path;

use crate::error::OrchError;
use crate::model::BlobRef;

/// The format a capture header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// libpcap (micro- or nanosecond, either byte order).
    Pcap,
    /// pcapng.
    Pcapng,
}

impl CaptureFormat {
    /// `pcap` / `pcapng`.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureFormat::Pcap => "pcap",
            CaptureFormat::Pcapng => "pcapng",
        }
    }
}

/// The format of a capture header, or `None` when the bytes are not one.
pub fn sniff(header: &[u8]) -> Option<CaptureFormat> {
    let m: [u8; 4] = header.get(..4)?.try_into().ok()?;
    match m {
        [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xc3, 0xd4]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
            if header.len() >= 24 =>
        {
            Some(CaptureFormat::Pcap)
        }
        [0x0a, 0x0d, 0x0d, 0x0a] if header.len() >= 12 => {
            // the byte-order magic of the section header block follows the block length
            match header.get(8..12)? {
                [0x1a, 0x2b, 0x3c, 0x4d] | [0x4d, 0x3c, 0x2b, 0x1a] => Some(CaptureFormat::Pcapng),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Verifies a downloaded capture: its size equals `expected` (when Azure gave one) and it
/// starts with a valid pcap or pcapng header. Returns the format and the size.
pub fn verify_capture(
    path: &Path,
    expected: Option<u64>,
) -> Result<(CaptureFormat, u64), OrchError> {
    let bad = |detail: String| OrchError::Verification {
        path: path.to_path_buf(),
        detail,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot stat it: {e}")))?;
    let size = meta.len();
    if let Some(exp) = expected {
        if exp != size {
            return Err(bad(format!(
                "{size} bytes on disk but the blob has {exp} bytes"
            )));
        }
    }
    let mut head = Vec::with_capacity(24);
    std::fs::File::open(path)
        .and_then(|f| f.take(24).read_to_end(&mut head))
        .map_err(|e| bad(format!("cannot read it: {e}")))?;
    let fmt = sniff(&head).ok_or_else(|| {
        bad(format!(
            "it does not start with a pcap or pcapng header (first bytes {})",
            head.iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    })?;
    Ok((fmt, size))
}

/// The blob behind a `storagePath`. Azure prints
/// `https://<account>.blob.core.windows.net/<container>/<blob…>`; emulators (and the lab)
/// print `http://<host>/<account>/<container>/<blob…>`. `account` is the operator's storage
/// account; a path in any other account is refused (captures never go to storage taken from
/// the investigated resources).
pub fn blob_of_storage_path(path: &str, account: &str) -> Result<BlobRef, OrchError> {
    let bad = |why: &str| {
        OrchError::InvalidOption(format!(
            "storage path {path:?} {why}; the capture must land in storage account {account}"
        ))
    };
    let rest = path
        .strip_prefix("https://")
        .or_else(|| path.strip_prefix("http://"))
        .ok_or_else(|| bad("is not an http(s) URL"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (host, p) = rest.split_once('/').ok_or_else(|| bad("has no path"))?;
    let mut segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    let host_account = host.split('.').next().unwrap_or("");
    let host_is_account = host.contains(".blob.") && host_account.eq_ignore_ascii_case(account);
    if !host_is_account {
        if host.contains(".blob.") {
            return Err(bad("names another storage account"));
        }
        match segs.first() {
            Some(a) if a.eq_ignore_ascii_case(account) => {
                segs.remove(0);
            }
            _ => return Err(bad("names another storage account")),
        }
    }
    if segs.len() < 2 {
        return Err(bad("has no container and blob name"));
    }
    let ok = |s: &str| {
        !s.is_empty()
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if !segs.iter().all(|s| ok(s)) {
        return Err(bad(
            "holds characters this tool does not accept in a blob name",
        ));
    }
    Ok(BlobRef {
        account: account.to_string(),
        container: segs[0].to_string(),
        name: segs[1..].join("/"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_recognised() {
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1];
        pcap.resize(24, 0);
        assert_eq!(sniff(&pcap), Some(CaptureFormat::Pcap));
        let ng = [
            0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a,
        ];
        assert_eq!(sniff(&ng), Some(CaptureFormat::Pcapng));
        assert_eq!(sniff(&pcap[..10]), None);
        assert_eq!(sniff(b"<?xml version"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn verification_checks_size_and_magic() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.cap");
        let mut pcap = vec![0xa1, 0xb2, 0xc3, 0xd4];
        pcap.resize(40, 0);
        std::fs::write(&p, &pcap).unwrap();
        assert_eq!(
            verify_capture(&p, Some(40)).unwrap(),
            (CaptureFormat::Pcap, 40)
        );
        assert_eq!(verify_capture(&p, Some(41)).unwrap_err().exit_code(), 4);
        std::fs::write(&p, b"<Error><Code>AuthenticationFailed</Code></Error>").unwrap();
        assert_eq!(verify_capture(&p, None).unwrap_err().exit_code(), 4);
    }

    #[test]
    fn storage_paths_of_azure_and_the_lab() {
        let b = blob_of_storage_path(
            "https://capsa.blob.core.windows.net/network-watcher-logs/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/dest-vm/2026/11/22/packetcapture_07_44_00_123.cap",
            "capsa",
        )
        .unwrap();
        assert_eq!(b.container, "network-watcher-logs");
        assert!(b.name.starts_with("subscriptions/s/") && b.name.ends_with(".cap"));
        let b =
            blob_of_storage_path("http://198.19.0.10/capsa/captures/x/y_1.cap", "capsa").unwrap();
        assert_eq!(
            (b.container.as_str(), b.name.as_str()),
            ("captures", "x/y_1.cap")
        );
        for bad in [
            "https://other.blob.core.windows.net/c/b.cap",
            "http://198.19.0.10/other/c/b.cap",
            "ftp://x/y",
            "https://capsa.blob.core.windows.net/c",
            "https://capsa.blob.core.windows.net/c/../b.cap",
        ] {
            assert!(blob_of_storage_path(bad, "capsa").is_err(), "{bad}");
        }
    }
}
