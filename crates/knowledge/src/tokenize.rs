//! The two analyzers behind the lexical fields. Chinese has no spaces, so a whitespace tokenizer finds
//! almost nothing (R@10 0.14 on CMRC 2018): `jieba` cuts words in search mode (long words also yield
//! their dictionary sub-words, so "农业" finds "中国农业发展银行") with a finance user dictionary so
//! terms such as 逆回购 stay whole; `bigram` emits overlapping character pairs, a recall net for words
//! missing from any dictionary. Both drop punctuation and lowercase Latin text.

use std::sync::OnceLock;

use jieba_rs::Jieba;
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Name under which the jieba analyzer is registered in the index.
pub const JIEBA: &str = "kb_jieba";
/// Name under which the character-bigram analyzer is registered in the index.
pub const BIGRAM: &str = "kb_bigram";

/// The finance user dictionary (jieba format: word, frequency, part of speech), written for finllm.
pub const FINANCE_DICT: &str = include_str!("../data/finance_dict.txt");

/// The shared jieba segmenter: the default dictionary plus [`FINANCE_DICT`].
pub fn jieba() -> &'static Jieba {
    static JIEBA_INSTANCE: OnceLock<Jieba> = OnceLock::new();
    JIEBA_INSTANCE.get_or_init(|| {
        let mut jieba = Jieba::new();
        for line in FINANCE_DICT.lines() {
            let mut parts = line.split_whitespace();
            let Some(word) = parts.next() else { continue };
            let freq = parts.next().and_then(|f| f.parse().ok());
            jieba.add_word(word, freq, parts.next());
        }
        jieba
    })
}

/// Interrogative words: the question says "哪一年" where the passage says "1998年", so these words
/// never match the answer's chunk and only add noise (they are rare in passages, so BM25 weighs them
/// high). Longest first, so "为什么" goes before "什么".
pub const QUESTION_WORDS: &[&str] = &[
    "哪一年",
    "为什么",
    "什么",
    "哪个",
    "哪些",
    "哪里",
    "哪儿",
    "哪年",
    "哪位",
    "哪家",
    "哪种",
    "哪国",
    "多少",
    "多大",
    "多长",
    "多久",
    "几个",
    "几年",
    "几种",
    "几次",
    "何时",
    "何地",
    "为何",
    "如何",
    "怎么",
    "怎样",
    "是否",
    "请问",
    "谁",
    "哪",
    "吗",
    "呢",
];

/// The query with interrogative words blanked out (see [`QUESTION_WORDS`]).
pub fn strip_question_words(query: &str) -> String {
    let mut out = query.to_owned();
    for word in QUESTION_WORDS {
        if out.contains(word) {
            out = out.replace(word, " ");
        }
    }
    out
}

/// Whether a token carries meaning (has a letter, digit or CJK character).
fn is_word(token: &str) -> bool {
    token.chars().any(char::is_alphanumeric)
}

/// Jieba search-mode tokens of `text`, lowercased, punctuation dropped.
pub fn jieba_tokens(text: &str) -> Vec<String> {
    jieba()
        .cut_for_search(text, true)
        .into_iter()
        .filter(|t| is_word(t.word))
        .map(|t| t.word.to_lowercase())
        .collect()
}

/// Overlapping CJK character bigrams (a lone CJK character stays a unigram) and whole lowercased
/// Latin/digit words.
pub fn bigram_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cjk_run: Vec<char> = Vec::new();
    let mut word = String::new();
    let flush_cjk = |run: &mut Vec<char>, out: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 => out.push(run[0].to_string()),
            _ => out.extend(run.windows(2).map(|w| w.iter().collect::<String>())),
        }
        run.clear();
    };
    for c in text.chars() {
        if text::normalize::is_cjk(c) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            cjk_run.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk_run, &mut out);
            word.extend(c.to_lowercase());
        } else {
            flush_cjk(&mut cjk_run, &mut out);
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
        }
    }
    flush_cjk(&mut cjk_run, &mut out);
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A tantivy tokenizer over one of the token functions above. Positions are the token order; the
/// fields index frequencies only, so offsets are not needed and left at zero.
#[derive(Clone, Copy, Debug)]
pub struct FnTokenizer(pub fn(&str) -> Vec<String>);

impl Tokenizer for FnTokenizer {
    type TokenStream<'a> = VecTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        let tokens = (self.0)(text)
            .into_iter()
            .enumerate()
            .map(|(position, text)| Token {
                position,
                text,
                position_length: 1,
                ..Token::default()
            })
            .collect();
        VecTokenStream { tokens, at: None, empty: Token::default() }
    }
}

/// Tokens computed up front, handed out one by one.
#[derive(Debug)]
pub struct VecTokenStream {
    tokens: Vec<Token>,
    at: Option<usize>,
    /// Returned by `token()` before the first `advance()` or after the last, so it never panics.
    empty: Token,
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        let next = self.at.map_or(0, |i| i + 1);
        self.at = Some(next);
        next < self.tokens.len()
    }

    fn token(&self) -> &Token {
        self.at.and_then(|i| self.tokens.get(i)).unwrap_or(&self.empty)
    }

    fn token_mut(&mut self) -> &mut Token {
        match self.at {
            Some(i) if i < self.tokens.len() => &mut self.tokens[i],
            _ => &mut self.empty,
        }
    }
}
