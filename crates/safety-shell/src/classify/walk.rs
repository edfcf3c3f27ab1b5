//! The tree walker: parses a command string and classifies every part of it.

use std::io::BufReader;
use std::panic::{catch_unwind, AssertUnwindSafe};

use brush_parser::ast::{
    self, AndOr, AssignmentName, AssignmentValue, Command, CommandPrefixOrSuffixItem,
    CompoundCommand, CompoundList, ExtendedTestExpr, IoFileRedirectKind, IoFileRedirectTarget,
    IoRedirect, SeparatorOperator,
};
use brush_parser::Parser;

use super::paths::{self, WriteVerdict};
use super::words::{self, WordInfo};
use super::{azure, forbidden, risky, safe, ssh, tools, worst};
use crate::policy::Policy;
use crate::types::{Class, Classification, ClassifyContext, Tier};

/// Longest command string the classifier parses.
const MAX_LEN: usize = 64 * 1024;
/// Deepest bracket nesting the classifier lets the parser see.
const MAX_NESTING: usize = 48;
/// Deepest recursion through substitutions, `sh -c`, `eval`, `ssh`, run-command.
const MAX_DEPTH: usize = 12;
/// Most scripts (parses) one classification may perform.
const MAX_PARSES: usize = 256;

/// One simple command after wrappers are looked through: what policies match against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// The program's base name (`/usr/bin/ping` → `ping`).
    pub program: String,
    /// The arguments after quote removal (expansions as source text).
    pub args: Vec<String>,
    /// True when no word of the command has an expansion.
    pub is_static: bool,
}

impl Leaf {
    /// The normalised text: program and arguments joined by single spaces.
    pub fn text(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// One argument of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arg {
    /// Text after quote removal (expansions kept as their source).
    pub text: String,
    /// No expansion of any kind.
    pub is_static: bool,
}

impl Arg {
    fn from_info(w: &WordInfo) -> Self {
        Arg {
            text: w.text.clone(),
            is_static: w.is_static && !w.broken,
        }
    }
}

/// Programs whose verdict includes the verdict of a nested command: policy `allow` rules
/// never lift them (they lift the nested command instead).
const NESTING_PROGRAMS: &[&str] = &[
    "sudo", "doas", "su", "env", "timeout", "nice", "nohup", "xargs", "stdbuf", "command",
    "builtin", "exec", "time", "bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "eval", "ssh",
    "az", "busybox",
];

/// Variables that may be assigned before a command without making it RISKY.
fn harmless_variable(name: &str) -> bool {
    matches!(
        name,
        "LC_ALL" | "LANG" | "LANGUAGE" | "TZ" | "COLUMNS" | "LINES" | "NO_COLOR" | "TERM"
    ) || (name.starts_with("LC_") && name[3..].chars().all(|c| c.is_ascii_uppercase()))
}

/// The next word is a value of `az … --scripts` (the option and its values are the last
/// words so far).
fn is_az_scripts_value(argv: &[Arg]) -> bool {
    let Some(first) = argv.first() else {
        return false;
    };
    if !first.is_static || paths::split_program(&first.text).1 != "az" {
        return false;
    }
    match argv.iter().rposition(|a| a.text.starts_with('-')) {
        Some(k) => argv[k].text == "--scripts",
        None => false,
    }
}

/// A script-local variable: a lower-case name (shell convention) that no shell ties to
/// its behaviour (zsh ties `path`, `fpath`, `cdpath`, `manpath`, `mailpath`, `module_path`
/// to the upper-case variables; `*_proxy` steers HTTP clients when exported). Assigning one
/// as a statement of its own (not exported) changes nothing outside the script; every
/// place its value is used is classified on its own (a variable as a command name, as an
/// argument of most tools, as a redirection target or in arithmetic is refused there).
fn script_local_variable(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    starts_ok
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !matches!(
            name,
            "path" | "fpath" | "cdpath" | "manpath" | "mailpath" | "module_path" | "psvar"
        )
        && !name.ends_with("_proxy")
}

fn fold(acc: &mut Option<Classification>, v: Classification) {
    *acc = Some(match acc.take() {
        None => v,
        Some(a) => worst(a, v),
    });
}

/// Rough bracket nesting depth (quotes ignored: only used to refuse pathological input
/// before the recursive-descent parser sees it).
fn nesting(src: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in src.chars() {
        match c {
            '(' | '{' | '[' | '`' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn precheck(src: &str) -> Result<(), Classification> {
    if src.contains('\0') {
        return Err(risky(Tier::Unknown, "the command contains a NUL byte"));
    }
    if src.contains('\r') {
        return Err(risky(
            Tier::Unknown,
            "the command contains a carriage return",
        ));
    }
    if src.len() > MAX_LEN {
        return Err(risky(Tier::Unknown, "the command is too long to analyse"));
    }
    if nesting(src) > MAX_NESTING {
        return Err(risky(
            Tier::Unknown,
            "the command is nested too deeply to analyse",
        ));
    }
    Ok(())
}

fn parse(src: &str) -> Result<ast::Program, Classification> {
    let opts = words::parser_options();
    let result = catch_unwind(AssertUnwindSafe(|| {
        Parser::new(BufReader::new(src.as_bytes()), &opts).parse_program()
    }));
    match result {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(risky(
            Tier::Unknown,
            format!("the shell parser rejected the command ({e})"),
        )),
        Err(_) => Err(risky(
            Tier::Unknown,
            "the shell parser failed on the command",
        )),
    }
}

/// Walks a command tree and classifies it.
pub(crate) struct Walker<'a> {
    ctx: &'a ClassifyContext,
    policy: Option<&'a Policy>,
    depth: usize,
    parses: usize,
    /// Record every leaf in `leaves` (policy example checks).
    pub collect_leaves: bool,
    /// The recorded leaves.
    pub leaves: Vec<Leaf>,
}

impl<'a> Walker<'a> {
    pub fn new(ctx: &'a ClassifyContext, policy: Option<&'a Policy>) -> Self {
        Walker {
            ctx,
            policy,
            depth: 0,
            parses: 0,
            collect_leaves: false,
            leaves: Vec::new(),
        }
    }

    pub fn ctx(&self) -> &ClassifyContext {
        self.ctx
    }

    /// Classifies a whole script (a command string, an `sh -c` string, a substitution).
    pub fn script(&mut self, src: &str) -> Classification {
        if self.depth >= MAX_DEPTH {
            return risky(
                Tier::Unknown,
                "the command nests shells too deeply to analyse",
            );
        }
        self.parses += 1;
        if self.parses > MAX_PARSES {
            return risky(
                Tier::Unknown,
                "the command has too many nested parts to analyse",
            );
        }
        if let Err(v) = precheck(src) {
            return v;
        }
        let program = match parse(src) {
            Ok(p) => p,
            Err(v) => return v,
        };
        if program.complete_commands.is_empty() {
            return risky(Tier::Unknown, "the command is empty");
        }
        self.depth += 1;
        let mut acc = None;
        for cc in &program.complete_commands {
            fold(&mut acc, self.list(cc));
        }
        self.depth -= 1;
        acc.unwrap_or_else(|| risky(Tier::Unknown, "the command is empty"))
    }

    fn list(&mut self, list: &CompoundList) -> Classification {
        let mut acc = None;
        for item in &list.0 {
            if matches!(item.1, SeparatorOperator::Async) {
                fold(
                    &mut acc,
                    risky(
                        Tier::HostChange,
                        "runs a command in the background (`&`), outliving the gate",
                    ),
                );
            }
            fold(&mut acc, self.pipeline(&item.0.first));
            for next in &item.0.additional {
                let p = match next {
                    AndOr::And(p) | AndOr::Or(p) => p,
                };
                fold(&mut acc, self.pipeline(p));
            }
        }
        acc.unwrap_or_else(|| safe(Tier::ReadOnly, "an empty command list"))
    }

    fn pipeline(&mut self, p: &ast::Pipeline) -> Classification {
        let mut acc = None;
        for c in &p.seq {
            fold(&mut acc, self.command(c));
        }
        acc.unwrap_or_else(|| risky(Tier::Unknown, "an empty pipeline"))
    }

    fn command(&mut self, c: &Command) -> Classification {
        match c {
            Command::Simple(sc) => self.simple(sc),
            Command::Compound(cc, redirects) => {
                let mut acc = Some(self.compound(cc));
                if let Some(r) = redirects {
                    for r in &r.0 {
                        fold(&mut acc, self.redirect(r));
                    }
                }
                acc.unwrap_or_else(|| risky(Tier::Unknown, "not understood"))
            }
            Command::Function(f) => self.function(f),
            Command::ExtendedTest(t, redirects) => {
                let mut acc = Some(safe(Tier::ReadOnly, "a `[[ … ]]` test"));
                self.ext_test(&t.expr, &mut acc);
                if let Some(r) = redirects {
                    for r in &r.0 {
                        fold(&mut acc, self.redirect(r));
                    }
                }
                acc.unwrap_or_else(|| risky(Tier::Unknown, "not understood"))
            }
        }
    }

    fn ext_test(&mut self, e: &ExtendedTestExpr, acc: &mut Option<Classification>) {
        match e {
            ExtendedTestExpr::And(a, b) | ExtendedTestExpr::Or(a, b) => {
                self.ext_test(a, acc);
                self.ext_test(b, acc);
            }
            ExtendedTestExpr::Not(a) | ExtendedTestExpr::Parenthesized(a) => self.ext_test(a, acc),
            ExtendedTestExpr::UnaryTest(_, w) => {
                let info = words::analyse(&w.value);
                fold(acc, self.word_parts(&info));
            }
            ExtendedTestExpr::BinaryTest(op, a, b) => {
                use brush_parser::ast::BinaryPredicate as P;
                let arithmetic = matches!(
                    op,
                    P::ArithmeticEqualTo
                        | P::ArithmeticNotEqualTo
                        | P::ArithmeticLessThan
                        | P::ArithmeticLessThanOrEqualTo
                        | P::ArithmeticGreaterThan
                        | P::ArithmeticGreaterThanOrEqualTo
                );
                for w in [a, b] {
                    let info = words::analyse(&w.value);
                    if arithmetic && (!info.is_static || words::names_variable(&info.text)) {
                        fold(
                            acc,
                            risky(
                                Tier::Unknown,
                                format!("`[[ … {op} … ]]` evaluates `{}` as arithmetic, which can run commands", info.text),
                            ),
                        );
                    }
                    fold(acc, self.word_parts(&info));
                }
            }
        }
    }

    fn compound(&mut self, cc: &CompoundCommand) -> Classification {
        match cc {
            CompoundCommand::BraceGroup(b) => self.list(&b.list),
            CompoundCommand::Subshell(s) => self.list(&s.list),
            CompoundCommand::ForClause(f) => {
                let mut acc = None;
                for w in f.values.iter().flatten() {
                    let info = words::analyse(&w.value);
                    fold(&mut acc, self.word_parts(&info));
                }
                fold(&mut acc, self.list(&f.body.list));
                acc.unwrap_or_else(|| risky(Tier::Unknown, "not understood"))
            }
            CompoundCommand::ArithmeticForClause(a) => {
                let mut acc = Some(risky(
                    Tier::Unknown,
                    "arithmetic `for ((…))` loops are not analysed",
                ));
                for e in [&a.initializer, &a.condition, &a.updater]
                    .into_iter()
                    .flatten()
                {
                    fold(&mut acc, self.text_substitutions(&e.value));
                }
                fold(&mut acc, self.list(&a.body.list));
                acc.unwrap_or_else(|| risky(Tier::Unknown, "not understood"))
            }
            CompoundCommand::Arithmetic(a) => worst(
                risky(
                    Tier::Unknown,
                    "arithmetic commands `((…))` are not analysed",
                ),
                self.text_substitutions(&a.expr.value),
            ),
            CompoundCommand::CaseClause(c) => {
                let mut acc = None;
                let info = words::analyse(&c.value.value);
                fold(&mut acc, self.word_parts(&info));
                for item in &c.cases {
                    for p in &item.patterns {
                        let info = words::analyse(&p.value);
                        fold(&mut acc, self.word_parts(&info));
                    }
                    if let Some(cmd) = &item.cmd {
                        fold(&mut acc, self.list(cmd));
                    }
                }
                acc.unwrap_or_else(|| safe(Tier::ReadOnly, "an empty case"))
            }
            CompoundCommand::IfClause(i) => {
                let mut acc = Some(self.list(&i.condition));
                fold(&mut acc, self.list(&i.then));
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        fold(&mut acc, self.list(c));
                    }
                    fold(&mut acc, self.list(&e.body));
                }
                acc.unwrap_or_else(|| risky(Tier::Unknown, "not understood"))
            }
            CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
                let mut acc = Some(risky(
                    Tier::Unknown,
                    "`while`/`until` loops are not allowed to run unattended (they may never end)",
                ));
                fold(&mut acc, self.list(&w.0));
                fold(&mut acc, self.list(&w.1.list));
                acc.unwrap_or_else(|| risky(Tier::Unknown, "not understood"))
            }
            CompoundCommand::Coprocess(c) => worst(
                risky(Tier::HostChange, "coprocesses run in the background"),
                self.command(&c.body),
            ),
        }
    }

    fn function(&mut self, f: &ast::FunctionDefinition) -> Classification {
        let name = f.fname.value.clone();
        let mut calls = 0usize;
        let mut piped = false;
        self_calls_compound(&f.body.0, &name, false, &mut calls, &mut piped);
        if calls > 0 && (calls >= 2 || piped) {
            return super::forbidden(format!(
                "defines a fork bomb: function `{name}` spawns copies of itself"
            ));
        }
        let mut acc = Some(risky(
            Tier::Unknown,
            format!("defines a shell function `{name}`, which is not analysed"),
        ));
        fold(&mut acc, self.compound(&f.body.0));
        if let Some(r) = &f.body.1 {
            for r in &r.0 {
                fold(&mut acc, self.redirect(r));
            }
        }
        acc.unwrap_or_else(|| risky(Tier::Unknown, "not understood"))
    }

    /// The verdict on what a word carries: its command substitutions, control characters,
    /// look-alike characters, or a word the parser could not split.
    fn word_parts(&mut self, info: &WordInfo) -> Classification {
        let mut acc = None;
        for s in &info.substitutions {
            fold(&mut acc, self.script(s));
        }
        if info.broken {
            fold(
                &mut acc,
                risky(Tier::Unknown, "a word could not be analysed"),
            );
        }
        if info.has_control() {
            fold(
                &mut acc,
                risky(
                    Tier::Unknown,
                    "a word contains a control character (newline, carriage return, escape …)",
                ),
            );
        }
        if info.arith_vars {
            fold(
                &mut acc,
                risky(
                    Tier::Unknown,
                    "arithmetic on a variable or `${!name}`: bash evaluates a variable's content as an expression, which can run commands",
                ),
            );
        }
        if info.has_non_ascii() {
            fold(
                &mut acc,
                risky(
                    Tier::Unknown,
                    format!(
                        "a word contains non-ASCII characters (possible look-alike): `{}`",
                        info.text
                    ),
                ),
            );
        }
        acc.unwrap_or_else(|| safe(Tier::ReadOnly, "a plain word"))
    }

    /// Command substitutions inside text the shell expands later (arithmetic).
    fn text_substitutions(&mut self, text: &str) -> Classification {
        let info = words::analyse(&format!("\"{}\"", text.replace('"', "\\\"")));
        let mut acc = None;
        for s in &info.substitutions {
            fold(&mut acc, self.script(s));
        }
        if text.contains('`') || (text.contains("$(") && info.substitutions.is_empty()) {
            fold(
                &mut acc,
                risky(
                    Tier::Unknown,
                    "an arithmetic expression could not be analysed",
                ),
            );
        }
        acc.unwrap_or_else(|| safe(Tier::ReadOnly, "plain arithmetic"))
    }

    fn simple(&mut self, sc: &ast::SimpleCommand) -> Classification {
        let mut acc: Option<Classification> = None;
        let mut argv: Vec<Arg> = Vec::new();
        let mut items: Vec<(&CommandPrefixOrSuffixItem, bool)> = Vec::new();
        if let Some(p) = &sc.prefix {
            items.extend(p.0.iter().map(|i| (i, true)));
        }
        let name_item = sc
            .word_or_name
            .as_ref()
            .map(|w| CommandPrefixOrSuffixItem::Word(w.clone()));
        if let Some(n) = &name_item {
            items.push((n, false));
        }
        if let Some(s) = &sc.suffix {
            items.extend(s.0.iter().map(|i| (i, false)));
        }
        let mut assigns = 0usize;
        for (item, in_prefix) in items {
            match item {
                CommandPrefixOrSuffixItem::IoRedirect(r) => fold(&mut acc, self.redirect(r)),
                CommandPrefixOrSuffixItem::Word(w) => {
                    let info = words::analyse(&w.value);
                    // The value of `az … --scripts` is a script (classified line by line
                    // by the az rules): its newlines and tabs are its syntax.
                    let parts = if is_az_scripts_value(&argv) {
                        let mut lines = info.clone();
                        lines.text.retain(|c| c != '\n' && c != '\t');
                        self.word_parts(&lines)
                    } else {
                        self.word_parts(&info)
                    };
                    if parts.classification != Class::Safe {
                        fold(&mut acc, parts);
                    }
                    argv.push(Arg::from_info(&info));
                }
                CommandPrefixOrSuffixItem::AssignmentWord(a, w) => {
                    if in_prefix {
                        assigns += 1;
                        fold(&mut acc, self.assignment(a, sc.word_or_name.is_none()));
                    } else {
                        let info = words::analyse(&w.value);
                        let parts = self.word_parts(&info);
                        if parts.classification != Class::Safe {
                            fold(&mut acc, parts);
                        }
                        argv.push(Arg::from_info(&info));
                    }
                }
                CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                    fold(&mut acc, self.list(&sub.list));
                    argv.push(Arg {
                        text: "<(…)".to_string(),
                        is_static: false,
                    });
                }
            }
        }
        if !argv.is_empty() {
            fold(&mut acc, self.leaf(&argv));
        } else if assigns == 0 && acc.is_none() {
            fold(&mut acc, risky(Tier::Unknown, "an empty command"));
        }
        acc.unwrap_or_else(|| safe(Tier::ReadOnly, "only harmless assignments"))
    }

    /// `standalone`: the assignment is a statement of its own (a shell variable), not the
    /// environment of a command.
    fn assignment(&mut self, a: &ast::Assignment, standalone: bool) -> Classification {
        let name = match &a.name {
            AssignmentName::VariableName(n) => n.clone(),
            AssignmentName::ArrayElementName(n, _) => {
                return risky(
                    Tier::HostChange,
                    format!("assigns an array element of `{n}`"),
                )
            }
        };
        match &a.value {
            AssignmentValue::Scalar(w) => {
                let info = words::analyse(&w.value);
                let parts = self.word_parts(&info);
                let plain_value = info
                    .text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:/+-@,=".contains(c));
                if harmless_variable(&name) && info.is_static && plain_value && !a.append {
                    worst(
                        safe(
                            Tier::ReadOnly,
                            format!("sets the harmless variable `{name}`"),
                        ),
                        parts,
                    )
                } else if standalone && script_local_variable(&name) {
                    worst(
                        safe(
                            Tier::ReadOnly,
                            format!("sets the script-local variable `{name}`"),
                        ),
                        parts,
                    )
                } else {
                    worst(
                        risky(
                            Tier::HostChange,
                            format!("assigns `{name}`, which can change what commands run or how"),
                        ),
                        parts,
                    )
                }
            }
            AssignmentValue::Array(_) => {
                risky(Tier::HostChange, format!("assigns the array `{name}`"))
            }
        }
    }

    fn write_target(&self, text: &str, is_static: bool) -> Classification {
        if !is_static {
            return risky(
                Tier::HostChange,
                format!("writes to a path computed at run time (`{text}`)"),
            );
        }
        match paths::write_verdict(text, self.ctx.output_dir.as_deref()) {
            WriteVerdict::Harmless => safe(Tier::ReadOnly, format!("output goes to `{text}`")),
            WriteVerdict::InOutputDir => safe(
                Tier::Capture,
                format!("writes `{text}` inside the output directory"),
            ),
            WriteVerdict::BlockDevice => {
                super::forbidden(format!("writes onto the block device `{text}`"))
            }
            WriteVerdict::SysRq => {
                super::forbidden("writes to the kernel SysRq trigger (reboot, power-off)")
            }
            WriteVerdict::Outside => risky(
                Tier::HostChange,
                format!("writes to `{text}`, outside the output directory"),
            ),
        }
    }

    /// The read-path rule for a file argument or an input redirection.
    pub fn read_target(&self, text: &str, is_static: bool) -> Classification {
        if is_static && paths::read_allowed(text, &self.ctx.read_paths) {
            safe(
                Tier::ReadOnly,
                format!("reads `{text}` inside the allowed read paths"),
            )
        } else {
            risky(
                Tier::Secret,
                format!("reads `{text}`, which is outside the allowed read paths"),
            )
        }
    }

    fn redirect(&mut self, r: &IoRedirect) -> Classification {
        match r {
            IoRedirect::File(_, kind, target) => match target {
                IoFileRedirectTarget::Fd(_) => safe(Tier::ReadOnly, "a descriptor duplication"),
                IoFileRedirectTarget::ProcessSubstitution(_, sub) => self.list(&sub.list),
                IoFileRedirectTarget::Duplicate(w) => {
                    let info = words::analyse(&w.value);
                    let parts = self.word_parts(&info);
                    let t = info.text.as_str();
                    let fd_like = !t.is_empty()
                        && t.trim_end_matches('-').chars().all(|c| c.is_ascii_digit());
                    let v = if info.is_static && fd_like {
                        safe(Tier::ReadOnly, "a descriptor duplication")
                    } else if matches!(kind, IoFileRedirectKind::DuplicateInput) {
                        self.read_target(t, info.is_static)
                    } else {
                        self.write_target(t, info.is_static)
                    };
                    worst(v, parts)
                }
                IoFileRedirectTarget::Filename(w) => {
                    let info = words::analyse(&w.value);
                    let parts = self.word_parts(&info);
                    let v = match kind {
                        IoFileRedirectKind::Read | IoFileRedirectKind::DuplicateInput => {
                            self.read_target(&info.text, info.is_static)
                        }
                        _ => self.write_target(&info.text, info.is_static),
                    };
                    worst(v, parts)
                }
            },
            IoRedirect::HereDocument(_, doc) => {
                if doc.requires_expansion {
                    let mut info = words::analyse_heredoc(&doc.doc.value);
                    // The text of a here-document is data and may hold newlines and tabs.
                    info.text.retain(|c| c != '\n' && c != '\t');
                    self.word_parts(&info)
                } else {
                    safe(Tier::ReadOnly, "a literal here-document")
                }
            }
            IoRedirect::HereString(_, w) => {
                let info = words::analyse(&w.value);
                self.word_parts(&info)
            }
            IoRedirect::OutputAndError(w, _) => {
                let info = words::analyse(&w.value);
                let parts = self.word_parts(&info);
                worst(self.write_target(&info.text, info.is_static), parts)
            }
        }
    }

    /// Classifies one command given as argv (after the shell has been looked through).
    pub fn leaf(&mut self, args: &[Arg]) -> Classification {
        let Some(name) = args.first() else {
            return safe(Tier::ReadOnly, "nothing to run");
        };
        let rest = &args[1..];
        if !name.is_static {
            return risky(
                Tier::Unknown,
                format!("the command name is computed at run time (`{}`)", name.text),
            );
        }
        if name.text.is_empty() {
            return risky(Tier::Unknown, "the command name is empty");
        }
        let (dir, base) = paths::split_program(&name.text);
        let base = base.to_string();
        let leaf = Leaf {
            program: base.clone(),
            args: rest.iter().map(|a| a.text.clone()).collect(),
            is_static: rest.iter().all(|a| a.is_static),
        };
        if self.collect_leaves {
            self.leaves.push(leaf.clone());
        }
        if let Some(v) = forbidden::check(&base, rest) {
            return v;
        }
        let trusted = dir.is_none_or(paths::is_system_bin_dir)
            || self
                .ctx
                .trusted_programs
                .iter()
                .any(|p| p.as_os_str() == name.text.as_str());
        let builtin = if !trusted {
            risky(
                Tier::Unknown,
                format!(
                    "`{}` is not the system location of `{base}` (only /bin, /usr/bin, /sbin, /usr/sbin)",
                    name.text
                ),
            )
        } else {
            self.dispatch(&base, rest)
        };
        match self.policy {
            Some(p) => p.apply(&leaf, builtin, !NESTING_PROGRAMS.contains(&base.as_str())),
            None => builtin,
        }
    }

    fn dispatch(&mut self, base: &str, rest: &[Arg]) -> Classification {
        match base {
            "sudo" | "doas" | "su" | "env" | "timeout" | "nice" | "nohup" | "xargs" | "stdbuf"
            | "command" | "builtin" | "exec" | "time" => self.wrapper(base, rest),
            "bash" | "sh" | "zsh" | "dash" | "ksh" | "mksh" | "ash" => self.shell(base, rest),
            "eval" => {
                if rest.iter().all(|a| a.is_static) {
                    let joined: Vec<&str> = rest.iter().map(|a| a.text.as_str()).collect();
                    self.script(&joined.join(" "))
                } else {
                    risky(Tier::Unknown, "`eval` of a string computed at run time")
                }
            }
            "ssh" => ssh::classify(self, rest),
            "busybox" => {
                if rest.is_empty() {
                    risky(Tier::Unknown, "`busybox` without an applet")
                } else {
                    self.leaf(rest)
                }
            }
            "ip" if rest
                .iter()
                .position(|a| a.text == "netns")
                .is_some_and(|k| {
                    rest.get(k + 1).is_some_and(|a| a.text == "exec") && rest.len() > k + 3
                }) =>
            {
                let k = rest.iter().position(|a| a.text == "netns").unwrap_or(0);
                worst(
                    risky(
                        Tier::Unknown,
                        "`ip netns exec` runs a command inside a namespace",
                    ),
                    self.leaf(&rest[k + 3..]),
                )
            }
            "az" => azure::classify(self, rest),
            _ => {
                // Programs whose run-time arguments are only data: `echo` and `printf`
                // with a static format print them, `exit`/`return` take them as a status.
                let data_args = match base {
                    "echo" | "exit" | "return" => true,
                    "printf" => rest
                        .first()
                        .is_some_and(|f| f.is_static && !f.text.starts_with('-')),
                    _ => false,
                };
                if !data_args {
                    if let Some(d) = rest.iter().find(|a| !a.is_static) {
                        return risky(
                            Tier::Unknown,
                            format!(
                                "`{base}` has an argument computed at run time (`{}`)",
                                d.text
                            ),
                        );
                    }
                }
                let texts: Vec<String> = rest.iter().map(|a| a.text.clone()).collect();
                tools::classify(self, base, &texts)
            }
        }
    }

    fn shell(&mut self, base: &str, rest: &[Arg]) -> Classification {
        let mut i = 0;
        let mut has_c = false;
        while i < rest.len() {
            let a = &rest[i];
            if !a.is_static {
                return risky(
                    Tier::Unknown,
                    format!("`{base}` with an option computed at run time"),
                );
            }
            let t = a.text.as_str();
            if t == "--" {
                i += 1;
                break;
            }
            if matches!(t, "--norc" | "--noprofile" | "--posix") {
                i += 1;
                continue;
            }
            if (t.starts_with('-') || t.starts_with('+')) && t.len() > 1 && !t.starts_with("--") {
                let letters = &t[1..];
                for c in letters.chars() {
                    match c {
                        'c' => has_c = true,
                        'e' | 'x' | 'u' | 'v' | 'f' | 'l' | 'h' | 'B' | 'C' | 'a' => {}
                        'o' => {
                            // `-o pipefail`: the option name follows.
                            i += 1;
                        }
                        _ => {
                            return risky(
                                Tier::Unknown,
                                format!("`{base}` with option `{t}` is not analysed"),
                            )
                        }
                    }
                }
                i += 1;
                continue;
            }
            break;
        }
        if !has_c {
            return risky(
                Tier::Unknown,
                format!("`{base}` without -c runs a script file or reads commands from stdin"),
            );
        }
        match rest.get(i) {
            Some(a) if a.is_static => self.script(&a.text),
            Some(_) => risky(
                Tier::Unknown,
                format!("`{base} -c` with a command string computed at run time"),
            ),
            None => risky(
                Tier::Unknown,
                format!("`{base} -c` without a command string"),
            ),
        }
    }

    fn wrapper(&mut self, base: &str, rest: &[Arg]) -> Classification {
        // (short flags, short options with a value, long flags, long options with a value)
        let (flags, valued, long_flags, long_valued): (&str, &str, &[&str], &[&str]) = match base {
            "sudo" => (
                "nHPk",
                "ugh",
                &["--non-interactive", "--set-home", "--preserve-groups"],
                &["--user", "--group", "--host"],
            ),
            "doas" => ("n", "u", &[], &[]),
            "su" => return self.su(rest),
            "env" => return self.env(rest),
            "timeout" => (
                "v",
                "sk",
                &["--preserve-status", "--foreground", "--verbose"],
                &["--signal", "--kill-after"],
            ),
            "nice" => ("", "n", &[], &["--adjustment"]),
            "nohup" => ("", "", &[], &[]),
            "xargs" => (
                "0rtx",
                "nLPsdEI",
                &["--null", "--no-run-if-empty", "--verbose", "--exit"],
                &[
                    "--max-args",
                    "--max-lines",
                    "--max-procs",
                    "--max-chars",
                    "--delimiter",
                ],
            ),
            "stdbuf" => ("", "ioe", &[], &["--input", "--output", "--error"]),
            "command" => ("pvV", "", &[], &[]),
            "builtin" => ("", "", &[], &[]),
            "exec" => ("cl", "a", &[], &[]),
            "time" => ("p", "", &["--portability"], &[]),
            _ => return risky(Tier::Unknown, format!("`{base}` is not understood")),
        };
        let mut i = 0;
        let mut lookup_only = false;
        while i < rest.len() {
            let a = &rest[i];
            let t = a.text.as_str();
            if !t.starts_with('-') || t == "-" {
                break;
            }
            if !a.is_static {
                return risky(
                    Tier::Unknown,
                    format!("`{base}` with an option computed at run time"),
                );
            }
            i += 1;
            if t == "--" {
                break;
            }
            if let Some(long) = t.strip_prefix("--") {
                let name = format!("--{}", long.split('=').next().unwrap_or(""));
                if long_flags.contains(&name.as_str()) {
                    continue;
                }
                if long_valued.contains(&name.as_str()) {
                    if !long.contains('=') {
                        i += 1;
                    }
                    continue;
                }
                return risky(
                    Tier::Unknown,
                    format!("`{base}` with option `{t}` is not allowed"),
                );
            }
            // `nice -10 cmd`
            if base == "nice" && t[1..].chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let chars: Vec<char> = t[1..].chars().collect();
            for (k, c) in chars.iter().enumerate() {
                if flags.contains(*c) && c.is_ascii() {
                    if base == "command" && (*c == 'v' || *c == 'V') {
                        lookup_only = true;
                    }
                    continue;
                }
                if valued.contains(*c) && c.is_ascii() {
                    if k + 1 == chars.len() {
                        i += 1;
                    }
                    break;
                }
                return risky(
                    Tier::Unknown,
                    format!("`{base}` with option `{t}` is not allowed"),
                );
            }
        }
        let mut inner = &rest[i.min(rest.len())..];
        if base == "timeout" {
            // The duration comes first.
            match inner.first() {
                Some(d) if d.is_static => inner = &inner[1..],
                _ => return risky(Tier::Unknown, "`timeout` without a fixed duration"),
            }
        }
        if lookup_only {
            return safe(Tier::ReadOnly, "`command -v` only looks a command up");
        }
        if inner.is_empty() {
            return match base {
                "exec" | "time" => safe(Tier::ReadOnly, format!("`{base}` without a command")),
                "nice" => safe(Tier::ReadOnly, "`nice` prints the niceness"),
                "xargs" => risky(
                    Tier::Unknown,
                    "`xargs` runs `echo` with arguments from stdin",
                ),
                _ => risky(Tier::Unknown, format!("`{base}` without a command")),
            };
        }
        let v = self.leaf(inner);
        match base {
            "nohup" => worst(
                risky(
                    Tier::HostChange,
                    "`nohup` detaches a process meant to outlive the session",
                ),
                v,
            ),
            "xargs" => worst(
                risky(
                    Tier::Unknown,
                    "`xargs` appends arguments read from stdin, which the classifier cannot see",
                ),
                v,
            ),
            _ => v,
        }
    }

    fn su(&mut self, rest: &[Arg]) -> Classification {
        let mut i = 0;
        let mut cmd: Option<&Arg> = None;
        while i < rest.len() {
            let a = &rest[i];
            i += 1;
            if !a.is_static {
                return risky(Tier::Unknown, "`su` with an argument computed at run time");
            }
            match a.text.as_str() {
                "-" | "-l" | "--login" => {}
                "-c" | "--command" => {
                    cmd = rest.get(i);
                    i += 1;
                }
                t if t.starts_with("--command=") => {
                    // Handled below by re-analysis of the value.
                    return self.script(&t["--command=".len()..]);
                }
                t if t.starts_with('-') => {
                    return risky(
                        Tier::Unknown,
                        format!("`su` with option `{t}` is not allowed"),
                    )
                }
                _ => {} // the user name
            }
        }
        match cmd {
            Some(c) if c.is_static => self.script(&c.text),
            Some(_) => risky(Tier::Unknown, "`su -c` with a command computed at run time"),
            None => risky(Tier::Unknown, "`su` without -c opens an interactive shell"),
        }
    }

    fn env(&mut self, rest: &[Arg]) -> Classification {
        let mut acc = None;
        let mut i = 0;
        while i < rest.len() {
            let a = &rest[i];
            let t = a.text.as_str();
            if !a.is_static {
                if t.contains('=') && !t.starts_with('-') {
                    fold(
                        &mut acc,
                        risky(
                            Tier::HostChange,
                            "`env` sets a variable computed at run time",
                        ),
                    );
                    i += 1;
                    continue;
                }
                return risky(Tier::Unknown, "`env` with an argument computed at run time");
            }
            match t {
                "-i" | "--ignore-environment" | "-0" | "--null" | "-v" | "--debug" => i += 1,
                "-u" | "--unset" => i += 2,
                "--" => {
                    i += 1;
                    break;
                }
                t if t.starts_with("--unset=") => i += 1,
                t if t.starts_with('-') => {
                    return risky(
                        Tier::Unknown,
                        format!("`env` with option `{t}` is not allowed"),
                    )
                }
                t if t.contains('=') => {
                    let (name, value) = t.split_once('=').unwrap_or((t, ""));
                    let plain = value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._:/+-@,=".contains(c));
                    if !harmless_variable(name) || !plain {
                        fold(
                            &mut acc,
                            risky(
                                Tier::HostChange,
                                format!("`env` sets `{name}`, which can change what commands run or how"),
                            ),
                        );
                    }
                    i += 1;
                }
                _ => break,
            }
        }
        let inner = &rest[i.min(rest.len())..];
        if inner.is_empty() {
            fold(
                &mut acc,
                risky(
                    Tier::Secret,
                    "`env` without a command prints the environment, which may hold secrets",
                ),
            );
        } else {
            fold(&mut acc, self.leaf(inner));
        }
        acc.unwrap_or_else(|| risky(Tier::Unknown, "not understood"))
    }
}

fn self_calls_list(list: &CompoundList, name: &str, calls: &mut usize, piped: &mut bool) {
    for item in &list.0 {
        let async_ = matches!(item.1, SeparatorOperator::Async);
        let mut pipes = vec![&item.0.first];
        for n in &item.0.additional {
            match n {
                AndOr::And(p) | AndOr::Or(p) => pipes.push(p),
            }
        }
        for p in pipes {
            let in_pipe = async_ || p.seq.len() > 1;
            for c in &p.seq {
                self_calls_command(c, name, in_pipe, calls, piped);
            }
        }
    }
}

fn self_calls_command(c: &Command, name: &str, in_pipe: bool, calls: &mut usize, piped: &mut bool) {
    match c {
        Command::Simple(sc) => {
            if sc
                .word_or_name
                .as_ref()
                .is_some_and(|w| words::analyse(&w.value).text == name)
            {
                *calls += 1;
                if in_pipe {
                    *piped = true;
                }
            }
        }
        Command::Compound(cc, _) => self_calls_compound(cc, name, in_pipe, calls, piped),
        Command::Function(f) => self_calls_compound(&f.body.0, name, in_pipe, calls, piped),
        Command::ExtendedTest(..) => {}
    }
}

fn self_calls_compound(
    cc: &CompoundCommand,
    name: &str,
    in_pipe: bool,
    calls: &mut usize,
    piped: &mut bool,
) {
    let before = *calls;
    match cc {
        CompoundCommand::BraceGroup(b) => self_calls_list(&b.list, name, calls, piped),
        CompoundCommand::Subshell(s) => self_calls_list(&s.list, name, calls, piped),
        CompoundCommand::ForClause(f) => self_calls_list(&f.body.list, name, calls, piped),
        CompoundCommand::ArithmeticForClause(f) => {
            self_calls_list(&f.body.list, name, calls, piped)
        }
        CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
            self_calls_list(&w.0, name, calls, piped);
            self_calls_list(&w.1.list, name, calls, piped);
            if *calls > before {
                // A recursive call in a loop spawns without bound.
                *piped = true;
            }
        }
        CompoundCommand::IfClause(i) => {
            self_calls_list(&i.condition, name, calls, piped);
            self_calls_list(&i.then, name, calls, piped);
            for e in i.elses.iter().flatten() {
                if let Some(c) = &e.condition {
                    self_calls_list(c, name, calls, piped);
                }
                self_calls_list(&e.body, name, calls, piped);
            }
        }
        CompoundCommand::CaseClause(c) => {
            for item in &c.cases {
                if let Some(l) = &item.cmd {
                    self_calls_list(l, name, calls, piped);
                }
            }
        }
        CompoundCommand::Coprocess(c) => self_calls_command(&c.body, name, true, calls, piped),
        CompoundCommand::Arithmetic(_) => {}
    }
    if in_pipe && *calls > before {
        *piped = true;
    }
}

/// See [`super::simple_argv`].
pub(crate) fn simple_argv(command: &str) -> Option<Vec<String>> {
    precheck(command).ok()?;
    let program = parse(command).ok()?;
    let [cc] = program.complete_commands.as_slice() else {
        return None;
    };
    let [item] = cc.0.as_slice() else {
        return None;
    };
    if !matches!(item.1, SeparatorOperator::Sequence) || !item.0.additional.is_empty() {
        return None;
    }
    let p = &item.0.first;
    if p.bang || p.timed.is_some() {
        return None;
    }
    let [Command::Simple(sc)] = p.seq.as_slice() else {
        return None;
    };
    if sc.prefix.as_ref().is_some_and(|p| !p.0.is_empty()) {
        return None;
    }
    let mut out = Vec::new();
    let mut raw: Vec<&str> = vec![sc.word_or_name.as_ref()?.value.as_str()];
    for item in sc.suffix.iter().flat_map(|s| s.0.iter()) {
        match item {
            CommandPrefixOrSuffixItem::Word(w)
            | CommandPrefixOrSuffixItem::AssignmentWord(_, w) => raw.push(&w.value),
            _ => return None,
        }
    }
    for r in raw {
        let info = words::analyse(r);
        if !info.is_static || info.broken || info.ansi_c {
            return None;
        }
        out.push(info.text);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ClassifyContext;

    fn class(cmd: &str) -> Class {
        let ctx = ClassifyContext::default();
        Walker::new(&ctx, None).script(cmd).classification
    }

    #[test]
    fn prechecks_refuse_pathological_input() {
        assert!(precheck("ip a\0").is_err());
        assert!(precheck("ip a\r").is_err());
        assert!(precheck(&"(".repeat(100)).is_err());
        assert!(precheck(&"x".repeat(MAX_LEN + 1)).is_err());
        assert!(precheck("ip route show | grep default").is_ok());
        assert_eq!(
            class(&format!("{}ip a{}", "$(".repeat(60), ")".repeat(60))),
            Class::Risky
        );
    }

    #[test]
    fn deep_shell_nesting_is_risky_not_a_crash() {
        let mut cmd = "ip a".to_string();
        for _ in 0..20 {
            cmd = format!("eval {}", cmd.replace(' ', "\\ "));
        }
        assert_ne!(class(&cmd), Class::Safe);
    }

    #[test]
    fn fork_bomb_detection() {
        assert_eq!(class(":(){ :|:& };:"), Class::Forbidden);
        assert_eq!(class("f(){ while true; do f; done; }; f"), Class::Forbidden);
        assert_eq!(class("f(){ ip a; }"), Class::Risky);
    }

    #[test]
    fn harmless_variables() {
        assert!(harmless_variable("LC_ALL"));
        assert!(harmless_variable("LC_NUMERIC"));
        assert!(!harmless_variable("LC_x"));
        assert!(!harmless_variable("PATH"));
        assert!(!harmless_variable("LD_PRELOAD"));
    }

    #[test]
    fn leaves_are_collected_through_wrappers() {
        let ctx = ClassifyContext::default();
        let mut w = Walker::new(&ctx, None);
        w.collect_leaves = true;
        let _ = w.script("sudo -n bash -c 'ip a; iptables -Z INPUT'");
        let programs: Vec<&str> = w.leaves.iter().map(|l| l.program.as_str()).collect();
        assert_eq!(programs, vec!["sudo", "bash", "ip", "iptables"]);
        assert_eq!(w.leaves[3].text(), "iptables -Z INPUT");
    }
}
