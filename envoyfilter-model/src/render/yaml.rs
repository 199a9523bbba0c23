//! A small, deterministic YAML writer for the generated EnvoyFilters: keys in the order given,
//! two-space indentation, plain scalars only where YAML cannot misread them, JSON text as `|`
//! literal blocks so it reads the way Istio's templates look.

/// An ordered YAML tree.
#[derive(Debug, Clone)]
pub enum Y {
    Map(Vec<(String, Y)>),
    Seq(Vec<Y>),
    Str(String),
    /// A literal block scalar (`|`); the text should end with a newline.
    Block(String),
    Int(i64),
    Bool(bool),
    /// `{}`
    EmptyMap,
}

pub fn map(entries: Vec<(&str, Y)>) -> Y {
    Y::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

pub fn s(v: &str) -> Y {
    Y::Str(v.to_string())
}

/// Renders one document (without the `---` separator).
pub fn to_string(y: &Y) -> String {
    let mut out = String::new();
    match y {
        Y::Map(entries) => write_map(entries, 0, &mut out),
        other => {
            write_inline_or_block(other, 0, &mut out);
        }
    }
    out
}

fn indent(n: usize, out: &mut String) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn write_map(entries: &[(String, Y)], level: usize, out: &mut String) {
    for (k, v) in entries {
        indent(level, out);
        out.push_str(&scalar(k));
        out.push(':');
        write_value(v, level, out);
    }
}

/// Writes what follows `key:` (or `- `).
fn write_value(v: &Y, level: usize, out: &mut String) {
    match v {
        Y::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            write_map(entries, level + 2, out);
        }
        Y::Seq(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(items, level, out);
        }
        other => {
            out.push(' ');
            write_inline_or_block(other, level, out);
        }
    }
}

fn write_seq(items: &[Y], level: usize, out: &mut String) {
    for item in items {
        indent(level, out);
        out.push('-');
        match item {
            Y::Map(entries) if !entries.is_empty() => {
                // First key on the dash line, the rest aligned under it.
                let mut first = true;
                for (k, v) in entries {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        indent(level + 2, out);
                    }
                    out.push_str(&scalar(k));
                    out.push(':');
                    write_value(v, level + 2, out);
                }
            }
            other => write_value(other, level, out),
        }
    }
}

fn write_inline_or_block(v: &Y, level: usize, out: &mut String) {
    match v {
        Y::Str(s) => {
            out.push_str(&scalar(s));
            out.push('\n');
        }
        Y::Int(i) => {
            out.push_str(&i.to_string());
            out.push('\n');
        }
        Y::Bool(b) => {
            out.push_str(if *b { "true" } else { "false" });
            out.push('\n');
        }
        Y::EmptyMap | Y::Map(_) => out.push_str("{}\n"),
        Y::Seq(_) => out.push_str("[]\n"),
        Y::Block(text) => {
            out.push_str("|\n");
            for line in text.lines() {
                if line.is_empty() {
                    out.push('\n');
                } else {
                    indent(level + 2, out);
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
}

/// A plain scalar when YAML reads it back as the same string, else single-quoted.
fn scalar(s: &str) -> String {
    let plain_ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
        && !s.starts_with(['-', '.'])
        && !looks_typed(s);
    if plain_ok {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Strings YAML 1.1/1.2 would read as something other than a string.
fn looks_typed(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "~"
    ) || s.parse::<f64>().is_ok()
        || s.chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_blocks_round_trip() {
        let doc = map(vec![
            ("a", s(r"^1\.13.*")),
            ("b", s("plain.name")),
            ("c", s("true")),
            ("d", Y::Block("{\"x\":1}\n".into())),
            (
                "e",
                Y::Seq(vec![map(vec![("k", s("v")), ("l", Y::Int(-1))])]),
            ),
            ("f", Y::EmptyMap),
            ("g", s("")),
        ]);
        let text = to_string(&doc);
        let back: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back["a"].as_str(), Some(r"^1\.13.*"));
        assert_eq!(back["b"].as_str(), Some("plain.name"));
        assert_eq!(back["c"].as_str(), Some("true"));
        assert_eq!(back["d"].as_str(), Some("{\"x\":1}\n"));
        assert_eq!(back["e"][0]["l"].as_i64(), Some(-1));
        assert!(back["f"].as_mapping().unwrap().is_empty());
        assert_eq!(back["g"].as_str(), Some(""));
        assert!(text.contains("a: '^1\\.13.*'\n"), "{text}");
    }
}
