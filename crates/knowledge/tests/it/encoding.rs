//! The encoding detector on the encodings Chinese corpora arrive in, golden over a table of cases.

use knowledge::encoding::decode;

use crate::golden;

fn utf16le(s: &str, bom: bool) -> Vec<u8> {
    let mut out = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
    out.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

fn utf16be(s: &str) -> Vec<u8> {
    let mut out = vec![0xFE, 0xFF];
    out.extend(s.encode_utf16().flat_map(u16::to_be_bytes));
    out
}

#[test]
fn encodings_golden() {
    let text = "央行逆回购 rate 1.8%";
    let (gbk, _, _) = encoding_rs::GB18030.encode(text);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("utf8", text.as_bytes().to_vec()),
        ("utf8 bom", [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat()),
        ("utf16le bom", utf16le(text, true)),
        ("utf16be bom", utf16be(text)),
        ("utf16le no bom, ascii", utf16le("plain ascii text here", false)),
        ("gb18030", gbk.to_vec()),
        ("binary", vec![0x00, 0x01, 0x02, 0xFF, 0x00, 0x9C, 0x80]),
        ("truncated gbk", vec![0xD1, 0xEB, 0xD0]),
        ("empty", Vec::new()),
    ];
    let mut out = String::new();
    for (name, bytes) in cases {
        let line = match decode(&bytes) {
            Ok((s, enc)) => format!("{name}: {} {s:?}\n", enc.label()),
            Err(reason) => format!("{name}: error {reason}\n"),
        };
        out.push_str(&line);
    }
    golden("encoding.txt", &out);
}
