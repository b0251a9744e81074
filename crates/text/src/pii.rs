//! PII detectors that validate what they match, so a random 18-digit number is not an ID card and a
//! random 16-digit number is not a bank card: resident ID (check digit and plausible birth date),
//! bank cards (Luhn), mainland mobile numbers, e-mail addresses, street addresses and names in context.
//!
//! Spans are byte offsets into the text given, so callers can mask or highlight them.

use serde::Serialize;

use crate::{normalize::is_cjk, tables::SURNAMES};

/// What kind of personal information a span holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// 18-digit mainland resident identity card number (居民身份证).
    ResidentId,
    /// Payment card number that passes the Luhn check.
    BankCard,
    /// Mainland mobile phone number.
    Mobile,
    /// E-mail address.
    Email,
    /// Street address (…路/街…号).
    Address,
    /// Personal name introduced by context ("我叫…", "客户…", "my name is …").
    Name,
}

impl PiiKind {
    /// The placeholder stem used when masking ("ID_CARD" → `[ID_CARD_1]`).
    pub const fn placeholder(self) -> &'static str {
        match self {
            PiiKind::ResidentId => "ID_CARD",
            PiiKind::BankCard => "BANK_CARD",
            PiiKind::Mobile => "PHONE",
            PiiKind::Email => "EMAIL",
            PiiKind::Address => "ADDRESS",
            PiiKind::Name => "NAME",
        }
    }
}

/// One piece of personal information found in a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PiiSpan {
    /// What it is.
    pub kind: PiiKind,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

/// All validated PII in `text`, sorted by start, without overlaps (the earlier, longer span wins).
pub fn detect_pii(text: &str) -> Vec<PiiSpan> {
    let text = crate::normalize::truncate(text, crate::normalize::MAX_INPUT_BYTES);
    let mut spans = Vec::new();
    digit_runs(text, &mut spans);
    emails(text, &mut spans);
    addresses(text, &mut spans);
    names(text, &mut spans);
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut kept: Vec<PiiSpan> = Vec::with_capacity(spans.len());
    for span in spans {
        if kept.last().is_none_or(|last| span.start >= last.end) {
            kept.push(span);
        }
    }
    kept
}

/// Whether `id` is a valid 18-character resident ID: digits, ISO 7064 MOD 11-2 check character and a
/// real birth date between 1900 and 2099.
pub fn valid_resident_id(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = b[..17].iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize];
    if b[17].to_ascii_uppercase() != check {
        return false;
    }
    let num = |r: std::ops::Range<usize>| id[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if !(1900..=2099).contains(&year) || !(1..=12).contains(&month) {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    (1..=days).contains(&day)
}

/// Whether `digits` (13–19 digits, no separators) pass the Luhn check.
pub fn valid_bank_card(digits: &str) -> bool {
    let b = digits.as_bytes();
    if !(13..=19).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return false;
    }
    let sum: u32 = b
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether `digits` is a mainland mobile number (11 digits, 1[3-9]…).
pub fn valid_mobile(digits: &str) -> bool {
    let b = digits.as_bytes();
    b.len() == 11
        && b.iter().all(u8::is_ascii_digit)
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
}

/// Runs of digits (with single spaces or dashes between groups, and a final X for IDs), validated as
/// ID, card or mobile number in that order.
fn digit_runs(text: &str, spans: &mut Vec<PiiSpan>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = String::new();
        let mut end = i;
        while end < bytes.len() {
            let b = bytes[end];
            if b.is_ascii_digit() {
                digits.push(b as char);
                end += 1;
            } else if matches!(b, b' ' | b'-')
                && end + 1 < bytes.len()
                && bytes[end + 1].is_ascii_digit()
                && digits.len() < 19
            {
                end += 1;
            } else {
                break;
            }
            if digits.len() > 19 {
                break;
            }
        }
        let x_end = end < bytes.len() && matches!(bytes[end], b'X' | b'x') && digits.len() == 17;
        let followed_by_alnum = |e: usize| e < bytes.len() && bytes[e].is_ascii_alphanumeric();
        let kind = if x_end && !followed_by_alnum(end + 1) {
            digits.push('X');
            end += 1;
            valid_resident_id(&digits).then_some(PiiKind::ResidentId)
        } else if followed_by_alnum(end) {
            None
        } else if valid_resident_id(&digits) {
            Some(PiiKind::ResidentId)
        } else if digits.len() >= 16 && valid_bank_card(&digits) {
            Some(PiiKind::BankCard)
        } else if valid_mobile(&digits) || digits.strip_prefix("86").is_some_and(valid_mobile) {
            Some(PiiKind::Mobile)
        } else {
            None
        };
        if let Some(kind) = kind {
            let start = if kind == PiiKind::Mobile && text[..start].ends_with('+') {
                start - 1
            } else {
                start
            };
            spans.push(PiiSpan { kind, start, end });
        }
        i = end.max(start + 1);
    }
}

fn emails(text: &str, spans: &mut Vec<PiiSpan>) {
    let bytes = text.as_bytes();
    let local = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-');
    for (at, _) in text.match_indices('@') {
        let mut start = at;
        while start > 0 && local(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < bytes.len() && domain(bytes[end]) {
            end += 1;
        }
        while end > at + 1 && bytes[end - 1] == b'.' {
            end -= 1;
        }
        let host = &text[at + 1..end];
        let tld_ok = host.rsplit_once('.').is_some_and(|(name, tld)| {
            !name.is_empty() && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if start < at && tld_ok {
            spans.push(PiiSpan { kind: PiiKind::Email, start, end });
        }
    }
}

/// Street addresses: a road marker (路, 街, 巷, 弄, 大道, 胡同) followed by a house number and 号,
/// extended back over the CJK place names before it and forward over building/room numbers.
fn addresses(text: &str, spans: &mut Vec<PiiSpan>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if !matches!(c, '路' | '街' | '巷' | '弄' | '道' | '同') {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let digits_start = j;
        while j < chars.len() && (chars[j].1.is_ascii_digit() || matches!(chars[j].1, '-' | '－'))
        {
            j += 1;
        }
        if j == digits_start || j >= chars.len() || chars[j].1 != '号' {
            i += 1;
            continue;
        }
        j += 1;
        // Building, unit and room: digits followed by 栋/幢/楼/单元/室/层.
        loop {
            let mut k = j;
            while k < chars.len() && chars[k].1.is_ascii_digit() {
                k += 1;
            }
            if k > j
                && k < chars.len()
                && matches!(chars[k].1, '栋' | '幢' | '楼' | '单' | '室' | '层')
            {
                j = k + 1;
                if j < chars.len() && chars[j].1 == '元' {
                    j += 1;
                }
            } else {
                break;
            }
        }
        let mut s = i;
        while s > 0
            && i - s < 20
            && is_cjk(chars[s - 1].1)
            && !matches!(chars[s - 1].1, '在' | '是' | '住' | '到' | '寄' | '于')
        {
            s -= 1;
        }
        let end = chars.get(j).map_or(text.len(), |(b, _)| *b);
        spans.push(PiiSpan { kind: PiiKind::Address, start: chars[s].0, end });
        i = j;
    }
}

const NAME_CUES: &[&str] = &[
    "我叫",
    "我的名字是",
    "名字叫",
    "姓名:",
    "姓名：",
    "姓名是",
    "客户",
    "联系人:",
    "联系人：",
    "收款人",
    "持卡人",
    "户名:",
    "户名：",
    "借款人",
    "患者",
];

/// One automaton over every name cue: a single pass over the text instead of one search per cue.
fn name_cues() -> Option<&'static aho_corasick::AhoCorasick> {
    static CUES: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>> =
        std::sync::OnceLock::new();
    CUES.get_or_init(|| aho_corasick::AhoCorasick::new(NAME_CUES).ok()).as_ref()
}

fn names(text: &str, spans: &mut Vec<PiiSpan>) {
    let cue_ends = name_cues().map(|ac| ac.find_overlapping_iter(text).map(|m| m.end()));
    for start in cue_ends.into_iter().flatten() {
        let rest = text[start..].trim_start_matches([' ', '　']);
        let start = text.len() - rest.len();
        let name: Vec<char> = rest.chars().take_while(|c| is_cjk(*c)).take(4).collect();
        let Some(first) = name.first() else { continue };
        let compound = name.len() >= 3 && SURNAMES.contains(&name[..2].iter().collect::<String>());
        if !SURNAMES.contains(*first) && !compound {
            continue;
        }
        // Given names are one or two characters; stop at common words that follow a name.
        let mut len = name.len().min(3);
        while len > 2
            && matches!(
                name[len - 1],
                '的' | '在' | '是' | '说' | '要' | '想' | '有' | '和' | '先' | '女'
            )
        {
            len -= 1;
        }
        if len < 2 {
            continue;
        }
        let end = start + name[..len].iter().map(|c| c.len_utf8()).sum::<usize>();
        spans.push(PiiSpan { kind: PiiKind::Name, start, end });
    }
    for cue in ["my name is ", "My name is ", "name: ", "Name: "] {
        for (at, _) in text.match_indices(cue) {
            let start = at + cue.len();
            let mut end = start;
            let mut words = 0;
            for word in text[start..].split(' ') {
                let ok = word.len() >= 2
                    && word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && word.chars().skip(1).all(|c| c.is_ascii_lowercase());
                if !ok || words == 3 {
                    break;
                }
                end = if words == 0 { start + word.len() } else { end + 1 + word.len() };
                words += 1;
            }
            if words > 0 {
                spans.push(PiiSpan { kind: PiiKind::Name, start, end });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(PiiKind, &str)> {
        detect_pii(text).into_iter().map(|s| (s.kind, &text[s.start..s.end])).collect()
    }

    #[test]
    fn resident_id_check_digit_and_birth_date() {
        assert!(valid_resident_id("11010519491231002X"));
        assert!(valid_resident_id("11010519491231002x"));
        assert!(!valid_resident_id("110105194912310021")); // wrong check digit
        assert!(!valid_resident_id("110105194913310021")); // right check digit, but month 13
        assert!(!valid_resident_id("440524188001010014")); // right check digit, but born 1880
        assert!(!valid_resident_id("11010519491231002"));
        assert!(!valid_resident_id(""));
    }

    #[test]
    fn luhn_accepts_valid_and_rejects_one_digit_off() {
        assert!(valid_bank_card("6222021234567890120") == luhn_reference("6222021234567890120"));
        assert!(valid_bank_card("4111111111111111"));
        assert!(!valid_bank_card("4111111111111112"));
        assert!(valid_bank_card("6228480402564890018"));
        assert!(!valid_bank_card("6228480402564890019"));
        assert!(!valid_bank_card("12"));
    }

    fn luhn_reference(digits: &str) -> bool {
        let mut sum = 0;
        for (i, c) in digits.chars().rev().enumerate() {
            let mut d = c.to_digit(10).unwrap();
            if i % 2 == 1 {
                d *= 2;
                if d > 9 {
                    d -= 9;
                }
            }
            sum += d;
        }
        sum.is_multiple_of(10)
    }

    #[test]
    fn spans_in_context() {
        assert_eq!(
            kinds("身份证号11010519491231002X，谢谢"),
            [(PiiKind::ResidentId, "11010519491231002X")]
        );
        assert_eq!(
            kinds("卡号 6228 4804 0256 4890 018 请查"),
            [(PiiKind::BankCard, "6228 4804 0256 4890 018")]
        );
        assert_eq!(kinds("电话+8613812345678"), [(PiiKind::Mobile, "+8613812345678")]);
        assert_eq!(kinds("打138-1234-5678找我"), [(PiiKind::Mobile, "138-1234-5678")]);
        assert_eq!(
            kinds("邮箱 zhang.san@example.com."),
            [(PiiKind::Email, "zhang.san@example.com")]
        );
        assert_eq!(
            kinds("我住在北京市海淀区中关村大街27号3栋201室"),
            [(PiiKind::Address, "北京市海淀区中关村大街27号3栋201室")]
        );
        assert_eq!(kinds("我叫张伟，想开户"), [(PiiKind::Name, "张伟")]);
        assert_eq!(kinds("Hello, my name is John Smith and"), [(PiiKind::Name, "John Smith")]);
    }

    #[test]
    fn lookalikes_are_not_pii() {
        assert!(kinds("订单号110105194912310021").is_empty());
        assert!(kinds("2024年利率3.45%，期限12个月").is_empty());
        assert!(kinds("12345678901234567").is_empty());
        assert!(kinds("23812345678").is_empty());
        assert!(kinds("a@b").is_empty());
        assert!(kinds("").is_empty());
        assert!(kinds("我叫不出来").is_empty());
    }
}
