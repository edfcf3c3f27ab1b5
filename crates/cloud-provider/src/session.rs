//! Session ids: `{prefix}_{YYYYMMDDTHHMMSSZ}`, plus a short random suffix when needed to
//! stay unique. User-given ids are validated before they touch a path.

use chrono::{DateTime, Utc};
use rand::Rng;

/// The prefixes the tools use.
pub const PREFIXES: &[&str] = &[
    "pmeter", "fw", "eni", "rt", "nsg", "pcap", "cap", "ghost", "shell",
];

/// Why a session id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session id {id:?}: use 1-64 characters from A-Z a-z 0-9 _ -")]
pub struct InvalidSessionId {
    /// The id as given (possibly truncated for display).
    pub id: String,
}

/// A validated session id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// Validates a user-given id (`[A-Za-z0-9_-]{1,64}`).
    pub fn parse(id: &str) -> Result<SessionId, InvalidSessionId> {
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(SessionId(id.to_string()))
        } else {
            Err(InvalidSessionId {
                id: id.chars().take(80).collect(),
            })
        }
    }

    /// A new id `{prefix}_{YYYYMMDDTHHMMSSZ}` for `now`. When `taken` says that id is in use,
    /// a random 4-character suffix (`_k3x9`) is added until it is not.
    pub fn generate(
        prefix: &str,
        now: DateTime<Utc>,
        rng: &mut impl Rng,
        taken: impl Fn(&str) -> bool,
    ) -> Result<SessionId, InvalidSessionId> {
        let base = format!("{prefix}_{}", now.format("%Y%m%dT%H%M%SZ"));
        let id = SessionId::parse(&base)?;
        if !taken(id.as_str()) {
            return Ok(id);
        }
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            let suffix: String = (0..4)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect();
            let candidate = SessionId::parse(&format!("{base}_{suffix}"))?;
            if !taken(candidate.as_str()) {
                return Ok(candidate);
            }
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SessionId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;

    #[test]
    fn format_and_uniqueness() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 6, 30, 5).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let id = SessionId::generate("fw", now, &mut rng, |_| false).unwrap();
        assert_eq!(id.as_str(), "fw_20261122T063005Z");
        let id2 = SessionId::generate("fw", now, &mut rng, |s| s == "fw_20261122T063005Z").unwrap();
        assert!(id2.as_str().starts_with("fw_20261122T063005Z_"));
        assert_eq!(id2.as_str().len(), "fw_20261122T063005Z_".len() + 4);
    }

    #[test]
    fn validation() {
        for ok in ["a", "pmeter_20260101T000000Z", "A-b_9", &"x".repeat(64)] {
            assert!(SessionId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../etc",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
            "a.b",
            "a\n",
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?}");
        }
        let err: Result<SessionId, _> = serde_json::from_str("\"../x\"");
        assert!(err.is_err());
    }
}
