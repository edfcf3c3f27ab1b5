//! Word analysis: quote removal, expansion detection and the command substitutions a word
//! carries (which the walker classifies recursively).

use brush_parser::word::{self, WordPiece, WordPieceWithSource};
use brush_parser::ParserOptions;

/// What the classifier knows about one shell word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WordInfo {
    /// The word after quote removal. Expansions are kept as their source text (`$HOME`,
    /// `~`, `$(cmd)`), so that the forbidden rules can still recognise `rm -rf "$HOME"`.
    pub text: String,
    /// True when the word has no expansion of any kind: `text` is exactly what the
    /// program receives.
    pub is_static: bool,
    /// An unquoted glob character (`*`, `?`, `[`, extglob) is present.
    pub has_glob: bool,
    /// An unquoted `{` (possible brace expansion) is present.
    pub has_brace: bool,
    /// A tilde expansion is present.
    pub has_tilde: bool,
    /// Bodies of command substitutions (`$(…)`, backticks) found anywhere in the word,
    /// including inside double quotes, parameter defaults and arithmetic.
    pub substitutions: Vec<String>,
    /// The word could not be analysed (bad escape, parse error).
    pub broken: bool,
    /// The word uses ANSI-C quoting (`$'…'`).
    pub ansi_c: bool,
    /// An arithmetic context (`$((…))`, a `${x:off:len}` substring, a `${a[i]}` subscript)
    /// names a variable, or `${!name}` indirection is used: bash evaluates the variable's *content* as an expression there,
    /// and an expression can hold an array subscript with a command substitution, so a
    /// variable holding hostile text runs commands.
    pub arith_vars: bool,
    /// The source text of the command substitutions in `text` (their bodies are scripts,
    /// classified on their own, where newlines are syntax).
    pub substitution_sources: Vec<String>,
}

impl WordInfo {
    /// A control character (newline, carriage return, NUL, escape …) is in the word.
    pub fn has_control(&self) -> bool {
        if self.substitution_sources.is_empty() {
            return self.text.chars().any(|c| c.is_control());
        }
        let mut rest = self.text.clone();
        for src in &self.substitution_sources {
            rest = rest.replacen(src.as_str(), "", 1);
        }
        rest.chars().any(|c| c.is_control())
    }

    /// A character outside ASCII is in the word.
    pub fn has_non_ascii(&self) -> bool {
        !self.text.is_ascii()
    }
}

/// The parser options used everywhere.
pub(crate) fn parser_options() -> ParserOptions {
    ParserOptions::default()
}

/// Analyses one raw word as it appears in the source (quotes included).
pub(crate) fn analyse(raw: &str) -> WordInfo {
    let mut info = WordInfo {
        is_static: true,
        ..WordInfo::default()
    };
    match word::parse(raw, &parser_options()) {
        Ok(pieces) => walk_pieces(raw, &pieces, false, &mut info, 0),
        Err(_) => {
            info.broken = true;
            info.is_static = false;
            info.text = raw.to_string();
        }
    }
    info
}

/// Analyses a here-document body: quotes are literal, expansions happen unless the
/// delimiter was quoted.
pub(crate) fn analyse_heredoc(raw: &str) -> WordInfo {
    let mut info = WordInfo {
        is_static: true,
        ..WordInfo::default()
    };
    match word::parse_heredoc(raw, &parser_options()) {
        Ok(pieces) => walk_pieces(raw, &pieces, true, &mut info, 0),
        Err(_) => {
            info.broken = true;
            info.is_static = false;
            info.text = raw.to_string();
        }
    }
    info
}

fn source_slice(raw: &str, p: &WordPieceWithSource) -> String {
    raw.get(p.start_index..p.end_index)
        .map(str::to_string)
        .unwrap_or_default()
}

fn walk_pieces(
    raw: &str,
    pieces: &[WordPieceWithSource],
    quoted: bool,
    info: &mut WordInfo,
    depth: usize,
) {
    if depth > 16 {
        info.broken = true;
        info.is_static = false;
        return;
    }
    for p in pieces {
        match &p.piece {
            WordPiece::Text(t) => {
                if !quoted {
                    if t.contains(['*', '?', '[']) || t.contains("@(") || t.contains("!(") {
                        info.has_glob = true;
                        info.is_static = false;
                    }
                    if t.contains('{') {
                        info.has_brace = true;
                        info.is_static = false;
                    }
                }
                info.text.push_str(t);
            }
            WordPiece::SingleQuotedText(t) => info.text.push_str(t),
            WordPiece::AnsiCQuotedText(t) => match decode_ansi_c(t).inspect(|_| info.ansi_c = true)
            {
                Some(d) => info.text.push_str(&d),
                None => {
                    info.broken = true;
                    info.is_static = false;
                    info.text.push_str(t);
                }
            },
            WordPiece::DoubleQuotedSequence(inner)
            | WordPiece::GettextDoubleQuotedSequence(inner) => {
                walk_pieces(raw, inner, true, info, depth + 1);
            }
            WordPiece::TildeExpansion(_) => {
                info.has_tilde = true;
                info.is_static = false;
                info.text.push_str(&source_slice(raw, p));
            }
            WordPiece::ParameterExpansion(_) => {
                info.is_static = false;
                let src = source_slice(raw, p);
                // `${x@P}` (prompt expansion) runs command substitutions found in the
                // *value* of x; refuse every `@` transformation.
                if src
                    .trim_end_matches('}')
                    .rsplit_once('@')
                    .is_some_and(|(_, op)| {
                        op.len() == 1 && op.chars().all(|c| c.is_ascii_alphabetic())
                    })
                {
                    info.broken = true;
                }
                // Defaults, alternatives and patterns may hold command substitutions.
                if let Some(inner) = src.strip_prefix("${").and_then(|s| s.strip_suffix('}')) {
                    if parameter_arithmetic_names_variable(inner) {
                        info.arith_vars = true;
                    }
                    collect_nested(inner, info, depth);
                }
                info.text.push_str(&src);
            }
            WordPiece::CommandSubstitution(body) => {
                info.is_static = false;
                info.substitutions.push(body.clone());
                let src = source_slice(raw, p);
                info.substitution_sources.push(src.clone());
                info.text.push_str(&src);
            }
            WordPiece::BackquotedCommandSubstitution(body) => {
                info.is_static = false;
                info.substitutions.push(unescape_backquoted(body));
                let src = source_slice(raw, p);
                info.substitution_sources.push(src.clone());
                info.text.push_str(&src);
            }
            WordPiece::EscapeSequence(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some('\\'), Some('\n')) => {}
                    (Some('\\'), Some(c)) => {
                        if quoted && !matches!(c, '$' | '`' | '"' | '\\') {
                            info.text.push('\\');
                        }
                        info.text.push(c);
                        info.text.extend(chars);
                    }
                    _ => info.text.push_str(s),
                }
            }
            WordPiece::ArithmeticExpression(expr) => {
                info.is_static = false;
                if names_variable(&expr.value) {
                    info.arith_vars = true;
                }
                collect_nested(&expr.value, info, depth);
                info.text.push_str(&source_slice(raw, p));
            }
        }
    }
}

/// True when arithmetic text names a variable (a letter, `_` or `$`): only literal numbers
/// and operators are inert.
pub(crate) fn names_variable(expr: &str) -> bool {
    // Hex and base literals (`0x1f`, `16#ff`) have letters too; they are still numbers.
    let mut chars = expr.chars().peekable();
    let mut prev_digit = false;
    while let Some(c) = chars.next() {
        if c == '$' || c == '_' {
            return true;
        }
        if c.is_ascii_alphabetic() {
            if prev_digit {
                // The rest of a numeric literal (`0x1f`, `16#ff`, `10e`): consume it.
                while chars.peek().is_some_and(|n| n.is_ascii_alphanumeric()) {
                    chars.next();
                }
                continue;
            }
            return true;
        }
        prev_digit = c.is_ascii_digit() || (prev_digit && c == '#');
    }
    false
}

/// The arithmetic parts of a parameter expansion's body (`x:off:len`, `a[i]`) name a
/// variable. Defaults and alternatives (`x:-…`, `x:=…`, `x:+…`, `x:?…`) are words, not
/// arithmetic.
fn parameter_arithmetic_names_variable(inner: &str) -> bool {
    // `${!name}` expands the variable *named by* name's content, subscript included
    // (`a[$(cmd)]`); only the name listings `${!pfx*}`, `${!pfx@}`, `${!a[@]}` are inert.
    if let Some(ind) = inner.strip_prefix('!') {
        let listing = ind.ends_with('*')
            || ind.ends_with('@')
            || ind.ends_with("[@]")
            || ind.ends_with("[*]");
        if !listing {
            return true;
        }
    }
    let body = inner.trim_start_matches(['#', '!']);
    let name_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let rest = &body[name_len..];
    if let Some(sub) = rest.strip_prefix('[') {
        let idx = sub.split(']').next().unwrap_or("");
        if idx != "@" && idx != "*" && names_variable(idx) {
            return true;
        }
        let after = sub.split_once(']').map(|(_, r)| r).unwrap_or("");
        return substring_names_variable(after);
    }
    substring_names_variable(rest)
}

fn substring_names_variable(rest: &str) -> bool {
    match rest.strip_prefix(':') {
        Some(r) if !r.starts_with(['-', '=', '+', '?']) => names_variable(r),
        _ => false,
    }
}

/// Finds command substitutions inside text that the shell will expand later (parameter
/// defaults, arithmetic).
fn collect_nested(text: &str, info: &mut WordInfo, depth: usize) {
    if !(text.contains('$') || text.contains('`')) {
        return;
    }
    match word::parse(text, &parser_options()) {
        Ok(pieces) => {
            let mut nested = WordInfo::default();
            walk_pieces(text, &pieces, true, &mut nested, depth + 1);
            info.substitutions.extend(nested.substitutions);
            if nested.broken {
                info.broken = true;
            }
        }
        Err(_) => info.broken = true,
    }
}

fn unescape_backquoted(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n) = chars.peek() {
                if matches!(n, '$' | '`' | '\\') {
                    out.push(n);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// Decodes the body of an ANSI-C quoted string (`$'…'`). `None` for an escape the
/// classifier does not know.
pub(crate) fn decode_ansi_c(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = *chars.get(i)?;
        i += 1;
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'e' | 'E' => out.push('\x1b'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' | '\'' | '"' | '?' => out.push(e),
            '0'..='7' => {
                let mut v = e.to_digit(8)?;
                let mut n = 1;
                while n < 3 {
                    match chars.get(i).and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            i += 1;
                            n += 1;
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v & 0xff)?);
            }
            'x' | 'u' | 'U' => {
                let max = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut v: u32 = 0;
                let mut n = 0;
                while n < max {
                    match chars.get(i).and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            v = v.checked_mul(16)?.checked_add(d)?;
                            i += 1;
                            n += 1;
                        }
                        None => break,
                    }
                }
                if n == 0 {
                    return None;
                }
                out.push(char::from_u32(v)?);
            }
            'c' => {
                let x = *chars.get(i)?;
                i += 1;
                out.push(char::from_u32((x as u32) & 0x1f)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_removal() {
        assert_eq!(analyse("'r'm").text, "rm");
        assert_eq!(analyse(r"r\m").text, "rm");
        assert_eq!(analyse("\"rm\"").text, "rm");
        assert!(analyse("'r'm").is_static);
        assert_eq!(analyse("$'r\\x6d'").text, "rm");
    }

    #[test]
    fn expansions_are_not_static() {
        for w in [
            "$HOME", "~", "*", "a{b,c}", "$(id)", "`id`", "$((1+1))", "\"$x\"",
        ] {
            assert!(!analyse(w).is_static, "{w}");
        }
        assert!(analyse("'*'").is_static);
    }

    #[test]
    fn substitutions_are_found_everywhere() {
        assert_eq!(
            analyse("\"a $(id) b\"").substitutions,
            vec!["id".to_string()]
        );
        assert_eq!(analyse("`id`").substitutions, vec!["id".to_string()]);
        assert_eq!(analyse("${x:-$(id)}").substitutions, vec!["id".to_string()]);
    }
}
