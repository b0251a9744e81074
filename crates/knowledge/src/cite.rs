//! Grounded answers: the prompt that hands retrieved passages to a model, and the verifier that checks
//! every citation in its answer before anyone sees it.
//!
//! Users of other RAG systems report answers whose citations do not match the text. So a citation `[n]`
//! is only returned when (1) passage n was actually retrieved, (2) the passage is, verbatim, the stored
//! text of the current version of its document, and (3) the sentence that cites it is supported by it:
//! enough of the claim's words (CJK character bigrams, Latin words) occur in the passage, and every number
//! in the claim occurs there too (a wrong rate or amount is the costly mistake in finance). The returned
//! citation carries the passage sentence that supports the claim best, with its character span in the
//! stored document, checked verbatim against the stored source. Citations that fail are taken out of the
//! answer text and listed with the reason.

use serde::{Deserialize, Serialize};

use crate::index::{ChunkRecord, ScoredChunk};

/// Share of a claim's terms that must occur in the cited passage.
pub const MIN_SUPPORT: f32 = 0.5;

/// The system message that puts the passages in front of the model, numbered from 1.
pub fn grounding_prompt(passages: &[ScoredChunk]) -> String {
    let mut prompt = String::from(
        "Answer the question using only the numbered passages below. After each sentence that uses a \
         passage, cite it as [n]. If the passages do not contain the answer, say so. \
         请只根据下列编号资料回答，每句引用资料后标注 [n]；资料中没有答案时请直说。\n",
    );
    for (n, hit) in passages.iter().enumerate() {
        let c = &hit.chunk;
        prompt.push_str(&format!("\n[{}] {}", n + 1, c.title));
        if !c.heading.is_empty() && c.heading != c.title {
            prompt.push_str(&format!(" / {}", c.heading));
        }
        prompt.push('\n');
        prompt.push_str(&c.body);
        prompt.push('\n');
    }
    prompt
}

/// A checked citation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// The marker number in the answer (`[n]`, 1-based passage number).
    pub marker: usize,
    /// The cited document.
    pub doc_id: String,
    /// Its version.
    pub version: u64,
    /// Its title.
    pub title: String,
    /// The cited chunk.
    pub chunk_id: String,
    /// First character of the supporting text in the stored document.
    pub start: u64,
    /// One past its last character.
    pub end: u64,
    /// The supporting text, verbatim from the stored document.
    pub quote: String,
    /// The answer sentence that cites it.
    pub claim: String,
    /// Share of the claim's terms found in the passage.
    pub support: f32,
}

/// A citation that was removed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedCitation {
    /// The marker number.
    pub marker: usize,
    /// The answer sentence that cited it.
    pub claim: String,
    /// Why it was removed.
    pub reason: String,
}

/// An answer whose citations have been checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroundedAnswer {
    /// The answer text, with the markers of rejected citations removed.
    pub content: String,
    /// Citations that passed every check, in order of appearance.
    pub citations: Vec<Citation>,
    /// Citations that failed.
    pub rejected: Vec<RejectedCitation>,
}

/// The stored text of a chunk's document, if the chunk's version is the current one.
pub type SourceLookup<'a> = &'a dyn Fn(&ChunkRecord) -> Option<String>;

/// Whether `chars[i]` ends a sentence (a '.' between digits is a decimal point).
fn ends_sentence(chars: &[char], i: usize) -> bool {
    match chars[i] {
        '。' | '！' | '？' | '；' | '!' | '?' | ';' | '\n' => true,
        '.' => {
            !(i > 0
                && chars[i - 1].is_ascii_digit()
                && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        }
        _ => false,
    }
}

/// A `[n]`, `[n, m]`, `【n】` marker at the start of `s`: its numbers and byte length.
fn marker_at(s: &str) -> Option<(Vec<usize>, usize)> {
    let (open, close) = if s.starts_with('[') {
        ('[', ']')
    } else if s.starts_with('【') {
        ('【', '】')
    } else {
        return None;
    };
    let inner_start = open.len_utf8();
    let end = s[inner_start..].find(close)? + inner_start;
    let inner = &s[inner_start..end];
    if inner.is_empty() || inner.len() > 20 {
        return None;
    }
    let numbers: Option<Vec<usize>> =
        inner.split([',', '，', ' ']).filter(|p| !p.is_empty()).map(|p| p.parse().ok()).collect();
    numbers.filter(|n| !n.is_empty()).map(|n| (n, end + close.len_utf8()))
}

/// One answer sentence: its text without markers, and the markers that cite it with their byte ranges.
#[derive(Debug, Default)]
struct Sentence {
    text: String,
    markers: Vec<(usize, std::ops::Range<usize>)>,
}

/// Splits an answer into sentences; a marker right after a sentence's end (`…。[1]`) belongs to it.
fn sentences(answer: &str) -> Vec<Sentence> {
    let mut out: Vec<Sentence> = Vec::new();
    let mut current = Sentence::default();
    let mut i = 0;
    let window = |at: usize| -> Vec<char> {
        let before = answer[..at].chars().last();
        before.into_iter().chain(answer[at..].chars().take(2)).collect()
    };
    while i < answer.len() {
        let rest = &answer[i..];
        if let Some((numbers, len)) = marker_at(rest) {
            let attach_to_previous = current.text.trim().is_empty() && !out.is_empty();
            let target = if attach_to_previous { out.last_mut() } else { Some(&mut current) };
            if let Some(target) = target {
                target.markers.extend(numbers.into_iter().map(|n| (n, i..i + len)));
            }
            i += len;
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        let around = window(i);
        let ends = ends_sentence(&around, usize::from(i > 0));
        current.text.push(c);
        i += c.len_utf8();
        if ends {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.text.trim().is_empty() || !current.markers.is_empty() {
        out.push(current);
    }
    out
}

/// Terms of a text for support checks: CJK character bigrams (single characters for lone ones) and
/// lower-cased Latin words; numbers are returned apart.
fn terms(text: &str) -> (Vec<String>, Vec<String>) {
    let mut words = Vec::new();
    let mut numbers = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let is_cjk =
        |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_cjk(c) {
            let start = i;
            while i < chars.len() && is_cjk(chars[i]) {
                i += 1;
            }
            let run = &chars[start..i];
            if run.len() == 1 {
                words.push(run[0].to_string());
            }
            words.extend(run.windows(2).map(|w| w.iter().collect::<String>()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (matches!(chars[i], '.' | ',')
                        && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
            {
                i += 1;
            }
            numbers.push(chars[start..i].iter().filter(|c| **c != ',').collect());
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphanumeric() && !is_cjk(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            if word.chars().count() > 2 {
                words.push(word);
            }
        } else {
            i += 1;
        }
    }
    (words, numbers)
}

/// How well `passage` supports `claim` (share of the claim's terms it contains), and the claim's
/// numbers that the passage lacks.
pub fn support(claim: &str, passage: &str) -> (f32, Vec<String>) {
    let (claim_words, claim_numbers) = terms(claim);
    let (passage_words, passage_numbers) = terms(passage);
    let passage_words: std::collections::HashSet<&String> = passage_words.iter().collect();
    let missing: Vec<String> =
        claim_numbers.into_iter().filter(|n| !passage_numbers.contains(n)).collect();
    if claim_words.is_empty() {
        return (if missing.is_empty() { 1.0 } else { 0.0 }, missing);
    }
    let found = claim_words.iter().filter(|w| passage_words.contains(w)).count();
    (found as f32 / claim_words.len() as f32, missing)
}

/// The passage sentence that supports `claim` best: its character range within the passage body.
fn best_sentence(claim: &str, body: &str) -> std::ops::Range<usize> {
    let chars: Vec<char> = body.chars().collect();
    let mut best = (0..chars.len(), -1.0f32);
    let mut start = 0;
    for i in 0..chars.len() {
        let end = i + 1;
        if ends_sentence(&chars, i) || end == chars.len() {
            let sentence: String = chars[start..end].iter().collect();
            let (score, missing) = support(claim, &sentence);
            let score = score - missing.len() as f32;
            if !sentence.trim().is_empty() && score > best.1 {
                best = (start..end, score);
            }
            start = end;
        }
    }
    best.0
}

/// Checks every citation of `answer` against the `passages` it was given (numbered from 1) and the stored
/// sources; see the module docs for the rules.
pub fn ground(
    answer: &str,
    passages: &[ScoredChunk],
    source: SourceLookup<'_>,
    min_support: f32,
) -> GroundedAnswer {
    let mut out = GroundedAnswer::default();
    let mut drop_ranges: Vec<std::ops::Range<usize>> = Vec::new();
    let mut accepted: Vec<(usize, usize)> = Vec::new();
    for sentence in sentences(answer) {
        let claim = sentence.text.trim().to_owned();
        for (marker, range) in sentence.markers {
            let mut reject = |reason: String| {
                out.rejected.push(RejectedCitation { marker, claim: claim.clone(), reason });
                drop_ranges.push(range.clone());
            };
            let Some(hit) = marker.checked_sub(1).and_then(|i| passages.get(i)) else {
                reject(format!("there is no passage [{marker}]"));
                continue;
            };
            let chunk = &hit.chunk;
            let Some(text) = source(chunk) else {
                reject("the passage's document is gone or has a newer version".into());
                continue;
            };
            let stored: String = text
                .chars()
                .skip(chunk.start as usize)
                .take(chunk.end.saturating_sub(chunk.start) as usize)
                .collect();
            if stored != chunk.body {
                reject("the passage does not match the stored document".into());
                continue;
            }
            let (score, missing) = support(&claim, &chunk.body);
            if !missing.is_empty() {
                reject(format!("the passage does not contain {}", missing.join(", ")));
                continue;
            }
            if score < min_support {
                reject(format!(
                    "the passage supports {:.0}% of the claim's words (needs {:.0}%)",
                    score * 100.0,
                    min_support * 100.0
                ));
                continue;
            }
            let local = best_sentence(&claim, &chunk.body);
            let start = chunk.start + local.start as u64;
            let end = chunk.start + local.end as u64;
            let quote: String =
                text.chars().skip(start as usize).take((end - start) as usize).collect();
            let body_part: String =
                chunk.body.chars().skip(local.start).take(local.len()).collect();
            if quote != body_part {
                reject("the quoted span does not match the stored document".into());
                continue;
            }
            accepted.push((range.start, marker));
            out.citations.push(Citation {
                marker,
                doc_id: chunk.doc_id.clone(),
                version: chunk.version,
                title: chunk.title.clone(),
                chunk_id: chunk.chunk_id.clone(),
                start,
                end,
                quote: quote.trim().to_owned(),
                claim: claim.clone(),
                support: score,
            });
        }
    }
    // Remove rejected markers (a `[1,2]` marker with one good number keeps the whole marker out: rewrite
    // it as the good ones).
    let mut content = String::with_capacity(answer.len());
    let mut last = 0;
    drop_ranges.sort_by_key(|r| r.start);
    drop_ranges.dedup();
    for range in drop_ranges {
        content.push_str(&answer[last..range.start]);
        let kept: Vec<String> = accepted
            .iter()
            .filter(|(at, _)| *at == range.start)
            .map(|(_, marker)| marker.to_string())
            .collect();
        if !kept.is_empty() {
            content.push_str(&format!("[{}]", kept.join(",")));
        }
        last = range.end;
    }
    content.push_str(&answer[last..]);
    out.content = content;
    out
}
