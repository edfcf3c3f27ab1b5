//! The `KEY=VALUE` env-file syntax shared by every binary's `--config FILE` (a subset of
//! shell assignment syntax, so the same file can be `source`d):
//!
//! ```text
//! # comment
//! export RESOURCE_GROUP=rg-netlab          # `export ` prefix allowed
//! SOURCE_VM_PRIVATE_IP = 198.18.1.4        # spaces around `=` allowed; inline comment
//! SSH_USER="azure user # not a comment"    # double quotes: $VAR expansion, \" \\ \$ escapes
//! STORAGE_CONTAINER_NAME='literal $HOME'   # single quotes: no expansion at all
//! AUDIT_DIR=${HOME}/audit                  # $VAR and ${VAR} from the environment
//! ```
//!
//! This crate owns the syntax because it sits at the bottom of the workspace; the typed
//! settings built on it (known keys, validation, precedence) live in `cloud-provider`.

use std::collections::{BTreeMap, BTreeSet};

/// A line that is not valid env-file syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin} line {line}: {message}")]
pub struct EnvFileError {
    /// The file (or `<text>`).
    pub origin: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong and what to do.
    pub message: String,
}

/// A parsed env file: values after quote removal and expansion (the last assignment of a key
/// wins), and warnings to show once (unknown keys, undefined variables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    /// Values by key.
    pub values: BTreeMap<String, String>,
    /// One line each, deduplicated.
    pub warnings: Vec<String>,
}

/// Reads and parses a file, expanding variables from the process environment; `is_known`
/// says which keys are expected (others are warned about once).
pub fn load_env_file(
    path: &std::path::Path,
    is_known: &dyn Fn(&str) -> bool,
) -> Result<EnvFile, EnvFileError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| EnvFileError {
        origin: origin.clone(),
        line: 0,
        message: format!("cannot read the file: {e}"),
    })?;
    parse_env_text(&text, &origin, &|name| std::env::var(name).ok(), is_known)
}

/// Parses env-file text. `env` resolves `$VAR` references (the process environment in
/// production, a map in tests); `is_known` says which keys are expected.
pub fn parse_env_text(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    is_known: &dyn Fn(&str) -> bool,
) -> Result<EnvFile, EnvFileError> {
    let mut out = EnvFile::default();
    let mut warned: BTreeSet<String> = BTreeSet::new();
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let syntax = |message: String| EnvFileError {
            origin: origin.to_string(),
            line: line_no,
            message,
        };
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = match line.strip_prefix("export") {
            Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
            _ => line,
        };
        let Some(eq) = line.find('=') else {
            return Err(syntax(format!(
                "expected KEY=VALUE, found {:?}; comment it out with # if it is not a setting",
                truncate(line, 60)
            )));
        };
        let key = line[..eq].trim();
        if !is_valid_key(key) {
            return Err(syntax(format!(
                "{:?} is not a valid key (letters, digits and _, not starting with a digit)",
                truncate(key, 60)
            )));
        }
        let mut undefined = Vec::new();
        let value = parse_value(line[eq + 1..].trim_start(), env, &mut undefined)
            .map_err(|m| syntax(format!("{key}: {m}")))?;
        for var in undefined {
            let w = format!("{origin} line {line_no}: {key} uses ${var}, which is not set in the environment (expanded to an empty string)");
            if warned.insert(w.clone()) {
                out.warnings.push(w);
            }
        }
        if !is_known(key) {
            let w = format!(
                "{origin}: unknown key {key} (ignored; see docs/cloud-provider.md for the keys)"
            );
            if warned.insert(format!("unknown:{key}")) {
                out.warnings.push(w);
            }
        }
        out.values.insert(key.to_string(), value);
    }
    Ok(out)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses the right-hand side of an assignment: a sequence of unquoted, single-quoted and
/// double-quoted segments, ending at an unquoted `#` preceded by whitespace (or at the end).
fn parse_value(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
    undefined: &mut Vec<String>,
) -> Result<String, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    // Trailing unquoted whitespace is dropped; track where meaningful content ends.
    let mut keep_len = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or("unterminated single quote; close it with '")?;
                out.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
                keep_len = out.len();
            }
            '"' => {
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("unterminated double quote; close it with \"".into());
                    };
                    match c {
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\\' if matches!(chars.get(i + 1), Some('"' | '\\' | '$' | '`')) => {
                            out.push(chars[i + 1]);
                            i += 2;
                        }
                        '$' => i = expand(&chars, i, env, undefined, &mut out)?,
                        _ => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
                keep_len = out.len();
            }
            '#' if i == 0 || chars[i - 1].is_whitespace() => break,
            '\\' if i + 1 < chars.len() => {
                out.push(chars[i + 1]);
                i += 2;
                keep_len = out.len();
            }
            '$' => {
                i = expand(&chars, i, env, undefined, &mut out)?;
                keep_len = out.len();
            }
            c if c.is_whitespace() => {
                out.push(c);
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
                keep_len = out.len();
            }
        }
    }
    out.truncate(keep_len);
    Ok(out)
}

/// Expands `$NAME` or `${NAME}` starting at `chars[i] == '$'`; returns the index after it.
/// A `$` not followed by a name is kept literally.
fn expand(
    chars: &[char],
    i: usize,
    env: &dyn Fn(&str) -> Option<String>,
    undefined: &mut Vec<String>,
    out: &mut String,
) -> Result<usize, String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (name, next) = if chars.get(i + 1) == Some(&'{') {
        let end = chars[i + 2..]
            .iter()
            .position(|&c| c == '}')
            .ok_or("unterminated ${...}; close it with }")?;
        let name: String = chars[i + 2..i + 2 + end].iter().collect();
        if name.is_empty() || !name.chars().all(is_name_char) {
            return Err(format!(
                "${{{name}}} is not a plain variable reference (only $NAME and ${{NAME}} are expanded)"
            ));
        }
        (name, i + 3 + end)
    } else {
        let len = chars[i + 1..]
            .iter()
            .take_while(|&&c| is_name_char(c))
            .count();
        if len == 0 || chars[i + 1].is_ascii_digit() {
            out.push('$');
            return Ok(i + 1);
        }
        (chars[i + 1..i + 1 + len].iter().collect(), i + 1 + len)
    };
    match env(&name) {
        Some(v) => out.push_str(&v),
        None => undefined.push(name),
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_key_callback_decides_warnings() {
        let text = "AUDIT_DIR=./a # audit\nOTHER=1\n";
        let all = parse_env_text(text, "t", &|_| None, &|_| true).unwrap();
        assert!(all.warnings.is_empty());
        assert_eq!(all.values["AUDIT_DIR"], "./a");
        let some = parse_env_text(text, "t", &|_| None, &|k| k == "AUDIT_DIR").unwrap();
        assert_eq!(some.warnings.len(), 1);
        assert!(some.warnings[0].contains("OTHER"));
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let err = load_env_file(std::path::Path::new("/nonexistent/x.env"), &|_| true).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/x.env"), "{err}");
    }
}
