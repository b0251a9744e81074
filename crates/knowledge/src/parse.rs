//! Turns one file into source documents. Plain text and Markdown are one document each (Markdown
//! front matter gives title, date and tags); HTML loses its boilerplate (scripts, styles, navigation,
//! headers, footers, asides, comments) and keeps headings as Markdown headings so the chunker carries
//! them; CSV, JSON and JSONL are corpora with one document per record. The document id comes from the
//! source (the path, plus `#id` or `#line` for records), never from the content, so an edit keeps it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::encoding::{TextEncoding, decode};

/// A document as read from a source, before cleaning and chunking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDoc {
    /// Where it came from: the path, with `#record` for corpus records. The document id derives from it.
    pub source: String,
    /// Title (front matter, `<title>`, first heading or line, or the file name).
    pub title: String,
    /// The text.
    pub text: String,
    /// Publication time, unix seconds, when the source says.
    pub published_at: Option<i64>,
    /// Tags from the source.
    pub tags: Vec<String>,
    /// Tenant from the source (records may carry one).
    pub tenant: Option<String>,
}

/// File kinds ingest understands.
pub const SUPPORTED: &[&str] = &[
    "txt", "text", "md", "markdown", "html", "htm", "csv", "json", "jsonl", "ndjson", "docx", "pdf",
];

/// Reads the documents in `bytes` from a file at `path`; `Err` is the reason to skip it.
pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<(Vec<SourceDoc>, TextEncoding), String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if !SUPPORTED.contains(&ext.as_str()) {
        return Err(format!("unsupported file type `.{ext}`"));
    }
    let source = path.display().to_string();
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_owned();
    if ext == "docx" || ext == "pdf" {
        let (title, text) = if ext == "docx" {
            crate::office::docx(bytes)?
        } else {
            let text = crate::office::pdf(bytes)?;
            (first_line(&text), text)
        };
        let title = title.filter(|t| !t.is_empty()).unwrap_or(stem);
        return Ok((
            vec![SourceDoc { source, title, text, ..SourceDoc::default() }],
            TextEncoding::Utf8,
        ));
    }
    let (text, encoding) = decode(bytes)?;
    let docs = match ext.as_str() {
        "md" | "markdown" => vec![markdown(&source, &stem, &text)],
        "html" | "htm" => vec![html(&source, &stem, &text)],
        "csv" => csv_records(&source, &text)?,
        "json" => json_records(&source, &text)?,
        "jsonl" | "ndjson" => jsonl_records(&source, &text)?,
        _ => {
            let title = first_line(&text).unwrap_or(stem);
            vec![SourceDoc { source, title, text, ..SourceDoc::default() }]
        }
    };
    Ok((docs, encoding))
}

fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.trim_start_matches('#').trim().chars().take(80).collect())
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or RFC 3339 into unix seconds (UTC when no offset).
pub fn parse_date(value: &str) -> Option<i64> {
    use time::{
        Date, OffsetDateTime, PrimitiveDateTime, format_description::well_known::Rfc3339,
        macros::format_description,
    };
    let v = value.trim();
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    if let Ok(t) = PrimitiveDateTime::parse(
        v,
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    ) {
        return Some(t.assume_utc().unix_timestamp());
    }
    Date::parse(v, format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

/// `YYYY-MM-DD` of a unix time (UTC); empty when out of range.
pub fn format_date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

/// The current unix time in seconds.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn markdown(source: &str, stem: &str, text: &str) -> SourceDoc {
    let mut doc = SourceDoc { source: source.to_owned(), ..SourceDoc::default() };
    let mut body = text;
    if let Some(rest) = text.strip_prefix("---\n")
        && let Some(end) = rest.find("\n---")
    {
        for line in rest[..end].lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            let value = value.trim().trim_matches('"');
            match key.trim() {
                "title" => doc.title = value.to_owned(),
                "date" | "published_at" => doc.published_at = parse_date(value),
                "tags" => {
                    doc.tags = value
                        .trim_matches(['[', ']'])
                        .split(',')
                        .map(|t| t.trim().trim_matches('"').to_owned())
                        .filter(|t| !t.is_empty())
                        .collect();
                }
                "tenant" => doc.tenant = Some(value.to_owned()),
                _ => {}
            }
        }
        body = rest[end + 4..].trim_start_matches(['-', '\n']);
    }
    if doc.title.is_empty() {
        doc.title = body
            .lines()
            .find(|l| l.starts_with("# "))
            .map(|l| l[2..].trim().to_owned())
            .or_else(|| first_line(body))
            .unwrap_or_else(|| stem.to_owned());
    }
    doc.text = body.to_owned();
    doc
}

/// Strips HTML to text: boilerplate elements removed, block elements become line breaks, `h1`–`h6`
/// become Markdown headings, entities decoded.
pub fn html_to_text(html: &str) -> (Option<String>, String) {
    let lower = html.to_ascii_lowercase();
    let title = lower.find("<title").and_then(|s| {
        let open = s + lower[s..].find('>')? + 1;
        let close = open + lower[open..].find("</title")?;
        Some(decode_entities(html[open..close].trim()))
    });
    let mut out = String::with_capacity(html.len() / 2);
    let mut i = 0;
    let bytes = lower.as_bytes();
    while i < html.len() {
        if bytes[i] != b'<' {
            let next = lower[i..].find('<').map_or(html.len(), |p| i + p);
            out.push_str(&decode_entities(&html[i..next]));
            i = next;
            continue;
        }
        if lower[i..].starts_with("<!--") {
            i = lower[i..].find("-->").map_or(html.len(), |p| i + p + 3);
            continue;
        }
        let end = lower[i..].find('>').map_or(html.len(), |p| i + p + 1);
        let tag = &lower[i + 1..end.saturating_sub(1).max(i + 1)];
        let name: String =
            tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let closing = tag.starts_with('/');
        if !closing
            && matches!(
                name.as_str(),
                "script"
                    | "style"
                    | "nav"
                    | "header"
                    | "footer"
                    | "aside"
                    | "noscript"
                    | "template"
                    | "svg"
                    | "form"
                    | "title"
            )
        {
            let close = format!("</{name}");
            i = lower[end..].find(&close).map_or(html.len(), |p| {
                let after = end + p;
                lower[after..].find('>').map_or(html.len(), |q| after + q + 1)
            });
            continue;
        }
        match name.as_str() {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" if !closing => {
                let level = usize::from(name.as_bytes()[1] - b'0');
                out.push('\n');
                out.push_str(&"#".repeat(level));
                out.push(' ');
            }
            "p" | "div" | "br" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
            | "section" | "article" | "table" | "ul" | "ol" | "blockquote" | "pre" => {
                out.push('\n');
            }
            "td" | "th" => out.push(' '),
            _ => {}
        }
        i = end;
    }
    let mut text = String::with_capacity(out.len());
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        text.push_str(line);
        text.push('\n');
    }
    (title, text)
}

/// Decodes the HTML/XML character entities of `s`.
pub(crate) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn html(source: &str, stem: &str, text: &str) -> SourceDoc {
    let (title, body) = html_to_text(text);
    let title = title
        .filter(|t| !t.is_empty())
        .or_else(|| first_line(&body))
        .unwrap_or_else(|| stem.to_owned());
    SourceDoc { source: source.to_owned(), title, text: body, ..SourceDoc::default() }
}

const TEXT_KEYS: &[&str] = &["text", "content", "body", "context"];

fn record(
    source: &str,
    fallback_id: usize,
    get: &dyn Fn(&str) -> Option<String>,
) -> Option<SourceDoc> {
    let text = TEXT_KEYS.iter().find_map(|k| get(k))?;
    let id = get("id").unwrap_or_else(|| format!("line{fallback_id}"));
    let tags = get("tags")
        .map(|t| {
            t.split([',', ';', '|'])
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Some(SourceDoc {
        source: format!("{source}#{id}"),
        title: get("title").or_else(|| first_line(&text)).unwrap_or_default(),
        published_at: get("published_at").or_else(|| get("date")).and_then(|d| parse_date(&d)),
        tags,
        tenant: get("tenant"),
        text,
    })
}

fn json_value_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Array(items) => {
            Some(items.iter().filter_map(json_value_text).collect::<Vec<_>>().join(","))
        }
        _ => None,
    }
}

fn json_record(source: &str, n: usize, value: &serde_json::Value) -> Option<SourceDoc> {
    record(source, n, &|k| value.get(k).and_then(json_value_text))
}

fn json_records(source: &str, text: &str) -> Result<Vec<SourceDoc>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let items = match &value {
        serde_json::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let docs: Vec<SourceDoc> =
        items.iter().enumerate().filter_map(|(n, v)| json_record(source, n + 1, v)).collect();
    if docs.is_empty() {
        return Err(format!("no record with a text field ({})", TEXT_KEYS.join(", ")));
    }
    Ok(docs)
}

fn jsonl_records(source: &str, text: &str) -> Result<Vec<SourceDoc>, String> {
    let mut docs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: invalid JSON: {e}", n + 1))?;
        docs.extend(json_record(source, n + 1, &value));
    }
    Ok(docs)
}

fn csv_records(source: &str, text: &str) -> Result<Vec<SourceDoc>, String> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("invalid CSV: {e}"))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut docs = Vec::new();
    for (n, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("invalid CSV: {e}"))?;
        let get = |k: &str| {
            headers
                .iter()
                .position(|h| h == k)
                .and_then(|i| row.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        docs.extend(record(source, n + 1, &get));
    }
    if docs.is_empty() {
        return Err(format!("no row with a text column ({})", TEXT_KEYS.join(", ")));
    }
    Ok(docs)
}
