//! Answer extractors for the generation path: each turns a model's raw text into an answer or says it
//! found none. Every rule has golden cases (tests/data/extract.tsv), because a silently wrong extractor
//! skews scores without anyone noticing.

/// A named extraction rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extractor {
    /// One option letter; the first answer cue (`答案：B`, `选B`, `(B)`, `B.`) or the first bare letter.
    ChoiceFirst,
    /// One option letter; the last answer cue or the last bare letter (for reasoning before the answer).
    ChoiceLast,
    /// A set of option letters (`ABD`, `A、B、D`), sorted.
    MultiChoice,
    /// 对/错 (also 正确/错误, √/×, true/false) mapped to the option whose text says so, or a letter.
    TrueFalse,
    /// The last number, with `,` `%` `元` `万` `亿` normalised (`1.2万` → `12000`, `5%` → `0.05`).
    Number,
    /// The whole output, trimmed.
    Trimmed,
}

/// Every extractor name.
pub const NAMES: &[&str] =
    &["choice_first", "choice_last", "multi_choice", "true_false", "number", "trimmed"];

const CUES: &[&str] = &[
    "正确答案是",
    "正确答案为",
    "正确答案",
    "答案是",
    "答案为",
    "答案应该是",
    "答案应为",
    "答案",
    "故选",
    "应选",
    "选项",
    "选择",
    "选",
    "answer is",
    "Answer is",
    "Answer:",
    "answer:",
];

impl Extractor {
    /// The extractor called `name`.
    pub fn from_name(name: &str) -> Option<Extractor> {
        Some(match name {
            "choice_first" => Extractor::ChoiceFirst,
            "choice_last" => Extractor::ChoiceLast,
            "multi_choice" => Extractor::MultiChoice,
            "true_false" => Extractor::TrueFalse,
            "number" => Extractor::Number,
            "trimmed" => Extractor::Trimmed,
            _ => return None,
        })
    }

    /// Its name, as stored with each result.
    pub fn name(self) -> &'static str {
        match self {
            Extractor::ChoiceFirst => "choice_first",
            Extractor::ChoiceLast => "choice_last",
            Extractor::MultiChoice => "multi_choice",
            Extractor::TrueFalse => "true_false",
            Extractor::Number => "number",
            Extractor::Trimmed => "trimmed",
        }
    }

    /// The answer in `text`, given the option `labels` (e.g. `["A","B","C","D"]`, empty for open
    /// questions) and option texts; `None` when nothing can be extracted.
    pub fn extract(self, text: &str, choices: &[(String, String)]) -> Option<String> {
        let labels: Vec<char> = if choices.is_empty() {
            "ABCDE".chars().collect()
        } else {
            choices.iter().filter_map(|(l, _)| l.chars().next()).collect()
        };
        match self {
            Extractor::ChoiceFirst => choice(text, &labels, false).map(String::from),
            Extractor::ChoiceLast => choice(text, &labels, true).map(String::from),
            Extractor::MultiChoice => multi(text, &labels),
            Extractor::TrueFalse => true_false(text, choices, &labels),
            Extractor::Number => last_number(text).map(format_number),
            Extractor::Trimmed => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
        }
    }
}

fn is_ascii_letter(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphabetic())
}

/// The letter run right after a cue: skips `：: 是为（(` and spaces, then reads option letters and
/// separators.
fn letters_after(rest: &str, labels: &[char]) -> Vec<char> {
    let rest = rest.trim_start_matches([' ', '：', ':', '是', '为', '(', '（', '\u{3000}', '*']);
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if labels.contains(&c) {
            out.push(c);
        } else if !matches!(c, '、' | ',' | '，' | ' ' | '和' | '及') || out.is_empty() {
            break;
        }
        chars.next();
    }
    // `选A股` style false hits: a letter glued to more Latin letters is a word, not an option.
    if out.len() == 1 && is_ascii_letter(rest.chars().nth(1)) {
        return Vec::new();
    }
    out
}

/// Every (byte position, letters) of a cue followed by option letters.
fn cue_hits(text: &str, labels: &[char]) -> Vec<(usize, Vec<char>)> {
    let mut hits = Vec::new();
    for cue in CUES {
        for (at, _) in text.match_indices(cue) {
            let letters = letters_after(&text[at + cue.len()..], labels);
            if !letters.is_empty() {
                hits.push((at, letters));
            }
        }
    }
    // Longer cues first at the same position, so `答案是` wins over `答案`.
    hits.sort_by_key(|(at, _)| *at);
    hits
}

/// Standalone option letters: not part of a Latin word.
fn bare_letters(text: &str, labels: &[char]) -> Vec<(usize, char)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    for (i, &(at, c)) in chars.iter().enumerate() {
        let before = i.checked_sub(1).map(|j| chars[j].1);
        let after = chars.get(i + 1).map(|&(_, c)| c);
        if labels.contains(&c) && !is_ascii_letter(before) && !is_ascii_letter(after) {
            out.push((at, c));
        }
    }
    out
}

fn choice(text: &str, labels: &[char], last: bool) -> Option<char> {
    let hits = cue_hits(text, labels);
    let pick = if last { hits.last() } else { hits.first() };
    if let Some((_, letters)) = pick {
        return letters.first().copied();
    }
    // `(B)` / `（B）`
    let mut bracketed = Vec::new();
    for (open, close) in [('(', ')'), ('（', '）')] {
        for (at, _) in text.match_indices(open) {
            let mut it = text[at + open.len_utf8()..].chars();
            if let (Some(c), Some(end)) = (it.next(), it.next())
                && labels.contains(&c)
                && end == close
            {
                bracketed.push((at, c));
            }
        }
    }
    bracketed.sort_unstable();
    let pick = if last { bracketed.last() } else { bracketed.first() };
    if let Some(&(_, c)) = pick {
        return Some(c);
    }
    let bare = bare_letters(text, labels);
    let pick = if last { bare.last() } else { bare.first() };
    pick.map(|&(_, c)| c)
}

fn multi(text: &str, labels: &[char]) -> Option<String> {
    let letters = match cue_hits(text, labels).into_iter().next() {
        Some((_, letters)) => letters,
        None => {
            // A bare run like `ABD` or `A、B、D` at the start of the answer.
            let letters = letters_after(text.trim_start(), labels);
            if letters.is_empty() {
                bare_letters(text, labels).first().map(|&(_, c)| vec![c])?
            } else {
                letters
            }
        }
    };
    let mut letters: Vec<char> = letters;
    letters.sort_unstable();
    letters.dedup();
    Some(letters.into_iter().collect())
}

fn true_false(text: &str, choices: &[(String, String)], labels: &[char]) -> Option<String> {
    const NO: &[&str] = &["不正确", "不对", "不是", "错误", "错", "×", "false", "False", "否"];
    const YES: &[&str] = &["正确", "对", "√", "true", "True", "是"];
    // An explicit letter (`答案：B`) wins over words.
    if let Some((_, letters)) = cue_hits(text, labels).first() {
        return letters.first().map(|c| c.to_string());
    }
    let label_for = |words: &[&str], fallback: &str| {
        choices
            .iter()
            .find(|(_, t)| words.contains(&t.as_str()))
            .map_or_else(|| fallback.to_owned(), |(l, _)| l.clone())
    };
    // Judge the words after the last answer cue, so `正确答案是错` reads as 错.
    let t = text.rfind("答案").map_or(text, |at| {
        text[at + "答案".len()..].trim_start_matches(['是', '为', '应', '该', '：', ':', ' '])
    });
    let first = |words: &[&str]| words.iter().filter_map(|w| t.find(w)).min();
    match (first(NO), first(YES)) {
        (Some(n), Some(y)) if y < n => Some(label_for(YES, "对")),
        (Some(_), _) => Some(label_for(NO, "错")),
        (None, Some(_)) => Some(label_for(YES, "对")),
        (None, None) => choice(text, labels, false).map(String::from),
    }
}

/// The last number in `text`, as a value (`万`, `亿` multiply; `%` divides by 100).
pub fn last_number(text: &str) -> Option<f64> {
    let chars: Vec<char> = text.chars().collect();
    let mut best = None;
    let mut i = 0;
    while i < chars.len() {
        let negative = chars[i] == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if chars[i].is_ascii_digit() || negative {
            let start = i;
            i += usize::from(negative);
            let mut digits = String::new();
            if negative {
                digits.push('-');
            }
            while i < chars.len() {
                let c = chars[i];
                let next_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
                if c.is_ascii_digit() {
                    digits.push(c);
                } else if c == '.' && next_digit {
                    digits.push('.');
                } else if (c == ',' || c == '，') && next_digit && i > start {
                    // thousands separator: `80,000`
                } else {
                    break;
                }
                i += 1;
            }
            let Ok(mut value) = digits.parse::<f64>() else { continue };
            let mut j = i;
            while chars.get(j) == Some(&' ') {
                j += 1;
            }
            match chars.get(j) {
                Some('%' | '％') => value /= 100.0,
                Some('万') => value *= 1e4,
                Some('亿') => value *= 1e8,
                _ => {}
            }
            if chars.get(j) == Some(&'万') && chars.get(j + 1) == Some(&'亿') {
                value *= 1e8;
            }
            best = Some(value);
        } else {
            i += 1;
        }
    }
    best
}

/// A number without float noise: `12000`, `0.05`, `160.1`.
pub fn format_number(value: f64) -> String {
    let rounded = (value * 1e6).round() / 1e6;
    let text = format!("{rounded:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}
