//! Output formats of `-o/--output`: `json` (az's: keys sorted, two-space indent), `jsonc`
//! (the same without colours: netlab never colours), `tsv` (az's rules: one line per list
//! element, the scalar fields of an object in key order, nested objects and lists left out,
//! booleans as `True`/`False`, null as empty), `table` (columns = the scalar fields, as az
//! builds them when no table transformer applies) and `none`.

use serde_json::Value;

/// Formats a result.
pub fn format(v: &Value, fmt: &str) -> String {
    match fmt {
        "none" => String::new(),
        "tsv" => tsv(v),
        "table" => table(v),
        _ => {
            let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn tsv_row(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => Some(m.values().filter_map(scalar).collect::<Vec<_>>().join("\t")),
        Value::Array(a) => Some(a.iter().filter_map(scalar).collect::<Vec<_>>().join("\t")),
        other => scalar(other),
    }
}

fn tsv(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Array(a) => {
            for e in a {
                if let Some(r) = tsv_row(e) {
                    out.push_str(&r);
                    out.push('\n');
                }
            }
        }
        other => {
            if let Some(r) = tsv_row(other) {
                out.push_str(&r);
                out.push('\n');
            }
        }
    }
    out
}

/// A table with the given column headers, in that order (az's table transformers).
pub fn table_rows(heads: &[&str], cells: &[Vec<String>]) -> String {
    let heads: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
    render(&heads, cells)
}

fn header(k: &str) -> String {
    // az capitalises the first letter of each column name
    let mut c = k.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn table(v: &Value) -> String {
    let rows: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        other => vec![other],
    };
    let mut cols: Vec<String> = Vec::new();
    for r in &rows {
        match r {
            Value::Object(m) => {
                for (k, x) in m {
                    if scalar(x).is_some() && !cols.contains(k) {
                        cols.push(k.clone());
                    }
                }
            }
            _ => {
                if !cols.iter().any(|c| c == "Result") {
                    cols.push("Result".into());
                }
            }
        }
    }
    if cols.is_empty() {
        return String::new();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| match r {
                    Value::Object(m) => m.get(c).and_then(scalar).unwrap_or_default(),
                    other => scalar(other).unwrap_or_default(),
                })
                .collect()
        })
        .collect();
    let heads: Vec<String> = cols.iter().map(|c| header(c)).collect();
    render(&heads, &cells)
}

fn render(heads: &[String], cells: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..heads.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([heads[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |vals: &[String]| -> String {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(heads);
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.push('\n');
    for r in cells {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tsv_follows_az_rules() {
        let v = json!([{"b": 1, "a": "x", "n": {"k": 1}, "t": true, "z": null}, "plain"]);
        assert_eq!(format(&v, "tsv"), "x\t1\tTrue\t\nplain\n");
        assert_eq!(format(&json!("one"), "tsv"), "one\n");
    }

    #[test]
    fn table_has_header_rule_and_rows() {
        let v = json!([{"name": "a", "priority": 100}, {"name": "bbbb", "priority": 4096}]);
        let t = format(&v, "table");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "Name  Priority");
        assert_eq!(lines[1], "----  --------");
        assert_eq!(lines[3], "bbbb  4096");
        assert_eq!(format(&v, "none"), "");
        let j: Value = serde_json::from_str(&format(&v, "json")).unwrap();
        assert_eq!(j, v);
    }
}
