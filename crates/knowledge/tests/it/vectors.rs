//! Vectors: the in-process BERT encoder (on a tiny seeded random-weight model written by the test, so no
//! download is needed), the flat vector index (filters, deletes, persistence, model switches), and the
//! knowledge base with vectors in the fusion: ingest, update and delete keep the vectors in step with the
//! chunks, and the vector list's weight really changes results. With `FINLLM_TEST_EMBED_MODEL` pointing at
//! all-MiniLM-L6-v2 (see scripts/embedding-model/pull-minilm.sh), a semantic check runs on real weights.

use std::path::Path;

use knowledge::{
    AddOptions, BertEmbedder, Embedder, KnowledgeBase, SearchOptions, SearchRequest,
    embed::{dot, write_random_bert},
    index::Filters,
    parse::SourceDoc,
    vectors::{VectorIndex, VectorMeta, VectorModel},
};

fn fixture(dir: &Path) -> BertEmbedder {
    write_random_bert(dir, 11).unwrap();
    BertEmbedder::load(dir).unwrap()
}

fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

#[test]
fn encoder_vectors_are_unit_deterministic_and_padding_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let embedder = fixture(dir.path());
    assert_eq!(embedder.dim(), 32);
    let texts = [
        "中国人民银行开展逆回购操作",
        "short",
        "上海证券交易所发布科创板新股上市公告，共三家公司。",
    ];
    let batch = embedder.embed(&texts).unwrap();
    assert_eq!(batch.len(), 3);
    for (text, vector) in texts.iter().zip(&batch) {
        assert!((norm(vector) - 1.0).abs() < 1e-4, "{text}: norm {}", norm(vector));
        // Alone (no padding) and in a padded batch, a text gets the same vector: the mask works.
        let alone = embedder.embed(&[text]).unwrap().remove(0);
        let max_diff = alone.iter().zip(vector).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(max_diff < 1e-4, "{text}: padded and unpadded differ by {max_diff}");
    }
    assert!(dot(&batch[0], &batch[2]) < 0.9999, "different texts, different vectors");
    assert_eq!(embedder.embed(&texts).unwrap(), batch, "same input, same output");
}

#[test]
fn long_inputs_are_truncated_not_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let embedder = fixture(dir.path());
    let long = "银行".repeat(400);
    let vector = embedder.embed(&[&long]).unwrap().remove(0);
    assert!((norm(&vector) - 1.0).abs() < 1e-4);
}

#[test]
fn bad_model_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = BertEmbedder::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
    write_random_bert(dir.path(), 1).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
    let err = BertEmbedder::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

fn meta(doc: &str, tenant: &str, tags: &[&str], at: Option<i64>) -> VectorMeta {
    VectorMeta {
        doc_id: doc.into(),
        tenant: tenant.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        published_at: at,
    }
}

#[test]
fn vector_index_filters_deletes_persists_and_resets_on_model_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.sqlite");
    let model = VectorModel { name: "m".into(), dim: 2, path: None };
    {
        let mut index = VectorIndex::open(&path).unwrap();
        assert!(index.set_model(model.clone()).unwrap());
        index
            .put_doc(
                &meta("a", "t1", &["x"], Some(100)),
                &[(1, vec![1.0, 0.0]), (2, vec![0.6, 0.8])],
            )
            .unwrap();
        index.put_doc(&meta("b", "t2", &[], Some(200)), &[(3, vec![0.0, 1.0])]).unwrap();
        let bad = index.put_doc(&meta("c", "t", &[], None), &[(4, vec![1.0])]).unwrap_err();
        assert!(bad.to_string().contains("dimension"), "{bad}");
    }
    let mut index = VectorIndex::open(&path).unwrap();
    assert_eq!(index.len(), 3);
    assert!(!index.set_model(model.clone()).unwrap(), "same model keeps the vectors");
    let keys = |hits: Vec<(u64, f32)>| hits.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let q = [1.0, 0.0];
    assert_eq!(keys(index.nearest(&q, &Filters::default(), 10)), [1, 2, 3]);
    assert_eq!(keys(index.nearest(&q, &Filters::default(), 1)), [1]);
    let t2 = Filters { tenant: Some("t2".into()), ..Filters::default() };
    assert_eq!(keys(index.nearest(&q, &t2, 10)), [3]);
    let tag = Filters { tags: vec!["x".into()], ..Filters::default() };
    assert_eq!(keys(index.nearest(&q, &tag, 10)), [1, 2]);
    let recent = Filters { since: Some(150), ..Filters::default() };
    assert_eq!(keys(index.nearest(&q, &recent, 10)), [3]);
    let old = Filters { until: Some(150), ..Filters::default() };
    assert_eq!(keys(index.nearest(&q, &old, 10)), [1, 2]);
    // Replacing a document's vectors drops its old ones.
    index.put_doc(&meta("a", "t1", &[], None), &[(5, vec![0.0, -1.0])]).unwrap();
    assert_eq!(keys(index.nearest(&q, &Filters::default(), 10)), [3, 5]);
    index.delete_doc("b").unwrap();
    assert_eq!(keys(index.nearest(&q, &Filters::default(), 10)), [5]);
    drop(index);
    let mut index = VectorIndex::open(&path).unwrap();
    assert_eq!(index.len(), 1);
    let other = VectorModel { name: "other".into(), dim: 2, path: None };
    assert!(index.set_model(other).unwrap(), "a different model drops the vectors");
    assert!(index.is_empty());
}

/// Seeded random unit vectors.
fn random_units(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = knowledge::eval::SplitMix(seed);
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..dim)
                .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                .collect();
            let n = norm(&v);
            v.into_iter().map(|x| x / n).collect()
        })
        .collect()
}

fn doc(source: &str, text: &str) -> SourceDoc {
    SourceDoc {
        source: source.into(),
        title: String::new(),
        text: text.into(),
        ..SourceDoc::default()
    }
}

const A: &str = "中国人民银行今日开展7天期逆回购操作，中标利率1.8%。";
const B: &str = "上海证券交易所发布科创板新股上市公告。";
const C: &str = "小额贷款公司评级结果公布，三家公司获得A级。";

fn vector_only() -> SearchOptions {
    SearchOptions {
        jieba_weight: 0.0,
        bigram_weight: 0.0,
        vector_weight: 1.0,
        ..SearchOptions::default()
    }
}

fn top(kb: &KnowledgeBase, query: &str, options: SearchOptions) -> Vec<String> {
    let request = SearchRequest { query: query.into(), k: 3, options, ..SearchRequest::default() };
    kb.search(&request).unwrap().into_iter().map(|h| h.chunk.body).collect()
}

#[test]
fn knowledge_base_keeps_vectors_in_step_and_fuses_them() {
    let model = tempfile::tempdir().unwrap();
    write_random_bert(model.path(), 5).unwrap();
    let store = tempfile::tempdir().unwrap();
    let mut kb = KnowledgeBase::open(store.path()).unwrap();
    assert!(kb.load_embedder(model.path()).unwrap(), "first model on an empty base");
    let options = AddOptions::default();
    kb.add_docs(vec![doc("a", A), doc("b", B), doc("c", C)], &options).unwrap();
    assert_eq!(kb.stats().unwrap().vectors, 3);

    // Vector-only search: a chunk's own text is its nearest neighbour (cosine 1).
    for text in [A, B, C] {
        assert_eq!(top(&kb, text, vector_only()).first().map(String::as_str), Some(text));
    }
    // A weight of zero on every list returns nothing: weights are not ignored.
    let none = SearchOptions { vector_weight: 0.0, ..vector_only() };
    assert!(top(&kb, A, none).is_empty());

    // Update: the document's vector is replaced, not duplicated.
    let b2 = "上海证券交易所发布科创板新股上市公告，今日共有两家公司上市。";
    let report = kb.add_docs(vec![doc("b", b2)], &options).unwrap();
    assert_eq!(report.updated.len(), 1);
    assert_eq!(kb.stats().unwrap().vectors, 3);
    assert_eq!(top(&kb, b2, vector_only()).first().map(String::as_str), Some(b2));
    assert!(!top(&kb, B, vector_only()).iter().any(|body| body == B));

    // Delete: its vector goes with it.
    let id_c = knowledge::kb::doc_id("c");
    kb.remove(&id_c).unwrap();
    assert_eq!(kb.stats().unwrap().vectors, 2);
    assert!(!top(&kb, C, vector_only()).iter().any(|body| body == C));

    // Reopen: the recorded model is loaded again and the vectors are still there.
    drop(kb);
    let mut kb = KnowledgeBase::open(store.path()).unwrap();
    assert!(top(&kb, A, vector_only()).is_empty(), "no model attached yet: no vector list");
    assert!(kb.load_recorded_embedder().unwrap());
    assert_eq!(top(&kb, A, vector_only()).first().map(String::as_str), Some(A));
    let stats = kb.stats().unwrap();
    assert_eq!(stats.vectors, 2);
    assert!(stats.vector_model.unwrap().name.starts_with("bert:"));
}

#[test]
fn attaching_a_model_later_embeds_what_is_missing() {
    let store = tempfile::tempdir().unwrap();
    let mut kb = KnowledgeBase::open(store.path()).unwrap();
    kb.add_docs(vec![doc("a", A), doc("b", B)], &AddOptions::default()).unwrap();
    assert_eq!(kb.stats().unwrap().vectors, 0);
    assert!(!kb.load_recorded_embedder().unwrap(), "no model recorded");
    let model = tempfile::tempdir().unwrap();
    write_random_bert(model.path(), 5).unwrap();
    kb.load_embedder(model.path()).unwrap();
    let mut calls = 0;
    assert_eq!(kb.embed_missing(&mut |_, _| calls += 1).unwrap(), 2);
    assert_eq!(calls, 2);
    assert_eq!(kb.stats().unwrap().vectors, 2);
    assert_eq!(kb.embed_missing(&mut |_, _| {}).unwrap(), 0, "nothing left to embed");
    // A different model drops the old vectors; embed_missing recomputes them.
    let other = tempfile::tempdir().unwrap();
    write_random_bert(other.path(), 6).unwrap();
    std::fs::rename(other.path(), other.path().with_extension("renamed")).unwrap();
    let renamed = other.path().with_extension("renamed");
    assert!(kb.load_embedder(&renamed).unwrap());
    assert_eq!(kb.stats().unwrap().vectors, 0);
    assert_eq!(kb.embed_missing(&mut |_, _| {}).unwrap(), 2);
    std::fs::remove_dir_all(&renamed).unwrap();
}

#[test]
fn minilm_ranks_paraphrases_above_unrelated_text() {
    let Some(dir) = std::env::var_os("FINLLM_TEST_EMBED_MODEL") else {
        eprintln!("skipped: set FINLLM_TEST_EMBED_MODEL to an all-MiniLM-L6-v2 folder to run");
        return;
    };
    let embedder = BertEmbedder::load(Path::new(&dir)).unwrap();
    assert_eq!(embedder.dim(), 384);
    let v = embedder
        .embed(&[
            "The central bank cut interest rates.",
            "Interest rates were lowered by the central bank.",
            "A man is riding a horse on the beach.",
        ])
        .unwrap();
    let (para, unrelated) = (dot(&v[0], &v[1]), dot(&v[0], &v[2]));
    assert!(para > 0.7 && unrelated < 0.2, "paraphrase {para}, unrelated {unrelated}");
    // The similarity sentence-transformers publishes for this pair with all-MiniLM-L6-v2: 0.7553.
    let v =
        embedder.embed(&["A man is eating food.", "A man is eating a piece of bread."]).unwrap();
    assert!((dot(&v[0], &v[1]) - 0.7553).abs() < 0.001, "{}", dot(&v[0], &v[1]));
}

/// Seeded unit vectors with low intrinsic dimension, as sentence embeddings have: a random linear map of
/// `intrinsic`-dimensional points into `dim` dimensions plus a little noise. (Uniform random vectors in
/// 384 dimensions are the worst case for any graph index: every point is almost equally far from all.)
fn embedding_like(n: usize, dim: usize, intrinsic: usize, seed: u64) -> Vec<Vec<f32>> {
    let basis = random_units(intrinsic, dim, seed);
    let latent = random_units(n, intrinsic, seed + 1);
    let noise = random_units(n, dim, seed + 2);
    latent
        .iter()
        .zip(&noise)
        .map(|(z, e)| {
            let mut v: Vec<f32> = (0..dim)
                .map(|d| z.iter().zip(&basis).map(|(zi, b)| zi * b[d]).sum::<f32>() + 0.05 * e[d])
                .collect();
            let n = norm(&v);
            v.iter_mut().for_each(|x| *x /= n);
            v
        })
        .collect()
}

/// Speed of vector search at the 100k-chunk scale, 384 dimensions (all-MiniLM-L6-v2's), excluding query
/// embedding: the HNSW graph (the default path) at several `ef_search` against the exact scan over the
/// same vectors (interleaved, so both see the same machine load), with the graph's recall@10 against the
/// exact top 10, and the save/open round trip. `KB_BENCH_VECTORS=uniform` uses uniform random vectors
/// (the worst case) instead of embedding-like ones. Prints figures; run with
/// `cargo test -p knowledge --test it -- --ignored vector_search_at_100k --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn vector_search_at_100k_chunks() {
    let dim = 384;
    let uniform = std::env::var("KB_BENCH_VECTORS").is_ok_and(|v| v == "uniform");
    let n = std::env::var("KB_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let (all, queries) = if uniform {
        (random_units(n + 200, dim, 9), Vec::new())
    } else {
        (embedding_like(n + 200, dim, 24, 9), Vec::new())
    };
    let (base, queries) =
        if queries.is_empty() { all.split_at(n) } else { (&all[..], &queries[..]) };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.sqlite");
    let mut index = VectorIndex::open(&path).unwrap();
    index.set_model(VectorModel { name: "random".into(), dim, path: None }).unwrap();
    let items: Vec<(u64, Vec<f32>)> =
        base.iter().enumerate().map(|(k, v)| (k as u64, v.clone())).collect();
    let started = std::time::Instant::now();
    index.put_doc(&meta("all", "default", &[], None), &items).unwrap();
    let insert_s = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    index.flush().unwrap();
    drop(index);
    let mut index = VectorIndex::open(&path).unwrap();
    let reopen_s = started.elapsed().as_secs_f64();
    println!(
        "{n} x {dim} ({}): insert (graph build) {insert_s:.1} s; save + reopen {reopen_s:.1} s",
        if uniform { "uniform random" } else { "embedding-like, intrinsic dimension 24" }
    );
    let open = Filters::default();
    for ef in [32, 64, 96, 200] {
        index.set_ef_search(ef);
        let (mut graph_s, mut exact_s, mut same) = (0.0, 0.0, 0usize);
        for q in queries {
            let started = std::time::Instant::now();
            let got = index.nearest(q, &open, 10);
            graph_s += started.elapsed().as_secs_f64();
            let started = std::time::Instant::now();
            let exact = index.vectors().nearest_exact(q, &open, 10);
            exact_s += started.elapsed().as_secs_f64();
            same += got.iter().filter(|(k, _)| exact.iter().any(|(e, _)| e == k)).count();
        }
        let q = queries.len() as f64;
        println!(
            "  ef_search {ef:>3}: HNSW {:.3} ms/query; exact scan {:.3} ms/query; recall@10 {:.4}",
            graph_s * 1e3 / q,
            exact_s * 1e3 / q,
            same as f64 / (10.0 * q)
        );
    }
}

/// Above [`knowledge::vectors::FLAT_MAX`] the index searches its graph: filters hold, a deleted document
/// never comes back, the graph is saved beside the rows and reopened as is, and a damaged or stale graph
/// file is rebuilt from the rows (same answers), never trusted.
#[test]
fn vector_index_graph_path_persists_and_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.sqlite");
    let graph_file = dir.path().join("vectors.hnsw");
    let dim = 16;
    let all = random_units(3_000, dim, 21);
    let queries = random_units(30, dim, 22);
    let t1 = Filters { tenant: Some("t1".into()), ..Filters::default() };
    let answers = |index: &VectorIndex| -> Vec<Vec<(u64, f32)>> {
        queries
            .iter()
            .flat_map(|q| [index.nearest(q, &Filters::default(), 10), index.nearest(q, &t1, 10)])
            .collect()
    };
    let before = {
        let mut index = VectorIndex::open(&path).unwrap();
        index.set_model(VectorModel { name: "m".into(), dim, path: None }).unwrap();
        for (d, part) in all.chunks(500).enumerate() {
            let tenant = if d % 2 == 0 { "t1" } else { "t2" };
            let items: Vec<(u64, Vec<f32>)> =
                part.iter().enumerate().map(|(i, v)| ((d * 500 + i) as u64, v.clone())).collect();
            index.put_doc(&meta(&format!("doc{d}"), tenant, &[], None), &items).unwrap();
        }
        index.delete_doc("doc2").unwrap();
        assert_eq!(index.len(), 2_500);
        assert!(index.len() > knowledge::vectors::FLAT_MAX);
        let mut found = 0;
        for q in &queries {
            let exact = index.vectors().nearest_exact(q, &Filters::default(), 10);
            let got = index.nearest(q, &Filters::default(), 10);
            found += got.iter().filter(|h| exact.contains(h)).count();
            for (key, _) in index.nearest(q, &t1, 10) {
                assert!(key < 500 || (2_000..2_500).contains(&key), "{key} is not tenant t1's");
            }
            assert!(got.iter().all(|(k, _)| !(1_000..1_500).contains(k)), "deleted doc2 came back");
        }
        assert!(found as f64 / 300.0 >= 0.95, "recall@10 {}", found as f64 / 300.0);
        index.flush().unwrap();
        answers(&index)
    };
    assert!(graph_file.is_file(), "the graph is saved beside the rows");
    assert_eq!(answers(&VectorIndex::open(&path).unwrap()), before, "reopened graph");
    std::fs::write(&graph_file, b"damaged").unwrap();
    let index = VectorIndex::open(&path).unwrap();
    assert_eq!(index.len(), 2_500);
    let rebuilt = answers(&index);
    drop(index);
    assert_eq!(rebuilt, before, "rebuilt from the rows, same seed, same answers");
    // A graph saved before the last change (a crash between the two writes) is stale: rebuilt.
    let stale = std::fs::read(&graph_file).unwrap();
    {
        let mut index = VectorIndex::open(&path).unwrap();
        index.delete_doc("doc0").unwrap();
    }
    std::fs::write(&graph_file, stale).unwrap();
    let index = VectorIndex::open(&path).unwrap();
    assert_eq!(index.len(), 2_000);
    for q in &queries {
        assert!(index.nearest(q, &Filters::default(), 10).iter().all(|(k, _)| *k >= 500));
    }
}
