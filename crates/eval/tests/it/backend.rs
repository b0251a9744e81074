//! Finding a continuation's tokens by text offset in echoed prompt log-probabilities.

use eval::backend::{continuation_logprob, tail_logprob, token_count};
use serde_json::json;

#[test]
fn sums_the_continuation_tokens_by_byte_offset() {
    let prompt = "答案：B";
    let ctx = "答案：".len();
    let lp = json!({"tokens": ["答案", "：", "B"], "token_logprobs": [null, -1.0, -0.25], "text_offset": [0, 6, 9]});
    assert_eq!(continuation_logprob(&lp, prompt, ctx).unwrap().unwrap(), -0.25);
}

#[test]
fn character_offsets_are_recognised() {
    let prompt = "答案：B";
    let lp = json!({"tokens": ["答案", "：", "B"], "token_logprobs": [null, -1.0, -0.5], "text_offset": [0, 2, 3]});
    assert_eq!(continuation_logprob(&lp, prompt, "答案：".len()).unwrap().unwrap(), -0.5);
}

#[test]
fn a_token_straddling_the_boundary_counts() {
    let lp =
        json!({"tokens": ["ab", "c d"], "token_logprobs": [null, -2.0], "text_offset": [0, 2]});
    assert_eq!(continuation_logprob(&lp, "abc d", 3).unwrap().unwrap(), -2.0);
    let bad = json!({"tokens": ["ab"], "token_logprobs": [null, -1.0], "text_offset": [0]});
    assert!(continuation_logprob(&bad, "ab", 1).is_err());
}

#[test]
fn offsets_that_do_not_describe_the_prompt_fall_back_to_token_counts() {
    // Byte-fallback tokens of 需 rendered as U+FFFD: offsets count 3 bytes per replacement character.
    let prompt = "需：A";
    let lp = json!({"tokens": ["\u{fffd}", "\u{fffd}", "\u{fffd}", "：", "A"],
        "token_logprobs": [null, -1.0, -1.0, -0.5, -0.125], "text_offset": [0, 3, 6, 9, 12]});
    assert_eq!(continuation_logprob(&lp, prompt, "需：".len()).unwrap(), None);
    let context = json!({"tokens": ["\u{fffd}", "\u{fffd}", "\u{fffd}", "："], "token_logprobs": [null, -1.0, -1.0, -0.5]});
    assert_eq!(tail_logprob(&lp, token_count(&context).unwrap()).unwrap(), -0.125);
    assert!(tail_logprob(&lp, 5).is_err());
}
