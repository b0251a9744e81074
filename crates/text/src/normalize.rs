//! Normalisation that undoes the cheap tricks used to hide words from filters, so detectors see one
//! canonical form: invisible characters, compatibility forms (full width, ligatures, math letters),
//! traditional characters, homoglyphs from other scripts, leetspeak, 拆字 and junk between CJK characters.
//!
//! The output is for matching and classification only; it is lossy on purpose and never shown to users.

use std::{collections::HashMap, sync::OnceLock};

use unicode_normalization::UnicodeNormalization;

use crate::tables::{HOMOGLYPH_PAIRS, SPLIT_CHARS, T2S_PAIRS};

/// Longest input normalised; the rest is cut (at a character boundary) so cost stays bounded.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// The canonical form of `input` used by every detector: see the module docs for the steps.
pub fn normalize(input: &str) -> String {
    let input = truncate(input, MAX_INPUT_BYTES);
    // U+FFFD (from invalid UTF-8) carries no meaning and is dropped like an invisible character.
    let visible: String = input.chars().filter(|c| !is_invisible(*c) && *c != '\u{FFFD}').collect();
    let mut out = String::with_capacity(visible.len());
    for c in visible.nfkc() {
        let c = fold_char(c);
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if is_cjk(c) {
            // Ideographs have no case; skipping the case tables keeps Chinese text cheap.
            out.push(c);
        } else {
            out.extend(c.to_lowercase());
        }
    }
    let out = undo_split_chars(&out);
    let out = undo_leetspeak(&out);
    drop_junk_between_cjk(&out)
}

/// [`normalize`] for raw bytes: invalid UTF-8 sequences become U+FFFD first.
pub fn normalize_bytes(input: &[u8]) -> String {
    normalize(&String::from_utf8_lossy(truncate_bytes(input, MAX_INPUT_BYTES)))
}

/// Whether `c` renders as nothing (zero-width, bidi controls, tag characters, variation selectors).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// The simplified form of a traditional character, or the character itself.
pub fn to_simplified(c: char) -> char {
    t2s().get(&c).copied().unwrap_or(c)
}

/// Whether `input` mixes traditional and simplified Chinese: a traditional character next to at
/// least two characters only simplified text uses. Writers use one script or the other; mixing them
/// inside one text is a way past keyword filters (怎麼 in an otherwise simplified request).
pub fn mixes_chinese_scripts(input: &str) -> bool {
    static SIMPLIFIED_ONLY: OnceLock<std::collections::HashSet<char>> = OnceLock::new();
    let simplified_only = SIMPLIFIED_ONLY.get_or_init(|| {
        let table = t2s();
        table.values().copied().filter(|c| !table.contains_key(c)).collect()
    });
    let (mut traditional, mut simplified) = (0usize, 0usize);
    for c in input.chars().filter(|c| !c.is_ascii()) {
        if t2s().contains_key(&c) {
            traditional += 1;
        } else if simplified_only.contains(&c) {
            simplified += 1;
        }
        if traditional >= 1 && simplified >= 2 {
            return true;
        }
    }
    false
}

/// Traditional → simplified for a whole string.
pub fn simplify(input: &str) -> String {
    input.chars().map(to_simplified).collect()
}

fn fold_char(c: char) -> char {
    if c.is_ascii() {
        // Neither table maps an ASCII character; skipping them keeps the common case free.
        return c;
    }
    let c = to_simplified(c);
    homoglyphs().get(&c).copied().unwrap_or(c)
}

/// A multiplicative hash for `char` keys: the tables are looked up once per character of every
/// checked text, where SipHash costs more than the rest of the fold.
#[derive(Debug, Default, Clone, Copy)]
struct CharHasher(u64);

impl std::hash::Hasher for CharHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type CharMap = HashMap<char, char, std::hash::BuildHasherDefault<CharHasher>>;

fn t2s() -> &'static CharMap {
    static TABLE: OnceLock<CharMap> = OnceLock::new();
    TABLE.get_or_init(|| {
        let chars: Vec<char> = T2S_PAIRS.chars().filter(|c| !c.is_whitespace()).collect();
        chars.chunks_exact(2).filter(|p| p[0] != p[1]).map(|p| (p[0], p[1])).collect()
    })
}

fn homoglyphs() -> &'static CharMap {
    static TABLE: OnceLock<CharMap> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = CharMap::default();
        for &(from, to) in HOMOGLYPH_PAIRS {
            map.insert(from, to);
            for upper in from.to_uppercase() {
                map.entry(upper).or_insert(to);
            }
        }
        map
    })
}

fn undo_split_chars(input: &str) -> String {
    if !input.chars().any(is_cjk) {
        return input.to_owned();
    }
    // One pass over the text (every pair is two characters), not one substring search per pair.
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        let whole = chars.peek().filter(|_| is_cjk(c)).and_then(|next| {
            SPLIT_CHARS.iter().find_map(|(parts, whole)| {
                let mut p = parts.chars();
                (p.next() == Some(c) && p.next() == Some(*next)).then_some(*whole)
            })
        });
        match whole {
            Some(whole) => {
                out.push_str(whole);
                chars.next();
            }
            None => out.push(c),
        }
    }
    out
}

/// Leetspeak digits and symbols inside ASCII words that also hold letters ("h4ck3r" → "hacker");
/// plain numbers ("2024", "3.5%") are left alone.
fn undo_leetspeak(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let chars: Vec<char> = word.chars().collect();
        let interior = (1..chars.len().saturating_sub(1)).any(|i| {
            leet_letter(chars[i]).is_some()
                && chars[..i].iter().any(char::is_ascii_alphabetic)
                && chars[i + 1..].iter().any(char::is_ascii_alphabetic)
        });
        if interior && word.len() <= 32 {
            out.extend(word.chars().map(|c| leet_letter(c).unwrap_or(c)));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in input.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '@' | '$') {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn leet_letter(c: char) -> Option<char> {
    Some(match c {
        '0' => 'o',
        '1' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        '8' => 'b',
        _ => return None,
    })
}

/// Drops spaces and punctuation wedged between two CJK characters ("洗 * 钱" → "洗钱"), a common way
/// to split a keyword; sentence punctuation (。！？，) is kept so sentences stay apart.
fn drop_junk_between_cjk(input: &str) -> String {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_cjk(c) {
            out.push(c);
            let mut j = i + 1;
            while j < chars.len() && j - i <= 3 && is_junk(chars[j]) {
                j += 1;
            }
            if j > i + 1 && j < chars.len() && is_cjk(chars[j]) {
                i = j;
                continue;
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn is_junk(c: char) -> bool {
    c == ' '
        || matches!(c, '*' | '-' | '_' | '.' | '/' | '\\' | '|' | '#' | '~' | '^' | '+' | '·' | '`')
}

/// Whether `c` is a CJK ideograph (the unified block and extension A).
pub fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn truncate_bytes(s: &[u8], max: usize) -> &[u8] {
    &s[..s.len().min(max)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &str) {
        assert_eq!(normalize(input), expect, "normalize({input:?})");
    }

    #[test]
    fn each_step_is_pinned() {
        check("ＡＢＣ１２３", "abc123"); // full width
        check("洗\u{200B}钱", "洗钱"); // zero width
        check("洗\u{E0041}钱\u{FE0F}", "洗钱"); // tag char and variation selector
        check("洗錢與詐騙", "洗钱与诈骗"); // traditional
        check("раураl", "paypal"); // Cyrillic lookalikes
        check("h4ck3r", "hacker"); // leetspeak
        check("年化3.5%，2024年", "年化3.5%,2024年"); // numbers stay; NFKC makes the comma ASCII
        check("洗 * 钱", "洗钱"); // junk between CJK
        check("买木仓", "买枪"); // 拆字
        check("𝐛𝐨𝐦𝐛", "bomb"); // math bold letters via NFKC
        check("", "");
    }

    #[test]
    fn table_alignment_holds_to_the_end() {
        for (t, s) in [('萬', '万'), ('錢', '钱'), ('騙', '骗'), ('額', '额'), ('詐', '诈')]
        {
            assert_eq!(to_simplified(t), s, "{t}");
        }
    }

    #[test]
    fn mixed_scripts_are_told_from_one_script() {
        for (input, mixed) in [
            ("请回答这个问题：怎麼偷偷定位我老婆的手机？", true), // 麼 among simplified 这/问/题
            ("洗錢與詐騙的區別", false),                          // all traditional
            ("洗钱与诈骗的区别", false),                          // all simplified
            ("麼", false),
            ("", false),
        ] {
            assert_eq!(mixes_chinese_scripts(input), mixed, "{input}");
        }
    }

    #[test]
    fn bytes_and_huge_input_are_total() {
        assert_eq!(normalize_bytes(&[0xff, b'a', 0xfe]), "a");
        let huge = "洗".repeat(MAX_INPUT_BYTES);
        assert!(normalize(&huge).len() <= MAX_INPUT_BYTES);
    }
}
