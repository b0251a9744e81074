//! Chinese-aware chunking. Retrieval quality and citation precision both depend on chunks that end at
//! sentence ends: Chinese sentences end at 。！？； (no space follows), English ones at . ! ? ; before
//! whitespace, and a line break always ends one. Chunks keep a character budget, may overlap by whole
//! sentences, carry the Markdown heading path they sit under (so a chunk about "利率" under "## 2024年
//! 货币政策" still matches "2024"), and are grouped into larger parent chunks for small-to-big retrieval.
//! Every chunk records the character span of its body in the source text, which citations point to.

use serde::{Deserialize, Serialize};

/// How to cut a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkConfig {
    /// Most characters of body per chunk (a CJK character is about one token).
    pub max_chars: usize,
    /// Up to this many characters of whole trailing sentences are repeated at the start of the next chunk.
    pub overlap_chars: usize,
    /// Cut at Markdown headings and prefix each chunk with its heading path.
    pub headings: bool,
    /// Group consecutive chunks of a section into parents of up to this many characters (0 = no parents).
    pub parent_chars: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig { max_chars: 300, overlap_chars: 0, headings: true, parent_chars: 1200 }
    }
}

/// One chunk: what is indexed and where its body is in the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position among the document's chunks.
    pub ord: usize,
    /// Heading path (`A > B`), empty when none.
    pub heading: String,
    /// The body, exactly `source[start..end]` in characters.
    pub body: String,
    /// First character of the body in the source text.
    pub start: usize,
    /// One past the last character of the body.
    pub end: usize,
    /// Index into [`Chunked::parents`], when parents are made.
    pub parent: Option<usize>,
}

impl Chunk {
    /// The text that is indexed: the heading path, then the body.
    pub fn indexed_text(&self) -> String {
        if self.heading.is_empty() {
            self.body.clone()
        } else {
            format!("{}\n{}", self.heading, self.body)
        }
    }
}

/// A parent chunk: a character span covering consecutive child chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentSpan {
    /// First character in the source.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
}

/// The chunks of one document and their parents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunked {
    /// Child chunks in order: these are indexed.
    pub chunks: Vec<Chunk>,
    /// Parent spans; each child points to one.
    pub parents: Vec<ParentSpan>,
}

/// Cuts `text` into chunks as `config` says.
pub fn chunk_text(text: &str, config: &ChunkConfig) -> Chunked {
    let chars: Vec<char> = text.chars().collect();
    let max = config.max_chars.max(1);
    let mut out = Chunked::default();
    for section in sections(&chars, config.headings) {
        let sentences = sentences(&chars, section.start, section.end);
        let first_chunk = out.chunks.len();
        for (start, end) in pack(&chars, &sentences, max, config.overlap_chars) {
            out.chunks.push(Chunk {
                ord: out.chunks.len(),
                heading: section.heading.clone(),
                body: chars[start..end].iter().collect(),
                start,
                end,
                parent: None,
            });
        }
        if config.parent_chars > 0 {
            group_parents(&mut out, first_chunk, config.parent_chars);
        }
    }
    out
}

struct Section {
    heading: String,
    start: usize,
    end: usize,
}

/// Splits at Markdown ATX headings (`#`..`######` then a space); the heading lines are not body.
fn sections(chars: &[char], headings: bool) -> Vec<Section> {
    if !headings {
        return vec![Section { heading: String::new(), start: 0, end: chars.len() }];
    }
    let mut out = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut body_start = 0;
    let mut line_start = 0;
    while line_start < chars.len() {
        let line_end = chars[line_start..]
            .iter()
            .position(|&c| c == '\n')
            .map_or(chars.len(), |p| line_start + p);
        let line: String = chars[line_start..line_end].iter().collect();
        let level = line.chars().take_while(|&c| c == '#').count();
        let is_heading = (1..=6).contains(&level) && line.chars().nth(level) == Some(' ');
        if is_heading {
            let heading = join_path(&path);
            out.push(Section { heading, start: body_start, end: line_start });
            path.retain(|(l, _)| *l < level);
            path.push((level, line[level..].trim().to_owned()));
            body_start = (line_end + 1).min(chars.len());
        }
        line_start = line_end + 1;
    }
    out.push(Section { heading: join_path(&path), start: body_start, end: chars.len() });
    out.retain(|s| chars[s.start..s.end].iter().any(|c| !c.is_whitespace()));
    out
}

fn join_path(path: &[(usize, String)]) -> String {
    path.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>().join(" > ")
}

fn is_closer(c: char) -> bool {
    matches!(c, '”' | '’' | '」' | '』' | '）' | ')' | '"' | '\'' | '》' | '】')
}

/// Sentence spans in `chars[from..to]`, trimmed of surrounding whitespace, empty ones dropped.
fn sentences(chars: &[char], from: usize, to: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = from;
    let mut i = from;
    while i < to {
        let c = chars[i];
        let mut end = None;
        if matches!(c, '。' | '！' | '？' | '；' | '\n') {
            end = Some(i + 1);
        } else if matches!(c, '.' | '!' | '?' | ';') {
            let next = chars.get(i + 1).copied();
            if next.is_none_or(|n| n.is_whitespace() || is_closer(n)) {
                end = Some(i + 1);
            }
        }
        if let Some(mut e) = end {
            while e < to && is_closer(chars[e]) {
                e += 1;
            }
            push_trimmed(chars, start, e, &mut out);
            start = e;
            i = e;
        } else {
            i += 1;
        }
    }
    push_trimmed(chars, start, to, &mut out);
    out
}

fn push_trimmed(chars: &[char], mut start: usize, mut end: usize, out: &mut Vec<(usize, usize)>) {
    while start < end && chars[start].is_whitespace() {
        start += 1;
    }
    while end > start && chars[end - 1].is_whitespace() {
        end -= 1;
    }
    if start < end {
        out.push((start, end));
    }
}

/// Packs sentences into spans of at most `max` characters; a longer sentence is cut, preferably after a
/// comma or space in the last third of the budget.
fn pack(
    chars: &[char],
    sentences: &[(usize, usize)],
    max: usize,
    overlap: usize,
) -> Vec<(usize, usize)> {
    let mut pieces = Vec::new();
    for &(start, end) in sentences {
        let mut s = start;
        while end - s > max {
            let hard = s + max;
            let soft = (s + max * 2 / 3..hard)
                .rev()
                .find(|&i| matches!(chars[i], '，' | ',' | '、' | '：' | ':' | ' '))
                .map_or(hard, |i| i + 1);
            pieces.push((s, soft));
            s = soft;
            while s < end && chars[s].is_whitespace() {
                s += 1;
            }
        }
        if s < end {
            pieces.push((s, end));
        }
    }
    let mut out = Vec::new();
    let mut current: Vec<(usize, usize)> = Vec::new();
    for piece in pieces {
        if let (Some(first), Some(last)) = (current.first().copied(), current.last().copied())
            && piece.1 - first.0 > max
        {
            out.push((first.0, last.1));
            // Keep whole trailing sentences within the overlap budget that still fit with the new piece.
            let mut keep_from = current.len();
            for (j, p) in current.iter().enumerate().rev() {
                if last.1 - p.0 > overlap || piece.1 - p.0 > max {
                    break;
                }
                keep_from = j;
            }
            current.drain(..keep_from);
        }
        current.push(piece);
    }
    if let (Some(first), Some(last)) = (current.first(), current.last()) {
        out.push((first.0, last.1));
    }
    out
}

fn group_parents(out: &mut Chunked, first_chunk: usize, parent_chars: usize) {
    let mut group_start: Option<usize> = None;
    for i in first_chunk..out.chunks.len() {
        let (start, end) = (out.chunks[i].start, out.chunks[i].end);
        let parent = match group_start {
            Some(g) if end - g <= parent_chars => out.parents.len() - 1,
            _ => {
                group_start = Some(start);
                out.parents.push(ParentSpan { start, end });
                out.parents.len() - 1
            }
        };
        out.parents[parent].end = end;
        out.chunks[i].parent = Some(parent);
    }
}
