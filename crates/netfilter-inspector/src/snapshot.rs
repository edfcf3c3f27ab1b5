//! Snapshots: the model plus what was inferred from it (frameworks, blocking rules, a
//! per-family summary), stored as `fw_<id>_snapshot.json` (or `_baseline.json`) with a
//! `.sha256` sidecar through cloud-provider's artifact store.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use cloud_provider::artifact::{
    write_atomic, Artifact, ArtifactError, ArtifactStore, LocalStore, StoredArtifact,
};
use serde::{Deserialize, Serialize};
use serde_json::ser::{Formatter, PrettyFormatter};
use sha2::{Digest, Sha256};

use crate::model::{
    Backend, Family, IptablesVariant, Policy, Rule, Ruleset, Table, Target, RULES_OUTLINE,
};

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

/// The number of threads the parser and the artifact writer use (all cores, at most 4).
pub(crate) fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
}

/// Rules rendered per round of [`write_artifact`]: bounds the memory of the rendered text
/// (about 20 MB), which is reused from round to round.
const RULES_WINDOW: usize = 1 << 16;

/// Writes a snapshot (or baseline) artifact into `store`: exactly the bytes, `.sha256`
/// sidecar and atomic replacement (temporary file, fsync, rename) of the store's
/// `put_json`, faster on large rulesets. The outline of the document (everything but the
/// rules) is serialised first with a placeholder per rules array. The rules, nearly all of
/// a large snapshot, are then rendered in rounds of [`RULES_WINDOW`] on all cores (one
/// buffer per core, reused), and each round's pieces are written in order while another
/// thread computes their SHA-256.
pub fn write_artifact(
    store: &LocalStore,
    art: &Artifact<Snapshot>,
) -> Result<StoredArtifact, ArtifactError> {
    write_artifact_with(store, art, worker_threads(), RULES_WINDOW)
}

pub(crate) fn write_artifact_with(
    store: &LocalStore,
    art: &Artifact<Snapshot>,
    threads: usize,
    window: usize,
) -> Result<StoredArtifact, ArtifactError> {
    let name = art.header.file_name()?;
    let malformed = |e: serde_json::Error| ArtifactError::Malformed {
        name: name.clone(),
        detail: e.to_string(),
    };
    // Should the outline not line up with the chains (it always does for this model), the
    // store's own writer gives the same document.
    let Some(doc) = Document::outline(art).map_err(malformed)? else {
        return store.put_json(art);
    };
    let path = store.path_of(&name)?;
    let dir = store.dir();
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ArtifactError::Io { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| -> Result<String, ArtifactError> {
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let (file, sha256) = doc.write(file, threads, window).map_err(|e| match e {
            WriteError::Io(e) => io(&tmp)(e),
            WriteError::Json(e) => malformed(e),
        })?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(sha256)
    })();
    let sha256 = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let sidecar = dir.join(format!("{name}.sha256"));
    write_atomic(&sidecar, format!("{sha256}  {name}\n").as_bytes()).map_err(io(&sidecar))?;
    Ok(StoredArtifact { name, sha256 })
}

enum WriteError {
    Io(std::io::Error),
    Json(serde_json::Error),
}

/// A pretty formatter that writes a NUL byte (which serde_json never writes itself: it
/// escapes control characters in strings) in place of every raw JSON fragment, i.e. of
/// every rules placeholder of an outline.
struct OutlineFormatter(PrettyFormatter<'static>);

impl Formatter for OutlineFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
    fn write_raw_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        _fragment: &str,
    ) -> std::io::Result<()> {
        w.write_all(b"\0")
    }
}

/// Clears the outline mode of [`crate::model::compact_rules`] on every exit path.
struct OutlineMode;

impl OutlineMode {
    fn start() -> OutlineMode {
        RULES_OUTLINE.with(|o| *o.borrow_mut() = Some(Vec::new()));
        OutlineMode
    }
    fn finish(self) -> Vec<usize> {
        RULES_OUTLINE
            .with(|o| o.borrow_mut().take())
            .unwrap_or_default()
    }
}

impl Drop for OutlineMode {
    fn drop(&mut self) {
        RULES_OUTLINE.with(|o| *o.borrow_mut() = None);
    }
}

/// A consecutive run of one chain's rendered rules in one buffer.
struct Part {
    chain: usize,
    buf: usize,
    start: usize,
    end: usize,
}

/// How far an emission of the document has come.
#[derive(Default)]
struct Cursor {
    /// Bytes of the outline emitted.
    pos: usize,
    /// The next placeholder to fill.
    next: usize,
    /// The chain whose rules array is open (`[` written, `]` not yet).
    open: Option<usize>,
}

type Sink<'s> = dyn FnMut(&[u8]) -> std::io::Result<()> + 's;

/// A snapshot document's outline: where each chain's rules go (a NUL byte at the
/// indentation depth of the `rules` key) and the rules themselves.
struct Document<'a> {
    outline: Vec<u8>,
    /// Per chain, in document order: the offset of its placeholder and its depth.
    holes: Vec<(usize, usize)>,
    chains: Vec<&'a [Rule]>,
    spaces: Vec<u8>,
}

impl<'a> Document<'a> {
    /// `None` when the outline does not line up with the chains of the ruleset.
    fn outline(art: &'a Artifact<Snapshot>) -> serde_json::Result<Option<Self>> {
        let mut outline = Vec::with_capacity(1 << 16);
        let mode = OutlineMode::start();
        let mut ser = serde_json::Serializer::with_formatter(
            &mut outline,
            OutlineFormatter(PrettyFormatter::new()),
        );
        art.serialize(&mut ser)?;
        let lens = mode.finish();
        outline.push(b'\n');
        let chains: Vec<&[Rule]> = art
            .body
            .ruleset
            .tables
            .iter()
            .flat_map(|t| t.chains.iter().map(|c| c.rules.as_slice()))
            .collect();
        if lens.len() != chains.len() || lens.iter().zip(&chains).any(|(n, c)| *n != c.len()) {
            return Ok(None);
        }
        let mut holes = Vec::with_capacity(chains.len());
        for (at, _) in outline.iter().enumerate().filter(|(_, b)| **b == 0) {
            // The placeholder is the value of a `rules` key on a line of its own.
            let line_start = outline[..at]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1);
            let line = &outline[line_start..at];
            let spaces = line.iter().take_while(|b| **b == b' ').count();
            if &line[spaces..] != b"\"rules\": " || spaces % 2 != 0 {
                return Ok(None);
            }
            holes.push((at, spaces / 2));
        }
        if holes.len() != chains.len() {
            return Ok(None);
        }
        let max_depth = holes.iter().map(|h| h.1).max().unwrap_or(0);
        Ok(Some(Document {
            outline,
            holes,
            chains,
            spaces: vec![b' '; 2 * max_depth],
        }))
    }

    /// Renders and writes the document into `file`; returns it and the SHA-256.
    fn write(
        &self,
        file: std::fs::File,
        threads: usize,
        window: usize,
    ) -> Result<(std::fs::File, String), WriteError> {
        let threads = threads.max(1);
        let window = window.max(1);
        let with_depth: Vec<(&[Rule], usize)> = self
            .chains
            .iter()
            .zip(&self.holes)
            .map(|(c, h)| (*c, h.1))
            .collect();
        let with_depth = &with_depth;
        let total: usize = self.chains.iter().map(|c| c.len()).sum();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut hash = Sha256::new();
        let (mut wcur, mut hcur) = (Cursor::default(), Cursor::default());
        let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); threads];
        let died = || WriteError::Io(std::io::Error::other("a writer thread failed"));
        let mut a = 0;
        while a < total {
            let b = (a + window).min(total);
            let per = (b - a).div_ceil(threads);
            let range = |t: usize| ((a + t * per).min(b), (a + (t + 1) * per).min(b));
            // Render this round's rules on all cores, one buffer each.
            let ends = std::thread::scope(|sc| {
                let mut it = bufs.iter_mut().enumerate();
                let first = it.next();
                let handles: Vec<_> = it
                    .map(|(t, buf)| {
                        let (from, to) = range(t);
                        sc.spawn(move || render_rules(with_depth, from, to, buf))
                    })
                    .collect();
                let mut out = Vec::with_capacity(threads);
                if let Some((_, buf)) = first {
                    let (from, to) = range(0);
                    out.push(Some(render_rules(with_depth, from, to, buf)));
                }
                // `None`: the thread died (serialising the model does not panic).
                out.extend(handles.into_iter().map(|h| h.join().ok()));
                out
            });
            let mut parts = Vec::new();
            for (i, e) in ends.into_iter().enumerate() {
                let e = e.ok_or_else(died)?.map_err(WriteError::Json)?;
                let mut start = 0;
                for (chain, end) in e {
                    parts.push(Part {
                        chain,
                        buf: i,
                        start,
                        end,
                    });
                    start = end;
                }
            }
            // Write them in order while another thread hashes the same pieces.
            let (bufs, parts) = (&bufs, &parts);
            let (written, hashed) = std::thread::scope(|sc| {
                let hasher = sc.spawn(|| {
                    self.emit(&mut hcur, bufs, parts, &mut |x| {
                        hash.update(x);
                        Ok(())
                    })
                });
                let written = self.emit(&mut wcur, bufs, parts, &mut |x| w.write_all(x));
                (written, hasher.join())
            });
            written.map_err(WriteError::Io)?;
            hashed.map_err(|_| died())?.map_err(WriteError::Io)?;
            a = b;
        }
        self.finish(&mut wcur, &mut |x| w.write_all(x))
            .map_err(WriteError::Io)?;
        self.finish(&mut hcur, &mut |x| {
            hash.update(x);
            Ok(())
        })
        .map_err(WriteError::Io)?;
        let file = w.into_inner().map_err(|e| WriteError::Io(e.into_error()))?;
        Ok((file, hex::encode(hash.finalize())))
    }

    /// Emits `parts` (rendered rules, in document order), with the outline before them.
    fn emit(
        &self,
        cur: &mut Cursor,
        bufs: &[Vec<u8>],
        parts: &[Part],
        f: &mut Sink<'_>,
    ) -> std::io::Result<()> {
        for p in parts {
            if cur.open != Some(p.chain) {
                if let Some(k) = cur.open.take() {
                    self.close(k, f)?;
                }
                while cur.next <= p.chain {
                    let k = cur.next;
                    cur.next += 1;
                    let hole = self.holes[k].0;
                    f(&self.outline[cur.pos..hole])?;
                    cur.pos = hole + 1;
                    if k == p.chain {
                        f(b"[")?;
                        cur.open = Some(k);
                    } else {
                        // A chain between two parts has no rules.
                        f(b"[]")?;
                    }
                }
            }
            f(&bufs[p.buf][p.start..p.end])?;
        }
        Ok(())
    }

    /// Emits the rest of the document after the last rules.
    fn finish(&self, cur: &mut Cursor, f: &mut Sink<'_>) -> std::io::Result<()> {
        if let Some(k) = cur.open.take() {
            self.close(k, f)?;
        }
        while cur.next < self.holes.len() {
            let hole = self.holes[cur.next].0;
            cur.next += 1;
            f(&self.outline[cur.pos..hole])?;
            cur.pos = hole + 1;
            f(b"[]")?;
        }
        f(&self.outline[cur.pos..])
    }

    fn close(&self, k: usize, f: &mut Sink<'_>) -> std::io::Result<()> {
        f(b"\n")?;
        f(&self.spaces[..2 * self.holes[k].1])?;
        f(b"]")
    }
}

/// Renders rules `from..to` (counted over all chains in order) into `buf` as the elements
/// of their pretty-printed arrays, each a compact object on its own line. Returns, per
/// chain touched, where its elements end in `buf`.
fn render_rules(
    chains: &[(&[Rule], usize)],
    from: usize,
    to: usize,
    buf: &mut Vec<u8>,
) -> serde_json::Result<Vec<(usize, usize)>> {
    buf.clear();
    // About 300 bytes per rule.
    buf.reserve(to.saturating_sub(from).saturating_mul(320));
    let mut ends = Vec::new();
    let mut g = 0;
    for (k, &(rules, depth)) in chains.iter().enumerate() {
        if g >= to {
            break;
        }
        let base = g;
        g += rules.len();
        let (lo, hi) = (from.max(base), to.min(g));
        if lo >= hi {
            continue;
        }
        for (i, rule) in rules.iter().enumerate().take(hi - base).skip(lo - base) {
            buf.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
            for _ in 0..=depth {
                buf.extend_from_slice(b"  ");
            }
            serde_json::to_writer(&mut *buf, rule)?;
        }
        ends.push((k, buf.len()));
    }
    Ok(ends)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloud_provider::artifact::{sidecar_line, ArtifactHeader};
    use cloud_provider::session::SessionId;

    fn artifact(rs: Ruleset) -> Artifact<Snapshot> {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T06:30:05.123Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        Artifact {
            header: ArtifactHeader::new(
                TOOL,
                "0.0.0",
                SessionId::parse("fw_write_test").unwrap(),
                KIND_SNAPSHOT,
                now,
            ),
            body: build("host-a", Vec::new(), rs, false),
        }
    }

    #[test]
    fn parallel_writer_gives_the_bytes_and_sidecar_of_put_json() {
        // A generated iptables-save (chains of many sizes, empty chains, warnings) plus nft
        // JSON (sets, verdict maps) and tc output in one snapshot.
        let mut rs =
            crate::iptables::parse_str(&crate::iptables::tests::generated_save(400)).unwrap();
        for (text, format) in [
            (
                include_str!("../tests/fixtures/nft_inet_filter.json"),
                crate::InputFormat::NftJson,
            ),
            (
                include_str!("../tests/fixtures/tc_qdisc_show.txt"),
                crate::InputFormat::TcQdisc,
            ),
        ] {
            rs.merge(crate::parse(text, format).unwrap());
        }
        assert!(rs.tables.iter().any(|t| !t.sets.is_empty()));
        assert!(rs
            .tables
            .iter()
            .any(|t| t.chains.iter().any(|c| c.rules.is_empty())));
        let art = artifact(rs);
        let mut expected = serde_json::to_vec_pretty(&art).unwrap();
        expected.push(b'\n');
        let name = art.header.file_name().unwrap();
        let reference = tempfile::tempdir().unwrap();
        let stored = LocalStore::new(reference.path()).put_json(&art).unwrap();
        assert_eq!(
            std::fs::read(reference.path().join(&name)).unwrap(),
            expected
        );
        for (threads, window) in [(1, usize::MAX), (2, 1 << 16), (3, 100), (7, 1)] {
            let dir = tempfile::tempdir().unwrap();
            let store = LocalStore::new(dir.path());
            let got = write_artifact_with(&store, &art, threads, window).unwrap();
            assert_eq!(got, stored, "threads {threads}");
            let bytes = std::fs::read(dir.path().join(&name)).unwrap();
            assert!(bytes == expected, "threads {threads}: the documents differ");
            assert_eq!(
                std::fs::read_to_string(dir.path().join(format!("{name}.sha256"))).unwrap(),
                sidecar_line(&name, &expected)
            );
            // Only the artifact and its sidecar: no temporary file left behind.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
            assert!(store.get(&name).is_ok());
        }
        // The outline mode is off again: ordinary serialisation writes the rules.
        assert_eq!(
            serde_json::to_vec_pretty(&art).unwrap().len() + 1,
            expected.len()
        );
    }

    #[test]
    fn parallel_writer_handles_a_ruleset_without_rules() {
        let art = artifact(Ruleset::default());
        let mut expected = serde_json::to_vec_pretty(&art).unwrap();
        expected.push(b'\n');
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let got = write_artifact_with(&store, &art, 2, 10).unwrap();
        let name = art.header.file_name().unwrap();
        assert_eq!(std::fs::read(dir.path().join(&name)).unwrap(), expected);
        assert_eq!(got.sha256, cloud_provider::artifact::sha256_hex(&expected));
    }
}
