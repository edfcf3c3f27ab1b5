//! `ssh [options] host command…`: classified by the remote command; options that run
//! local commands, open forwards or change the trust model make it RISKY.

use super::walk::{Arg, Walker};
use super::{risky, worst};
use crate::types::{Classification, Tier};

/// `-o` options that are harmless (lower-case names).
const SAFE_O: &[&str] = &[
    "connecttimeout",
    "batchmode",
    "userknownhostsfile",
    "identityfile",
    "identitiesonly",
    "port",
    "user",
    "serveraliveinterval",
    "serveralivecountmax",
    "loglevel",
    "connectionattempts",
    "hostkeyalias",
    "passwordauthentication",
    "pubkeyauthentication",
    "preferredauthentications",
    "globalknownhostsfile",
    "checkhostip",
    "addressfamily",
    "compression",
    "requesttty",
    "stricthostkeychecking",
    "kbdinteractiveauthentication",
    "numberofpasswordprompts",
    "updatehostkeys",
    "hashknownhosts",
    "visualhostkey",
    "tcpkeepalive",
    "ipqos",
];

const FLAGS: &str = "46CqtTvnsxKky";
const VALUED: &str = "bceEFiIJlLmoOpQRSwWDB";

fn check_o(opt: &str) -> Option<Classification> {
    let (name, value) = match opt.split_once('=') {
        Some((n, v)) => (n.trim(), v.trim()),
        None => match opt.split_once(char::is_whitespace) {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (opt.trim(), ""),
        },
    };
    let lname = name.to_ascii_lowercase();
    if !SAFE_O.contains(&lname.as_str()) {
        return Some(risky(
            Tier::Unknown,
            format!("`ssh -o {name}` is not in the allowlist (it may run local commands or open forwards)"),
        ));
    }
    if lname == "stricthostkeychecking"
        && !matches!(value.to_ascii_lowercase().as_str(), "yes" | "accept-new")
    {
        return Some(risky(
            Tier::Unknown,
            "`ssh -o StrictHostKeyChecking=no` disables host-key checking",
        ));
    }
    None
}

/// Parses ssh options from `args[i..]` until the first non-option word; returns the index
/// of that word, adding verdicts on risky options to `own`.
fn options(
    args: &[Arg],
    mut i: usize,
    own: &mut Option<Classification>,
) -> Result<usize, Classification> {
    let add = |v: Classification, own: &mut Option<Classification>| {
        *own = Some(match own.take() {
            None => v,
            Some(a) => worst(a, v),
        });
    };
    while i < args.len() {
        let a = &args[i];
        if !a.text.starts_with('-') {
            break;
        }
        if !a.is_static {
            return Err(risky(
                Tier::Unknown,
                "`ssh` with an option computed at run time",
            ));
        }
        i += 1;
        if a.text == "--" {
            break;
        }
        let chars: Vec<char> = a.text[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            if FLAGS.contains(c) && c.is_ascii() {
                continue;
            }
            if VALUED.contains(c) && c.is_ascii() {
                let glued: String = chars[j..].iter().collect();
                let value = if glued.is_empty() {
                    if args.get(i).is_some_and(|x| !x.is_static) {
                        return Err(risky(
                            Tier::Unknown,
                            "`ssh` option value computed at run time",
                        ));
                    }
                    let v = args.get(i).map(|x| x.text.clone()).unwrap_or_default();
                    i += 1;
                    v
                } else {
                    glued
                };
                match c {
                    'o' => {
                        if let Some(v) = check_o(&value) {
                            add(v, own);
                        }
                    }
                    'L' | 'R' | 'D' | 'W' | 'w' => add(
                        risky(Tier::HostChange, format!("`ssh -{c}` opens a forward or tunnel")),
                        own,
                    ),
                    'F' => add(
                        risky(Tier::Unknown, "`ssh -F` uses a configuration file that may run commands (ProxyCommand, LocalCommand)"),
                        own,
                    ),
                    'E' => add(risky(Tier::HostChange, "`ssh -E` writes a log file"), own),
                    'S' | 'O' | 'B' | 'I' | 'Q' => add(
                        risky(Tier::Unknown, format!("`ssh -{c}` is not in the allowlist")),
                        own,
                    ),
                    _ => {}
                }
                break;
            }
            let why = match c {
                'A' => "`ssh -A` forwards the agent (credentials) to the remote host",
                'X' | 'Y' => "`ssh -X/-Y` forwards the X display",
                'f' => "`ssh -f` goes to the background",
                'N' => "`ssh -N` runs no command (forwarding only)",
                'M' => "`ssh -M` starts a control master",
                'G' => "`ssh -G` is not in the allowlist",
                'g' => "`ssh -g` lets remote hosts use local forwards",
                _ => "an `ssh` option is not in the allowlist",
            };
            add(risky(Tier::Unknown, why), own);
        }
    }
    Ok(i)
}

/// Classifies `ssh` with its arguments (after the program name).
pub(crate) fn classify(w: &mut Walker, args: &[Arg]) -> Classification {
    let mut own: Option<Classification> = None;
    let i = match options(args, 0, &mut own) {
        Ok(i) => i,
        Err(v) => return v,
    };
    let Some(host) = args.get(i) else {
        return risky(Tier::Unknown, "`ssh` without a host");
    };
    if !host.is_static {
        return risky(Tier::Unknown, "`ssh` to a host computed at run time");
    }
    // OpenSSH also parses options that follow the host name.
    let i = match options(args, i + 1, &mut own) {
        Ok(i) => i,
        Err(v) => return v,
    };
    let remote = &args[i.min(args.len())..];
    if remote.is_empty() {
        return worst(
            own.unwrap_or_else(|| risky(Tier::Unknown, "interactive `ssh` session")),
            risky(
                Tier::Unknown,
                format!(
                    "`ssh {}` without a command opens an interactive session",
                    host.text
                ),
            ),
        );
    }
    if remote.iter().any(|a| !a.is_static) {
        // The local shell expands these before ssh joins them; the remote command text
        // is then unknown.
        return worst(
            own.unwrap_or_else(|| risky(Tier::Unknown, "dynamic remote command")),
            risky(
                Tier::Unknown,
                "`ssh` remote command built from a local expansion",
            ),
        );
    }
    // ssh joins its arguments with spaces and the remote shell parses the result.
    let joined: Vec<&str> = remote.iter().map(|a| a.text.as_str()).collect();
    let inner = w.script(&joined.join(" "));
    match own {
        Some(o) => worst(inner, o),
        None => inner,
    }
}
