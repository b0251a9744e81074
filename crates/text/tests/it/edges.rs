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

/// Seeded fuzzing: random bytes and mutated encodings never panic and stay within the caps.
#[test]
fn decoders_and_detectors_survive_random_input() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = "ABCDabcd0123456789+/=%-. 洗钱\u{200B}\u{E0041}xX:\\\n身份证号1381234567811010519491231002X@";
    let pieces: Vec<char> = alphabet.chars().collect();
    for _ in 0..2_000 {
        let len = (next() % 200) as usize;
        let s: String = (0..len).map(|_| pieces[(next() % pieces.len() as u64) as usize]).collect();
        assert!(text::decode_candidates(&s, 4).len() <= text::decode::MAX_CANDIDATES);
        let _ = text::normalize(&s);
        for span in text::detect_pii(&s) {
            assert!(span.start < span.end && span.end <= s.len() && s.is_char_boundary(span.start));
        }
        let masked = text::mask(&s);
        assert_eq!(text::restore(&masked.text, &masked), s);
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = text::normalize_bytes(&bytes);
    }
}
