//! Pre-tokenization: the regular expressions that cut text into words before byte-level BPE merges them.
//!
//! Each GGUF `tokenizer.ggml.pre` name stands for the pre-tokenizer of the Hugging Face tokenizer the model was
//! converted from; llama.cpp keeps one list of expressions per name. The expressions here are the original
//! Hugging Face ones (llama.cpp rewrites some of them for `std::regex`, with the same meaning). Expressions are
//! applied one after the other; each splits every fragment left by the previous one into matches and the gaps
//! between them, and both are kept (Hugging Face's `Split` with the `Isolated` behaviour).

use fancy_regex::Regex;

use super::TokenizerError;

/// GPT-2, also used by many GPT-2-derived vocabularies (`gpt-2`, `phi-2`, `roberta-bpe`, ...).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3: case-insensitive contractions, digits in groups of at most three, newlines kept apart.
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2 / Qwen2.5: like Llama 3 but every digit is its own word.
const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// DeepSeek LLM: a sequence of six splits (newlines, Latin-like letters, ASCII/CJK punctuation, trailing
/// spaces, CJK ideographs and Hangul, digit runs).
const DEEPSEEK_LLM: [&str; 6] = [
    r"[\r\n]",
    r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\x{1F7D}ᾀ-ᾴᾶ-ᾼ\x{1FBE}ῂ-ῄῆ-ῌῐ-\x{1FD3}ῖ-\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\x{2126}ℨ\x{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
    r"\s+$",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}+",
];

/// Which pre-tokenizer a byte-level BPE vocabulary uses, from GGUF `tokenizer.ggml.pre`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PreTokenizerKind {
    Gpt2,
    Llama3,
    Qwen2,
    DeepseekLlm,
}

impl PreTokenizerKind {
    /// Maps a GGUF pre-tokenizer name to its kind, as llama.cpp does; `None` for names not implemented here.
    pub(crate) fn from_gguf_name(name: &str) -> Option<Self> {
        Some(match name {
            "gpt-2" | "phi-2" | "roberta-bpe" | "jina-es" | "jina-de" | "gigachat"
            | "jina-v1-en" | "jina-v2-es" | "jina-v2-de" | "jina-v2-code" | "mpt" | "olmo"
            | "jais" => Self::Gpt2,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "dbrx" | "smaug-bpe" => Self::Llama3,
            "qwen2" | "stablelm2" | "megrez" => Self::Qwen2,
            "deepseek-llm" => Self::DeepseekLlm,
            _ => return None,
        })
    }

    fn expressions(self) -> &'static [&'static str] {
        match self {
            Self::Gpt2 => &[GPT2],
            Self::Llama3 => &[LLAMA3],
            Self::Qwen2 => &[QWEN2],
            Self::DeepseekLlm => &DEEPSEEK_LLM,
        }
    }
}

/// A compiled pre-tokenizer: the list of expressions for one vocabulary.
#[derive(Debug)]
pub(crate) struct PreTokenizer {
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    pub(crate) fn new(kind: PreTokenizerKind) -> Result<Self, TokenizerError> {
        let regexes = kind
            .expressions()
            .iter()
            .map(|expr| {
                Regex::new(expr)
                    .map_err(|err| TokenizerError::Invalid(format!("pre-tokenizer regex: {err}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { regexes })
    }

    /// Cuts `text` into words: matches and the gaps between them, in order, none empty.
    pub(crate) fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, TokenizerError> {
        let mut fragments = vec![text];
        for regex in &self.regexes {
            let mut next = Vec::with_capacity(fragments.len() * 2);
            for fragment in fragments {
                let mut last = 0;
                for found in regex.find_iter(fragment) {
                    let found = found
                        .map_err(|err| TokenizerError::Invalid(format!("pre-tokenizer: {err}")))?;
                    if found.start() > last {
                        next.push(&fragment[last..found.start()]);
                    }
                    if found.end() > found.start() {
                        next.push(found.as_str());
                    }
                    last = found.end();
                }
                if last < fragment.len() {
                    next.push(&fragment[last..]);
                }
            }
            fragments = next;
        }
        Ok(fragments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: PreTokenizerKind, text: &str, expect: &[&str]) {
        let pre = PreTokenizer::new(kind).unwrap();
        assert_eq!(pre.split(text).unwrap(), expect, "{kind:?} {text:?}");
    }

    #[test]
    fn splits_like_the_reference_expressions() {
        check(PreTokenizerKind::Gpt2, "Hello, world!", &["Hello", ",", " world", "!"]);
        check(PreTokenizerKind::Gpt2, "   Hello", &["  ", " Hello"]);
        check(PreTokenizerKind::Llama3, "12345 I'VE", &["123", "45", " I", "'VE"]);
        check(PreTokenizerKind::Qwen2, "1314", &["1", "3", "1", "4"]);
        check(PreTokenizerKind::Qwen2, "a\n\n b", &["a", "\n\n", " b"]);
        check(PreTokenizerKind::DeepseekLlm, "ab 12\n我", &["ab", " ", "12", "\n", "我"]);
    }
}
