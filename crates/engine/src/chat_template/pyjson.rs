//! JSON text exactly as Python's `json.dumps(value, ensure_ascii=False, indent=...)` writes it, because chat
//! templates print tool definitions with `tojson` and the model was trained on Python's spelling
//! (`{"a": 1, "b": [1, 2]}` with spaces, not serde's compact form).

use serde_json::Value;

/// The arguments of `json.dumps` that templates use.
#[derive(Debug, Clone)]
pub(super) struct Options {
    /// Pretty-print with this many spaces per level.
    pub indent: Option<usize>,
    /// Between items (Python: `", "`, or `","` when indenting).
    pub item_separator: String,
    /// Between a key and its value.
    pub key_separator: String,
    /// Escape every non-ASCII character as `\uXXXX`.
    pub ensure_ascii: bool,
    /// Sort object keys.
    pub sort_keys: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            indent: None,
            item_separator: ", ".into(),
            key_separator: ": ".into(),
            ensure_ascii: false,
            sort_keys: false,
        }
    }
}

/// Serialises like Python's `json.dumps(value, ...)` with the given options.
pub(super) fn dumps(value: &Value, options: &Options) -> String {
    let mut out = String::new();
    write_value(&mut out, value, options, 0);
    out
}

fn write_value(out: &mut String, value: &Value, options: &Options, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s, options.ensure_ascii),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(out, i, options, depth + 1);
                write_value(out, item, options, depth + 1);
            }
            closing(out, options.indent, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<_> = map.iter().collect();
            if options.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                separator(out, i, options, depth + 1);
                write_string(out, key, options.ensure_ascii);
                out.push_str(&options.key_separator);
                write_value(out, item, options, depth + 1);
            }
            closing(out, options.indent, depth);
            out.push('}');
        }
    }
}

/// Before the i-th item: the item separator (not before the first), then a new indented line if indenting.
fn separator(out: &mut String, i: usize, options: &Options, depth: usize) {
    if i > 0 {
        out.push_str(&options.item_separator);
    }
    if let Some(width) = options.indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', width * depth));
    }
}

fn closing(out: &mut String, indent: Option<usize>, depth: usize) {
    if let Some(width) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', width * depth));
    }
}

fn write_string(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 || (ensure_ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_python_spelling() {
        let plain = Options::default();
        let value =
            json!({"name": "get_rate", "p": [1, 2.5, null, true], "e": {}, "s": "a\"b\n€\u{1}"});
        assert_eq!(
            dumps(&value, &plain),
            r#"{"e": {}, "name": "get_rate", "p": [1, 2.5, null, true], "s": "a\"b\n€\u0001"}"#
        );
        let indented =
            Options { indent: Some(2), item_separator: ",".into(), ..Options::default() };
        assert_eq!(
            dumps(&json!({"a": [1, {"b": 2}]}), &indented),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": 2\n    }\n  ]\n}"
        );
        let compact = Options {
            item_separator: ",".into(),
            key_separator: ":".into(),
            ensure_ascii: true,
            ..Options::default()
        };
        assert_eq!(
            dumps(&json!({"k": ["é", "🦙"]}), &compact),
            r#"{"k":["\u00e9","\ud83e\udd99"]}"#
        );
    }
}
