//! The risk lexicon (`data/lexicon.toml`): per-intent and per-technique terms in one Aho-Corasick
//! automaton over normalised text, with pinyin variants of the Chinese terms added automatically.

use aho_corasick::{AhoCorasick, MatchKind};
use serde::{Deserialize, Serialize};

use crate::{GuardError, Taxonomy};

/// The lexicon file's text, as compiled into the binary.
pub const LEXICON_TOML: &str = include_str!("../data/lexicon.toml");

/// How much a term says on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// A topic word: a classifier feature and an explanation, never a verdict alone.
    Signal,
    /// A request-shaped phrase: unsafe wherever it appears.
    Block,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    intent: Option<String>,
    technique: Option<String>,
    strength: Strength,
    terms: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LexiconFile {
    entry: Vec<Entry>,
}

/// What a pattern stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    /// An input intent id.
    Intent(String),
    /// An attack technique id.
    Technique(String),
}

/// One lexicon hit in normalised text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The intent or technique.
    pub label: Label,
    /// Signal or block.
    pub strength: Strength,
    /// Byte offsets into the normalised text.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// Matched by sound, not spelling (谐音: "喜钱" for 洗钱), which is itself an evasion.
    pub homophone: bool,
}

/// The compiled lexicon.
#[derive(Debug)]
pub struct Lexicon {
    automaton: AhoCorasick,
    patterns: Vec<(Label, Strength)>,
    /// Readings (" xi qian ") of the Chinese intent terms, matched against [`text::variants::Reading`].
    readings: AhoCorasick,
    /// Label, strength and spelled term of each reading.
    reading_patterns: Vec<(Label, Strength, String)>,
}

/// Shortest term matched by sound: two-syllable readings collide with ordinary words too often
/// (枪支 qiang zhi sounds like 强制 in 强制平仓).
const MIN_READING_CHARS: usize = 3;

impl Lexicon {
    /// The compiled-in lexicon, checked against the taxonomy.
    pub fn builtin(taxonomy: &Taxonomy) -> Result<Self, GuardError> {
        Self::parse("lexicon.toml", LEXICON_TOML, taxonomy)
    }

    /// Parses a lexicon file; every intent and technique must exist in `taxonomy`.
    pub fn parse(file: &str, source: &str, taxonomy: &Taxonomy) -> Result<Self, GuardError> {
        let parsed: LexiconFile =
            toml::from_str(source).map_err(|e| GuardError::toml(file, source, &e))?;
        let mut words = Vec::new();
        let mut patterns = Vec::new();
        let mut readings = Vec::new();
        let mut reading_patterns = Vec::new();
        for entry in parsed.entry {
            let label = match (entry.intent, entry.technique) {
                (Some(i), None) if taxonomy.intent_index(&i).is_some() => Label::Intent(i),
                (None, Some(t)) if taxonomy.technique_index(&t).is_some() => Label::Technique(t),
                (i, t) => {
                    let name = i.or(t).unwrap_or_default();
                    let line = source
                        .find(&format!("\"{name}\""))
                        .map_or(0, |at| crate::error::line_of(source, at));
                    return Err(GuardError::Invalid {
                        file: file.to_owned(),
                        line,
                        message: format!(
                            "entry needs exactly one known intent or technique, got `{name}`"
                        ),
                    });
                }
            };
            for term in &entry.terms {
                let norm = text::normalize(term);
                if norm.is_empty() {
                    continue;
                }
                let mut forms = vec![norm.clone()];
                if entry.strength == Strength::Block {
                    forms.extend(request_prefix_variants(&norm));
                }
                if matches!(label, Label::Intent(_)) {
                    forms.extend(text::variants::pinyin_variants(&norm));
                    if norm.chars().count() >= MIN_READING_CHARS
                        && let Some(reading) = text::variants::Reading::pattern(&norm)
                    {
                        readings.push(reading);
                        reading_patterns.push((label.clone(), entry.strength, norm.clone()));
                    }
                }
                for form in forms {
                    words.push(form);
                    patterns.push((label.clone(), entry.strength));
                }
            }
        }
        let build = |words: &[String]| {
            AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(words).map_err(
                |e| GuardError::Invalid { file: file.to_owned(), line: 0, message: e.to_string() },
            )
        };
        Ok(Lexicon {
            automaton: build(&words)?,
            patterns,
            readings: build(&readings)?,
            reading_patterns,
        })
    }

    /// Every hit in `normalised` text, left to right, longest first at each position; then the
    /// homophone hits (by reading) where no spelled hit covers the same text.
    pub fn find(&self, normalised: &str) -> Vec<Hit> {
        let mut hits: Vec<Hit> = self
            .automaton
            .find_iter(normalised)
            .filter(|m| ascii_word_bounded(normalised, m.start(), m.end()))
            .map(|m| {
                let (label, strength) = self.patterns[m.pattern().as_usize()].clone();
                Hit { label, strength, start: m.start(), end: m.end(), homophone: false }
            })
            .collect();
        if self.reading_patterns.is_empty() || normalised.is_ascii() {
            return hits;
        }
        let reading = text::variants::Reading::of(normalised);
        let spelled = hits.len();
        for m in self.readings.find_iter(&reading.text) {
            let Some((start, end)) = reading.source_span(m.start(), m.end()) else { continue };
            if hits[..spelled].iter().any(|h| h.start < end && start < h.end) {
                continue;
            }
            let (label, strength, term) = &self.reading_patterns[m.pattern().as_usize()];
            if &normalised[start..end] == term {
                // The term itself, shadowed by a longer spelled match: not an evasion.
                continue;
            }
            hits.push(Hit {
                label: label.clone(),
                strength: *strength,
                start,
                end,
                homophone: true,
            });
        }
        hits
    }

    /// Number of patterns, variants included.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether the lexicon has no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Chinese ways to open a request for oneself; a block phrase written with one ("帮我写一篇黄文") is the
/// same request with any other ("给我写一篇黄文", "替我写一篇黄文").
/// Longest first, so "请帮我" is taken whole rather than as "请" + "帮我".
const REQUEST_PREFIXES: &[&str] = &["请帮我", "你帮我", "麻烦你", "帮我", "给我", "替我", "教我"];

/// The other spellings of a block phrase that opens with a request prefix (none otherwise).
fn request_prefix_variants(term: &str) -> Vec<String> {
    let Some((rest, own)) =
        REQUEST_PREFIXES.iter().find_map(|p| term.strip_prefix(p).map(|r| (r, *p)))
    else {
        return Vec::new();
    };
    if rest.chars().count() < 2 {
        return Vec::new();
    }
    REQUEST_PREFIXES.iter().filter(|p| **p != own).map(|p| format!("{p}{rest}")).collect()
}

/// ASCII terms must match whole words ("gun" not in "begun"); CJK terms match anywhere.
fn ascii_word_bounded(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    let first_ascii = b[start].is_ascii_alphanumeric();
    let last_ascii = b[end - 1].is_ascii_alphanumeric();
    let before_ok = !first_ascii || start == 0 || !b[start - 1].is_ascii_alphanumeric();
    let after_ok = !last_ascii || end == b.len() || !b[end].is_ascii_alphanumeric();
    before_ok && after_ok
}

/// The live lexicon of a guard, swapped on hot reload.
pub type SharedLexicon = crate::reload::Live<Lexicon>;
