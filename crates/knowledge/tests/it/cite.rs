//! Grounded answers: every citation in a model's answer is checked against the passages it was given and
//! the stored sources; supported ones come back with a verbatim quote and its span, the rest are removed
//! from the text with a reason.

use knowledge::{
    AddOptions, KnowledgeBase, SearchRequest,
    cite::{GroundedAnswer, MIN_SUPPORT, ground, grounding_prompt, support},
    index::{ChunkRecord, ScoredChunk},
    parse::SourceDoc,
};

const A: &str = "中国人民银行今日开展7天期逆回购操作，中标利率1.8%。操作量为2000亿元。";
const B: &str =
    "上海证券交易所发布科创板新股上市公告。The exchange listed three new companies today.";

fn passages(kb: &KnowledgeBase) -> Vec<ScoredChunk> {
    let mut hits = Vec::new();
    for q in ["逆回购中标利率", "科创板新股上市"] {
        let request = SearchRequest { query: q.into(), k: 1, ..SearchRequest::default() };
        hits.extend(kb.search(&request).unwrap());
    }
    hits
}

fn kb_with_docs() -> (tempfile::TempDir, KnowledgeBase) {
    let dir = tempfile::tempdir().unwrap();
    let mut kb = KnowledgeBase::open(dir.path()).unwrap();
    let docs = [("a", "央行公告", A), ("b", "上交所公告", B)]
        .map(|(source, title, text)| SourceDoc {
            source: source.into(),
            title: title.into(),
            text: text.into(),
            ..SourceDoc::default()
        })
        .to_vec();
    kb.add_docs(docs, &AddOptions::default()).unwrap();
    (dir, kb)
}

fn summary(g: &GroundedAnswer) -> String {
    let mut out = format!("content: {}\n", g.content);
    for c in &g.citations {
        out.push_str(&format!(
            "ok [{}] {} {}..{} quote={:?}\n",
            c.marker, c.title, c.start, c.end, c.quote
        ));
    }
    for r in &g.rejected {
        out.push_str(&format!("rejected [{}] {:?}: {}\n", r.marker, r.claim, r.reason));
    }
    out
}

#[test]
fn supported_citations_pass_and_others_are_removed() {
    let (_dir, kb) = kb_with_docs();
    let passages = passages(&kb);
    assert_eq!(passages[0].chunk.title, "央行公告");
    let prompt = grounding_prompt(&passages);
    assert!(
        prompt.contains("[1] 央行公告\n中国人民银行") && prompt.contains("[2] 上交所公告"),
        "{prompt}"
    );
    let answer = "央行今日开展7天期逆回购操作，中标利率1.8%。[1] 上交所发布了科创板新股上市公告[2]。\
                  中标利率为2.5%[1]。操作量为2000亿元[3]。The exchange listed three companies [2].";
    let grounded = kb.ground(answer, &passages);
    let expect = "\
content: 央行今日开展7天期逆回购操作，中标利率1.8%。[1] 上交所发布了科创板新股上市公告[2]。中标利率为2.5%。操作量为2000亿元。The exchange listed three companies [2].
ok [1] 央行公告 0..28 quote=\"中国人民银行今日开展7天期逆回购操作，中标利率1.8%。\"
ok [2] 上交所公告 0..19 quote=\"上海证券交易所发布科创板新股上市公告。\"
ok [2] 上交所公告 19..65 quote=\"The exchange listed three new companies today.\"
rejected [1] \"中标利率为2.5%。\": the passage does not contain 2.5
rejected [3] \"操作量为2000亿元。\": there is no passage [3]
";
    assert_eq!(summary(&grounded), expect);
    // Every returned quote is, verbatim, the stored document text at its span.
    for c in &grounded.citations {
        let text = kb.text(&c.doc_id).unwrap().unwrap();
        let span: String =
            text.chars().skip(c.start as usize).take((c.end - c.start) as usize).collect();
        assert_eq!(span.trim(), c.quote);
    }
}

#[test]
fn stale_or_tampered_passages_are_rejected() {
    let (_dir, mut kb) = kb_with_docs();
    let mut passages = passages(&kb);
    let answer = "中标利率1.8%[1]。上交所发布科创板新股上市公告[2]。";
    // A passage whose body no longer matches the stored document.
    passages[1].chunk.body = "上海证券交易所暂停科创板新股上市。".into();
    // The first document gets a new version after retrieval.
    let update = SourceDoc {
        source: "a".into(),
        title: "央行公告".into(),
        text: "新内容。".into(),
        ..SourceDoc::default()
    };
    kb.add_docs(vec![update], &AddOptions::default()).unwrap();
    let grounded = kb.ground(answer, &passages);
    assert!(grounded.citations.is_empty(), "{}", summary(&grounded));
    let reasons: Vec<&str> = grounded.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "the passage's document is gone or has a newer version",
            "the passage does not match the stored document"
        ]
    );
    assert_eq!(grounded.content, "中标利率1.8%。上交所发布科创板新股上市公告。");
}

#[test]
fn weakly_supported_claims_are_rejected_and_multi_markers_rewritten() {
    let chunk = ChunkRecord {
        chunk_id: "d:0".into(),
        doc_id: "d".into(),
        version: 1,
        title: "t".into(),
        heading: String::new(),
        body: "银行间市场利率下行。".into(),
        start: 0,
        end: 10,
        published_at: None,
        tags: Vec::new(),
        tenant: "default".into(),
    };
    let other = ChunkRecord {
        chunk_id: "e:0".into(),
        doc_id: "e".into(),
        body: "保险资金投资股票比例上限提高。".into(),
        end: 15,
        ..chunk.clone()
    };
    let hits: Vec<ScoredChunk> =
        [chunk, other].into_iter().map(|chunk| ScoredChunk { score: 1.0, chunk }).collect();
    let lookup = |c: &ChunkRecord| Some(c.body.clone());
    let g = ground("银行间市场利率下行[1,2]。", &hits, &lookup, MIN_SUPPORT);
    assert_eq!(g.content, "银行间市场利率下行[1]。");
    assert_eq!((g.citations.len(), g.rejected.len()), (1, 1));
    assert!(g.rejected[0].reason.contains("supports 0% of the claim"), "{}", summary(&g));
    // Support is the share of the claim's terms in the passage; numbers must all be there.
    assert_eq!(support("利率下行", "银行间市场利率下行。"), (1.0, vec![]));
    assert_eq!(support("利率下行0.25%", "利率下行。").1, vec!["0.25".to_owned()]);
    // An answer without markers passes through untouched.
    let plain = ground("没有引用。", &hits, &lookup, MIN_SUPPORT);
    assert_eq!(
        (plain.content.as_str(), plain.citations.len(), plain.rejected.len()),
        ("没有引用。", 0, 0)
    );
}

/// Small-to-big: with `parents`, a search matches the small chunks and returns their parent span
/// (verbatim from the stored text, several children merged into one result), and a citation of a
/// sentence that only the parent holds checks out, on the embedded base and through the trait alike.
#[test]
fn parent_chunks_are_returned_and_cited() {
    use knowledge::{KnowledgeStore, SearchOptions, chunk::ChunkConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut kb = KnowledgeBase::open(dir.path()).unwrap();
    kb.chunking = ChunkConfig { max_chars: 30, overlap_chars: 0, headings: true, parent_chars: 90 };
    let text = "中国人民银行今日开展7天期逆回购操作。中标利率为1.8%，与上次持平。\
                操作量为2000亿元，当日有1000亿元逆回购到期。\
                上海证券交易所发布科创板新股上市公告。三家公司今日挂牌交易。";
    let doc = SourceDoc {
        source: "pboc".into(),
        title: "公告".into(),
        text: text.into(),
        ..SourceDoc::default()
    };
    kb.add_docs(vec![doc], &AddOptions::default()).unwrap();
    let search = |parents: bool| {
        let options = SearchOptions { parents, ..SearchOptions::default() };
        let request = SearchRequest {
            query: "逆回购 中标利率".into(),
            k: 3,
            options,
            ..SearchRequest::default()
        };
        kb.search(&request).unwrap()
    };
    let children = search(false);
    let parents = search(true);
    let child = &children[0].chunk;
    let parent = &parents[0].chunk;
    assert!(child.body.chars().count() <= 30, "{child:?}");
    assert!(
        parent.body.contains(&child.body) && parent.body.len() > child.body.len(),
        "{parent:?}"
    );
    assert!(parent.chunk_id.ends_with(":p0"), "{parent:?}");
    let ids: Vec<&str> = parents.iter().map(|h| h.chunk.chunk_id.as_str()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "children of one parent become one result");
    assert!(
        KnowledgeStore::verify(&kb, parent).unwrap(),
        "the parent is the stored text at its span"
    );
    // A sentence from the parent that the best child does not hold is a supported citation.
    let answer = "当日有1000亿元逆回购到期[1]。";
    assert!(!child.body.contains("1000亿元"));
    let grounded = kb.ground(answer, &parents);
    assert_eq!(grounded.citations.len(), 1, "{}", summary(&grounded));
    let c = &grounded.citations[0];
    assert!(
        c.quote.contains("1000亿元") && parent.start <= c.start && c.end <= parent.end,
        "{c:?}"
    );
}
