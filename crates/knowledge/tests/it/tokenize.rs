//! The analyzers: jieba search mode keeps finance terms whole and also yields sub-words; bigrams cover
//! unknown words; punctuation never becomes a term.

use knowledge::tokenize::{bigram_tokens, jieba_tokens};

#[test]
fn jieba_search_mode_keeps_finance_terms_and_sub_words() {
    let tokens = jieba_tokens("中国人民银行开展逆回购操作，中标利率为1.8%。");
    for expected in ["中国人民银行", "人民", "银行", "逆回购", "中标利率"] {
        assert!(tokens.iter().any(|t| t == expected), "{expected} missing from {tokens:?}");
    }
    assert!(
        tokens.iter().all(|t| t.chars().any(char::is_alphanumeric)),
        "punctuation leaked: {tokens:?}"
    );
}

#[test]
fn finance_dictionary_changes_segmentation() {
    // Without the user dictionary jieba cuts 逆回购 into 逆 / 回购 (knowledge notes §2).
    let tokens = jieba_tokens("央行今日开展逆回购");
    assert!(tokens.contains(&"逆回购".to_owned()), "{tokens:?}");
}

#[test]
fn bigrams_cover_cjk_runs_and_keep_latin_words() {
    let check = |input: &str, expect: &[&str]| assert_eq!(bigram_tokens(input), expect, "{input}");
    check("利率LPR下调", &["利率", "lpr", "下调"]);
    check("三码", &["三码"]);
    check("降 准", &["降", "准"]);
    check("A股，上涨。", &["a", "股", "上涨"]);
    check("", &[]);
}
