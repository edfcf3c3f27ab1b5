//! Argument parsing that mirrors the Azure CLI's (knack/argparse) behaviour: a command path
//! of words, then options; an option given with several values takes every following token
//! up to the next option; `--opt=value` is accepted; errors have az's texts and exit code 2.

use std::collections::BTreeMap;

/// One option of a command, parsed from a compact spec such as `--resource-group/-g!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptSpec {
    /// Every spelling, long first (`--resource-group`, `-g`).
    pub names: Vec<String>,
    /// Takes several values (`--destination-port-ranges 80 443`).
    pub multi: bool,
    /// A switch without a value.
    pub flag: bool,
    /// Required.
    pub required: bool,
}

impl OptSpec {
    /// The canonical (first, long) name.
    pub fn long(&self) -> &str {
        &self.names[0]
    }
    /// `--resource-group/-g`, as az prints it in errors.
    pub fn display(&self) -> String {
        self.names.join("/")
    }
}

/// Parses a spec string: space-separated options, each `--long[/-s]` followed by `!`
/// (required), `*` (several values) or `?` (switch), in any combination.
pub fn parse_spec(spec: &str) -> Vec<OptSpec> {
    spec.split_whitespace()
        .map(|w| {
            let required = w.contains('!');
            let multi = w.contains('*');
            let flag = w.contains('?');
            let clean: String = w.chars().filter(|c| !"!*?".contains(*c)).collect();
            OptSpec {
                names: clean.split('/').map(str::to_string).collect(),
                multi,
                flag,
                required,
            }
        })
        .collect()
}

/// Options every command accepts.
pub const GLOBAL_SPEC: &str =
    "--query --output/-o --subscription --only-show-errors? --verbose? --debug? --help/-h?";

/// Parsed options: canonical long name → values (empty for a switch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Values by canonical long name.
    pub values: BTreeMap<String, Vec<String>>,
}

impl Parsed {
    /// The single value of an option (the last one if repeated).
    pub fn get(&self, long: &str) -> Option<&str> {
        self.values
            .get(long)
            .and_then(|v| v.last())
            .map(String::as_str)
    }
    /// Every value of an option.
    pub fn list(&self, long: &str) -> Option<&[String]> {
        self.values.get(long).map(Vec::as_slice)
    }
    /// Whether an option (or switch) was given.
    pub fn has(&self, long: &str) -> bool {
        self.values.contains_key(long)
    }
    /// The value of a required option (the parser has checked it is present).
    pub fn req(&self, long: &str) -> &str {
        self.get(long).unwrap_or("")
    }
}

/// A usage error, printed as az prints it, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn is_option_token(t: &str) -> bool {
    t.starts_with('-') && t.len() > 1 && t.parse::<f64>().is_err()
}

/// Parses the tokens after the command path against the command's options plus the global
/// ones.
pub fn parse_options(tokens: &[String], specs: &[OptSpec]) -> Result<Parsed, UsageError> {
    let globals = parse_spec(GLOBAL_SPEC);
    let all: Vec<&OptSpec> = specs.iter().chain(globals.iter()).collect();
    let find = |name: &str| -> Result<Option<&OptSpec>, Vec<&OptSpec>> {
        if let Some(s) = all.iter().find(|s| s.names.iter().any(|n| n == name)) {
            return Ok(Some(s));
        }
        // argparse accepts unambiguous prefixes of long options.
        if name.starts_with("--") && name.len() > 3 {
            let c: Vec<&OptSpec> = all
                .iter()
                .copied()
                .filter(|s| {
                    s.names
                        .iter()
                        .any(|n| n.starts_with("--") && n.starts_with(name))
                })
                .collect();
            return match c.len() {
                0 => Ok(None),
                1 => Ok(Some(c[0])),
                _ => Err(c),
            };
        }
        Ok(None)
    };
    let mut out = Parsed::default();
    let mut unknown: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        i += 1;
        if !is_option_token(tok) {
            unknown.push(tok.clone());
            continue;
        }
        let (name, inline) = match tok.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (tok.clone(), None),
        };
        let spec = match find(&name) {
            Ok(Some(s)) => s,
            Ok(None) => {
                unknown.push(tok.clone());
                // its values are unrecognized too, like argparse reports them
                while i < tokens.len() && !is_option_token(&tokens[i]) {
                    unknown.push(tokens[i].clone());
                    i += 1;
                }
                continue;
            }
            Err(c) => {
                let names: Vec<&str> = c.iter().map(|s| s.long()).collect();
                return Err(UsageError(format!(
                    "ambiguous option: {name} could match {}",
                    names.join(", ")
                )));
            }
        };
        let key = spec.long().to_string();
        if spec.flag {
            if let Some(v) = inline {
                return Err(UsageError(format!(
                    "argument {}: ignored explicit argument '{v}'",
                    spec.display()
                )));
            }
            out.values.entry(key).or_default();
            continue;
        }
        let mut vals = Vec::new();
        if let Some(v) = inline {
            vals.push(v);
        } else if spec.multi {
            while i < tokens.len() && !is_option_token(&tokens[i]) {
                vals.push(tokens[i].clone());
                i += 1;
            }
        } else if i < tokens.len() && !is_option_token(&tokens[i]) {
            vals.push(tokens[i].clone());
            i += 1;
        }
        if vals.is_empty() {
            return Err(UsageError(format!(
                "argument {}: expected {}",
                spec.display(),
                if spec.multi {
                    "at least one argument"
                } else {
                    "one argument"
                }
            )));
        }
        if spec.multi {
            // a repeated multi-value option replaces the earlier values, as argparse does
            out.values.insert(key, vals);
        } else {
            out.values.entry(key).or_default().extend(vals);
        }
    }
    if !unknown.is_empty() {
        return Err(UsageError(format!(
            "unrecognized arguments: {}",
            unknown.join(" ")
        )));
    }
    if out.has("--help") {
        return Ok(out);
    }
    let missing: Vec<String> = specs
        .iter()
        .filter(|s| s.required && !out.has(s.long()))
        .map(OptSpec::display)
        .collect();
    if !missing.is_empty() {
        return Err(UsageError(format!(
            "the following arguments are required: {}",
            missing.join(", ")
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn multi_values_run_to_next_option() {
        let spec =
            parse_spec("--resource-group/-g! --name/-n! --destination-port-ranges* --priority");
        let p = parse_options(
            &s(&[
                "-g",
                "rg",
                "--destination-port-ranges",
                "80",
                "443",
                "8000-9000",
                "-n",
                "x",
                "--priority=200",
            ]),
            &spec,
        )
        .unwrap();
        assert_eq!(p.get("--resource-group"), Some("rg"));
        assert_eq!(
            p.list("--destination-port-ranges").unwrap(),
            &s(&["80", "443", "8000-9000"])[..]
        );
        assert_eq!(p.get("--name"), Some("x"));
        assert_eq!(p.get("--priority"), Some("200"));
    }

    #[test]
    fn errors_have_az_texts() {
        let spec = parse_spec("--resource-group/-g! --name/-n!");
        let e = parse_options(&s(&["-g", "rg"]), &spec).unwrap_err();
        assert_eq!(e.0, "the following arguments are required: --name/-n");
        let e = parse_options(&s(&["-g", "rg", "-n", "x", "--bogus", "1"]), &spec).unwrap_err();
        assert_eq!(e.0, "unrecognized arguments: --bogus 1");
        let e = parse_options(&s(&["-g"]), &spec).unwrap_err();
        assert_eq!(e.0, "argument --resource-group/-g: expected one argument");
    }

    #[test]
    fn empty_string_is_a_value_and_prefixes_resolve() {
        let spec = parse_spec("--route-table --network-security-group");
        let p = parse_options(&s(&["--route-table", "", "--network-sec", "n"]), &spec).unwrap();
        assert_eq!(p.get("--route-table"), Some(""));
        assert_eq!(p.get("--network-security-group"), Some("n"));
    }

    #[test]
    fn hostile_tokens_never_panic() {
        let spec = parse_spec("--a* --b? --c");
        for t in [
            &["-"][..],
            &["--"],
            &["--=x"],
            &["--b=1"],
            &["--a"],
            &["-1", "--c", "-5"],
        ] {
            let _ = parse_options(&s(t), &spec);
        }
        let p = parse_options(&s(&["--c", "-5"]), &spec).unwrap();
        assert_eq!(p.get("--c"), Some("-5"));
    }
}
