//! IPv4 prefixes and the lab's address rules (only 198.18.0.0/15).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 prefix such as `198.18.1.0/24`. A bare address parses as a `/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The network address (host bits cleared).
    pub addr: Ipv4Addr,
    /// The prefix length (0-32).
    pub len: u8,
}

/// A prefix that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IPv4 prefix (expected a.b.c.d/len with len 0-32)")]
pub struct CidrError(pub String);

impl Cidr {
    /// Builds a prefix, clearing host bits.
    pub fn new(addr: Ipv4Addr, len: u8) -> Cidr {
        let len = len.min(32);
        Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & Self::mask_of(len)),
            len,
        }
    }

    fn mask_of(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        }
    }

    /// The netmask as an integer.
    pub fn mask(&self) -> u32 {
        Self::mask_of(self.len)
    }

    /// Whether `ip` lies inside this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// Whether `other` lies entirely inside this prefix.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }

    /// Parses a prefix and also reports whether host bits were set (Azure refuses those).
    pub fn parse_strict(s: &str) -> Result<Cidr, CidrError> {
        let c: Cidr = s.parse()?;
        let raw_addr: Ipv4Addr = s
            .split('/')
            .next()
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| CidrError(s.to_string()))?;
        if raw_addr != c.addr {
            return Err(CidrError(format!(
                "{s} (host bits are set; did you mean {c}?)"
            )));
        }
        Ok(c)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let s = s.trim();
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| CidrError(s.to_string()))?;
        let len = match l {
            Some(l) => {
                let n: u8 = l.parse().map_err(|_| CidrError(s.to_string()))?;
                if n > 32 {
                    return Err(CidrError(s.to_string()));
                }
                n
            }
            None => 32,
        };
        Ok(Cidr::new(addr, len))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The only range lab interfaces may use.
pub fn lab_range() -> Cidr {
    Cidr::new(Ipv4Addr::new(198, 18, 0, 0), 15)
}

/// Whether an address is allowed on a lab interface.
pub fn is_lab_addr(ip: Ipv4Addr) -> bool {
    lab_range().contains(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_contains() {
        let c: Cidr = "198.18.1.0/24".parse().unwrap();
        assert!(c.contains("198.18.1.5".parse().unwrap()));
        assert!(!c.contains("198.18.2.5".parse().unwrap()));
        let h: Cidr = "198.18.1.5".parse().unwrap();
        assert_eq!(h.len, 32);
        assert!(c.contains_cidr(&h));
        assert!(!h.contains_cidr(&c));
        assert!(c.overlaps(&h));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn rejects_garbage_and_host_bits() {
        for bad in ["", "1.2.3", "1.2.3.4/33", "a.b.c.d/1", "1.2.3.4/x", "/24"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert!(Cidr::parse_strict("198.18.1.4/24").is_err());
        assert!(Cidr::parse_strict("198.18.1.0/24").is_ok());
    }

    #[test]
    fn lab_range_is_198_18_slash_15() {
        assert!(is_lab_addr("198.19.255.1".parse().unwrap()));
        assert!(is_lab_addr("198.18.0.1".parse().unwrap()));
        assert!(!is_lab_addr("10.0.0.4".parse().unwrap()));
        assert!(!is_lab_addr("198.20.0.1".parse().unwrap()));
    }
}
