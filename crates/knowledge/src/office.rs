//! Text out of office formats. DOCX is a ZIP archive whose `word/document.xml` holds the text: the archive
//! is read from its central directory (stored or deflated members, via `miniz_oxide`), paragraphs become
//! lines and heading styles become Markdown headings, so the chunker carries them. PDF text extraction
//! is delegated to `pdftotext` (Debian `poppler-utils`, which also handles CJK fonts through
//! `poppler-data`); without it a PDF is skipped with that reason. Every failure is a reason to skip the
//! file, never a panic.

use std::{io::Write, process::Command};

/// A little-endian integer of `N` bytes at `at`, if in range.
fn le(bytes: &[u8], at: usize, n: usize) -> Option<u64> {
    let slice = bytes.get(at..at.checked_add(n)?)?;
    Some(slice.iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// The uncompressed bytes of member `name` of the ZIP archive `zip`.
pub fn zip_member(zip: &[u8], name: &str) -> Result<Vec<u8>, String> {
    const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
    const CENTRAL: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    const LOCAL: [u8; 4] = [0x50, 0x4b, 0x03, 0x04];
    let corrupt = |what: &str| format!("not a valid DOCX (ZIP) file: {what}");
    // The end-of-central-directory record sits in the last 64 KiB + 22 bytes.
    let floor = zip.len().saturating_sub(65_557);
    let eocd = (floor..zip.len().saturating_sub(21))
        .rev()
        .find(|&i| zip[i..].starts_with(&EOCD))
        .ok_or_else(|| corrupt("no end-of-central-directory record"))?;
    let entries = le(zip, eocd + 10, 2).ok_or_else(|| corrupt("truncated"))? as usize;
    let mut at = le(zip, eocd + 16, 4).ok_or_else(|| corrupt("truncated"))? as usize;
    for _ in 0..entries {
        if !zip.get(at..).is_some_and(|r| r.starts_with(&CENTRAL)) {
            return Err(corrupt("bad central directory"));
        }
        let field = |off: usize, n: usize| le(zip, at + off, n).ok_or_else(|| corrupt("truncated"));
        let method = field(10, 2)?;
        let compressed = field(20, 4)? as usize;
        let size = field(24, 4)? as usize;
        let name_len = field(28, 2)? as usize;
        let extra_len = field(30, 2)? as usize;
        let comment_len = field(32, 2)? as usize;
        let local = field(42, 4)? as usize;
        let member = zip.get(at + 46..at + 46 + name_len).ok_or_else(|| corrupt("truncated"))?;
        at += 46 + name_len + extra_len + comment_len;
        if member != name.as_bytes() {
            continue;
        }
        if !zip.get(local..).is_some_and(|r| r.starts_with(&LOCAL)) {
            return Err(corrupt("bad local header"));
        }
        let data_at = local
            + 30
            + le(zip, local + 26, 2).ok_or_else(|| corrupt("truncated"))? as usize
            + le(zip, local + 28, 2).ok_or_else(|| corrupt("truncated"))? as usize;
        let data = zip
            .get(data_at..data_at.saturating_add(compressed))
            .ok_or_else(|| corrupt("member data is truncated"))?;
        return match method {
            0 => Ok(data.to_vec()),
            8 => miniz_oxide::inflate::decompress_to_vec_with_limit(data, size.max(1) * 2 + 1024)
                .map_err(|e| corrupt(&format!("cannot inflate {name}: {e:?}"))),
            other => Err(corrupt(&format!("{name} uses compression method {other}"))),
        };
    }
    Err(format!("not a DOCX file: no {name} inside"))
}

/// The value of attribute `name` in the tag text `tag` (`<w:pStyle w:val="Heading1"/>`).
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Paragraph text of a WordprocessingML document: one line per `w:p`, `#` headings from heading
/// styles (`Heading1`…, `Title`), tabs and breaks kept; the title is the first heading or line.
pub fn docx_text(document_xml: &str) -> (Option<String>, String) {
    let mut out = String::new();
    let mut title = None;
    let mut paragraph = String::new();
    let mut level = 0usize;
    let mut in_text = false;
    let mut rest = document_xml;
    while let Some(open) = rest.find('<') {
        if in_text {
            paragraph.push_str(&crate::parse::decode_entities(&rest[..open]));
        }
        let Some(close) = rest[open..].find('>') else { break };
        let tag = &rest[open + 1..open + close];
        rest = &rest[open + close + 1..];
        let name = tag.trim_start_matches('/').split([' ', '/']).next().unwrap_or_default();
        let closing = tag.starts_with('/');
        match name {
            "w:t" => in_text = !closing && !tag.ends_with('/'),
            "w:tab" if !closing => paragraph.push('\t'),
            "w:br" | "w:cr" if !closing => paragraph.push('\n'),
            "w:pStyle" => {
                let style = attribute(tag, "w:val").unwrap_or_default().to_ascii_lowercase();
                level = if style == "title" {
                    1
                } else {
                    style
                        .strip_prefix("heading")
                        .and_then(|n| n.trim().parse().ok())
                        .filter(|n| (1..=6).contains(n))
                        .unwrap_or(0)
                };
            }
            "w:p" if closing || tag.ends_with('/') => {
                let line = paragraph.trim();
                if !line.is_empty() {
                    if title.is_none() && (level > 0 || out.is_empty()) {
                        title = Some(line.chars().take(80).collect());
                    }
                    if level > 0 {
                        out.push_str(&"#".repeat(level));
                        out.push(' ');
                    }
                    out.push_str(line);
                    out.push('\n');
                }
                paragraph.clear();
                level = 0;
            }
            _ => {}
        }
    }
    (title, out)
}

/// The text of a DOCX file.
pub fn docx(bytes: &[u8]) -> Result<(Option<String>, String), String> {
    let xml = zip_member(bytes, "word/document.xml")?;
    let xml = String::from_utf8(xml).map_err(|_| "word/document.xml is not UTF-8".to_owned())?;
    let (title, text) = docx_text(&xml);
    if text.trim().is_empty() {
        return Err("the DOCX file holds no text".into());
    }
    Ok((title, text))
}

/// The text of a PDF file, by `pdftotext -layout`-free reading order (`-enc UTF-8`).
pub fn pdf(bytes: &[u8]) -> Result<String, String> {
    if !bytes.starts_with(b"%PDF") {
        return Err("not a PDF file (no %PDF header)".into());
    }
    let mut child = Command::new("pdftotext")
        .args(["-q", "-enc", "UTF-8", "-", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|_| {
            "PDF text extraction needs pdftotext (Debian/Ubuntu package poppler-utils)".to_owned()
        })?;
    let mut stdin = child.stdin.take().ok_or("pdftotext has no input pipe")?;
    let input = bytes.to_vec();
    // Feed the input from a thread so a large output cannot dead-lock against a full input pipe.
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().map_err(|e| format!("pdftotext failed: {e}"))?;
    let _ = feeder.join();
    if !output.status.success() {
        return Err("pdftotext could not read the PDF (corrupt or encrypted)".into());
    }
    let text = String::from_utf8_lossy(&output.stdout).replace('\u{c}', "\n");
    if text.trim().is_empty() {
        return Err("the PDF holds no extractable text (scanned images need OCR)".into());
    }
    Ok(text)
}
