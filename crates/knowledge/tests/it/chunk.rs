//! The chunker, golden-tested on Chinese and English text: sentence ends, the character budget,
//! overlap, headings carried into chunks, parent spans, and spans that point back into the source.

use knowledge::chunk::{ChunkConfig, Chunked, chunk_text};

use crate::golden;

const ZH: &str = "# 货币政策\n## 公开市场操作\n中国人民银行今日开展7天期逆回购操作。中标利率为1.8%，与上期持平！市场人士认为流动性保持合理充裕；短期利率有望平稳运行？\n## 存款准备金\n央行宣布下调金融机构存款准备金率0.5个百分点。此次降准释放长期资金约1万亿元。\n";
const EN: &str = "# Rates\nThe central bank held its policy rate at 5.25%. Markets expected no change! Analysts said cuts may come later; inflation remains sticky. Is the curve still inverted? Yes.\nA second paragraph follows here with more words.\n";

fn render(text: &str, chunked: &Chunked) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    for c in &chunked.chunks {
        let span: String = chars[c.start..c.end].iter().collect();
        assert_eq!(span, c.body, "span must point at the body");
        out.push_str(&format!(
            "[{}] {}..{} parent={:?} heading={:?}\n{}\n",
            c.ord, c.start, c.end, c.parent, c.heading, c.body
        ));
    }
    for (i, p) in chunked.parents.iter().enumerate() {
        out.push_str(&format!("parent {i}: {}..{}\n", p.start, p.end));
    }
    out
}

#[test]
fn chinese_chunks_golden() {
    let config = ChunkConfig { max_chars: 40, overlap_chars: 0, headings: true, parent_chars: 80 };
    let chunked = chunk_text(ZH, &config);
    assert!(chunked.chunks.iter().all(|c| c.body.chars().count() <= 40));
    golden("chunk_zh.txt", &render(ZH, &chunked));
}

#[test]
fn chinese_chunks_with_overlap_golden() {
    let config = ChunkConfig { max_chars: 40, overlap_chars: 20, headings: true, parent_chars: 0 };
    golden("chunk_zh_overlap.txt", &render(ZH, &chunk_text(ZH, &config)));
}

#[test]
fn english_chunks_golden() {
    let config = ChunkConfig { max_chars: 60, overlap_chars: 0, headings: true, parent_chars: 0 };
    let chunked = chunk_text(EN, &config);
    // "5.25%" must not be cut at its decimal point.
    assert!(chunked.chunks.iter().any(|c| c.body.contains("5.25%")));
    golden("chunk_en.txt", &render(EN, &chunked));
}

#[test]
fn long_sentences_are_cut_within_budget() {
    let text = "这是一个没有句号的很长的句子，".repeat(20);
    let chunked = chunk_text(
        &text,
        &ChunkConfig { max_chars: 50, overlap_chars: 0, headings: false, parent_chars: 0 },
    );
    assert!(chunked.chunks.len() > 1);
    assert!(chunked.chunks.iter().all(|c| c.body.chars().count() <= 50));
    // Cuts land after a comma when one is near the budget.
    assert!(chunked.chunks[0].body.ends_with('，'), "{:?}", chunked.chunks[0].body);
}

#[test]
fn empty_and_whitespace_text_make_no_chunks() {
    for text in ["", "   \n\n ", "# 只有标题\n"] {
        assert!(chunk_text(text, &ChunkConfig::default()).chunks.is_empty(), "{text:?}");
    }
}

#[test]
fn indexed_text_carries_the_heading_path() {
    let chunked = chunk_text(ZH, &ChunkConfig::default());
    assert_eq!(chunked.chunks[0].heading, "货币政策 > 公开市场操作");
    assert!(chunked.chunks[0].indexed_text().starts_with("货币政策 > 公开市场操作\n"));
    assert_eq!(chunked.chunks.last().unwrap().heading, "货币政策 > 存款准备金");
}
