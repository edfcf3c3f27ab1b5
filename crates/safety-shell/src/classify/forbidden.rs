//! The FORBIDDEN rules on one resolved command: mass deletion of system roots and home
//! directories, formatting or wiping disks, taking the host down.

use super::forbidden as verdict;
use super::paths::{is_block_device, is_protected_root, normalise};
use super::walk::Arg;
use crate::types::Classification;

const STOP_TARGETS: &[&str] = &[
    "poweroff",
    "reboot",
    "halt",
    "kexec",
    "shutdown",
    "soft-reboot",
    "ctrl-alt-del",
    "runlevel0",
    "runlevel6",
];

/// `Some(FORBIDDEN)` when `program` with `args` is destructive. Arguments are used as text
/// after quote removal (expansions as their source), so `rm -rf "$HOME"` is recognised.
pub(crate) fn check(program: &str, args: &[Arg]) -> Option<Classification> {
    let texts: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
    match program {
        "rm" => rm(&texts),
        "find" => find(&texts),
        "mke2fs" | "mkdosfs" | "mkntfs" | "wipefs" | "blkdiscard" | "mkfs" => {
            Some(verdict(format!("`{program}` formats or wipes a disk")))
        }
        p if p.starts_with("mkfs.") => Some(verdict(format!("`{p}` formats a disk"))),
        "mkswap" | "shred" | "tee" | "cp" | "truncate" | "badblocks" => texts
            .iter()
            .find(|t| is_block_device(&normalise(t)))
            .map(|t| {
                verdict(format!(
                    "`{program}` would overwrite the block device `{t}`"
                ))
            }),
        "dd" => texts
            .iter()
            .filter_map(|t| t.strip_prefix("of="))
            .find(|t| is_block_device(&normalise(t)))
            .map(|t| verdict(format!("`dd` would overwrite the block device `{t}`"))),
        "reboot" | "halt" | "poweroff" => Some(verdict(format!("`{program}` takes the host down"))),
        "shutdown" => {
            if texts.iter().any(|t| *t == "-c" || *t == "--cancel") {
                None
            } else {
                Some(verdict("`shutdown` takes the host down"))
            }
        }
        "init" | "telinit" => match texts.iter().find(|t| !t.starts_with('-')) {
            Some(&("0" | "6")) => Some(verdict(format!(
                "`{program}` to runlevel 0/6 takes the host down"
            ))),
            _ => None,
        },
        "systemctl" => systemctl(&texts),
        "kexec" => {
            let exec = texts.iter().any(|t| {
                *t == "--exec" || (t.starts_with('-') && !t.starts_with("--") && t.contains('e'))
            });
            exec.then(|| verdict("`kexec -e` reboots into another kernel"))
        }
        _ => None,
    }
}

fn rm(args: &[&str]) -> Option<Classification> {
    let mut dangerous = false;
    let mut operands = Vec::new();
    let mut only_operands = false;
    for a in args {
        if only_operands || !a.starts_with('-') || *a == "-" {
            operands.push(*a);
        } else if *a == "--" {
            only_operands = true;
        } else if let Some(long) = a.strip_prefix("--") {
            if matches!(long, "recursive" | "force" | "no-preserve-root" | "dir") {
                dangerous = true;
            }
        } else if a.contains(['r', 'R', 'f']) {
            dangerous = true;
        }
    }
    if !dangerous {
        return None;
    }
    operands.iter().find(|o| is_protected_root(o)).map(|o| {
        verdict(format!(
            "`rm` with -r/-f on `{o}` would delete the system or a home directory"
        ))
    })
}

fn find(args: &[&str]) -> Option<Classification> {
    let mut i = 0;
    while i < args.len() && matches!(args[i], "-H" | "-L" | "-P" | "-O0" | "-O1" | "-O2" | "-O3") {
        i += 1;
    }
    let roots: Vec<&str> = args[i..]
        .iter()
        .take_while(|a| !a.starts_with('-') && **a != "(" && **a != "!")
        .copied()
        .collect();
    let deletes = args.contains(&"-delete")
        || args.windows(2).any(|w| {
            matches!(w[0], "-exec" | "-execdir" | "-ok" | "-okdir")
                && matches!(
                    w[1].rsplit('/').next().unwrap_or(""),
                    "rm" | "shred" | "unlink" | "rmdir"
                )
        });
    if !deletes {
        return None;
    }
    roots.iter().find(|r| is_protected_root(r)).map(|r| {
        verdict(format!(
            "`find {r}` with deletion would destroy the system or a home directory"
        ))
    })
}

fn systemctl(args: &[&str]) -> Option<Classification> {
    let valued = [
        "-t",
        "-p",
        "-s",
        "-H",
        "-M",
        "-n",
        "-o",
        "--type",
        "--property",
        "--signal",
        "--host",
        "--machine",
        "--lines",
        "--output",
        "--state",
        "--root",
        "--kill-whom",
        "--job-mode",
        "--what",
        "--when",
        "--message",
        "--timestamp",
        "--boot-loader-entry",
        "--boot-loader-menu",
    ];
    let mut i = 0;
    let mut positionals = Vec::new();
    while i < args.len() {
        let a = args[i];
        i += 1;
        if a.starts_with('-') {
            if valued.contains(&a) {
                i += 1;
            }
            continue;
        }
        positionals.push(a);
    }
    let verb = positionals.first()?;
    if matches!(
        *verb,
        "poweroff" | "reboot" | "halt" | "kexec" | "soft-reboot" | "emergency"
    ) {
        return Some(verdict(format!("`systemctl {verb}` takes the host down")));
    }
    if matches!(
        *verb,
        "start" | "isolate" | "restart" | "reload-or-restart" | "try-restart"
    ) {
        for u in &positionals[1..] {
            let unit = u.strip_suffix(".target").unwrap_or(u);
            if STOP_TARGETS.contains(&unit) {
                return Some(verdict(format!(
                    "`systemctl {verb} {u}` takes the host down"
                )));
            }
        }
    }
    None
}
