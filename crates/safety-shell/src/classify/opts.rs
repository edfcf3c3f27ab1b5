//! A small getopt-style scanner shared by the per-tool option parsers.

/// The options a tool accepts. Anything else makes the scan fail.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spec<'a> {
    /// Short options without an argument (letters).
    pub short_flags: &'a str,
    /// Short options that take an argument (letters).
    pub short_args: &'a str,
    /// Long options without an argument (`--name`).
    pub long_flags: &'a [&'a str],
    /// Long options that take an argument (`--name=v` or `--name v`).
    pub long_args: &'a [&'a str],
    /// Single-dash long options without argument (`-json`, as in iproute2).
    pub single_dash_flags: &'a [&'a str],
}

/// One scanned token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An option (`-c`, `--count`), with its argument when it takes one.
    Opt(String, Option<String>),
    /// A positional argument.
    Pos(String),
}

impl Tok {
    pub fn is(&self, names: &[&str]) -> bool {
        matches!(self, Tok::Opt(n, _) if names.contains(&n.as_str()))
    }
}

/// Scans `args`. `Err(token)` names the first option the spec does not know (or an
/// option missing its argument).
pub(crate) fn scan(args: &[String], spec: &Spec) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut only_pos = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if only_pos || a == "-" || !a.starts_with('-') {
            out.push(Tok::Pos(a.clone()));
            continue;
        }
        if a == "--" {
            only_pos = true;
            continue;
        }
        if spec.single_dash_flags.contains(&a.as_str()) {
            out.push(Tok::Opt(a.clone(), None));
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let full = format!("--{name}");
            if spec.long_flags.contains(&full.as_str()) && inline.is_none() {
                out.push(Tok::Opt(full, None));
            } else if spec.long_args.contains(&full.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        let v = args.get(i).cloned().ok_or_else(|| a.clone())?;
                        i += 1;
                        v
                    }
                };
                out.push(Tok::Opt(full, Some(v)));
            } else {
                return Err(a.clone());
            }
            continue;
        }
        // A cluster of short options: `-nvL`, `-c3`, `-c 3`.
        let chars: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            if spec.short_flags.contains(c) && c.is_ascii() {
                out.push(Tok::Opt(format!("-{c}"), None));
            } else if spec.short_args.contains(c) && c.is_ascii() {
                let rest: String = chars[j..].iter().collect();
                let v = if rest.is_empty() {
                    let v = args.get(i).cloned().ok_or_else(|| a.clone())?;
                    i += 1;
                    v
                } else {
                    rest
                };
                out.push(Tok::Opt(format!("-{c}"), Some(v)));
                break;
            } else {
                return Err(a.clone());
            }
        }
    }
    Ok(out)
}

/// The positional arguments of a scan.
pub(crate) fn positionals(toks: &[Tok]) -> Vec<&str> {
    toks.iter()
        .filter_map(|t| match t {
            Tok::Pos(p) => Some(p.as_str()),
            Tok::Opt(..) => None,
        })
        .collect()
}

/// The argument values of every occurrence of any of `names`.
pub(crate) fn values<'t>(toks: &'t [Tok], names: &[&str]) -> Vec<&'t str> {
    toks.iter()
        .filter_map(|t| match t {
            Tok::Opt(n, Some(v)) if names.contains(&n.as_str()) => Some(v.as_str()),
            _ => None,
        })
        .collect()
}

/// True when any of `names` occurs.
pub(crate) fn has(toks: &[Tok], names: &[&str]) -> bool {
    toks.iter().any(|t| t.is(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn clusters_and_values() {
        let spec = Spec {
            short_flags: "nv",
            short_args: "c",
            long_flags: &["--quiet"],
            long_args: &["--count"],
            ..Spec::default()
        };
        let t = scan(
            &s(&["-nvc3", "--count=4", "--quiet", "host", "--", "-x"]),
            &spec,
        )
        .unwrap();
        assert_eq!(values(&t, &["-c", "--count"]), vec!["3", "4"]);
        assert_eq!(positionals(&t), vec!["host", "-x"]);
        assert_eq!(scan(&s(&["-f"]), &spec), Err("-f".to_string()));
        assert_eq!(scan(&s(&["-c"]), &spec), Err("-c".to_string()));
    }
}
