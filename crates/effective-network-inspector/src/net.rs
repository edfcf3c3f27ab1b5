//! Addresses and prefixes of both families, in one compact form the engines index.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The address family of a prefix or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    /// IPv4 (32 bits).
    V4,
    /// IPv6 (128 bits).
    V6,
}

impl Family {
    /// Bits in an address of this family.
    pub fn width(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// An address as `(family, value)`; IPv4 values occupy the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    /// Family.
    pub family: Family,
    /// The address bits (right-aligned).
    pub bits: u128,
}

impl Addr {
    /// From a std address.
    pub fn from_ip(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(v4) => Addr {
                family: Family::V4,
                bits: u32::from(v4) as u128,
            },
            IpAddr::V6(v6) => Addr {
                family: Family::V6,
                bits: u128::from(v6),
            },
        }
    }

    /// Back to a std address.
    pub fn to_ip(self) -> IpAddr {
        match self.family {
            Family::V4 => IpAddr::V4((self.bits as u32).into()),
            Family::V6 => IpAddr::V6(self.bits.into()),
        }
    }

    /// Bit `i` counted from the most significant bit of the family's width.
    #[inline]
    pub fn bit(self, i: u8) -> usize {
        ((self.bits >> (self.family.width() - 1 - i)) & 1) as usize
    }
}

impl FromStr for Addr {
    type Err = String;
    fn from_str(s: &str) -> Result<Addr, String> {
        s.trim()
            .parse::<IpAddr>()
            .map(Addr::from_ip)
            .map_err(|_| format!("{s:?} is not an IPv4 or IPv6 address"))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_ip())
    }
}

/// A CIDR prefix. Host bits are cleared on parse (`10.0.0.5/8` is `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// Family.
    pub family: Family,
    /// Network bits (right-aligned like [`Addr::bits`]).
    pub bits: u128,
    /// Prefix length.
    pub len: u8,
}

#[inline]
fn mask(family: Family, len: u8) -> u128 {
    let w = family.width();
    if len == 0 {
        return 0;
    }
    let ones: u128 = if w == 128 {
        u128::MAX
    } else {
        (1u128 << w) - 1
    };
    let host: u128 = if len >= w {
        0
    } else {
        (1u128 << (w - len)) - 1
    };
    ones & !host
}

impl Prefix {
    /// A prefix from an address and a length (host bits cleared). `None` when `len` is too long.
    pub fn new(addr: Addr, len: u8) -> Option<Prefix> {
        if len > addr.family.width() {
            return None;
        }
        Some(Prefix {
            family: addr.family,
            bits: addr.bits & mask(addr.family, len),
            len,
        })
    }

    /// Whether `addr` is inside this prefix.
    #[inline]
    pub fn contains(&self, addr: Addr) -> bool {
        addr.family == self.family && (addr.bits & mask(self.family, self.len)) == self.bits
    }

    /// Whether `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &Prefix) -> bool {
        other.family == self.family
            && other.len >= self.len
            && (other.bits & mask(self.family, self.len)) == self.bits
    }

    /// The whole family (`0.0.0.0/0`, `::/0`).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// Number of addresses as a float (for reports only).
    pub fn size(&self) -> f64 {
        2f64.powi((self.family.width() - self.len) as i32)
    }
}

impl FromStr for Prefix {
    type Err = String;
    /// `a.b.c.d/n`, `x::/n`, or a bare address (a host prefix).
    fn from_str(s: &str) -> Result<Prefix, String> {
        let s = s.trim();
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Addr = a
            .parse()
            .map_err(|_| format!("{s:?} is not a CIDR prefix"))?;
        let len = match l {
            None => addr.family.width(),
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= addr.family.width())
                .ok_or_else(|| format!("{s:?} has an invalid prefix length"))?,
        };
        Prefix::new(addr, len).ok_or_else(|| format!("{s:?} has an invalid prefix length"))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = Addr {
            family: self.family,
            bits: self.bits,
        };
        write!(f, "{}/{}", a, self.len)
    }
}

impl Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contains() {
        let p: Prefix = "10.0.0.5/8".parse().unwrap();
        assert_eq!(p.to_string(), "10.0.0.0/8");
        assert!(p.contains("10.255.1.1".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        assert!(!p.contains("::a00:1".parse().unwrap()));
        let d: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(d.contains("1.2.3.4".parse().unwrap()));
        let h: Prefix = "10.0.0.1".parse().unwrap();
        assert_eq!(h.len, 32);
        let v6: Prefix = "fd00:1::/32".parse().unwrap();
        assert!(v6.contains("fd00:1::5".parse().unwrap()));
        assert!(!v6.contains("fd00:2::5".parse().unwrap()));
        let all6: Prefix = "::/0".parse().unwrap();
        assert!(all6.contains("2001:db8::1".parse().unwrap()));
        let full6: Prefix = "2001:db8::1/128".parse().unwrap();
        assert!(full6.contains("2001:db8::1".parse().unwrap()));
        assert!(!full6.contains("2001:db8::2".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "x/8",
            "10.0.0/8",
            "::/129",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn covers() {
        let a: Prefix = "10.0.0.0/16".parse().unwrap();
        let b: Prefix = "10.0.1.0/24".parse().unwrap();
        assert!(a.covers(&b));
        assert!(!b.covers(&a));
        assert!(a.covers(&a));
    }
}
