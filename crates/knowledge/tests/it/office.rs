//! DOCX and PDF ingestion: a DOCX built here (deflated and stored members) gives its paragraphs, heading
//! styles as Markdown headings and its title; corrupt archives are skipped with a reason. PDFs go through
//! `pdftotext` when it is installed, and are skipped with an install hint when it is not.

use std::path::Path;

use knowledge::{
    office::{docx, docx_text, pdf, zip_member},
    parse::parse_file,
};

/// A ZIP archive of `(name, data, deflate?)` members (CRC left 0: readers here do not check it).
fn zip(members: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data, deflate) in members {
        let body =
            if *deflate { miniz_oxide::deflate::compress_to_vec(data, 6) } else { data.to_vec() };
        let offset = out.len() as u32;
        let method: u16 = if *deflate { 8 } else { 0 };
        let header = |sig: u32, central: bool| {
            let mut h = sig.to_le_bytes().to_vec();
            if central {
                h.extend(20u16.to_le_bytes());
            }
            h.extend(20u16.to_le_bytes());
            h.extend(0u16.to_le_bytes());
            h.extend(method.to_le_bytes());
            h.extend([0u8; 4]);
            h.extend(0u32.to_le_bytes());
            h.extend((body.len() as u32).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes());
            if central {
                h.extend([0u8; 10]);
                h.extend(offset.to_le_bytes());
            }
            h.extend(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend(&body);
        central.extend(header(0x0201_4b50, true));
    }
    let central_at = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(central_at.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

const DOCUMENT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:t>2024年第一季度货币政策执行报告</w:t></w:r></w:p>
<w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>一、公开市场操作</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">中国人民银行开展逆回购操作，</w:t></w:r><w:r><w:t>中标利率1.8%。</w:t></w:r></w:p>
<w:p/>
<w:p><w:r><w:t>R&amp;D</w:t><w:tab/><w:t>&lt;spending&gt;</w:t><w:br/><w:t>next line</w:t></w:r></w:p>
</w:body></w:document>"#;

#[test]
fn docx_paragraphs_headings_and_title() {
    let expect = "# 2024年第一季度货币政策执行报告\n## 一、公开市场操作\n中国人民银行开展逆回购操作，中标利率1.8%。\nR&D\t<spending>\nnext line\n";
    let (title, text) = docx_text(DOCUMENT);
    assert_eq!(text, expect);
    assert_eq!(title.as_deref(), Some("2024年第一季度货币政策执行报告"));
    for deflate in [true, false] {
        let file = zip(&[
            ("[Content_Types].xml", b"<Types/>", false),
            ("word/document.xml", DOCUMENT.as_bytes(), deflate),
        ]);
        assert_eq!(zip_member(&file, "[Content_Types].xml").unwrap(), b"<Types/>");
        let (docs, _) = parse_file(Path::new("report.docx"), &file).unwrap();
        assert_eq!(docs[0].text, expect);
        assert_eq!(docs[0].title, "2024年第一季度货币政策执行报告");
    }
}

#[test]
fn corrupt_docx_is_a_reason_not_a_panic() {
    let good = zip(&[("word/document.xml", DOCUMENT.as_bytes(), true)]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"PK\x03\x04 nothing else".to_vec(), "no end-of-central-directory"),
        (zip(&[("other.xml", b"<x/>", false)]), "no word/document.xml"),
        (good[..good.len() / 2].to_vec(), "not a valid DOCX"),
        (zip(&[("word/document.xml", b"<w:document/>", false)]), "holds no text"),
    ];
    for (bytes, reason) in cases {
        let err = docx(&bytes).unwrap_err();
        assert!(err.contains(reason), "{reason}: {err}");
    }
    // Every truncation of a valid file fails cleanly or parses; none panics.
    for cut in (0..good.len()).step_by(7) {
        let _ = docx(&good[..cut]);
    }
}

/// A one-page PDF with a Helvetica text line (offsets in the xref are not checked by pdftotext).
fn tiny_pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    format!(
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
         2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
         3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >> endobj\n\
         4 0 obj << /Length {} >> stream\n{stream}\nendstream endobj\n\
         5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n\
         trailer << /Root 1 0 R >>\n%%EOF\n",
        stream.len()
    )
    .into_bytes()
}

#[test]
fn pdf_text_via_pdftotext_or_a_clear_reason() {
    let installed = std::process::Command::new("pdftotext").arg("-v").output().is_ok();
    let file = tiny_pdf("Net interest margin rose to 1.8 percent.");
    match parse_file(Path::new("q1.pdf"), &file) {
        Ok((docs, _)) => {
            assert!(installed);
            assert_eq!(docs[0].text.trim(), "Net interest margin rose to 1.8 percent.");
            assert_eq!(docs[0].title, "Net interest margin rose to 1.8 percent.");
        }
        Err(reason) => {
            assert!(!installed, "pdftotext is installed but failed: {reason}");
            assert!(reason.contains("poppler-utils"), "{reason}");
            println!("skipped PDF extraction: {reason}");
        }
    }
    assert!(pdf(b"not a pdf").unwrap_err().contains("no %PDF header"));
    if installed {
        let err = pdf(b"%PDF-1.4 garbage").unwrap_err();
        assert!(err.contains("could not read") || err.contains("no extractable text"), "{err}");
    }
}
