//! Network address checks: the cloud instance-metadata and platform endpoints in every
//! spelling (dotted, decimal, hex, octal, IPv4-mapped IPv6), and URL parsing for curl.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Host names that resolve to instance-metadata services.
const METADATA_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata",
    "metadata.azure.com",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Parses an IPv4 address the way `inet_aton` does: 1 to 4 parts, each decimal, `0x` hex
/// or leading-zero octal (`2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376`,
/// `169.254.43518`).
pub(crate) fn parse_ipv4_loose(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let v = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if h.is_empty() {
                0
            } else {
                u64::from_str_radix(h, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            p.parse::<u64>().ok()?
        };
        nums.push(v);
    }
    let n = nums.len();
    let mut value: u64 = 0;
    for (i, v) in nums.iter().enumerate() {
        if i + 1 < n {
            if *v > 255 {
                return None;
            }
            value |= v << (8 * (3 - i));
        } else {
            let bits = 8 * (4 - i as u64);
            if bits < 64 && *v >= (1u64 << bits) {
                return None;
            }
            value |= v;
        }
    }
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

fn is_sensitive_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    // Link-local (169.254/16: AWS/Azure/GCP metadata) and Azure's platform address.
    (o[0] == 169 && o[1] == 254) || o == [168, 63, 129, 16]
}

/// True when `host` (a URL host, brackets allowed) is an instance-metadata or platform
/// endpoint in any spelling.
pub(crate) fn is_metadata_host(host: &str) -> bool {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if METADATA_NAMES.contains(&h.as_str()) {
        return true;
    }
    let inner = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(&h);
    let inner = inner.split('%').next().unwrap_or(inner);
    if let Ok(v6) = inner.parse::<Ipv6Addr>() {
        if let Some(v4) = v6.to_ipv4_mapped().or_else(|| v6.to_ipv4()) {
            if is_sensitive_v4(v4) {
                return true;
            }
        }
        let s = v6.segments();
        // AWS IMDS over IPv6 and link-local.
        return v6
            == "fd00:ec2::254"
                .parse::<Ipv6Addr>()
                .unwrap_or(Ipv6Addr::UNSPECIFIED)
            || (s[0] & 0xffc0) == 0xfe80;
    }
    parse_ipv4_loose(inner).is_some_and(is_sensitive_v4)
}

/// The parts of a URL the classifier looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlParts {
    /// Lower-case scheme (`http` when the URL has none, as curl assumes).
    pub scheme: String,
    /// Host (brackets kept for IPv6).
    pub host: String,
    /// User information (`user:pass@`), when present.
    pub userinfo: Option<String>,
}

/// Splits a URL into scheme, user information and host.
pub(crate) fn parse_url(url: &str) -> UrlParts {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (url[..i].to_ascii_lowercase(), &url[i + 3..]),
        None => ("http".to_string(), url),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(authority[..i].to_string()), &authority[i + 1..]),
        None => (None, authority),
    };
    let host = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(i) => hostport[..=i].to_string(),
            None => hostport.to_string(),
        }
    } else {
        hostport.split(':').next().unwrap_or("").to_string()
    };
    UrlParts {
        scheme,
        host,
        userinfo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_spellings() {
        for h in [
            "169.254.169.254",
            "2852039166",
            "0xa9fea9fe",
            "0251.0376.0251.0376",
            "169.254.43518",
            "0xa9.0xfe.0xa9.0xfe",
            "[fd00:ec2::254]",
            "[::ffff:169.254.169.254]",
            "metadata.google.internal",
            "METADATA.google.internal.",
            "168.63.129.16",
        ] {
            assert!(is_metadata_host(h), "{h}");
        }
        for h in ["198.18.1.5", "example.com", "[::1]", "1.2.3.4"] {
            assert!(!is_metadata_host(h), "{h}");
        }
    }

    #[test]
    fn url_parts() {
        let u = parse_url("HTTP://u:p@[::1]:80/x");
        assert_eq!(u.scheme, "http");
        assert_eq!(u.host, "[::1]");
        assert_eq!(u.userinfo.as_deref(), Some("u:p"));
        assert_eq!(parse_url("198.18.1.5:8080/a").host, "198.18.1.5");
    }
}
