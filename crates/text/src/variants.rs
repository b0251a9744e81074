//! Spelling variants of lexicon terms used to evade keyword filters: full pinyin ("xiqian"), spaced
//! pinyin ("xi qian"), initials ("xq") and half-pinyin mixes ("洗qian"). The guard adds these to its
//! automaton, so "怎么xi qian" matches the same entry as "怎么洗钱".

use std::{collections::HashMap, sync::OnceLock};

use crate::tables::PINYIN;

/// Pinyin (without tones) of a character, when the table knows it.
pub fn pinyin(c: char) -> Option<&'static str> {
    static TABLE: OnceLock<HashMap<char, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| PINYIN.iter().copied().collect()).get(&c).copied()
}

/// Evasive spellings of `term`: empty when a character has no known pinyin or the term is not CJK.
/// Initials are only produced for terms of three or more characters, as two letters match too much.
pub fn pinyin_variants(term: &str) -> Vec<String> {
    let chars: Vec<char> = term.chars().collect();
    let Some(syllables) = chars.iter().map(|c| pinyin(*c)).collect::<Option<Vec<_>>>() else {
        return Vec::new();
    };
    if chars.len() < 2 {
        return Vec::new();
    }
    let mut out = vec![syllables.concat(), syllables.join(" ")];
    if chars.len() >= 3 {
        out.push(syllables.iter().filter_map(|s| s.chars().next()).collect());
    }
    // Half and half: first character kept, the rest in pinyin, and the reverse.
    out.push(format!("{}{}", chars[0], syllables[1..].concat()));
    out.push(format!("{}{}", syllables[0], chars[1..].iter().collect::<String>()));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_of_a_term() {
        assert_eq!(pinyin_variants("洗钱"), ["xiqian", "xi qian", "洗qian", "xi钱"]);
        assert_eq!(pinyin_variants("冰毒")[0], "bingdu");
        assert!(pinyin_variants("理财").is_empty());
        assert!(pinyin_variants("").is_empty());
    }
}
