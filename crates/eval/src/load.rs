//! Loaders for the formats benchmark data ships in: CSV with option columns, JSON arrays, JSONL (also chat
//! `messages`). Each yields [`Sample`]s; malformed data is an error naming file, row and column.

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;

use crate::{EvalError, task::Format, task::Sample};

/// Option column names, in order; a row uses those that are present and non-empty.
const LETTERS: [&str; 6] = ["A", "B", "C", "D", "E", "F"];

/// Loads `path`, in `format` or the one its extension says.
pub fn load(path: &Path, format: Option<Format>) -> Result<Vec<Sample>, EvalError> {
    let format = match format {
        Some(f) => f,
        None => match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Format::Csv,
            Some("json") => Format::Json,
            Some("jsonl") => Format::Jsonl,
            Some("tsv") => Format::Tsv,
            Some("arrow") => Format::Arrow,
            _ => {
                return Err(data_err(
                    path,
                    0,
                    None,
                    "unknown format: name it in the task spec".into(),
                ));
            }
        },
    };
    let read_text = || -> Result<String, EvalError> {
        let text = crate::read_file(path)?;
        Ok(text.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(text))
    };
    match format {
        Format::Csv => load_csv(path, &read_text()?, b','),
        Format::Tsv => load_csv(path, &read_text()?, b'\t'),
        Format::Arrow => crate::arrow::read_rows(path)?
            .into_iter()
            .enumerate()
            .map(|(i, row)| from_object(path, i + 1, &Value::Object(row)))
            .collect(),
        Format::Json => {
            let value: Value = serde_json::from_str(&read_text()?).map_err(|e| {
                data_err(path, e.line(), None, format!("not JSON: {e} (column {})", e.column()))
            })?;
            let Value::Array(items) = value else {
                return Err(data_err(path, 1, None, "expected a JSON array of objects".into()));
            };
            items.iter().enumerate().map(|(i, item)| from_object(path, i + 1, item)).collect()
        }
        Format::Jsonl => read_text()?
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                let value: Value = serde_json::from_str(line)
                    .map_err(|e| data_err(path, i + 1, None, format!("not JSON: {e}")))?;
                from_object(path, i + 1, &value)
            })
            .collect(),
    }
}

fn data_err(path: &Path, row: usize, column: Option<&str>, message: String) -> EvalError {
    EvalError::Data {
        file: path.display().to_string(),
        row,
        column: column.map(str::to_owned),
        message,
    }
}

fn load_csv(path: &Path, text: &str, delimiter: u8) -> Result<Vec<Sample>, EvalError> {
    let mut reader =
        csv::ReaderBuilder::new().flexible(false).delimiter(delimiter).from_reader(text.as_bytes());
    let headers =
        reader.headers().map_err(|e| data_err(path, 1, None, format!("bad header: {e}")))?.clone();
    let find = |names: &[&str]| headers.iter().position(|h| names.contains(&h.trim()));
    let question = find(&["question", "Question", "instruction", "input", "prompt", "问题"])
        .ok_or_else(|| data_err(path, 1, Some("question"), "no question column".into()))?;
    // Prompt-only files (safety prompts) have no answer column; their rows get an empty target, which
    // only open tasks accept (Task::load checks).
    let answer = find(&["answer", "Answer", "output", "target"]);
    let id = find(&["id", "ID", "", "index"]);
    let context = find(&["context"]);
    let image = find(&["image_path", "image", "img_path"]);
    let options: Vec<(usize, &str)> =
        LETTERS.iter().filter_map(|l| find(&[l]).map(|i| (i, *l))).collect();
    let mut samples = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let row = n + 2;
        let record = record.map_err(|e| {
            let line = e.position().map_or(row, |p| p.line() as usize);
            data_err(path, line, None, format!("{e}"))
        })?;
        let get = |i: usize| record.get(i).unwrap_or("").trim().to_owned();
        let choices: Vec<(String, String)> = options
            .iter()
            .map(|&(i, l)| (l.to_owned(), get(i)))
            .filter(|(_, text)| !text.is_empty())
            .collect();
        let target = answer.map(get).unwrap_or_default();
        if let Some(answer) = answer.filter(|_| target.is_empty()) {
            return Err(data_err(path, row, headers.get(answer), "empty answer".into()));
        }
        if !choices.is_empty() {
            check_letters(path, row, answer.and_then(|a| headers.get(a)), &target, &choices)?;
        }
        let fields = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.to_owned(), v.to_owned()))
            .collect::<BTreeMap<_, _>>();
        let images = match image.map(get).filter(|v| !v.is_empty()) {
            Some(value) => vec![image_ref(path, row, headers.get(image.unwrap_or(0)), &value)?],
            None => Vec::new(),
        };
        samples.push(Sample {
            id: id.map(get).filter(|s| !s.is_empty()).unwrap_or_else(|| (row - 1).to_string()),
            question: get(question),
            context: context.map(get).filter(|s| !s.is_empty()),
            choices,
            target,
            fields,
            images,
        });
    }
    Ok(samples)
}

/// The answer of a choice row must be letters of its options (`B`, `ABD`).
fn check_letters(
    path: &Path,
    row: usize,
    column: Option<&str>,
    target: &str,
    choices: &[(String, String)],
) -> Result<(), EvalError> {
    for c in target.chars() {
        if !choices.iter().any(|(l, _)| l.starts_with(c)) {
            let labels: String = choices.iter().map(|(l, _)| l.as_str()).collect();
            return Err(data_err(
                path,
                row,
                column,
                format!("answer {target:?} is not among the options {labels}"),
            ));
        }
    }
    Ok(())
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn from_object(path: &Path, row: usize, item: &Value) -> Result<Sample, EvalError> {
    let Value::Object(map) = item else {
        return Err(data_err(path, row, None, "expected a JSON object".into()));
    };
    let field = |k: &str| map.get(k).and_then(text_of).filter(|s| !s.is_empty());
    let mut fields: BTreeMap<String, String> =
        map.iter().filter_map(|(k, v)| text_of(v).map(|t| (k.clone(), t))).collect();
    let (question, chat_answer) = if let Some(messages) = map.get("messages") {
        let Value::Array(messages) = messages else {
            return Err(data_err(path, row, Some("messages"), "expected an array".into()));
        };
        let mut question = None;
        let mut answer = None;
        for (i, m) in messages.iter().enumerate() {
            let role = m.get("role").and_then(Value::as_str);
            let content = m.get("content").and_then(text_of).ok_or_else(|| {
                data_err(path, row, Some(&format!("messages[{i}].content")), "missing".into())
            })?;
            match role {
                Some("system") => {
                    fields.insert("system".into(), content);
                }
                Some("user") => question = Some(content),
                Some("assistant") => answer = Some(content),
                _ => {
                    return Err(data_err(
                        path,
                        row,
                        Some(&format!("messages[{i}].role")),
                        "expected system, user or assistant".into(),
                    ));
                }
            }
        }
        let question = question
            .ok_or_else(|| data_err(path, row, Some("messages"), "no user message".into()))?;
        (question, answer)
    } else {
        let question = match (field("question"), field("instruction"), field("input")) {
            (Some(q), ..) => q,
            (None, Some(i), Some(input)) => format!("{i}\n{input}"),
            (None, Some(i), None) => i,
            (None, None, Some(input)) => input,
            (None, None, None) => {
                return Err(data_err(path, row, Some("question"), "no question field".into()));
            }
        };
        (question, None)
    };
    let target = field("answer")
        .or_else(|| field("gold_answer"))
        .or(chat_answer)
        .or_else(|| field("output"))
        .or_else(|| field("response"))
        .ok_or_else(|| data_err(path, row, Some("answer"), "no answer field".into()))?;
    let choices = match map.get("choices") {
        None | Some(Value::Null) => LETTERS
            .iter()
            .filter_map(|l| field(l).map(|t| ((*l).to_owned(), t)))
            .collect::<Vec<_>>(),
        Some(Value::Object(m)) => {
            m.iter().filter_map(|(k, v)| text_of(v).map(|t| (k.clone(), t))).collect()
        }
        Some(Value::Array(items)) => items
            .iter()
            .zip(LETTERS)
            .filter_map(|(v, l)| text_of(v).map(|t| (l.to_owned(), t)))
            .collect(),
        Some(Value::String(s)) => parse_dict(s).ok_or_else(|| {
            data_err(path, row, Some("choices"), format!("unreadable options {s:?}"))
        })?,
        Some(_) => return Err(data_err(path, row, Some("choices"), "expected an object".into())),
    };
    if !choices.is_empty() {
        check_letters(path, row, Some("answer"), &target, &choices)?;
    }
    Ok(Sample {
        id: field("id").unwrap_or_else(|| row.to_string()),
        question,
        context: field("context"),
        choices,
        target,
        fields,
        images: Vec::new(),
    })
}

/// An image cell: a file path relative to the data file (which must exist), or inline base64 (as in
/// VLMEvalKit-style TSVs), kept as a `data:` URL.
fn image_ref(
    data_file: &Path,
    row: usize,
    column: Option<&str>,
    value: &str,
) -> Result<String, EvalError> {
    let base = data_file.parent().unwrap_or(Path::new("."));
    let candidate = base.join(value);
    if candidate.is_file() {
        return Ok(candidate.display().to_string());
    }
    let looks_base64 = value.len() >= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if looks_base64 {
        let mime = if value.starts_with("/9j/") {
            "image/jpeg"
        } else if value.starts_with("iVBOR") {
            "image/png"
        } else {
            "application/octet-stream"
        };
        return Ok(format!("data:{mime};base64,{value}"));
    }
    Err(data_err(data_file, row, column, format!("image {} does not exist", candidate.display())))
}

/// The `data:` URL of an image reference (reads and encodes a file path).
pub fn image_data_url(image: &str) -> Result<String, EvalError> {
    if image.starts_with("data:") {
        return Ok(image.to_owned());
    }
    let path = Path::new(image);
    let bytes =
        std::fs::read(path).map_err(|error| EvalError::Io { path: image.to_owned(), error })?;
    let mime = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase) {
        Some(e) if e == "png" => "image/png",
        Some(e) if e == "jpg" || e == "jpeg" => "image/jpeg",
        Some(e) if e == "gif" => "image/gif",
        Some(e) if e == "webp" => "image/webp",
        _ => "application/octet-stream",
    };
    Ok(format!("data:{mime};base64,{}", base64(&bytes)))
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Parses option dicts written as Python literals (`{'A': '货币市场', 'B': '债券市场'}`) or as JSON.
pub fn parse_dict(text: &str) -> Option<Vec<(String, String)>> {
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) {
        return Some(m.iter().filter_map(|(k, v)| text_of(v).map(|t| (k.clone(), t))).collect());
    }
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?.trim();
    // Keys are single capital letters, so split at each `'X': '` marker in order.
    let mut markers = Vec::new();
    for l in LETTERS {
        for quote in ['\'', '"'] {
            let marker = format!("{quote}{l}{quote}: {quote}");
            if let Some(at) = body.find(&marker) {
                markers.push((at, marker.len(), l, quote));
                break;
            }
        }
    }
    if markers.is_empty() || markers[0].0 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for (i, &(at, len, label, quote)) in markers.iter().enumerate() {
        let end = markers.get(i + 1).map_or(body.len(), |m| m.0);
        let value = body[at + len..end].trim_end().trim_end_matches(',').trim_end();
        let value = value.strip_suffix(quote)?;
        out.push((label.to_owned(), value.to_owned()));
    }
    Some(out)
}
