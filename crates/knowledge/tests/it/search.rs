//! Search on a real on-disk index: filters by tenant, tag and time; the fusion weights change the
//! ranking of actual results; the freshness boost lifts recent documents.

use knowledge::{
    AddOptions, KnowledgeBase, SearchRequest,
    index::Filters,
    parse::{SourceDoc, parse_date},
    search::{Freshness, SearchOptions},
};

fn kb_with(docs: Vec<SourceDoc>) -> (tempfile::TempDir, KnowledgeBase) {
    let dir = tempfile::tempdir().unwrap();
    let mut kb = KnowledgeBase::open(dir.path()).unwrap();
    kb.add_docs(docs, &AddOptions::default()).unwrap();
    (dir, kb)
}

fn doc(source: &str, text: &str, date: &str, tags: &[&str], tenant: &str) -> SourceDoc {
    SourceDoc {
        source: source.into(),
        title: source.into(),
        text: text.into(),
        published_at: parse_date(date),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        tenant: Some(tenant.into()),
    }
}

fn sources(
    kb: &KnowledgeBase,
    query: &str,
    filters: Filters,
    options: SearchOptions,
) -> Vec<String> {
    let request = SearchRequest { query: query.into(), k: 10, filters, options };
    kb.search(&request).unwrap().into_iter().map(|h| h.chunk.title).collect()
}

fn corpus() -> Vec<SourceDoc> {
    vec![
        doc(
            "old-policy",
            "央行宣布下调存款准备金率，释放流动性。",
            "2020-01-06",
            &["policy"],
            "bank-a",
        ),
        doc(
            "new-policy",
            "央行宣布下调存款准备金率，支持实体经济。",
            "2024-02-05",
            &["policy"],
            "bank-a",
        ),
        doc(
            "market",
            "存款利率下调后，银行理财产品收益率走低。",
            "2024-03-01",
            &["market"],
            "bank-b",
        ),
    ]
}

#[test]
fn filters_restrict_results() {
    let (_dir, kb) = kb_with(corpus());
    let all = sources(&kb, "下调存款准备金率", Filters::default(), SearchOptions::default());
    assert_eq!(all.len(), 3);
    let tenant = Filters { tenant: Some("bank-b".into()), ..Filters::default() };
    assert_eq!(sources(&kb, "下调存款准备金率", tenant, SearchOptions::default()), ["market"]);
    let tag = Filters { tags: vec!["policy".into()], ..Filters::default() };
    let mut tagged = sources(&kb, "下调存款准备金率", tag, SearchOptions::default());
    tagged.sort();
    assert_eq!(tagged, ["new-policy", "old-policy"]);
    let since = Filters { since: parse_date("2024-01-01"), ..Filters::default() };
    let mut recent = sources(&kb, "下调存款准备金率", since, SearchOptions::default());
    recent.sort();
    assert_eq!(recent, ["market", "new-policy"]);
    let window = Filters {
        since: parse_date("2019-01-01"),
        until: parse_date("2024-02-05"),
        ..Filters::default()
    };
    assert_eq!(sources(&kb, "下调存款准备金率", window, SearchOptions::default()), ["old-policy"]);
    let nobody = Filters { tenant: Some("bank-z".into()), ..Filters::default() };
    assert!(sources(&kb, "下调存款准备金率", nobody, SearchOptions::default()).is_empty());
}

#[test]
fn fusion_weights_change_real_rankings() {
    // "银行间" is one jieba word but its bigrams 银行/行间 also hit "银行" text: the two fields disagree.
    let docs = vec![
        doc("word-match", "银行间市场利率回落。", "2024-01-01", &[], "t"),
        doc("bigram-match", "商业银行间接融资占比，行间数据。银行银行。", "2024-01-01", &[], "t"),
    ];
    let (_dir, kb) = kb_with(docs);
    let jieba_only = SearchOptions { bigram_weight: 0.0, ..SearchOptions::default() };
    let bigram_only = SearchOptions { jieba_weight: 0.0, ..SearchOptions::default() };
    let a = sources(&kb, "银行间", Filters::default(), jieba_only);
    let b = sources(&kb, "银行间", Filters::default(), bigram_only);
    assert_ne!(
        a.first(),
        b.first(),
        "jieba-only {a:?} vs bigram-only {b:?}: the weights must matter"
    );
    let heavy_jieba =
        SearchOptions { jieba_weight: 3.0, bigram_weight: 1.0, ..SearchOptions::default() };
    let heavy_bigram =
        SearchOptions { jieba_weight: 1.0, bigram_weight: 3.0, ..SearchOptions::default() };
    assert_eq!(sources(&kb, "银行间", Filters::default(), heavy_jieba).first(), a.first());
    assert_eq!(sources(&kb, "银行间", Filters::default(), heavy_bigram).first(), b.first());
}

#[test]
fn freshness_boost_lifts_recent_documents() {
    let (_dir, kb) = kb_with(corpus());
    let policy = Filters { tags: vec!["policy".into()], ..Filters::default() };
    let now = parse_date("2024-02-10").unwrap();
    let plain = sources(
        &kb,
        "央行宣布下调存款准备金率释放流动性",
        policy.clone(),
        SearchOptions::default(),
    );
    assert_eq!(plain[0], "old-policy", "without a boost the better lexical match wins");
    let fresh = SearchOptions {
        freshness: Some(Freshness { weight: 1.0, half_life_days: 30.0, now }),
        ..SearchOptions::default()
    };
    assert_eq!(sources(&kb, "央行宣布下调存款准备金率释放流动性", policy, fresh)[0], "new-policy");
}

/// Terms in more than `common_term_share` of the chunks (and over 1,000 of them) are left out of the
/// lexical query; rarer terms still rank, a query of only common terms still answers, and share 1 keeps
/// every term (so the option is really applied).
#[test]
fn common_terms_are_pruned_from_lexical_queries() {
    use knowledge::{eval, index::LexicalField};
    let dir = tempfile::tempdir().unwrap();
    let mut set = eval::EvalSet::default();
    for n in 0..3_000u64 {
        // "市场" is in every chunk; "逆回购" only in chunk 7; "央行" in every chunk divisible by 3.
        let body = match n {
            7 => "市场 逆回购 操作".to_owned(),
            n if n % 3 == 0 => format!("市场 央行 公告 {n}"),
            n => format!("市场 行情 {n}"),
        };
        set.chunks.push((format!("c:{n}"), body));
    }
    let (index, _, _) = eval::build_index(&set, dir.path(), 2).unwrap();
    let searcher = index.searcher();
    assert_eq!(searcher.segments(), 1);
    let open = Filters::default();
    let ids = |query: &str, share: f32| -> Vec<String> {
        searcher
            .lexical_pruned(LexicalField::Jieba, query, &open, 5, share)
            .unwrap()
            .into_iter()
            .map(|(a, _)| searcher.chunk(a).unwrap().chunk_id)
            .collect()
    };
    // "市场" (every chunk) is dropped at 0.2: only the chunk with "逆回购" matches. At 1 it is kept and
    // fills the list with chunks that match it alone.
    assert_eq!(ids("市场 逆回购", 0.2), ["c:7"]);
    let all_terms = ids("市场 逆回购", 1.0);
    assert_eq!((all_terms.len(), all_terms[0].as_str()), (5, "c:7"));
    // Only common terms: nothing would be left, so they are kept.
    assert_eq!(ids("市场", 0.2).len(), 5);
    // "央行" is in 1,000 chunks, the floor below which no term is dropped: kept even at 0.2.
    let central_bank = ids("市场 央行", 0.2);
    assert_eq!(central_bank.len(), 5);
    assert!(
        central_bank.iter().all(|id| id[2..].parse::<u64>().unwrap() % 3 == 0),
        "{central_bank:?}"
    );
}
