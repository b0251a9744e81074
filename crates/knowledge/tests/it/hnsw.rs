//! The HNSW graph: recall against the exact scan on seeded random vectors, deletes that are never returned
//! (before and after compaction), the same graph from the same seed, filters, a save/load round trip, and
//! damaged files that are errors, not panics.

use knowledge::{
    embed::dot,
    eval::SplitMix,
    hnsw::{Hnsw, HnswParams},
};

/// Seeded random unit vectors.
fn random_units(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|_| {
            let v: Vec<f32> = (0..dim)
                .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                .collect();
            let n = dot(&v, &v).sqrt();
            v.into_iter().map(|x| x / n).collect()
        })
        .collect()
}

fn build(vectors: &[Vec<f32>], params: HnswParams) -> Hnsw {
    let mut graph = Hnsw::new(vectors[0].len(), params);
    for (key, v) in vectors.iter().enumerate() {
        graph.insert(key as u64 * 7 + 1, v).unwrap();
    }
    graph
}

/// Mean share of the exact top 10 that the graph returns.
fn recall_at_10(graph: &Hnsw, queries: &[Vec<f32>], accept: &dyn Fn(u64) -> bool) -> f64 {
    let mut found = 0usize;
    for q in queries {
        let exact: Vec<u64> = graph.exact(q, 10, accept).into_iter().map(|(k, _)| k).collect();
        let got = graph.search(q, 10, accept);
        assert!(got.iter().all(|(k, _)| accept(*k)), "a result outside the filter");
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1), "results not best first");
        found += got.iter().filter(|(k, _)| exact.contains(k)).count();
    }
    found as f64 / (10 * queries.len()) as f64
}

#[test]
fn recall_at_10_matches_the_exact_scan() {
    let vectors = random_units(5_000, 32, 1);
    let queries = random_units(200, 32, 2);
    let graph = build(&vectors, HnswParams::default());
    assert_eq!(graph.len(), 5_000);
    let recall = recall_at_10(&graph, &queries, &|_| true);
    assert!(recall >= 0.95, "recall@10 {recall}");
    // A filter passing every other key: only passing keys come back, recall holds.
    let recall = recall_at_10(&graph, &queries, &|k| k % 2 == 0);
    assert!(recall >= 0.95, "filtered recall@10 {recall}");
    // A tiny ef really lowers recall (the parameter is used).
    let mut narrow = graph.clone();
    narrow.set_ef_search(1);
    let low = recall_at_10(&narrow, &queries, &|_| true);
    assert!(low < recall, "ef 1 gives {low}, ef 96 gives {recall}");
}

#[test]
fn deleted_keys_are_never_returned_and_compaction_keeps_recall() {
    let vectors = random_units(3_000, 24, 3);
    let queries = random_units(100, 24, 4);
    let mut graph = build(&vectors, HnswParams::default());
    let gone = |k: u64| (k / 7).is_multiple_of(3);
    let keys: Vec<u64> = graph.live_keys().collect();
    for &k in &keys {
        if gone(k) {
            assert!(graph.delete(k));
        }
    }
    assert!(!graph.delete(keys[0]), "a second delete finds nothing");
    assert_eq!(graph.len(), 2_000);
    assert!((graph.dead_share() - 1.0 / 3.0).abs() < 1e-9);
    for q in &queries {
        // Querying exactly at a deleted vector must not bring it back.
        for probe in [q.as_slice(), vectors[0].as_slice()] {
            let got = graph.search(probe, 50, &|_| true);
            assert_eq!(got.len(), 50);
            assert!(got.iter().all(|(k, _)| !gone(*k)), "a deleted key came back");
        }
    }
    assert!(recall_at_10(&graph, &queries, &|_| true) >= 0.95);
    let compact = graph.compacted().unwrap();
    assert_eq!((compact.len(), compact.nodes()), (2_000, 2_000));
    assert!(recall_at_10(&compact, &queries, &|_| true) >= 0.95);
    // Re-inserting a key replaces its vector: the old one is a tombstone.
    let mut graph = compact;
    let fresh = random_units(2, 24, 99);
    graph.insert(1, &fresh[0]).unwrap();
    graph.insert(1, &fresh[1]).unwrap();
    assert_eq!(graph.len(), 2_001);
    assert!(graph.search(&fresh[0], 1, &|_| true)[0].1 < 0.99, "the old vector is gone");
    let top = graph.search(&fresh[1], 1, &|_| true);
    assert_eq!(top[0].0, 1);
    assert!((top[0].1 - 1.0).abs() < 1e-5);
    assert!(graph.insert(9, &[1.0]).unwrap_err().to_string().contains("dimension"));
}

#[test]
fn same_seed_same_graph_and_save_load_round_trip() {
    let vectors = random_units(1_500, 16, 5);
    let params = HnswParams { seed: 42, ..HnswParams::default() };
    let mut a = build(&vectors, params);
    let b = build(&vectors, params);
    assert_eq!(a.to_bytes(7), b.to_bytes(7), "same inserts and seed, same bytes");
    let other = build(&vectors, HnswParams { seed: 43, ..params });
    assert_ne!(a.to_bytes(7), other.to_bytes(7), "the seed is used");
    a.delete(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.hnsw");
    a.save(&path, 99).unwrap();
    let (loaded, stamp) = Hnsw::load(&path).unwrap();
    assert_eq!(stamp, 99);
    assert_eq!((loaded.len(), loaded.nodes(), loaded.params()), (a.len(), a.nodes(), params));
    assert!(!loaded.contains(1));
    for q in random_units(20, 16, 6) {
        assert_eq!(loaded.search(&q, 10, &|_| true), a.search(&q, 10, &|_| true));
    }
    // Inserting after a load continues the same level draws as without the round trip.
    let (mut loaded, _) = Hnsw::load(&path).unwrap();
    loaded.insert(5_000, &vectors[3]).unwrap();
    a.insert(5_000, &vectors[3]).unwrap();
    assert_eq!(loaded.to_bytes(0), a.to_bytes(0));
}

#[test]
fn damaged_graph_files_are_errors() {
    let graph = build(&random_units(200, 8, 7), HnswParams::default());
    let bytes = graph.to_bytes(1);
    let check = |bytes: &[u8], expect: &str| {
        let err = Hnsw::from_bytes(bytes).unwrap_err().to_string();
        assert!(err.contains(expect), "{err} lacks {expect}");
    };
    check(b"", "truncated");
    check(b"NOTAGRAPH-AT-ALL", "not a finllm vector graph");
    for cut in [20, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(Hnsw::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    check(&longer, "trailing bytes");
    // Node 0's layer-0 neighbour count, past its slots: after the header (88 bytes), 200 node heads
    // (10 bytes each) and 200 vectors of 8 floats.
    let mut bad = bytes.clone();
    let at = 88 + 200 * 10 + 200 * 8 * 4;
    bad[at..at + 4].copy_from_slice(&1_000u32.to_le_bytes());
    check(&bad, "neighbour list out of range");
    // A huge node count in the header.
    let mut huge = bytes;
    huge[8 + 7 * 8..8 + 8 * 8].copy_from_slice(&(u64::from(u32::MAX)).to_le_bytes());
    check(&huge, "node count");
    assert_eq!(Hnsw::from_bytes(&graph.to_bytes(1)).unwrap().1, 1);
}
