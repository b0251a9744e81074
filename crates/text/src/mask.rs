//! Reversible masking: PII is replaced by numbered placeholders before text reaches a model, and the
//! caller restores the originals in the answer. `redact` is the one-way form for logs.

use serde::Serialize;

use crate::pii::{PiiSpan, detect_pii};

/// Text with PII replaced by placeholders, and what each placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Masked {
    /// The text with placeholders such as `[PHONE_1]`.
    pub text: String,
    /// Placeholder and original, in order of appearance. Never log this field.
    #[serde(skip)]
    pub originals: Vec<(String, String)>,
    /// What was masked (kinds and spans in the original text).
    pub spans: Vec<PiiSpan>,
}

/// Masks every PII span that `detect_pii` finds. The same value gets the same placeholder.
pub fn mask(text: &str) -> Masked {
    let spans = detect_pii(text);
    let mut out = String::with_capacity(text.len());
    let mut originals: Vec<(String, String)> = Vec::new();
    let mut counts = [0usize; 6];
    let mut at = 0;
    for span in &spans {
        out.push_str(&text[at..span.start]);
        let original = &text[span.start..span.end];
        let placeholder = match originals.iter().find(|(_, o)| o == original) {
            Some((p, _)) => p.clone(),
            None => {
                let n = &mut counts[span.kind as usize];
                *n += 1;
                let p = format!("[{}_{}]", span.kind.placeholder(), n);
                originals.push((p.clone(), original.to_owned()));
                p
            }
        };
        out.push_str(&placeholder);
        at = span.end;
    }
    out.push_str(&text[at..]);
    Masked { text: out, originals, spans }
}

/// Puts the originals back wherever their placeholders appear in `answer`.
pub fn restore(answer: &str, masked: &Masked) -> String {
    let mut out = answer.to_owned();
    // Longest placeholders first so `[PHONE_1]` never eats the front of `[PHONE_10]`.
    let mut pairs: Vec<&(String, String)> = masked.originals.iter().collect();
    pairs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (placeholder, original) in pairs {
        out = out.replace(placeholder.as_str(), original);
    }
    out
}

/// One-way masking for logs: every PII span becomes `[KIND]`.
pub fn redact(text: &str) -> String {
    replace_pii(text, |kind, out| {
        out.push('[');
        out.push_str(kind.placeholder());
        out.push(']');
    })
}

/// The text with every PII span removed (for classifiers: a phone number is not a risk signal).
pub fn strip_pii(text: &str) -> String {
    replace_pii(text, |_, _| {})
}

fn replace_pii(text: &str, mut with: impl FnMut(crate::PiiKind, &mut String)) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in detect_pii(text) {
        out.push_str(&text[at..span.start]);
        with(span.kind, &mut out);
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_restore_round_trip() {
        let text = "我叫张伟，手机13812345678，再说一遍13812345678，邮箱 a.b@bank.cn";
        let masked = mask(text);
        assert_eq!(masked.text, "我叫[NAME_1]，手机[PHONE_1]，再说一遍[PHONE_1]，邮箱 [EMAIL_1]");
        let answer = "好的[NAME_1]，我们会致电[PHONE_1]。";
        assert_eq!(restore(answer, &masked), "好的张伟，我们会致电13812345678。");
        assert_eq!(restore(&masked.text, &masked), text);
    }

    #[test]
    fn redact_is_one_way() {
        assert_eq!(redact("卡号4111111111111111"), "卡号[BANK_CARD]");
        assert_eq!(redact(""), "");
    }
}
