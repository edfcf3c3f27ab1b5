//! Path normalisation and the path rules (system locations, protected roots, block
//! devices, the output directory and the read paths).

use std::path::Path;

/// Directories where the allowlisted tools are trusted to live.
pub(crate) const SYSTEM_BIN_DIRS: &[&str] = &["/bin", "/usr/bin", "/sbin", "/usr/sbin"];

/// Top-level directories whose recursive or forced deletion is FORBIDDEN.
pub(crate) const PROTECTED_TOP: &[&str] = &[
    "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt", "opt",
    "proc", "root", "run", "sbin", "snap", "srv", "sys", "usr", "var",
];

/// Top-level directories that are never a SAFE place to write to.
const SYSTEM_WRITE_TOP: &[&str] = &[
    "bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "root", "sbin", "sys",
    "usr",
];

/// Lexically normalises a path: repeated slashes, `.` and `..` (which cannot climb above
/// `/`), trailing slashes. Relative paths stay relative (a leading `..` is kept).
pub(crate) fn normalise(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Splits a program word into (directory, base name). `None` directory for a bare name.
pub(crate) fn split_program(name: &str) -> (Option<&str>, &str) {
    match name.rfind('/') {
        Some(0) => (Some("/"), &name[1..]),
        Some(i) => (Some(&name[..i]), &name[i + 1..]),
        None => (None, name),
    }
}

/// True when `dir` is exactly one of the system binary directories (no `//`, no `..`).
pub(crate) fn is_system_bin_dir(dir: &str) -> bool {
    SYSTEM_BIN_DIRS.contains(&dir)
}

fn is_home_word(text: &str) -> Option<&str> {
    for prefix in ["${HOME}", "$HOME"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return Some(rest);
        }
    }
    if let Some(rest) = text.strip_prefix('~') {
        // `~` or `~user`.
        let end = rest.find('/').unwrap_or(rest.len());
        let user = &rest[..end];
        if user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Some(&rest[end..]);
        }
    }
    None
}

/// True when `text` (an `rm`/`find` operand after quote removal, expansions kept as
/// source text) names `/`, `/*`, a home directory, or a top-level system directory.
pub(crate) fn is_protected_root(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() {
        return false;
    }
    if let Some(rest) = is_home_word(t) {
        let n = normalise(&format!("/{rest}"));
        return n == "/" || n == "/*" || n == "/.*";
    }
    if !t.starts_with('/') {
        return false;
    }
    let n = normalise(t);
    if n == "/" {
        return true;
    }
    let comps: Vec<&str> = n[1..].split('/').collect();
    let globby = |c: &str| c.contains(['*', '?', '[', '{']);
    match comps.as_slice() {
        [one] => PROTECTED_TOP.contains(one) || globby(one),
        [top, second] => {
            (PROTECTED_TOP.contains(top) && globby(second))
                || matches!(
                    (*top, *second),
                    ("usr", "bin" | "sbin" | "lib" | "lib64" | "local" | "share")
                        | ("var", "lib" | "log")
                )
        }
        _ => false,
    }
}

/// True when `path` (normalised) is a block device that holds disks or volumes.
pub(crate) fn is_block_device(path: &str) -> bool {
    if !path.starts_with("/dev/") {
        return false;
    }
    let n = normalise(path);
    let Some(dev) = n.strip_prefix("/dev/") else {
        return false;
    };
    let alpha_then_digits = |s: &str, prefix: &str| -> bool {
        s.strip_prefix(prefix).is_some_and(|r| {
            let letters = r.trim_end_matches(|c: char| c.is_ascii_digit());
            !letters.is_empty() && letters.chars().all(|c| c.is_ascii_lowercase())
        })
    };
    let digits_then = |s: &str, prefix: &str| -> bool {
        s.strip_prefix(prefix)
            .is_some_and(|r| r.chars().next().is_some_and(|c| c.is_ascii_digit()))
    };
    ["sd", "hd", "vd", "xvd"]
        .iter()
        .any(|p| alpha_then_digits(dev, p))
        || [
            "nvme", "mmcblk", "loop", "dm-", "disk", "rdisk", "md", "nbd", "sr",
        ]
        .iter()
        .any(|p| digits_then(dev, p))
        || dev.starts_with("mapper/")
        || dev.starts_with("disk/")
        || dev.starts_with("md/")
        || dev == "root"
}

fn is_under(path: &str, dir: &Path) -> bool {
    let Some(d) = dir.to_str() else {
        return false;
    };
    if !d.starts_with('/') {
        return false;
    }
    let d = normalise(d);
    if d == "/" {
        return path.starts_with('/') && path != "/";
    }
    path.strip_prefix(d.as_str())
        .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

/// The verdict on writing to `path` (static text after quote removal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteVerdict {
    /// `/dev/null` and friends.
    Harmless,
    /// Inside the output directory.
    InOutputDir,
    /// A disk: FORBIDDEN.
    BlockDevice,
    /// The SysRq trigger (reboot, power-off): FORBIDDEN.
    SysRq,
    /// Anywhere else: RISKY.
    Outside,
}

/// Decides what writing to `path` means.
pub(crate) fn write_verdict(path: &str, output_dir: Option<&Path>) -> WriteVerdict {
    let n = normalise(path);
    if matches!(
        n.as_str(),
        "/dev/null" | "/dev/stdout" | "/dev/stderr" | "/dev/fd/1" | "/dev/fd/2"
    ) {
        return WriteVerdict::Harmless;
    }
    if is_block_device(&n) {
        return WriteVerdict::BlockDevice;
    }
    if n == "/proc/sysrq-trigger" {
        return WriteVerdict::SysRq;
    }
    let Some(out) = output_dir else {
        return WriteVerdict::Outside;
    };
    if !n.starts_with('/') || !is_under(&n, out) {
        return WriteVerdict::Outside;
    }
    let top = n[1..].split('/').next().unwrap_or("");
    if SYSTEM_WRITE_TOP.contains(&top) {
        return WriteVerdict::Outside;
    }
    let out_norm = normalise(out.to_str().unwrap_or("/"));
    let rest = n.get(out_norm.len()..).unwrap_or("");
    if rest.split('/').any(|c| c.starts_with('.')) {
        return WriteVerdict::Outside;
    }
    WriteVerdict::InOutputDir
}

/// True when reading `path` is allowed: under one of `read_paths` (after normalisation,
/// so `..` cannot escape), or a harmless device.
pub(crate) fn read_allowed(path: &str, read_paths: &[std::path::PathBuf]) -> bool {
    if path == "-" {
        return true;
    }
    let n = normalise(path);
    if n == "/dev/null" || n == "/dev/stdin" {
        return true;
    }
    n.starts_with('/')
        && read_paths.iter().any(|d| {
            is_under(&n, d)
                || d.to_str()
                    .is_some_and(|d| d.starts_with('/') && normalise(d) == n)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalise("//etc//"), "/etc");
        assert_eq!(normalise("/usr/../etc/./"), "/etc");
        assert_eq!(normalise("/../../.."), "/");
        assert_eq!(normalise("a/../../b"), "../b");
    }

    #[test]
    fn protected_roots() {
        for p in [
            "/",
            "//",
            "/.",
            "/*",
            "/etc/",
            "/usr/../etc",
            "~",
            "~/",
            "$HOME",
            "${HOME}/",
            "/e*",
            "/home/*",
        ] {
            assert!(is_protected_root(p), "{p}");
        }
        for p in ["/tmp/x", "./x", "/etc/foo.conf", "~/x", "relative"] {
            assert!(!is_protected_root(p), "{p}");
        }
    }

    #[test]
    fn block_devices() {
        for p in [
            "/dev/sda",
            "/dev/sda1",
            "/dev/nvme0n1",
            "/dev/nvme0n1p2",
            "/dev/mmcblk0",
            "/dev/mapper/root",
            "/dev/md0",
            "/dev/loop3",
            "/dev/dm-0",
            "/dev/disk2",
            "/dev/rdisk2",
            "/dev/xvda",
            "/dev//sda",
        ] {
            assert!(is_block_device(p), "{p}");
        }
        for p in ["/dev/null", "/dev/tty", "/dev/stdout", "/tmp/sda"] {
            assert!(!is_block_device(p), "{p}");
        }
    }

    #[test]
    fn output_dir_rules() {
        let out = Path::new("/work/out");
        assert_eq!(
            write_verdict("/work/out/a.pcap", Some(out)),
            WriteVerdict::InOutputDir
        );
        assert_eq!(
            write_verdict("/work/out/../x", Some(out)),
            WriteVerdict::Outside
        );
        assert_eq!(
            write_verdict("/work/out/.bashrc", Some(out)),
            WriteVerdict::Outside
        );
        assert_eq!(
            write_verdict("/work/outside", Some(out)),
            WriteVerdict::Outside
        );
        assert_eq!(write_verdict("/dev/null", None), WriteVerdict::Harmless);
        assert_eq!(
            write_verdict("/dev/sda", Some(out)),
            WriteVerdict::BlockDevice
        );
    }
}
