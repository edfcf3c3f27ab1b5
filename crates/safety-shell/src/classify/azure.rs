//! The Azure CLI: command groups, the arity of options (multi-value options take every
//! value up to the next option), read verbs, secrets, `az rest`, downloads and
//! `az vm run-command invoke` (classified by its script).

use std::collections::BTreeMap;

use super::paths::{write_verdict, WriteVerdict};
use super::walk::{Arg, Walker};
use super::{bad_option, risky, safe, worst};
use crate::types::{Classification, Tier};

/// Known top-level command groups.
const GROUPS: &[&str] = &[
    "account",
    "ad",
    "advisor",
    "aks",
    "acr",
    "appservice",
    "backup",
    "batch",
    "cdn",
    "cloud",
    "cosmosdb",
    "deployment",
    "disk",
    "dns",
    "eventhubs",
    "feature",
    "functionapp",
    "group",
    "identity",
    "image",
    "keyvault",
    "lock",
    "login",
    "logout",
    "monitor",
    "network",
    "policy",
    "postgres",
    "provider",
    "redis",
    "resource",
    "rest",
    "role",
    "servicebus",
    "sig",
    "snapshot",
    "sql",
    "storage",
    "tag",
    "version",
    "vm",
    "vmss",
    "webapp",
    "graph",
    "mysql",
    "bicep",
    "extension",
    "config",
    "interactive",
    "find",
    "upgrade",
    "configure",
    "feedback",
    "self-test",
    "cache",
    "init",
    "survey",
];

/// Options that never take a value.
const FLAGS: &[&str] = &[
    "--only-show-errors",
    "--debug",
    "--verbose",
    "--help",
    "-h",
    "--yes",
    "-y",
    "--no-wait",
    "--all",
    "--include-default",
    "--show-details",
    "-d",
    "--identity",
    "--use-device-code",
    "--allow-no-subscriptions",
    "--skip-authorization-header",
    "--auth-mode-login",
    "--refresh",
    "--detailed",
    "--include-inherited",
    "--expand-all",
    "--version",
    "--no-prompt",
    "--service-principal",
];

/// Options that take every following value up to the next option.
const MULTI: &[&str] = &[
    "--ids",
    "--scripts",
    "--tags",
    "--source-address-prefixes",
    "--destination-port-ranges",
    "--destination-address-prefixes",
    "--source-port-ranges",
    "--address-prefixes",
    "--service-endpoints",
    "--parameters",
    "--headers",
    "--uri-parameters",
    "--nics",
    "--vnets",
    "--source-asgs",
    "--destination-asgs",
    "--protocols",
    "--dns-servers",
    "--ip-configurations",
    "--subnets",
    "--set",
    "--add",
    "--remove",
];

/// Command groups and verbs that reveal secrets (keys, tokens, passwords, SAS).
fn is_secret_path(path: &[String]) -> bool {
    path.iter().any(|t| {
        let t = t.as_str();
        matches!(
            t,
            "keys"
                | "secret"
                | "credential"
                | "credentials"
                | "password"
                | "token"
                | "sas"
                | "connection-string"
                | "list-keys"
                | "get-credentials"
                | "show-connection-string"
                | "list-connection-strings"
                | "generate-sas"
                | "get-access-token"
                | "list-publishing-profiles"
                | "list-publishing-credentials"
                | "list-secrets"
                | "regenerate-key"
                | "list-credentials"
                | "get-keys"
                | "show-keys"
                | "keys-list"
        ) || t.ends_with("-sas")
            || t.contains("secret")
            || t.contains("credential")
            || t.contains("password")
            || t.contains("token")
    })
}

/// Verbs that only read.
fn is_read_verb(v: &str) -> bool {
    matches!(
        v,
        "list"
            | "show"
            | "get"
            | "check"
            | "exists"
            | "wait"
            | "show-status"
            | "list-effective-nsg"
            | "show-effective-route-table"
            | "show-next-hop"
            | "show-topology"
            | "list-ip-addresses"
            | "get-instance-view"
            | "show-security-group-view"
            | "test-ip-flow"
            | "query"
            | "list-sizes"
            | "list-skus"
            | "list-usage"
            | "list-locations"
    ) || ((v.starts_with("list-")
        || v.starts_with("show-")
        || v.starts_with("get-")
        || v.starts_with("check-"))
        && !v.contains("secret"))
}

fn is_option(t: &str) -> bool {
    t.len() > 1
        && t.starts_with('-')
        && t[1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '-')
}

/// The parsed command: group path, option values, stray tokens.
struct AzCommand {
    path: Vec<String>,
    opts: BTreeMap<String, Vec<String>>,
    stray: Vec<String>,
}

fn canonical(opt: &str) -> String {
    let o = opt.split('=').next().unwrap_or(opt);
    match o {
        "-g" => "--resource-group",
        "-n" => "--name",
        "-o" => "--output",
        "-f" => "--file",
        "-m" => "--method",
        "-u" => "--uri",
        "--url" => "--uri",
        "-b" => "--body",
        "-p" => "--password",
        "-d" => "--show-details",
        "-h" => "--help",
        "-y" => "--yes",
        "-t" => "--tenant",
        other => other,
    }
    .to_string()
}

fn parse(args: &[String]) -> AzCommand {
    let mut cmd = AzCommand {
        path: Vec::new(),
        opts: BTreeMap::new(),
        stray: Vec::new(),
    };
    let mut i = 0;
    let mut in_path = true;
    while i < args.len() {
        let t = &args[i];
        i += 1;
        if !is_option(t) {
            if in_path {
                cmd.path.push(t.clone());
            } else {
                cmd.stray.push(t.clone());
            }
            continue;
        }
        // Global options may come before the command path.
        let name = canonical(t);
        if !cmd.path.is_empty() {
            in_path = false;
        }
        let inline = t.split_once('=').map(|(_, v)| v.to_string());
        let entry = cmd.opts.entry(name.clone()).or_default();
        if let Some(v) = inline {
            entry.push(v);
            continue;
        }
        if FLAGS.contains(&name.as_str()) {
            continue;
        }
        if MULTI.contains(&name.as_str()) {
            while i < args.len() && !is_option(&args[i]) {
                entry.push(args[i].clone());
                i += 1;
            }
            continue;
        }
        if let Some(v) = args.get(i) {
            if !is_option(v) || v.parse::<f64>().is_ok() {
                entry.push(v.clone());
                i += 1;
            }
        }
    }
    cmd
}

/// Classifies `az` with its arguments (after the program name).
pub(crate) fn classify(w: &mut Walker, args: &[Arg]) -> Classification {
    if let Some(d) = args.iter().find(|a| !a.is_static) {
        return risky(
            Tier::Unknown,
            format!("`az` with an argument computed at run time (`{}`)", d.text),
        );
    }
    let texts: Vec<String> = args.iter().map(|a| a.text.clone()).collect();
    let cmd = parse(&texts);
    if let Some(s) = cmd.stray.first() {
        return risky(
            Tier::Unknown,
            format!(
                "`az` argument `{s}` is not an option value (the command path must come first)"
            ),
        );
    }
    if cmd.opts.contains_key("--debug") {
        return risky(
            Tier::Secret,
            "`az --debug` logs HTTP requests, which may include access tokens",
        );
    }
    if let Some((o, _)) = cmd
        .opts
        .iter()
        .find(|(_, vs)| vs.iter().any(|v| v.starts_with('@')))
    {
        return risky(
            Tier::Secret,
            format!("`az {o} @file` reads a local file into the request"),
        );
    }
    let Some(group) = cmd.path.first() else {
        if cmd.opts.contains_key("--version") || cmd.opts.contains_key("--help") {
            return safe(Tier::ReadOnly, "`az --version/--help`");
        }
        return bad_option("az", &texts.join(" "));
    };
    if !GROUPS.contains(&group.as_str()) {
        return risky(
            Tier::Unknown,
            format!("`az {group}` is not a known command group"),
        );
    }
    if cmd.opts.contains_key("--help") {
        return safe(Tier::ReadOnly, "`az … --help` prints help");
    }
    match group.as_str() {
        "version" => return safe(Tier::ReadOnly, "`az version`"),
        "login" => return login(&cmd),
        "rest" => return rest(w, &cmd),
        "logout" | "extension" | "config" | "interactive" | "find" | "upgrade" | "configure"
        | "feedback" | "self-test" | "cache" | "init" | "survey" | "bicep" => {
            return risky(
                Tier::HostChange,
                format!("`az {group}` changes the local CLI or is not analysed"),
            )
        }
        _ => {}
    }
    if is_secret_path(&cmd.path) {
        return risky(
            Tier::Secret,
            format!(
                "`az {}` reveals or creates secrets (keys, tokens, SAS)",
                cmd.path.join(" ")
            ),
        );
    }
    let verb = cmd.path.last().map(String::as_str).unwrap_or("");
    let p: Vec<&str> = cmd.path.iter().map(String::as_str).collect();
    if p.ends_with(&["run-command", "invoke"]) {
        return run_command(w, &cmd);
    }
    if verb == "download" || verb == "download-batch" {
        return download(w, &cmd);
    }
    if cmd.opts.contains_key("--output-file") {
        return risky(Tier::HostChange, "`az --output-file` writes a file");
    }
    if cmd.path.len() >= 2 && is_read_verb(verb) {
        return safe(
            Tier::CloudRead,
            format!("`az {}` reads cloud state", cmd.path.join(" ")),
        );
    }
    if cmd.path == ["account", "show"] || cmd.path == ["account", "list"] {
        return safe(Tier::CloudRead, "`az account` read");
    }
    risky(
        Tier::CloudChange,
        format!("`az {}` may change cloud resources", cmd.path.join(" ")),
    )
}

fn login(cmd: &AzCommand) -> Classification {
    for secret in ["--password", "--federated-token", "--client-secret"] {
        if cmd.opts.contains_key(secret) {
            return risky(
                Tier::Secret,
                format!("`az login {secret}` puts a secret on the command line"),
            );
        }
    }
    safe(
        Tier::CloudRead,
        "`az login` signs the CLI in (no secret on the command line)",
    )
}

fn rest(w: &Walker, cmd: &AzCommand) -> Classification {
    let method = cmd
        .opts
        .get("--method")
        .and_then(|v| v.last())
        .map(|m| m.to_ascii_lowercase())
        .unwrap_or_else(|| "get".to_string());
    if method != "get" && method != "head" {
        return risky(
            Tier::CloudChange,
            format!("`az rest --method {method}` may change cloud resources"),
        );
    }
    if cmd.opts.contains_key("--body") {
        return risky(Tier::CloudChange, "`az rest --body` sends a request body");
    }
    if cmd.opts.contains_key("--resource") {
        return risky(
            Tier::Secret,
            "`az rest --resource` requests a token for another resource",
        );
    }
    let uri = cmd
        .opts
        .get("--uri")
        .and_then(|v| v.last())
        .cloned()
        .unwrap_or_default();
    let lower = uri.to_ascii_lowercase();
    if !(lower.starts_with('/') || lower.starts_with("https://management.azure.com/")) {
        return risky(Tier::Secret, format!("`az rest` to `{uri}` (only Azure Resource Manager URIs are SAFE: the CLI attaches a token)"));
    }
    let mut v = safe(Tier::CloudRead, "`az rest` GET on Azure Resource Manager");
    if let Some(f) = cmd.opts.get("--output-file").and_then(|x| x.last()) {
        v = worst(v, file_write(w, f));
    }
    v
}

fn file_write(w: &Walker, f: &str) -> Classification {
    match write_verdict(f, w.ctx().output_dir.as_deref()) {
        WriteVerdict::InOutputDir => safe(
            Tier::Capture,
            format!("downloads into `{f}` inside the output directory"),
        ),
        _ => risky(
            Tier::HostChange,
            format!("writes `{f}` outside the output directory"),
        ),
    }
}

fn download(w: &Walker, cmd: &AzCommand) -> Classification {
    let files: Vec<&String> = ["--file", "--destination", "--output-file"]
        .iter()
        .filter_map(|k| cmd.opts.get(*k))
        .flatten()
        .collect();
    if files.is_empty() {
        return risky(
            Tier::HostChange,
            "`az … download` without a destination file in the output directory",
        );
    }
    files.into_iter().fold(
        safe(Tier::Capture, "download into the output directory"),
        |acc, f| worst(acc, file_write(w, f)),
    )
}

fn run_command(w: &mut Walker, cmd: &AzCommand) -> Classification {
    let id = cmd
        .opts
        .get("--command-id")
        .and_then(|v| v.last())
        .cloned()
        .unwrap_or_default();
    if !id.eq_ignore_ascii_case("RunShellScript") {
        return risky(Tier::CloudChange, format!("`az vm run-command invoke --command-id {id}` is not a shell script that can be analysed"));
    }
    let Some(lines) = cmd.opts.get("--scripts").filter(|l| !l.is_empty()) else {
        return risky(
            Tier::CloudChange,
            "`az vm run-command invoke` without --scripts",
        );
    };
    // Each value is one line of the script.
    let script = lines.join("\n");
    let inner = w.script(&script);
    if inner.classification == crate::types::Class::Safe {
        safe(
            inner.tier,
            format!("run-command script is SAFE: {}", inner.reason),
        )
    } else {
        inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Vec<String> {
        v.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn multi_value_options_do_not_hide_the_verb() {
        let c = parse(&s("network nsg rule create -g rg --nsg-name n -n r --source-address-prefixes 1.2.3.4 5.6.7.8 --priority 100"));
        assert_eq!(c.path, vec!["network", "nsg", "rule", "create"]);
        assert_eq!(
            c.opts["--source-address-prefixes"],
            vec!["1.2.3.4", "5.6.7.8"]
        );
        assert!(c.stray.is_empty());
        let c = parse(&s("network nic list-effective-nsg -g rg -n nic extra"));
        assert_eq!(c.stray, vec!["extra"]);
    }
}
