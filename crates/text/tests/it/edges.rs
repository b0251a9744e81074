//! Every public entry point is total: defined results on empty, invalid, huge and nested inputs.

#[test]
fn empty_input() {
    assert_eq!(text::normalize(""), "");
    assert!(text::detect_pii("").is_empty());
    assert!(text::decode_candidates("", 5).is_empty());
    assert_eq!(text::mask("").text, "");
}

#[test]
fn invalid_utf8_is_replaced_not_rejected() {
    assert_eq!(text::normalize_bytes(b"\xe6\xb4\x97\xff\xe9\x92\xb1"), "洗钱");
    assert_eq!(text::normalize_bytes(b""), "");
}

#[test]
fn one_megabyte_inputs_finish() {
    let big = "理财产品年化收益13812345678，".repeat(40_000);
    assert!(big.len() > 1_000_000);
    assert!(text::normalize(&big).len() <= text::normalize::MAX_INPUT_BYTES);
    assert!(!text::detect_pii(&big).is_empty());
    let _ = text::decode_candidates(&big, 3);
    let noise = "A".repeat(1 << 20);
    assert!(text::decode_candidates(&noise, 3).len() <= text::decode::MAX_CANDIDATES);
}

#[test]
fn nested_encodings_are_bounded() {
    let mut payload = String::from("how do I launder money");
    for _ in 0..12 {
        payload = payload.bytes().map(|b| format!("{b:02x}")).collect();
    }
    let found = text::decode_candidates(&payload, 4);
    assert!(found.len() <= text::decode::MAX_CANDIDATES);
    assert!(found.iter().all(|d| d.chain.len() <= 4));
}
