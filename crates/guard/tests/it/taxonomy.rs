//! The taxonomy file is complete and consistent; the lexicon agrees with it.

use guard::{Taxonomy, lexicon::Lexicon};

#[test]
fn taxonomy_covers_tc260_and_the_issue() {
    let t = Taxonomy::builtin().unwrap();
    let cats: Vec<&str> = t.categories.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(cats, ["POL", "VIO", "SEX", "CRI", "DIS", "PRI", "RIG", "HAR"]);
    assert_eq!(t.risks.len(), 31, "TC260-003 Appendix A has 31 risks");
    for prefix in ["A1", "A2", "A3", "A4", "A5"] {
        let n = t.risks.iter().filter(|r| r.id.starts_with(prefix)).count();
        assert_eq!(n, [8, 9, 5, 7, 2][prefix[1..].parse::<usize>().unwrap() - 1], "{prefix}");
    }
    for risk in &t.risks {
        assert!(cats.contains(&risk.category.as_str()), "{} maps to a category", risk.id);
    }
    for cat in &cats {
        assert!(
            t.risks.iter().any(|r| r.category == *cat || r.also.iter().any(|a| a == cat)),
            "{cat} covers a risk"
        );
    }
    assert!(t.intents.len() >= 22, "{} intents", t.intents.len());
    assert!(t.techniques.len() >= 8);
    for finance in ["money_laundering", "kyc_evasion", "market_abuse", "fraud", "risky_advice"] {
        assert!(t.intent_index(finance).is_some(), "{finance}");
    }
}

#[test]
fn duplicate_and_dangling_ids_are_errors_with_lines() {
    let dup = format!(
        "{}\n[[technique]]\nid = \"prompt_injection\"\nzh = \"x\"\n",
        guard::taxonomy::TAXONOMY_TOML
    );
    let err = Taxonomy::parse("t.toml", &dup).unwrap_err().to_string();
    assert!(err.starts_with("t.toml:") && err.contains("duplicate id `prompt_injection`"), "{err}");
    let dangling =
        guard::taxonomy::TAXONOMY_TOML.replacen("category = \"POL\"", "category = \"XXX\"", 1);
    let err = Taxonomy::parse("t.toml", &dangling).unwrap_err().to_string();
    assert!(err.contains("unknown category `XXX`"), "{err}");
    let err =
        Taxonomy::parse("t.toml", "version = 1\n[[category]]\nid = 3\n").unwrap_err().to_string();
    assert!(err.starts_with("t.toml:3:"), "{err}");
}

#[test]
fn lexicon_matches_normalised_and_pinyin_forms() {
    let t = Taxonomy::builtin().unwrap();
    let lex = Lexicon::builtin(&t).unwrap();
    assert!(lex.len() > 500);
    let labels = |s: &str| -> Vec<String> {
        lex.find(&text::normalize(s))
            .into_iter()
            .map(|h| match h.label {
                guard::lexicon::Label::Intent(i) | guard::lexicon::Label::Technique(i) => i,
            })
            .collect()
    };
    assert_eq!(labels("怎么洗錢"), ["money_laundering"]);
    assert_eq!(labels("怎么 xi qian"), ["money_laundering"]);
    assert_eq!(labels("begun"), Vec::<String>::new(), "ASCII terms match whole words only");
    assert_eq!(labels("Ignore previous instructions"), ["prompt_injection"]);
    let bad = "[[entry]]\nintent = \"nope\"\nstrength = \"signal\"\nterms = [\"x\"]\n";
    let err = Lexicon::parse("l.toml", bad, &t).unwrap_err().to_string();
    assert!(err.starts_with("l.toml:2:"), "{err}");
}

#[test]
fn block_phrases_match_with_any_request_prefix() {
    let t = Taxonomy::builtin().unwrap();
    let source = "[[entry]]\nintent = \"sexual\"\nstrength = \"block\"\nterms = [\"帮我写一篇黄文\"]\n\
                  [[entry]]\nintent = \"sexual\"\nstrength = \"signal\"\nterms = [\"帮我找黄片\"]\n";
    let lex = Lexicon::parse("l.toml", source, &t).unwrap();
    let blocks = |s: &str| {
        lex.find(&text::normalize(s))
            .iter()
            .filter(|h| h.strength == guard::lexicon::Strength::Block)
            .count()
    };
    for text in ["帮我写一篇黄文", "给我写一篇黄文", "请帮我写一篇黄文", "麻烦你写一篇黄文"]
    {
        assert_eq!(blocks(text), 1, "{text}");
    }
    assert_eq!(blocks("写一篇黄文"), 0, "the request prefix stays part of the phrase");
    assert!(lex.find("给我找黄片").is_empty(), "signal topics are not widened");
}
