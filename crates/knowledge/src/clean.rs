//! A configurable corpus-cleaning pipeline in the manner of data-juicer: mappers that rewrite text
//! (Unicode repair and NFKC, HTML boilerplate removal, traditional→simplified, punctuation and
//! whitespace normalisation, PII scrubbing), filters that drop documents (language by script ratio,
//! length, character and word repetition, special-character ratio) and deduplicators (exact hash and
//! MinHash LSH near-duplicates). Every step reports what it did, so a corpus run can be audited.
//! Normalisation and PII detection come from the shared `text` crate.

use std::{
    collections::{HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::{eval::SplitMix, parse::SourceDoc, tokenize::jieba};

/// Which steps run, with their thresholds. The defaults suit Chinese and English finance text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanConfig {
    /// Drop invisible characters and U+FFFD, apply NFKC.
    pub fix_unicode: bool,
    /// Remove HTML tags and boilerplate when a text looks like HTML.
    pub strip_html: bool,
    /// Traditional → simplified Chinese.
    pub to_simplified: bool,
    /// ASCII punctuation inside Chinese text becomes full width (NFKC made it ASCII).
    pub normalize_punctuation: bool,
    /// Collapse runs of spaces, drop spaces between CJK characters, at most one blank line.
    pub normalize_whitespace: bool,
    /// Replace PII (phones, ids, cards, e-mails…) with `[KIND]` placeholders.
    pub scrub_pii: bool,
    /// Keep only these languages (`zh`, `en`, `other`); empty keeps all.
    pub languages: Vec<String>,
    /// Drop texts shorter than this many characters.
    pub min_chars: usize,
    /// Drop texts longer than this many characters.
    pub max_chars: usize,
    /// Drop texts whose character 10-grams repeat more than this share.
    pub max_char_repetition: f64,
    /// Drop texts whose word 5-grams repeat more than this share.
    pub max_word_repetition: f64,
    /// Drop texts with more than this share of special characters.
    pub max_special_ratio: f64,
    /// Drop exact duplicates (after the mappers).
    pub dedupe_exact: bool,
    /// Drop near duplicates with estimated Jaccard similarity of character 5-grams at or above this
    /// (MinHash LSH); `None` disables.
    pub dedupe_near: Option<f64>,
}

impl Default for CleanConfig {
    fn default() -> Self {
        CleanConfig {
            fix_unicode: true,
            strip_html: true,
            to_simplified: false,
            normalize_punctuation: true,
            normalize_whitespace: true,
            scrub_pii: true,
            languages: Vec::new(),
            min_chars: 10,
            max_chars: 2_000_000,
            max_char_repetition: 0.5,
            max_word_repetition: 0.5,
            max_special_ratio: 0.4,
            dedupe_exact: true,
            dedupe_near: Some(0.8),
        }
    }
}

impl CleanConfig {
    /// Only the mappers that keep every document (for knowledge-base ingest, where a document is
    /// never dropped silently and PII is kept unless asked).
    pub fn mappers_only() -> Self {
        CleanConfig {
            scrub_pii: false,
            languages: Vec::new(),
            min_chars: 0,
            max_chars: usize::MAX,
            max_char_repetition: 1.0,
            max_word_repetition: 1.0,
            max_special_ratio: 1.0,
            dedupe_exact: false,
            dedupe_near: None,
            ..CleanConfig::default()
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step name (data-juicer's operator name where one exists).
    pub step: String,
    /// Documents that reached the step.
    pub docs_in: usize,
    /// Documents it changed.
    pub modified: usize,
    /// Documents it dropped.
    pub dropped: usize,
    /// Characters before the step.
    pub chars_in: usize,
    /// Characters after it.
    pub chars_out: usize,
}

/// The whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanReport {
    /// Documents read.
    pub docs_in: usize,
    /// Documents kept.
    pub docs_out: usize,
    /// One entry per step that ran, in order.
    pub steps: Vec<StepReport>,
    /// Why each dropped document was dropped (`source`, step).
    pub dropped: Vec<(String, String)>,
}

type Mapper = fn(&str, &CleanConfig) -> String;
type Filter = fn(&str, &CleanConfig) -> bool;

fn mappers(config: &CleanConfig) -> Vec<(&'static str, Mapper)> {
    let mut out: Vec<(&'static str, Mapper)> = Vec::new();
    if config.fix_unicode {
        out.push(("fix_unicode_mapper", |t, _| fix_unicode(t)));
    }
    if config.strip_html {
        out.push(("clean_html_mapper", |t, _| strip_html(t)));
    }
    if config.to_simplified {
        out.push(("chinese_convert_mapper", |t, _| text::normalize::simplify(t)));
    }
    if config.normalize_punctuation {
        out.push(("punctuation_normalization_mapper", |t, _| normalize_punctuation(t)));
    }
    if config.normalize_whitespace {
        out.push(("whitespace_normalization_mapper", |t, _| normalize_whitespace(t)));
    }
    out
}

fn filters(config: &CleanConfig) -> Vec<(&'static str, Filter)> {
    let mut out: Vec<(&'static str, Filter)> = Vec::new();
    if !config.languages.is_empty() {
        out.push(("language_id_score_filter", |t, c| c.languages.iter().any(|l| l == language(t))));
    }
    out.push(("text_length_filter", |t, c| {
        (c.min_chars..=c.max_chars).contains(&t.chars().count())
    }));
    if config.max_char_repetition < 1.0 {
        out.push(("character_repetition_filter", |t, c| {
            char_repetition(t) <= c.max_char_repetition
        }));
    }
    if config.max_word_repetition < 1.0 {
        out.push(("word_repetition_filter", |t, c| word_repetition(t) <= c.max_word_repetition));
    }
    if config.max_special_ratio < 1.0 {
        out.push(("special_characters_filter", |t, c| special_ratio(t) <= c.max_special_ratio));
    }
    out
}

/// Applies the mappers (not filters or dedupe) to one text.
pub fn clean_text(text: &str, config: &CleanConfig) -> String {
    let mut out = text.to_owned();
    for (_, mapper) in mappers(config) {
        out = mapper(&out, config);
    }
    if config.scrub_pii {
        out = text::redact(&out);
    }
    out
}

/// Runs the whole pipeline over a corpus.
pub fn clean_corpus(docs: Vec<SourceDoc>, config: &CleanConfig) -> (Vec<SourceDoc>, CleanReport) {
    let mut report = CleanReport { docs_in: docs.len(), ..CleanReport::default() };
    let mut docs = docs;
    let chars = |docs: &[SourceDoc]| docs.iter().map(|d| d.text.chars().count()).sum::<usize>();
    for (name, mapper) in mappers(config) {
        let mut step = StepReport {
            step: name.into(),
            docs_in: docs.len(),
            chars_in: chars(&docs),
            ..StepReport::default()
        };
        for doc in &mut docs {
            let new = mapper(&doc.text, config);
            if new != doc.text {
                step.modified += 1;
                doc.text = new;
            }
        }
        step.chars_out = chars(&docs);
        report.steps.push(step);
    }
    for (name, keep) in filters(config) {
        let mut step = StepReport {
            step: name.into(),
            docs_in: docs.len(),
            chars_in: chars(&docs),
            ..StepReport::default()
        };
        docs.retain(|d| {
            let ok = keep(&d.text, config);
            if !ok {
                report.dropped.push((d.source.clone(), name.into()));
            }
            ok
        });
        step.dropped = step.docs_in - docs.len();
        step.chars_out = chars(&docs);
        report.steps.push(step);
    }
    if config.dedupe_exact {
        let mut step = StepReport {
            step: "document_deduplicator".into(),
            docs_in: docs.len(),
            chars_in: chars(&docs),
            ..StepReport::default()
        };
        let mut seen = HashSet::new();
        docs.retain(|d| {
            let key: String = d.text.chars().filter(|c| !c.is_whitespace()).collect();
            let fresh = seen.insert(Sha256::digest(key.as_bytes()));
            if !fresh {
                report.dropped.push((d.source.clone(), "document_deduplicator".into()));
            }
            fresh
        });
        step.dropped = step.docs_in - docs.len();
        step.chars_out = chars(&docs);
        report.steps.push(step);
    }
    if let Some(threshold) = config.dedupe_near {
        let mut step = StepReport {
            step: "document_minhash_deduplicator".into(),
            docs_in: docs.len(),
            chars_in: chars(&docs),
            ..StepReport::default()
        };
        let keep = near_duplicate_keep(
            &docs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>(),
            threshold,
        );
        let mut i = 0;
        docs.retain(|d| {
            let k = keep[i];
            i += 1;
            if !k {
                report.dropped.push((d.source.clone(), "document_minhash_deduplicator".into()));
            }
            k
        });
        step.dropped = step.docs_in - docs.len();
        step.chars_out = chars(&docs);
        report.steps.push(step);
    }
    if config.scrub_pii {
        let mut step = StepReport {
            step: "clean_pii_mapper".into(),
            docs_in: docs.len(),
            chars_in: chars(&docs),
            ..StepReport::default()
        };
        for doc in &mut docs {
            let new = text::redact(&doc.text);
            if new != doc.text {
                step.modified += 1;
                doc.text = new;
            }
        }
        step.chars_out = chars(&docs);
        report.steps.push(step);
    }
    report.docs_out = docs.len();
    (docs, report)
}

/// Drops invisible characters and U+FFFD (left by broken decoding), then NFKC, except that full-width
/// Chinese punctuation (，；：！？（）) is kept: NFKC would turn it into ASCII and blur sentence ends.
pub fn fix_unicode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars().filter(|&c| c != '\u{FFFD}' && !text::normalize::is_invisible(c)) {
        if matches!(c, '，' | '；' | '：' | '！' | '？' | '（' | '）') {
            out.extend(run.nfkc());
            run.clear();
            out.push(c);
        } else {
            run.push(c);
        }
    }
    out.extend(run.nfkc());
    out
}

/// Removes tags and boilerplate when the text looks like HTML (has a closing tag); otherwise unchanged.
pub fn strip_html(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let looks_html =
        ["</p>", "</div>", "<br", "</html>", "</span>", "</a>", "</script>", "</li>", "</td>"]
            .iter()
            .any(|t| lower.contains(t));
    if !looks_html {
        return text.to_owned();
    }
    crate::parse::html_to_text(text).1.trim_end().to_owned()
}

fn is_cjk(c: char) -> bool {
    text::normalize::is_cjk(c)
}

/// ASCII `, ; : ! ?` next to a CJK character (before or after it) and `(` after one become their
/// full-width forms, as Chinese text writes them; a `.` right after CJK becomes `。`.
pub fn normalize_punctuation(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut prev_cjk = false;
    let mut open_paren = false;
    for (i, &c) in chars.iter().enumerate() {
        let next_cjk = chars[i + 1..].iter().find(|n| **n != ' ').is_some_and(|&n| is_cjk(n));
        let near = prev_cjk || next_cjk;
        let mapped = match c {
            ',' if near => '，',
            ';' if near => '；',
            ':' if near => '：',
            '!' if near => '！',
            '?' if near => '？',
            '.' if prev_cjk => '。',
            '(' if prev_cjk => {
                open_paren = true;
                '（'
            }
            ')' if open_paren => {
                open_paren = false;
                '）'
            }
            other => other,
        };
        out.push(mapped);
        if !c.is_whitespace() {
            prev_cjk = is_cjk(mapped)
                || mapped != c
                || (prev_cjk && matches!(mapped, '“' | '”' | '《' | '》'));
        }
    }
    out
}

/// Tabs and exotic spaces become spaces, runs collapse, spaces between CJK characters go, lines are
/// trimmed and at most one blank line separates paragraphs.
pub fn normalize_whitespace(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let chars: Vec<char> =
            line.chars().map(|c| if c.is_whitespace() { ' ' } else { c }).collect();
        let mut out = String::with_capacity(line.len());
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let prev = out.chars().last();
                let next = chars[i + 1..].iter().find(|&&n| n != ' ').copied();
                let between_cjk = prev.is_some_and(|p| is_cjk(p) || is_full_punct(p))
                    && next.is_some_and(|n| is_cjk(n) || is_full_punct(n));
                if prev.is_none() || prev == Some(' ') || between_cjk || next.is_none() {
                    continue;
                }
            }
            out.push(c);
        }
        lines.push(out);
    }
    let mut result = String::with_capacity(text.len());
    let mut blank = 0;
    for line in &lines {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !result.is_empty() {
            result.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        result.push_str(line);
    }
    result
}

fn is_full_punct(c: char) -> bool {
    matches!(
        c,
        '，' | '。' | '！' | '？' | '；' | '：' | '、' | '（' | '）' | '“' | '”' | '《' | '》'
    )
}

/// `zh` when Han characters are at least 30% of letters, `en` when Latin letters dominate, else `other`.
pub fn language(text: &str) -> &'static str {
    let (mut han, mut latin, mut other) = (0usize, 0usize, 0usize);
    for c in text.chars() {
        if is_cjk(c) {
            han += 1;
        } else if c.is_ascii_alphabetic() {
            latin += 1;
        } else if c.is_alphabetic() {
            other += 1;
        }
    }
    let letters = han + latin + other;
    if letters == 0 {
        "other"
    } else if han * 10 >= letters * 3 {
        "zh"
    } else if latin * 2 >= letters {
        "en"
    } else {
        "other"
    }
}

fn repetition<T: Hash + Eq>(grams: impl Iterator<Item = T>) -> f64 {
    let mut counts: HashMap<T, usize> = HashMap::new();
    let mut total = 0usize;
    for g in grams {
        *counts.entry(g).or_default() += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    (total - counts.len()) as f64 / total as f64
}

/// Share of character 10-grams that repeat an earlier one.
pub fn char_repetition(text: &str) -> f64 {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    repetition(chars.windows(10))
}

/// Share of word 5-grams (jieba words for Chinese) that repeat an earlier one.
pub fn word_repetition(text: &str) -> f64 {
    let words: Vec<&str> = jieba()
        .cut(text, false)
        .into_iter()
        .map(|t| t.word)
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    repetition(words.windows(5))
}

/// Share of non-space characters that are neither letters, digits, CJK nor common punctuation.
pub fn special_ratio(text: &str) -> f64 {
    let mut total = 0usize;
    let mut special = 0usize;
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        total += 1;
        let normal =
            c.is_alphanumeric() || is_cjk(c) || is_full_punct(c) || ",.;:!?'\"()-%/".contains(c);
        if !normal {
            special += 1;
        }
    }
    if total == 0 { 0.0 } else { special as f64 / total as f64 }
}

const MINHASH_PERMS: usize = 128;
const LSH_BANDS: usize = 16;
const LSH_ROWS: usize = MINHASH_PERMS / LSH_BANDS;

/// MinHash signature over character 5-grams (whitespace removed).
pub fn minhash(text: &str) -> Vec<u64> {
    static PARAMS: std::sync::OnceLock<Vec<(u64, u64)>> = std::sync::OnceLock::new();
    let params = PARAMS.get_or_init(|| {
        let mut rng = SplitMix(0x5EED);
        (0..MINHASH_PERMS).map(|_| (rng.next_u64() | 1, rng.next_u64())).collect()
    });
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let shingles: HashSet<u64> = chars
        .windows(5.min(chars.len().max(1)))
        .map(|w| {
            let mut h = DefaultHasher::new();
            w.hash(&mut h);
            h.finish()
        })
        .collect();
    params
        .iter()
        .map(|&(a, b)| {
            shingles.iter().map(|&s| a.wrapping_mul(s).wrapping_add(b)).min().unwrap_or(u64::MAX)
        })
        .collect()
}

/// Estimated Jaccard similarity of two signatures.
pub fn similarity(a: &[u64], b: &[u64]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// Which texts to keep: the first of each group of near duplicates (LSH candidates confirmed by the
/// estimated similarity).
pub fn near_duplicate_keep(texts: &[&str], threshold: f64) -> Vec<bool> {
    let signatures: Vec<Vec<u64>> = texts.iter().map(|t| minhash(t)).collect();
    let mut buckets: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
    let mut keep = vec![true; texts.len()];
    for (i, sig) in signatures.iter().enumerate() {
        let mut duplicate = false;
        let keys: Vec<(usize, u64)> = (0..LSH_BANDS)
            .map(|band| {
                let mut h = DefaultHasher::new();
                sig[band * LSH_ROWS..(band + 1) * LSH_ROWS].hash(&mut h);
                (band, h.finish())
            })
            .collect();
        'bands: for key in &keys {
            for &j in buckets.get(key).into_iter().flatten() {
                if similarity(sig, &signatures[j]) >= threshold {
                    duplicate = true;
                    break 'bands;
                }
            }
        }
        if duplicate {
            keep[i] = false;
        } else {
            for key in keys {
                buckets.entry(key).or_default().push(i);
            }
        }
    }
    keep
}

/// A short HTML page for people: one row and one bar per step.
pub fn report_html(report: &CleanReport) -> String {
    let mut rows = String::new();
    let mut bars = String::new();
    let width = 400.0;
    let max = report.docs_in.max(1) as f64;
    for (i, s) in report.steps.iter().enumerate() {
        let kept = s.docs_in - s.dropped;
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            s.step, s.docs_in, s.modified, s.dropped, s.chars_in, s.chars_out
        ));
        let y = i * 22;
        let w = kept as f64 / max * width;
        bars.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"260\" y=\"{}\" width=\"{w:.1}\" height=\"16\" fill=\"#4a7\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{kept}</text>\n",
            y + 13, s.step, y, 265.0 + w, y + 13
        ));
    }
    let height = report.steps.len() * 22 + 4;
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>finllm kb clean report</title>\n<h1>Corpus cleaning</h1>\n<p>{} documents in, {} kept.</p>\n<svg width=\"720\" height=\"{height}\">{bars}</svg>\n<table border=\"1\" cellpadding=\"4\"><tr><th>step</th><th>docs in</th><th>modified</th><th>dropped</th><th>chars in</th><th>chars out</th></tr>\n{rows}</table>\n",
        report.docs_in, report.docs_out
    )
}
