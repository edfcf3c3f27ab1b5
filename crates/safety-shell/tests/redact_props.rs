//! Property tests for redaction: never panics, idempotent, never leaks a generated secret.

use proptest::prelude::*;
use safety_shell::redact::{redact, Anonymizer};

const KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "access-key",
    "account_key",
    "accountkey",
    "client_secret",
    "client-secret",
    "connection_string",
    "connection-string",
    "DB_PASSWORD",
    "refresh_token",
];

fn key() -> impl Strategy<Value = String> {
    (proptest::sample::select(KEYS), any::<bool>()).prop_map(|(k, upper)| {
        if upper {
            k.to_ascii_uppercase()
        } else {
            k.to_string()
        }
    })
}

/// Secrets: start with a digit and contain an upper-case letter, so that the surrounding
/// lower-case filler can never contain one by chance.
fn secret() -> impl Strategy<Value = String> {
    "[0-9][A-Z][A-Za-z0-9!@#%^*()+./~-]{6,30}"
}

fn filler() -> impl Strategy<Value = String> {
    "[a-z \n]{0,40}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_and_is_idempotent(s in any::<String>()) {
        let once = redact(&s);
        let twice = redact(&once.text);
        prop_assert_eq!(&twice.text, &once.text);
        prop_assert_eq!(twice.total(), 0);
    }

    #[test]
    fn idempotent_on_secretish_text(s in "[a-zA-Z0-9=:;&?\"' \n/+._-]{0,200}") {
        let once = redact(&s);
        let twice = redact(&once.text);
        prop_assert_eq!(&twice.text, &once.text);
    }

    #[test]
    fn key_value_secret_never_leaks(
        k in key(), v in secret(), pre in filler(), post in filler(), form in 0u8..6
    ) {
        let pair = match form {
            0 => format!("{k}={v}"),
            1 => format!("{k}: {v}"),
            2 => format!("\"{k}\": \"{v}\""),
            3 => format!("{k}='{v}'"),
            4 => format!("--{} {v}", k.to_ascii_lowercase().replace('_', "-")),
            _ => format!("{k} = \"{v}\""),
        };
        let text = format!("{pre} {pair}\n{post}");
        let r = redact(&text);
        // `--pwd`/`--apikey`-style flags are not command-line secret flags; key=value forms are.
        let flag_known = [
            "--password", "--passwd", "--secret", "--token", "--api-key", "--access-key",
            "--account-key", "--client-secret", "--connection-string",
        ];
        if form == 4 && !flag_known.iter().any(|f| pair.starts_with(&format!("{f} "))) {
            return Ok(());
        }
        prop_assert!(!r.text.contains(&v), "leaked {v} in {:?}", r.text);
        prop_assert!(r.total() >= 1);
        prop_assert_eq!(redact(&r.text).text, r.text);
    }

    #[test]
    fn anonymizer_never_panics_and_hides_ipv4(s in any::<String>(), a in 0u8..=255, b in 0u8..=255) {
        let an = Anonymizer::new();
        let _ = an.anonymize(&s);
        let ip = format!("198.18.{a}.{b}");
        let out = an.anonymize(&format!("x {ip} y"));
        prop_assert!(!out.contains(&ip));
    }
}
