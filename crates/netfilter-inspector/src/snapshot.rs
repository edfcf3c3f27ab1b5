//! Snapshots: the model plus what was inferred from it (frameworks, blocking rules, a
//! per-family summary), stored as `fw_<id>_snapshot.json` (or `_baseline.json`) with a
//! `.sha256` sidecar through cloud-provider's artifact store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Backend, Family, IptablesVariant, Policy, Ruleset, Table, Target};

/// The artifact kind of an ordinary snapshot.
pub const KIND_SNAPSHOT: &str = "snapshot";
/// The artifact kind of a snapshot stored with `--is-baseline`.
pub const KIND_BASELINE: &str = "baseline";
/// The tool name in artifact headers.
pub const TOOL: &str = "netfilter-inspector";

/// One input file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Path or label.
    pub path: String,
    /// Format used.
    pub format: String,
    /// SHA-256 of the raw input.
    pub sha256: String,
}

/// A DROP/REJECT rule or a restrictive policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockingRule {
    /// Family.
    pub family: Family,
    /// Table.
    pub table: String,
    /// Back end.
    pub backend: Backend,
    /// For an iptables table: `legacy` or `nft` when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<IptablesVariant>,
    /// Chain.
    pub chain: String,
    /// 1-based position; `None` for a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// `DROP`, `REJECT`, `POLICY DROP`, `VMAP DROP`.
    pub action: String,
    /// What it matches (the normalised rule text, or `everything that reaches the end`).
    pub matches: String,
}

/// Counts for one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FamilyCounts {
    /// Tables.
    pub tables: usize,
    /// Chains.
    pub chains: usize,
    /// Rules.
    pub rules: usize,
    /// nft sets and maps.
    pub sets: usize,
}

/// The summary block.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Per family (`ip`, `ip6`, `inet`, …).
    pub families: BTreeMap<String, FamilyCounts>,
    /// qdiscs.
    pub qdiscs: usize,
    /// Impairing qdiscs (rate limit, delay, loss, corruption).
    pub impairing_qdiscs: usize,
    /// tc filters.
    pub filters: usize,
    /// Blocking rules and policies.
    pub blocking_rules: usize,
    /// Parser warnings.
    pub warnings: usize,
}

/// The snapshot body (the artifact header comes from cloud-provider).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Host label (`--host`, or the local host name).
    pub host: String,
    /// Whether it was stored as a baseline.
    #[serde(default)]
    pub is_baseline: bool,
    /// Inputs.
    pub sources: Vec<SourceInfo>,
    /// Frameworks seen or inferred (iptables-legacy, iptables-nft, nftables, firewalld, ufw,
    /// fail2ban, docker, kube-proxy, cni, tc).
    pub frameworks: Vec<String>,
    /// Everything parsed.
    pub ruleset: Ruleset,
    /// DROP/REJECT rules and restrictive policies.
    pub blocking_rules: Vec<BlockingRule>,
    /// Counts.
    pub summary: Summary,
}

/// Frameworks seen in the input or inferred from chain and table names.
pub fn frameworks(rs: &Ruleset) -> Vec<String> {
    let mut out: Vec<String> = rs.producers.clone();
    let mut add = |s: &str| {
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    };
    // Every back end that holds tables (legacy and nft-backed iptables, native nftables).
    for t in &rs.tables {
        if t.backend == Backend::Nftables || t.variant.is_some() {
            add(t.backend_label());
        }
    }
    let names = || {
        rs.tables
            .iter()
            .flat_map(|t| t.chains.iter().map(move |c| (t, c.name.as_str())))
    };
    if rs.tables.iter().any(|t| t.name == "firewalld")
        || names().any(|(_, n)| {
            n.starts_with("IN_public") || n.starts_with("FWDI_") || n.starts_with("filter_IN_")
        })
    {
        add("firewalld");
    }
    if names().any(|(_, n)| n.starts_with("ufw-") || n.starts_with("ufw6-")) {
        add("ufw");
    }
    if names().any(|(_, n)| n.starts_with("f2b-"))
        || rs.tables.iter().any(|t| t.name == "f2b-table")
    {
        add("fail2ban");
    }
    if names().any(|(_, n)| n == "DOCKER" || n.starts_with("DOCKER-")) {
        add("docker");
    }
    if names().any(|(_, n)| n.starts_with("KUBE-"))
        || rs.tables.iter().any(|t| t.name == "kube-proxy")
    {
        add("kube-proxy");
    }
    if names().any(|(_, n)| {
        n.starts_with("CNI-")
            || n.starts_with("cali-")
            || n.starts_with("CILIUM_")
            || n.starts_with("FLANNEL")
            || n.starts_with("WEAVE")
    }) {
        add("cni");
    }
    if !rs.qdiscs.is_empty() || !rs.filters.is_empty() {
        add("tc");
    }
    out
}

/// DROP/REJECT rules, drop verdict-map entries and DROP policies.
pub fn blocking_rules(rs: &Ruleset) -> Vec<BlockingRule> {
    let mut out = Vec::new();
    for t in &rs.tables {
        for c in &t.chains {
            for r in &c.rules {
                let action = match &r.target {
                    Target::Drop => Some("DROP".to_string()),
                    Target::Reject { with } => Some(match with {
                        Some(w) => format!("REJECT ({w})"),
                        None => "REJECT".into(),
                    }),
                    Target::VerdictMap { map, entries, .. } => {
                        let dropping = vmap_entries(t, map.as_deref(), entries)
                            .iter()
                            .any(|e| e.value.as_deref() == Some("drop"));
                        dropping.then(|| "VMAP DROP".to_string())
                    }
                    _ => None,
                };
                if let Some(action) = action {
                    out.push(BlockingRule {
                        family: t.family,
                        table: t.name.clone(),
                        backend: t.backend,
                        variant: t.variant,
                        chain: c.name.clone(),
                        position: Some(r.position),
                        action,
                        matches: r.text.clone(),
                    });
                }
            }
            if let Some(b) = &c.base {
                if b.policy == Policy::Drop {
                    out.push(BlockingRule {
                        family: t.family,
                        table: t.name.clone(),
                        backend: t.backend,
                        variant: t.variant,
                        chain: c.name.clone(),
                        position: None,
                        action: "POLICY DROP".into(),
                        matches: format!(
                            "every packet that reaches the end of {} ({} hook)",
                            c.name, b.hook
                        ),
                    });
                }
            }
        }
    }
    out
}

/// The elements of a verdict map: inline, or the named map of `t`.
pub fn vmap_entries(
    t: &Table,
    map: Option<&str>,
    inline: &[crate::model::SetElement],
) -> Vec<crate::model::SetElement> {
    match map {
        Some(name) => t.set(name).map(|s| s.elements.clone()).unwrap_or_default(),
        None => inline.to_vec(),
    }
}

/// Counts per family and overall.
pub fn summary(rs: &Ruleset, blocking: usize) -> Summary {
    let mut s = Summary::default();
    for t in &rs.tables {
        let e = s.families.entry(t.family.as_str().to_string()).or_default();
        e.tables += 1;
        e.chains += t.chains.len();
        e.rules += t.chains.iter().map(|c| c.rules.len()).sum::<usize>();
        e.sets += t.sets.len();
    }
    s.qdiscs = rs.qdiscs.len();
    s.impairing_qdiscs = rs.qdiscs.iter().filter(|q| q.is_impairing()).count();
    s.filters = rs.filters.len();
    s.blocking_rules = blocking;
    s.warnings = rs.warnings.len();
    s
}

/// Builds a snapshot from a parsed ruleset.
pub fn build(
    host: &str,
    sources: Vec<SourceInfo>,
    ruleset: Ruleset,
    is_baseline: bool,
) -> Snapshot {
    let blocking = blocking_rules(&ruleset);
    let summary = summary(&ruleset, blocking.len());
    Snapshot {
        host: host.to_string(),
        is_baseline,
        sources,
        frameworks: frameworks(&ruleset),
        blocking_rules: blocking,
        summary,
        ruleset,
    }
}

/// What `diff`, `compare` and `check` read from a stored snapshot: its header's tool, kind and
/// session id, and the ruleset. Deserialising only these skips the derived parts
/// (blocking rules, summary), which is most of the load time of a large snapshot.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredRuleset {
    /// Header `tool`.
    pub tool: String,
    /// Header `kind`.
    pub kind: String,
    /// Header `session_id`.
    pub session_id: String,
    /// The ruleset.
    pub ruleset: Ruleset,
}

/// Reads the ruleset of a snapshot artifact's (already verified) bytes. The error names
/// what is wrong: not JSON of this shape, another tool, or another kind.
pub fn ruleset_from_artifact(bytes: &[u8]) -> Result<StoredRuleset, String> {
    let s: StoredRuleset = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if s.tool != TOOL {
        return Err(format!("it was written by {:?}, not {TOOL}", s.tool));
    }
    if s.kind != KIND_SNAPSHOT && s.kind != KIND_BASELINE {
        return Err(format!(
            "it is a {:?} artifact, not a snapshot or baseline",
            s.kind
        ));
    }
    Ok(s)
}
