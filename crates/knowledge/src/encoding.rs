//! Encoding detection for ingested files. Chinese corpora still arrive in GBK/GB18030 and Windows tools
//! write UTF-16, so bytes are decoded by evidence: a byte-order mark wins; then strict UTF-8; then
//! UTF-16 without a BOM when NUL bytes line up on one parity; then strict GB18030 (a superset of GBK).
//! Anything else — binary files, truncated multi-byte sequences — is an error with a reason, so ingest
//! can skip the file and report why.

use encoding_rs::{GB18030, UTF_16BE, UTF_16LE};

/// The encoding a file was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TextEncoding {
    /// UTF-8 (with or without BOM).
    Utf8,
    /// UTF-16 little-endian.
    Utf16Le,
    /// UTF-16 big-endian.
    Utf16Be,
    /// GB18030 (covers GBK and GB2312).
    Gb18030,
}

impl TextEncoding {
    /// The usual label.
    pub fn label(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Utf16Le => "utf-16le",
            TextEncoding::Utf16Be => "utf-16be",
            TextEncoding::Gb18030 => "gb18030",
        }
    }
}

/// Decodes `bytes` as described in the module docs; `Err` says why it is not text.
pub fn decode(bytes: &[u8]) -> Result<(String, TextEncoding), String> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest)
            .map(|s| (s.to_owned(), TextEncoding::Utf8))
            .map_err(|e| format!("invalid UTF-8 after BOM: {e}"));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, TextEncoding::Utf16Le);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, TextEncoding::Utf16Be);
    }
    if let Some(guess) = utf16_without_bom(bytes) {
        return utf16(bytes, guess);
    }
    if bytes.contains(&0) {
        return Err("binary data (NUL bytes)".to_owned());
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok((s.to_owned(), TextEncoding::Utf8));
    }
    match GB18030.decode_without_bom_handling_and_without_replacement(bytes) {
        Some(s) if looks_like_text(&s) => Ok((s.into_owned(), TextEncoding::Gb18030)),
        _ => Err("not valid UTF-8, UTF-16 or GB18030 text".to_owned()),
    }
}

fn utf16(bytes: &[u8], encoding: TextEncoding) -> Result<(String, TextEncoding), String> {
    if !bytes.len().is_multiple_of(2) {
        return Err("UTF-16 text with an odd number of bytes".to_owned());
    }
    let codec = if encoding == TextEncoding::Utf16Le { UTF_16LE } else { UTF_16BE };
    codec
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|s| (s.into_owned(), encoding))
        .ok_or_else(|| "invalid UTF-16 (unpaired surrogate)".to_owned())
}

/// Mostly-ASCII UTF-16 has a NUL in every other byte: on odd positions for LE, even for BE.
fn utf16_without_bom(bytes: &[u8]) -> Option<TextEncoding> {
    if bytes.len() < 4 || !bytes.len().is_multiple_of(2) {
        return None;
    }
    let sample = &bytes[..bytes.len().min(4096)];
    let pairs = sample.len() / 2;
    let even = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    let odd = sample.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
    if odd * 10 >= pairs * 4 && even == 0 {
        Some(TextEncoding::Utf16Le)
    } else if even * 10 >= pairs * 4 && odd == 0 {
        Some(TextEncoding::Utf16Be)
    } else {
        None
    }
}

/// Rejects decodings dominated by control characters (binary that happened to decode).
fn looks_like_text(s: &str) -> bool {
    let total = s.chars().count().max(1);
    let control = s.chars().filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')).count();
    control * 20 < total
}
