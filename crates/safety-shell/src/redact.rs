//! Redaction of secrets in command lines, reasoning and command output, and optional
//! anonymisation of addresses and host names for text that leaves the machine (an LLM).
//!
//! Every secret is replaced by `[REDACTED:category]`; the number of replacements per
//! category is returned with the text. Redaction is idempotent (redacting redacted text
//! changes nothing and counts nothing) and never panics.
//!
//! ```
//! use safety_shell::redact::redact;
//! let r = redact("az login -u me -p S3cretPass! && echo password=hunter2");
//! assert!(!r.text.contains("hunter2") && !r.text.contains("S3cretPass!"));
//! assert_eq!(r.counts.get("password"), Some(&2));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, OnceLock};

use regex::{Captures, Regex};

/// Redacted text plus the number of redactions per category.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redacted {
    /// The text with every secret replaced by `[REDACTED:category]`.
    pub text: String,
    /// How many secrets of each category were replaced.
    pub counts: BTreeMap<String, usize>,
}

impl Redacted {
    /// Total number of replacements.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

/// Adds the counts of `other` into `into`.
pub fn merge_counts(into: &mut BTreeMap<String, usize>, other: &BTreeMap<String, usize>) {
    for (k, v) in other {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

const MARK_PREFIX: &str = "[REDACTED:";

fn marker(category: &str) -> String {
    format!("{MARK_PREFIX}{category}]")
}

/// A value that is already a redaction marker (possibly quoted) is left alone.
fn is_marker(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    v.starts_with(MARK_PREFIX) && v.ends_with(']')
}

struct Rules {
    pem: Regex,
    jwt: Regex,
    authorization: Regex,
    az_login: Regex,
    az_login_p: Regex,
    cli_flag: Regex,
    conn_string_kv: Regex,
    kv: Regex,
    sas_sig: Regex,
    base64_run: Regex,
    aws_key: Regex,
}

// A value: a double-quoted string (with escapes), a single-quoted string, or a bare word.
const VALUE: &str = r#"(?:"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s"',;&]+)"#;

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("built-in redaction pattern is valid");
        Rules {
            pem: re(
                r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s:,.-]*)",
            ),
            jwt: re(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
            authorization: re(
                r#"(?i)\b((?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?)((?:bearer|basic|sharedkeylite|sharedkey|digest|negotiate|token)[ \t]+)?([^\s"',]+)"#,
            ),
            az_login: re(r"\baz[ \t]+login\b[^\n;|&]*"),
            az_login_p: re(&format!(r"(^|[ \t])(-p)([ \t]+|=)({VALUE})")),
            cli_flag: re(&format!(
                r"(?i)(^|[\s'])(--(?:password|passwd|account-key|sas-token|connection-string|client-secret|secret|token|api-key|access-key))([ \t]+|=)({VALUE})"
            )),
            conn_string_kv: re(
                r#"(?i)(\b[\w-]*connection[_-]?string["']?[ \t]*[:=][ \t]*)("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|\S+)"#,
            ),
            kv: re(&format!(
                r#"(?i)(\b[\w-]*?(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|account[_-]?key|shared[_-]?access[_-]?key|sharedaccesssignature|client[_-]?secret)["']?[ \t]*[:=][ \t]*)({VALUE})"#
            )),
            sas_sig: re(r"(?i)([?&]sig=)([^&\s\x22'<>]+)"),
            base64_run: re(r"[A-Za-z0-9+/]{20,}={0,2}"),
            aws_key: re(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        }
    })
}

fn key_category(key: &str) -> &'static str {
    let k: String = key
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    match k.as_str() {
        "password" | "passwd" | "pwd" => "password",
        "secret" => "secret",
        "token" => "token",
        "apikey" => "api_key",
        "accesskey" => "access_key",
        "accountkey" => "account_key",
        "sharedaccesskey" => "shared_access_key",
        "sharedaccesssignature" => "sas_token",
        "clientsecret" => "client_secret",
        "connectionstring" => "connection_string",
        "sastoken" => "sas_token",
        _ => "secret",
    }
}

fn bump(counts: &mut BTreeMap<String, usize>, cat: &str) {
    *counts.entry(cat.to_string()).or_insert(0) += 1;
}

/// Keeps the quotes of a quoted value around the marker so JSON stays JSON.
fn quoted_marker(value: &str, cat: &str) -> String {
    let m = marker(cat);
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        format!("\"{m}\"")
    } else if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        format!("'{m}'")
    } else {
        m
    }
}

/// Redacts every known kind of secret in `text`.
pub fn redact(text: &str) -> Redacted {
    let r = rules();
    let mut counts = BTreeMap::new();
    let mut s = text.to_string();

    // PEM private-key blocks (multi-line; a block cut short by truncation included).
    s = r
        .pem
        .replace_all(&s, |_: &Captures| {
            bump(&mut counts, "private_key");
            marker("private_key")
        })
        .into_owned();

    // JWTs.
    s = r
        .jwt
        .replace_all(&s, |_: &Captures| {
            bump(&mut counts, "jwt");
            marker("jwt")
        })
        .into_owned();

    // Authorization headers: keep the scheme, mask the credential.
    s = r
        .authorization
        .replace_all(&s, |c: &Captures| {
            let cred = &c[3];
            let scheme = c.get(2).map_or("", |m| m.as_str());
            if is_marker(cred) {
                return c[0].to_string();
            }
            bump(&mut counts, "authorization");
            format!("{}{}{}", &c[1], scheme, marker("authorization"))
        })
        .into_owned();

    // `az login ... -p X`: -p is the password only for az login.
    s = r
        .az_login
        .replace_all(&s, |c: &Captures| {
            r.az_login_p
                .replace_all(&c[0], |p: &Captures| {
                    if is_marker(&p[4]) {
                        return p[0].to_string();
                    }
                    bump(&mut counts, "password");
                    format!(
                        "{}{}{}{}",
                        &p[1],
                        &p[2],
                        &p[3],
                        quoted_marker(&p[4], "password")
                    )
                })
                .into_owned()
        })
        .into_owned();

    // Command-line flags that take a secret.
    s = r
        .cli_flag
        .replace_all(&s, |c: &Captures| {
            if is_marker(&c[4]) {
                return c[0].to_string();
            }
            let cat = key_category(c[2].trim_start_matches('-'));
            bump(&mut counts, cat);
            format!("{}{}{}{}", &c[1], &c[2], &c[3], quoted_marker(&c[4], cat))
        })
        .into_owned();

    // connection_string=...: the whole value, `;` included.
    s = r
        .conn_string_kv
        .replace_all(&s, |c: &Captures| {
            if is_marker(&c[2]) {
                return c[0].to_string();
            }
            bump(&mut counts, "connection_string");
            format!("{}{}", &c[1], quoted_marker(&c[2], "connection_string"))
        })
        .into_owned();

    // key=value, key: value and "key": "value" forms (AccountKey=...; included).
    s =
        r.kv.replace_all(&s, |c: &Captures| {
            if is_marker(&c[3]) {
                return c[0].to_string();
            }
            let cat = key_category(&c[2]);
            bump(&mut counts, cat);
            format!("{}{}", &c[1], quoted_marker(&c[3], cat))
        })
        .into_owned();

    // SAS query strings: keep the URL, mask the signature.
    s = r
        .sas_sig
        .replace_all(&s, |c: &Captures| {
            if is_marker(&c[2]) {
                return c[0].to_string();
            }
            bump(&mut counts, "sas_signature");
            format!("{}{}", &c[1], marker("sas_signature"))
        })
        .into_owned();

    // Storage account keys: a maximal base64 run of exactly 88 characters ending in `==`.
    s = r
        .base64_run
        .replace_all(&s, |c: &Captures| {
            let m = &c[0];
            if m.len() == 88 && m.ends_with("==") {
                bump(&mut counts, "storage_key");
                marker("storage_key")
            } else {
                m.to_string()
            }
        })
        .into_owned();

    // AWS-style access key ids.
    s = r
        .aws_key
        .replace_all(&s, |_: &Captures| {
            bump(&mut counts, "aws_access_key");
            marker("aws_access_key")
        })
        .into_owned();

    Redacted { text: s, counts }
}

/// Replaces IPv4/IPv6 addresses and host names with stable placeholders (`IP_1`, `HOST_1`),
/// the same placeholder for the same value for the life of the anonymiser (one session).
///
/// Host names are recognised when they are fully qualified with at least three labels and
/// an alphabetic last label (`vm1.internal.cloudapp.net`), or when they were registered
/// with [`Anonymizer::add_host`]. Shorter names (`dest-vm`) are replaced only if registered.
#[derive(Debug, Default)]
pub struct Anonymizer {
    state: Mutex<AnonState>,
}

#[derive(Debug, Default)]
struct AnonState {
    ips: HashMap<String, String>,
    hosts: HashMap<String, String>,
    known_hosts: Vec<String>,
}

impl AnonState {
    fn ip(&mut self, v: &str) -> String {
        let n = self.ips.len() + 1;
        self.ips
            .entry(v.to_string())
            .or_insert_with(|| format!("IP_{n}"))
            .clone()
    }
    fn host(&mut self, v: &str) -> String {
        let key = v.to_ascii_lowercase();
        let n = self.hosts.len() + 1;
        self.hosts
            .entry(key)
            .or_insert_with(|| format!("HOST_{n}"))
            .clone()
    }
}

struct AnonRules {
    ipv4: Regex,
    ipv6: Regex,
    fqdn: Regex,
}

fn anon_rules() -> &'static AnonRules {
    static R: OnceLock<AnonRules> = OnceLock::new();
    R.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("built-in anonymisation pattern is valid");
        AnonRules {
            ipv4: re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
            ipv6: re(r"[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*"),
            fqdn: re(
                r"(?i)\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){2,}[a-z][a-z0-9-]{0,61}[a-z]\b",
            ),
        }
    })
}

impl Anonymizer {
    /// A new anonymiser with an empty mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a host name (any form, e.g. `dest-vm`) to be replaced wherever it appears
    /// as a whole word.
    pub fn add_host(&self, name: &str) {
        if name.is_empty() {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.known_hosts.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            st.known_hosts.push(name.to_string());
            // Longest first so `vm1.example` wins over `vm1`.
            st.known_hosts.sort_by_key(|h| std::cmp::Reverse(h.len()));
        }
    }

    /// The placeholder mapping so far (original → placeholder), IPs and hosts together.
    pub fn mapping(&self) -> BTreeMap<String, String> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.ips
            .iter()
            .chain(st.hosts.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Anonymises `text`.
    pub fn anonymize(&self, text: &str) -> String {
        let r = anon_rules();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = r
            .ipv4
            .replace_all(text, |c: &Captures| {
                let m = &c[0];
                if m.parse::<Ipv4Addr>().is_ok() {
                    st.ip(m)
                } else {
                    m.to_string()
                }
            })
            .into_owned();
        s = r
            .ipv6
            .replace_all(&s, |c: &Captures| {
                let m = &c[0];
                let has_hex = m.chars().any(|ch| ch.is_ascii_hexdigit());
                if has_hex && m.parse::<Ipv6Addr>().is_ok() {
                    st.ip(&m.to_ascii_lowercase())
                } else {
                    m.to_string()
                }
            })
            .into_owned();
        s = r
            .fqdn
            .replace_all(&s, |c: &Captures| st.host(&c[0]))
            .into_owned();
        let known = st.known_hosts.clone();
        for h in known {
            let pat = format!(
                r"(?i)(^|[^A-Za-z0-9_.-]){}($|[^A-Za-z0-9_-])",
                regex::escape(&h)
            );
            if let Ok(re) = Regex::new(&pat) {
                // Replace repeatedly: adjacent matches share a delimiter.
                loop {
                    let next = re
                        .replace_all(&s, |c: &Captures| {
                            let p = st.host(&h);
                            format!("{}{}{}", &c[1], p, &c[2])
                        })
                        .into_owned();
                    if next == s {
                        break;
                    }
                    s = next;
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str, cat: &str, secret: &str) -> String {
        let r = redact(text);
        assert!(!r.text.contains(secret), "{secret} left in {:?}", r.text);
        assert!(
            r.counts.get(cat).copied().unwrap_or(0) >= 1,
            "no {cat} count for {text:?}: {:?} -> {:?}",
            r.counts,
            r.text
        );
        assert_eq!(redact(&r.text).text, r.text, "not idempotent");
        assert_eq!(redact(&r.text).total(), 0, "re-redaction counted");
        r.text
    }

    #[test]
    fn key_value_forms() {
        assert_eq!(
            one("password=hunter2", "password", "hunter2"),
            "password=[REDACTED:password]"
        );
        one("DB_PASSWORD=hunter2 x", "password", "hunter2");
        one("passwd: hunter2", "password", "hunter2");
        one("PWD=/root/secretdir", "password", "/root/secretdir");
        one("client_secret=abcDEF123", "client_secret", "abcDEF123");
        one("api-key=k123456", "api_key", "k123456");
        one("APIKEY=k123456", "api_key", "k123456");
        one("access_key=AK99", "access_key", "AK99");
        one("refresh_token=rt-abc", "token", "rt-abc");
        one("my_secret='quoted value'", "secret", "quoted value");
    }

    #[test]
    fn json_form_keeps_json_valid() {
        let input = r#"{"accessToken": "abc.def", "password":"p\"w", "tokenType": "Bearer"}"#;
        let out = one(input, "token", "abc.def");
        assert!(!out.contains(r#"p\"w"#));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["accessToken"], "[REDACTED:token]");
        assert_eq!(v["password"], "[REDACTED:password]");
        assert_eq!(v["tokenType"], "Bearer");
    }

    #[test]
    fn command_line_flags() {
        one(
            "az login --service-principal -u app -p Sup3rS3cret --tenant t",
            "password",
            "Sup3rS3cret",
        );
        let out = one(
            "az storage blob list --account-key abcdEFGH1234 --account-name acct",
            "account_key",
            "abcdEFGH1234",
        );
        assert!(out.contains("--account-name acct"));
        one(
            "az storage blob upload --sas-token 'sv=2021&sig=XYZ' -f x",
            "sas_token",
            "XYZ",
        );
        one(
            "x --connection-string \"Endpoint=sb://a/;SharedAccessKey=K1\"",
            "connection_string",
            "K1",
        );
        one("tool --password=letmein", "password", "letmein");
        // -p is a port for ssh: not redacted.
        assert_eq!(redact("ssh -p 2222 host").text, "ssh -p 2222 host");
    }

    #[test]
    fn authorization_headers() {
        let out = one(
            "curl -H 'Authorization: Bearer abc123' https://x",
            "authorization",
            "abc123",
        );
        assert!(out.contains("Authorization: Bearer [REDACTED:authorization]'"));
        one(
            "Authorization: Basic dXNlcjpwYXNz",
            "authorization",
            "dXNlcjpwYXNz",
        );
        one(
            "authorization: SharedKey acct:c2lnbmF0dXJl",
            "authorization",
            "c2lnbmF0dXJl",
        );
    }

    #[test]
    fn sas_query_string_keeps_url() {
        let url = "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026-01-01T00%3A00Z&sp=r&sig=AbC%2Bdef%3D";
        let out = one(url, "sas_signature", "AbC%2Bdef%3D");
        assert!(out.starts_with(
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026-01-01T00%3A00Z&sp=r&sig="
        ));
    }

    #[test]
    fn storage_keys_and_connection_strings() {
        let key = format!("{}==", "A1b2C3d4".repeat(10) + "Zz+/Yy");
        assert_eq!(key.len(), 88);
        one(&format!("key1 {key} end"), "storage_key", &key);
        let cs = format!("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=core.windows.net");
        let out = one(&cs, "account_key", &key);
        assert!(out.contains("AccountName=acct;"));
        assert!(out.contains(";EndpointSuffix=core.windows.net"));
        // An 88-character run that does not end in == is not a key.
        let not_key = "B".repeat(88);
        assert_eq!(redact(&not_key).text, not_key);
    }

    #[test]
    fn jwt_pem_aws() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX3g";
        one(&format!("token {jwt} x"), "jwt", jwt);
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\nabcdef==\n-----END RSA PRIVATE KEY-----\n";
        let out = one(
            &format!("before\n{pem}after"),
            "private_key",
            "MIIEowIBAAKCAQEAx",
        );
        assert_eq!(out, "before\n[REDACTED:private_key]\nafter");
        // A block cut short by output truncation is still redacted.
        one(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\nAAAA",
            "private_key",
            "b3BlbnNzaC1rZXk",
        );
        one(
            "id AKIAIOSFODNN7EXAMPLE",
            "aws_access_key",
            "AKIAIOSFODNN7EXAMPLE",
        );
    }

    #[test]
    fn service_bus_and_sas_connection_strings() {
        let out = one(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=c2VjcmV0a2V5;EntityPath=q",
            "shared_access_key",
            "c2VjcmV0a2V5",
        );
        assert!(out.contains("SharedAccessKeyName=root;"));
        one(
            "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2022&sig=QUJD",
            "sas_token",
            "QUJD",
        );
        one(
            "AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=https;AccountKey=abc;'",
            "connection_string",
            "abc",
        );
    }

    #[test]
    fn harmless_text_unchanged() {
        for t in [
            "ip route show",
            "tcpdump -i eth0 -c 10 port 443",
            "tokens are fine",
            "ss -tnp",
        ] {
            assert_eq!(redact(t).text, t);
            assert_eq!(redact(t).total(), 0);
        }
    }

    #[test]
    fn anonymizer_is_stable() {
        let a = Anonymizer::new();
        a.add_host("dest-vm");
        let out = a.anonymize(
            "198.18.1.4 -> 198.18.1.5 via 198.18.1.4 fe80::1 dest-vm vm1.internal.cloudapp.net",
        );
        assert_eq!(out, "IP_1 -> IP_2 via IP_1 IP_3 HOST_2 HOST_1");
        assert_eq!(a.anonymize("dest-vm 198.18.1.5"), "HOST_2 IP_2");
        assert_eq!(
            a.anonymize("10:30:45 main.rs 999.1.1.1"),
            "10:30:45 main.rs 999.1.1.1"
        );
    }
}
