//! Each cleaning step on its own, golden-tested, plus the whole pipeline's report and the near-duplicate
//! detector on re-posted wire stories.

use knowledge::{
    clean::{
        CleanConfig, char_repetition, clean_corpus, fix_unicode, language, near_duplicate_keep,
        normalize_punctuation, normalize_whitespace, report_html, special_ratio, strip_html,
        word_repetition,
    },
    parse::SourceDoc,
};

use crate::golden;

#[test]
fn mapper_steps_golden() {
    type Step = fn(&str) -> String;
    let cases: &[(&str, Step, &str)] = &[
        ("fix_unicode", fix_unicode, "央\u{200B}行　２０２４年\u{FFFD}利率ﬁ"),
        (
            "strip_html",
            strip_html,
            "<html><head><title>T</title><script>x()</script></head><body><nav>菜单</nav><h2>公告</h2><p>利率&amp;汇率&#x4E0A;调</p><footer>版权</footer></body></html>",
        ),
        ("strip_html_plain", strip_html, "a < b and c > d"),
        (
            "punctuation",
            normalize_punctuation,
            "央行表示,利率不变;市场:平稳!是否降息?(待定) English, stays.",
        ),
        (
            "whitespace",
            normalize_whitespace,
            "  央行  今日 \t开展 操作。 \n\n\n\nThe   bank  said.  \n",
        ),
        (
            "simplify",
            |t| {
                knowledge::clean::clean_text(
                    t,
                    &CleanConfig { to_simplified: true, ..CleanConfig::mappers_only() },
                )
            },
            "中國人民銀行開展逆回購",
        ),
        (
            "pii",
            |t| {
                knowledge::clean::clean_text(
                    t,
                    &CleanConfig { scrub_pii: true, ..CleanConfig::mappers_only() },
                )
            },
            "联系电话13812345678，邮箱a.b@example.com",
        ),
    ];
    let mut out = String::new();
    for (name, step, input) in cases {
        out.push_str(&format!("{name}: {input:?}\n  => {:?}\n", step(input)));
    }
    golden("clean_mappers.txt", &out);
}

#[test]
fn filter_measures_golden() {
    let cases = [
        "中国人民银行今日开展逆回购操作，中标利率持平。",
        "The central bank kept rates unchanged on Tuesday.",
        "哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈",
        "买入 买入 买入 买入 买入 买入 买入 买入 买入 买入 买入 买入",
        "★★★☆☆ ###### @@@@ 利率",
        "Здравствуйте, мир",
    ];
    let mut out = String::new();
    for text in cases {
        out.push_str(&format!(
            "{text:?}: lang={} char_rep={:.3} word_rep={:.3} special={:.3}\n",
            language(text),
            char_repetition(text),
            word_repetition(text),
            special_ratio(text)
        ));
    }
    golden("clean_filters.txt", &out);
}

fn doc(source: &str, text: &str) -> SourceDoc {
    SourceDoc { source: source.into(), text: text.into(), ..SourceDoc::default() }
}

#[test]
fn near_duplicates_of_wire_stories_are_removed() {
    let story = "新华社北京3月5日电 中国人民银行5日开展1000亿元7天期逆回购操作，中标利率为1.8%，与此前持平。当日有500亿元逆回购到期，实现净投放500亿元。";
    let repost = format!("{story}（责任编辑：张三）");
    let other = "上海证券交易所今日发布公告，科创板新增三家上市公司，首日平均涨幅超过百分之五十，成交额合计八十亿元。";
    let keep = near_duplicate_keep(&[story, &repost, other, story], 0.8);
    assert_eq!(keep, vec![true, false, true, false]);
}

#[test]
fn pipeline_report_counts_every_step() {
    let docs = vec![
        doc("a", "中国人民银行今日开展逆回购操作，中标利率持平。联系电话13812345678。"),
        doc("b", "中国人民银行今日开展逆回购操作，中标利率持平。联系电话13812345678。"),
        doc("c", "短"),
        doc("d", "哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈"),
        doc("e", "<p>The central bank kept its policy rate unchanged on Tuesday.</p>"),
    ];
    let (kept, report) = clean_corpus(docs, &CleanConfig::default());
    let sources: Vec<&str> = kept.iter().map(|d| d.source.as_str()).collect();
    assert_eq!(sources, ["a", "e"]);
    assert!(kept[0].text.contains("[PHONE]"), "{}", kept[0].text);
    assert_eq!(kept[1].text, "The central bank kept its policy rate unchanged on Tuesday.");
    let json = serde_json::to_string_pretty(&report).unwrap();
    golden("clean_report.json", &(json + "\n"));
    let html = report_html(&report);
    assert!(html.contains("<svg") && html.contains("document_deduplicator"));
}
