//! Semantic, order-aware diff of two rulesets.
//!
//! Rules are aligned per chain with a longest-common-subsequence on their normalised text,
//! so one inserted rule is reported once with its position, not as a shift of every rule
//! after it. Counters never count. Ephemeral chains (kube-proxy service/endpoint chains,
//! CNI chains by default) are suppressed and the suppression is counted.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::model::{Chain, Cond, Policy, Qdisc, Rule, Ruleset, Table, Target, TcFilter};
use crate::snapshot::vmap_entries;

/// Default patterns of ephemeral chains (`*` matches any run of characters).
pub const DEFAULT_SUPPRESS: &[&str] = &[
    "KUBE-SEP-*",
    "KUBE-SVC-*",
    "KUBE-FW-*",
    "KUBE-XLB-*",
    "KUBE-EXT-*",
    "KUBE-SVL-*",
    "CNI-*",
    "cni-*",
];

/// Diff options.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Chain-name patterns whose changes are suppressed.
    pub suppress: Vec<String>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            suppress: DEFAULT_SUPPRESS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Glob match with `*` only.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(idx) => rest = &rest[idx + p.len()..],
                None => return false,
            }
        }
    }
    true
}

/// How much a change matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Can block or degrade traffic.
    Critical,
    /// Everything else.
    Informational,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `table_added`, `table_removed`, `chain_added`, `chain_removed`, `policy_changed`,
    /// `rule_added`, `rule_removed`, `rule_moved`, `set_added`, `set_removed`,
    /// `set_elements_changed`, `qdisc_added`, `qdisc_removed`, `qdisc_changed`,
    /// `filter_added`, `filter_removed`.
    pub change: String,
    /// Severity.
    pub severity: Severity,
    /// Table (`filter`), empty for tc.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table: String,
    /// Back end of the table (`iptables-legacy`, `iptables-nft`, `iptables`, `nftables`);
    /// absent for tc. Two tables of the same name from different back ends stay apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Chain, set, or device.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object: String,
    /// Position in the new chain (added/moved) or the old chain (removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// Old position of a moved rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_position: Option<usize>,
    /// Rule text, policy change, element list or qdisc options.
    pub detail: String,
    /// Why it is critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Changes of one family (`ip`, `ip6`, `inet`, … or `tc`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FamilySection {
    /// Changes in order.
    pub changes: Vec<Change>,
    /// Critical changes.
    pub critical: usize,
}

/// What was suppressed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Suppressed {
    /// Patterns in force.
    pub patterns: Vec<String>,
    /// Changes not reported because they concern ephemeral chains.
    pub changes: usize,
    /// The chains concerned.
    pub chains: Vec<String>,
}

/// The diff result body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffReport {
    /// Any reported change.
    pub drift_detected: bool,
    /// Any critical change.
    pub has_critical_changes: bool,
    /// Label of the old side (session id or path).
    pub old: String,
    /// Label of the new side.
    pub new: String,
    /// Per family (`ip`, `ip6`, `inet`, …, and `tc` for traffic control).
    pub families: BTreeMap<String, FamilySection>,
    /// Suppression.
    pub suppressed: Suppressed,
    /// Counters are never drift.
    pub counters_ignored: bool,
}

impl DiffReport {
    /// Total reported changes.
    pub fn change_count(&self) -> usize {
        self.families.values().map(|f| f.changes.len()).sum()
    }
}

/// Pairs old and new tables: by (family, name, back end); then an iptables table whose back
/// end is unknown (a snapshot taken before back ends were told apart, or a save file without
/// its header) pairs with the one iptables table of the same family and name left unpaired
/// on the other side. Returns `(old index, new index)` pairs, unpaired sides as `None`.
fn pair_tables(old: &[Table], new: &[Table]) -> Vec<(Option<usize>, Option<usize>)> {
    let key = |t: &Table| (t.family, t.name.clone(), t.backend_label());
    let mut old_by_key: HashMap<_, usize> = HashMap::new();
    for (i, t) in old.iter().enumerate() {
        old_by_key.entry(key(t)).or_insert(i);
    }
    let mut old_used = vec![false; old.len()];
    let mut new_pair: Vec<Option<usize>> = vec![None; new.len()];
    for (j, t) in new.iter().enumerate() {
        if let Some(&i) = old_by_key.get(&key(t)) {
            if !old_used[i] {
                old_used[i] = true;
                new_pair[j] = Some(i);
            }
        }
    }
    for (j, nt) in new.iter().enumerate() {
        if new_pair[j].is_some() || nt.backend != crate::model::Backend::Iptables {
            continue;
        }
        let candidates: Vec<usize> = (0..old.len())
            .filter(|&i| {
                let ot = &old[i];
                !old_used[i]
                    && ot.backend == nt.backend
                    && ot.family == nt.family
                    && ot.name == nt.name
                    && (ot.variant.is_none() || nt.variant.is_none())
            })
            .collect();
        let same_new = new
            .iter()
            .enumerate()
            .filter(|(k, t)| {
                new_pair[*k].is_none()
                    && t.backend == nt.backend
                    && t.family == nt.family
                    && t.name == nt.name
            })
            .count();
        if candidates.len() == 1 && same_new == 1 {
            old_used[candidates[0]] = true;
            new_pair[j] = Some(candidates[0]);
        }
    }
    let mut pairs: Vec<(Option<usize>, Option<usize>)> = new_pair
        .iter()
        .enumerate()
        .map(|(j, i)| (*i, Some(j)))
        .collect();
    pairs.extend(
        old_used
            .iter()
            .enumerate()
            .filter(|(_, u)| !**u)
            .map(|(i, _)| (Some(i), None)),
    );
    pairs
}

/// Whether a chain (transitively, depth-limited) contains a DROP/REJECT.
fn chain_drops(t: &Table, name: &str, depth: usize, seen: &mut HashSet<String>) -> bool {
    if depth > 16 || !seen.insert(name.to_string()) {
        return false;
    }
    let Some(c) = t.chain(name) else { return false };
    c.rules.iter().any(|r| rule_blocks(t, r, depth + 1, seen))
}

fn rule_blocks(t: &Table, r: &Rule, depth: usize, seen: &mut HashSet<String>) -> bool {
    match &r.target {
        Target::Drop | Target::Reject { .. } => true,
        Target::Jump { chain } | Target::Goto { chain } => chain_drops(t, chain, depth, seen),
        Target::VerdictMap { map, entries, .. } => vmap_entries(t, map.as_deref(), entries)
            .iter()
            .any(|e| match e.value.as_deref() {
                Some("drop") => true,
                Some(v) => v
                    .strip_prefix("jump ")
                    .or_else(|| v.strip_prefix("goto "))
                    .is_some_and(|c| chain_drops(t, c, depth, seen)),
                None => false,
            }),
        _ => false,
    }
}

fn blocking_reason(t: &Table, r: &Rule) -> Option<String> {
    match &r.target {
        Target::Drop => Some("a DROP rule".into()),
        Target::Reject { .. } => Some("a REJECT rule".into()),
        Target::Jump { chain } | Target::Goto { chain } => {
            chain_drops(t, chain, 0, &mut HashSet::new())
                .then(|| format!("a jump to chain {chain}, which drops or rejects"))
        }
        Target::VerdictMap { .. } => rule_blocks(t, r, 0, &mut HashSet::new())
            .then(|| "a verdict map with drop entries".into()),
        _ => None,
    }
}

/// Indices (old, new) of the longest common subsequence of two text sequences.
pub fn lcs_pairs(a: &[&str], b: &[&str]) -> Vec<(usize, usize)> {
    let mut pre = 0;
    while pre < a.len() && pre < b.len() && a[pre] == b[pre] {
        pre += 1;
    }
    let mut suf = 0;
    while suf < a.len() - pre && suf < b.len() - pre && a[a.len() - 1 - suf] == b[b.len() - 1 - suf]
    {
        suf += 1;
    }
    let mut pairs: Vec<(usize, usize)> = (0..pre).map(|i| (i, i)).collect();
    let am = &a[pre..a.len() - suf];
    let bm = &b[pre..b.len() - suf];
    let (n, m) = (am.len(), bm.len());
    if n > 0 && m > 0 {
        if n.saturating_mul(m) <= 16_000_000 {
            // Classic DP on the differing middle.
            let w = m + 1;
            let mut dp = vec![0u32; (n + 1) * w];
            for i in (0..n).rev() {
                for j in (0..m).rev() {
                    dp[i * w + j] = if am[i] == bm[j] {
                        dp[(i + 1) * w + j + 1] + 1
                    } else {
                        dp[(i + 1) * w + j].max(dp[i * w + j + 1])
                    };
                }
            }
            let (mut i, mut j) = (0, 0);
            while i < n && j < m {
                if am[i] == bm[j] {
                    pairs.push((pre + i, pre + j));
                    i += 1;
                    j += 1;
                } else if dp[(i + 1) * w + j] >= dp[i * w + j + 1] {
                    i += 1;
                } else {
                    j += 1;
                }
            }
        } else {
            // Very large middles: greedy in-order matching through an index of the new side.
            let mut idx: HashMap<&str, Vec<usize>> = HashMap::new();
            for (j, t) in bm.iter().enumerate().rev() {
                idx.entry(t).or_default().push(j);
            }
            let mut last = 0usize;
            for (i, t) in am.iter().enumerate() {
                if let Some(v) = idx.get_mut(t) {
                    while let Some(&j) = v.last() {
                        if j < last {
                            v.pop();
                        } else {
                            break;
                        }
                    }
                    if let Some(j) = v.pop() {
                        pairs.push((pre + i, pre + j));
                        last = j + 1;
                    }
                }
            }
        }
    }
    for k in 0..suf {
        pairs.push((a.len() - suf + k, b.len() - suf + k));
    }
    pairs
}

struct Ctx<'a> {
    opts: &'a DiffOptions,
    suppressed: Suppressed,
}

impl Ctx<'_> {
    fn is_ephemeral(&self, chain: &str) -> bool {
        self.opts.suppress.iter().any(|p| glob(p, chain))
    }

    fn suppress(&mut self, chain: &str) {
        self.suppressed.changes += 1;
        if !self.suppressed.chains.iter().any(|c| c == chain) && self.suppressed.chains.len() < 1000
        {
            self.suppressed.chains.push(chain.to_string());
        }
    }
}

fn rule_targets_ephemeral(ctx: &Ctx, r: &Rule) -> Option<String> {
    match &r.target {
        Target::Jump { chain } | Target::Goto { chain } if ctx.is_ephemeral(chain) => {
            Some(chain.clone())
        }
        _ => None,
    }
}

fn push(sec: &mut FamilySection, c: Change) {
    if c.severity == Severity::Critical {
        sec.critical += 1;
    }
    sec.changes.push(c);
}

fn chain_blocking(t: &Table, c: &Chain) -> Option<String> {
    if c.base.as_ref().is_some_and(|b| b.policy == Policy::Drop) {
        return Some("policy DROP".into());
    }
    c.rules
        .iter()
        .find_map(|r| blocking_reason(t, r))
        .map(|r| format!("contains {r}"))
}

fn diff_chain(
    ctx: &mut Ctx,
    sec: &mut FamilySection,
    ot: &Table,
    nt: &Table,
    oc: &Chain,
    nc: &Chain,
) {
    let tname = &nt.name;
    if let (Some(ob), Some(nb)) = (&oc.base, &nc.base) {
        if ob.policy != nb.policy {
            let critical = ob.policy == Policy::Drop || nb.policy == Policy::Drop;
            push(
                sec,
                Change {
                    change: "policy_changed".into(),
                    backend: None,
                    severity: if critical {
                        Severity::Critical
                    } else {
                        Severity::Informational
                    },
                    table: tname.clone(),
                    object: nc.name.clone(),
                    position: None,
                    old_position: None,
                    detail: format!("{} -> {}", ob.policy.as_str(), nb.policy.as_str()),
                    reason: critical.then(|| "a policy changed to or from DROP".into()),
                },
            );
        }
    }
    let a: Vec<&str> = oc.rules.iter().map(|r| r.text.as_str()).collect();
    let b: Vec<&str> = nc.rules.iter().map(|r| r.text.as_str()).collect();
    let pairs = lcs_pairs(&a, &b);
    let mut old_kept = vec![false; a.len()];
    let mut new_kept = vec![false; b.len()];
    for (i, j) in &pairs {
        old_kept[*i] = true;
        new_kept[*j] = true;
    }
    let removed: Vec<usize> = (0..a.len()).filter(|i| !old_kept[*i]).collect();
    let added: Vec<usize> = (0..b.len()).filter(|j| !new_kept[*j]).collect();
    // A rule removed in one place and added in another is a move.
    let mut added_by_text: HashMap<&str, Vec<usize>> = HashMap::new();
    for &j in added.iter().rev() {
        added_by_text.entry(b[j]).or_default().push(j);
    }
    let mut moved_new = HashSet::new();
    let mut moved: Vec<(usize, usize)> = Vec::new();
    let mut really_removed = Vec::new();
    for &i in &removed {
        match added_by_text.get_mut(a[i]).and_then(|v| v.pop()) {
            Some(j) => {
                moved_new.insert(j);
                moved.push((i, j));
            }
            None => really_removed.push(i),
        }
    }
    for i in really_removed {
        let r = &oc.rules[i];
        if let Some(eph) = rule_targets_ephemeral(ctx, r) {
            ctx.suppress(&eph);
            continue;
        }
        let reason = blocking_reason(ot, r).map(|x| format!("{x} was removed"));
        push(
            sec,
            Change {
                change: "rule_removed".into(),
                backend: None,
                severity: sev(&reason),
                table: tname.clone(),
                object: nc.name.clone(),
                position: Some(r.position),
                old_position: None,
                detail: r.text.clone(),
                reason,
            },
        );
    }
    for &j in &added {
        if moved_new.contains(&j) {
            continue;
        }
        let r = &nc.rules[j];
        if let Some(eph) = rule_targets_ephemeral(ctx, r) {
            ctx.suppress(&eph);
            continue;
        }
        let reason = blocking_reason(nt, r).map(|x| format!("{x} was added"));
        push(
            sec,
            Change {
                change: "rule_added".into(),
                backend: None,
                severity: sev(&reason),
                table: tname.clone(),
                object: nc.name.clone(),
                position: Some(r.position),
                old_position: None,
                detail: r.text.clone(),
                reason,
            },
        );
    }
    for (i, j) in moved {
        let r = &nc.rules[j];
        let reason = blocking_reason(nt, r).map(|x| format!("{x} changed place; order decides"));
        push(
            sec,
            Change {
                change: "rule_moved".into(),
                backend: None,
                severity: sev(&reason),
                table: tname.clone(),
                object: nc.name.clone(),
                position: Some(r.position),
                old_position: Some(oc.rules[i].position),
                detail: r.text.clone(),
                reason,
            },
        );
    }
}

fn sev(reason: &Option<String>) -> Severity {
    if reason.is_some() {
        Severity::Critical
    } else {
        Severity::Informational
    }
}

fn set_used_by_blocking(t: &Table, set: &str) -> bool {
    t.chains.iter().flat_map(|c| &c.rules).any(|r| {
        let uses = r
            .matches
            .iter()
            .any(|m| matches!(&m.cond, Cond::SetLookup { set: s, .. } if s == set))
            || matches!(&r.target, Target::VerdictMap { map: Some(m), .. } if m == set);
        uses && rule_blocks(t, r, 0, &mut HashSet::new())
    })
}

fn diff_table(ctx: &mut Ctx, sec: &mut FamilySection, ot: &Table, nt: &Table) {
    let old_idx: HashMap<&str, &Chain> = ot.chains.iter().map(|c| (c.name.as_str(), c)).collect();
    let new_idx: HashSet<&str> = nt.chains.iter().map(|c| c.name.as_str()).collect();
    for nc in &nt.chains {
        match old_idx.get(nc.name.as_str()).copied() {
            Some(oc) => {
                if ctx.is_ephemeral(&nc.name) {
                    if oc
                        .rules
                        .iter()
                        .map(|r| &r.text)
                        .ne(nc.rules.iter().map(|r| &r.text))
                    {
                        ctx.suppress(&nc.name);
                    }
                    continue;
                }
                diff_chain(ctx, sec, ot, nt, oc, nc)
            }
            None => {
                if ctx.is_ephemeral(&nc.name) {
                    ctx.suppress(&nc.name);
                    continue;
                }
                let reason = chain_blocking(nt, nc).map(|r| format!("added chain {r}"));
                push(
                    sec,
                    Change {
                        change: "chain_added".into(),
                        backend: None,
                        severity: sev(&reason),
                        table: nt.name.clone(),
                        object: nc.name.clone(),
                        position: None,
                        old_position: None,
                        detail: chain_detail(nc),
                        reason,
                    },
                );
            }
        }
    }
    for oc in &ot.chains {
        if !new_idx.contains(oc.name.as_str()) {
            if ctx.is_ephemeral(&oc.name) {
                ctx.suppress(&oc.name);
                continue;
            }
            let reason = chain_blocking(ot, oc).map(|r| format!("removed chain {r}"));
            push(
                sec,
                Change {
                    change: "chain_removed".into(),
                    backend: None,
                    severity: sev(&reason),
                    table: ot.name.clone(),
                    object: oc.name.clone(),
                    position: None,
                    old_position: None,
                    detail: chain_detail(oc),
                    reason,
                },
            );
        }
    }
    for ns in &nt.sets {
        let critical_new = set_used_by_blocking(nt, &ns.name);
        match ot.set(&ns.name) {
            None => push(
                sec,
                Change {
                    change: "set_added".into(),
                    backend: None,
                    severity: if critical_new {
                        Severity::Critical
                    } else {
                        Severity::Informational
                    },
                    table: nt.name.clone(),
                    object: ns.name.clone(),
                    position: None,
                    old_position: None,
                    detail: format!(
                        "{} {} with {} elements",
                        ns.kind,
                        ns.key_type,
                        ns.elements.len()
                    ),
                    reason: critical_new.then(|| "a set used by a blocking rule".into()),
                },
            ),
            Some(os) => {
                let old: HashSet<_> = os.elements.iter().collect();
                let new: HashSet<_> = ns.elements.iter().collect();
                let plus: Vec<String> = ns
                    .elements
                    .iter()
                    .filter(|e| !old.contains(e))
                    .map(elem_text)
                    .collect();
                let minus: Vec<String> = os
                    .elements
                    .iter()
                    .filter(|e| !new.contains(e))
                    .map(elem_text)
                    .collect();
                if !plus.is_empty() || !minus.is_empty() {
                    push(
                        sec,
                        Change {
                            change: "set_elements_changed".into(),
                            backend: None,
                            severity: if critical_new {
                                Severity::Critical
                            } else {
                                Severity::Informational
                            },
                            table: nt.name.clone(),
                            object: ns.name.clone(),
                            position: None,
                            old_position: None,
                            detail: format!(
                                "added [{}] removed [{}]",
                                plus.join(", "),
                                minus.join(", ")
                            ),
                            reason: critical_new.then(|| {
                                "elements of a set used by a blocking rule changed".into()
                            }),
                        },
                    );
                }
            }
        }
    }
    for os in &ot.sets {
        if nt.set(&os.name).is_none() {
            let critical = set_used_by_blocking(ot, &os.name);
            push(
                sec,
                Change {
                    change: "set_removed".into(),
                    backend: None,
                    severity: if critical {
                        Severity::Critical
                    } else {
                        Severity::Informational
                    },
                    table: ot.name.clone(),
                    object: os.name.clone(),
                    position: None,
                    old_position: None,
                    detail: format!(
                        "{} {} with {} elements",
                        os.kind,
                        os.key_type,
                        os.elements.len()
                    ),
                    reason: critical.then(|| "a set used by a blocking rule".into()),
                },
            );
        }
    }
}

fn elem_text(e: &crate::model::SetElement) -> String {
    match &e.value {
        Some(v) => format!("{} : {v}", e.key),
        None => e.key.clone(),
    }
}

fn chain_detail(c: &Chain) -> String {
    let mut s = match &c.base {
        Some(b) => format!(
            "hook {} priority {} policy {}",
            b.hook,
            b.priority,
            b.policy.as_str()
        ),
        None => "user chain".into(),
    };
    s.push_str(&format!(" with {} rules", c.rules.len()));
    for r in c.rules.iter().take(20) {
        s.push_str(&format!("; {}: {}", r.position, r.text));
    }
    if c.rules.len() > 20 {
        s.push_str("; …");
    }
    s
}

fn qdisc_reason(q: &Qdisc) -> Option<String> {
    q.is_impairing().then(|| {
        let p = &q.params;
        let mut what = Vec::new();
        if p.rate_bps.is_some() {
            what.push("limits rate");
        }
        if p.delay_us.is_some_and(|d| d > 0) {
            what.push("adds delay");
        }
        if p.loss.is_some() {
            what.push("adds loss");
        }
        if p.corrupt_percent.is_some_and(|c| c > 0.0) {
            what.push("corrupts");
        }
        if p.duplicate_percent.is_some_and(|c| c > 0.0)
            || p.reorder_percent.is_some_and(|c| c > 0.0)
        {
            what.push("duplicates or reorders");
        }
        format!("a {} qdisc that {}", q.kind, what.join(", "))
    })
}

fn diff_tc(
    sec: &mut FamilySection,
    old: &[Qdisc],
    new: &[Qdisc],
    of: &[TcFilter],
    nf: &[TcFilter],
) {
    let qd = |q: &Qdisc| format!("dev {} {} {} {}", q.dev, q.parent, q.kind, q.options);
    for nq in new {
        match old.iter().find(|o| o.key() == nq.key()) {
            None => {
                let reason = qdisc_reason(nq).map(|r| format!("{r} was added"));
                push(
                    sec,
                    Change {
                        change: "qdisc_added".into(),
                        backend: None,
                        severity: sev(&reason),
                        table: String::new(),
                        object: nq.dev.clone(),
                        position: None,
                        old_position: None,
                        detail: qd(nq),
                        reason,
                    },
                );
            }
            Some(oq) if oq.params != nq.params || oq.options != nq.options => {
                let reason = qdisc_reason(nq)
                    .or_else(|| qdisc_reason(oq))
                    .map(|r| format!("{r} changed"));
                push(
                    sec,
                    Change {
                        change: "qdisc_changed".into(),
                        backend: None,
                        severity: sev(&reason),
                        table: String::new(),
                        object: nq.dev.clone(),
                        position: None,
                        old_position: None,
                        detail: format!("{} -> {}", qd(oq), qd(nq)),
                        reason,
                    },
                );
            }
            Some(_) => {}
        }
    }
    for oq in old {
        if !new.iter().any(|n| n.key() == oq.key()) {
            let reason = qdisc_reason(oq).map(|r| format!("{r} was removed"));
            push(
                sec,
                Change {
                    change: "qdisc_removed".into(),
                    backend: None,
                    severity: sev(&reason),
                    table: String::new(),
                    object: oq.dev.clone(),
                    position: None,
                    old_position: None,
                    detail: qd(oq),
                    reason,
                },
            );
        }
    }
    let fkey = |f: &TcFilter| format!("{} {}", f.dev.clone().unwrap_or_default(), f.text);
    let ok: HashSet<String> = of.iter().map(fkey).collect();
    let nk: HashSet<String> = nf.iter().map(fkey).collect();
    for f in nf.iter().filter(|f| !ok.contains(&fkey(f))) {
        push(
            sec,
            Change {
                change: "filter_added".into(),
                backend: None,
                severity: Severity::Informational,
                table: String::new(),
                object: f.dev.clone().unwrap_or_default(),
                position: None,
                old_position: None,
                detail: f.text.clone(),
                reason: None,
            },
        );
    }
    for f in of.iter().filter(|f| !nk.contains(&fkey(f))) {
        push(
            sec,
            Change {
                change: "filter_removed".into(),
                backend: None,
                severity: Severity::Informational,
                table: String::new(),
                object: f.dev.clone().unwrap_or_default(),
                position: None,
                old_position: None,
                detail: f.text.clone(),
                reason: None,
            },
        );
    }
}

/// Diffs two rulesets.
pub fn diff(
    old: &Ruleset,
    new: &Ruleset,
    old_label: &str,
    new_label: &str,
    opts: &DiffOptions,
) -> DiffReport {
    let mut ctx = Ctx {
        opts,
        suppressed: Suppressed {
            patterns: opts.suppress.clone(),
            ..Suppressed::default()
        },
    };
    let mut families: BTreeMap<String, FamilySection> = BTreeMap::new();
    for (oi, ni) in pair_tables(&old.tables, &new.tables) {
        let t = match (oi, ni) {
            (_, Some(j)) => &new.tables[j],
            (Some(i), None) => &old.tables[i],
            (None, None) => continue,
        };
        let sec = families.entry(t.family.as_str().to_string()).or_default();
        let first = sec.changes.len();
        match (oi.map(|i| &old.tables[i]), ni.map(|j| &new.tables[j])) {
            (Some(ot), Some(nt)) => diff_table(&mut ctx, sec, ot, nt),
            (None, Some(nt)) => {
                let reason = nt
                    .chains
                    .iter()
                    .find_map(|c| chain_blocking(nt, c))
                    .map(|r| format!("added table with a chain that {r}"));
                let rules: usize = nt.chains.iter().map(|c| c.rules.len()).sum();
                push(
                    sec,
                    Change {
                        change: "table_added".into(),
                        backend: None,
                        severity: sev(&reason),
                        table: nt.name.clone(),
                        object: String::new(),
                        position: None,
                        old_position: None,
                        detail: format!(
                            "{} chains, {rules} rules, {} sets",
                            nt.chains.len(),
                            nt.sets.len()
                        ),
                        reason,
                    },
                );
            }
            (Some(ot), None) => {
                let reason = ot
                    .chains
                    .iter()
                    .find_map(|c| chain_blocking(ot, c))
                    .map(|r| format!("removed table with a chain that {r}"));
                let rules: usize = ot.chains.iter().map(|c| c.rules.len()).sum();
                push(
                    sec,
                    Change {
                        change: "table_removed".into(),
                        backend: None,
                        severity: sev(&reason),
                        table: ot.name.clone(),
                        object: String::new(),
                        position: None,
                        old_position: None,
                        detail: format!(
                            "{} chains, {rules} rules, {} sets",
                            ot.chains.len(),
                            ot.sets.len()
                        ),
                        reason,
                    },
                );
            }
            (None, None) => {}
        }
        for c in &mut sec.changes[first..] {
            c.backend = Some(t.backend_label().to_string());
        }
    }
    let mut tc = FamilySection::default();
    diff_tc(
        &mut tc,
        &old.qdiscs,
        &new.qdiscs,
        &old.filters,
        &new.filters,
    );
    if !tc.changes.is_empty() {
        families.insert("tc".into(), tc);
    }
    families.retain(|_, s| !s.changes.is_empty());
    let drift = families.values().any(|s| !s.changes.is_empty());
    let critical = families.values().any(|s| s.critical > 0);
    DiffReport {
        drift_detected: drift,
        has_critical_changes: critical,
        old: old_label.to_string(),
        new: new_label.to_string(),
        families,
        suppressed: ctx.suppressed,
        counters_ignored: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_works() {
        assert!(glob("KUBE-SEP-*", "KUBE-SEP-ABC"));
        assert!(!glob("KUBE-SEP-*", "KUBE-SVC-ABC"));
        assert!(glob("*-x-*", "a-x-b"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn lcs_reports_one_insert() {
        let a = ["a", "b", "c"];
        let b = ["x", "a", "b", "c"];
        let p = lcs_pairs(&a, &b);
        assert_eq!(p, vec![(0, 1), (1, 2), (2, 3)]);
        let p = lcs_pairs(&["a", "b", "c", "d"], &["a", "c", "b", "d"]);
        assert_eq!(p.len(), 3);
    }
}
