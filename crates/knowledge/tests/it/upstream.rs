//! An upstream `/v1/embeddings` endpoint as the encoder, against a scripted OpenAI-compatible server:
//! vectors come back normalised and in input order (the server answers out of order), the endpoint is
//! recorded so a reopened knowledge base reconnects, and a failing endpoint is an error that says so.

use knowledge::{
    AddOptions, Embedder, KnowledgeBase, SearchOptions, SearchRequest, parse::SourceDoc,
    upstream::UpstreamEmbedder,
};
use serde_json::{Value, json};

use crate::mock::Mock;

/// A character-histogram "model" in 16 dimensions (not unit length: the client normalises), its items
/// listed in reverse with their `index`.
fn embeddings(body: &Value) -> (u16, String) {
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(index, text)| {
            let mut v = [0f32; 16];
            for c in text.as_str().unwrap_or_default().chars() {
                v[c as usize % 16] += 3.0;
            }
            json!({"object": "embedding", "index": index, "embedding": v.to_vec()})
        })
        .collect();
    (200, json!({"object": "list", "model": body["model"], "data": data}).to_string())
}

fn doc(source: &str, text: &str) -> SourceDoc {
    SourceDoc { source: source.into(), text: text.into(), ..SourceDoc::default() }
}

const A: &str = "中国人民银行今日开展7天期逆回购操作，中标利率1.8%。";
const B: &str = "上海证券交易所发布科创板新股上市公告。";

#[test]
fn upstream_embeddings_are_normalised_ordered_and_recorded() {
    let server =
        Mock::start(
            |path, body| {
                if path == "/v1/embeddings" { embeddings(body) } else { (404, "{}".into()) }
            },
        );
    let base = format!("{}/v1", server.url);
    let embedder = UpstreamEmbedder::connect(&base, "hist-16", None).unwrap();
    assert_eq!((embedder.dim(), embedder.name()), (16, "hist-16"));
    let vectors = embedder.embed(&[A, B]).unwrap();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(vectors.iter().all(|v| (norm(v) - 1.0).abs() < 1e-5));
    assert_eq!(vectors[0], embedder.embed(&[A]).unwrap()[0], "reversed items land in input order");

    let dir = tempfile::tempdir().unwrap();
    let mut kb = KnowledgeBase::open(dir.path()).unwrap();
    kb.attach_upstream_embedder(&base, "hist-16", None).unwrap();
    kb.add_docs(vec![doc("a", A), doc("b", B)], &AddOptions::default()).unwrap();
    let stats = kb.stats().unwrap();
    assert_eq!(stats.vectors, 2);
    let model = stats.vector_model.unwrap();
    assert_eq!((model.name.as_str(), model.path.as_deref()), ("hist-16", Some(base.as_str())));
    drop(kb);

    // A reopened base reconnects to the recorded endpoint: a vector-only search finds B by its text.
    let mut kb = KnowledgeBase::open(dir.path()).unwrap();
    assert!(kb.load_recorded_embedder().unwrap());
    let options =
        SearchOptions { jieba_weight: 0.0, bigram_weight: 0.0, ..SearchOptions::default() };
    let request = SearchRequest { query: B.into(), k: 1, options, ..SearchRequest::default() };
    assert_eq!(kb.search(&request).unwrap()[0].chunk.body, B);
}

#[test]
fn a_failing_endpoint_is_an_error_naming_it() {
    let server = Mock::start(|_, _| (500, r#"{"error": "model not loaded"}"#.into()));
    let err = UpstreamEmbedder::connect(&format!("{}/v1", server.url), "m", None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("/v1/embeddings") && text.contains("HTTP 500"), "{text}");
    let err = UpstreamEmbedder::connect("ftp://host", "m", None).unwrap_err();
    assert!(err.to_string().contains("http://"), "{err}");
}
