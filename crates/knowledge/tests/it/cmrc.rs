//! Retrieval quality on CMRC 2018 dev (`../shared/data/retrieval/cmrc2018`), when it is present: a
//! regression floor just under the measured numbers, so a tokenizer or fusion change that loses recall
//! fails here. Skips with a message on machines without the shared data.

use knowledge::{SearchOptions, eval};

#[test]
fn cmrc2018_retrieval_floor() {
    let Some(shared) = crate::shared_dir() else {
        println!("skipped: ../shared is absent, so CMRC 2018 cannot be evaluated here");
        return;
    };
    let file = shared.join("data/retrieval/cmrc2018/cmrc2018_dev.json");
    if !file.is_file() {
        println!("skipped: {} is absent", file.display());
        return;
    }
    let set = eval::load_squad(&file, 150).unwrap();
    assert_eq!(set.queries.len(), 3219);
    let dir = tempfile::tempdir().unwrap();
    let report =
        eval::evaluate(&set, dir.path(), &SearchOptions::default(), 2, None, &|_, _, _| {})
            .unwrap();
    println!("{report:?}");
    assert!(report.recall_at_10 >= 0.95, "R@10 {}", report.recall_at_10);
    assert!(report.mrr_at_10 >= 0.81, "MRR@10 {}", report.mrr_at_10);
}

/// Query speed at the scale: CMRC 2018 dev plus seeded distractors up to 100,000 chunks, lexical
/// hybrid (jieba + bigram, RRF), 2 query threads. Prints the report; run with
/// `cargo test -p knowledge --test it -- --ignored cmrc2018_at_100k --nocapture` (the machine's load at the
/// time belongs next to any figure quoted from it).
#[test]
#[ignore = "a measurement, not a check"]
fn cmrc2018_at_100k_chunks() {
    let Some(shared) = crate::shared_dir() else {
        println!("skipped: ../shared is absent, so CMRC 2018 cannot be evaluated here");
        return;
    };
    let file = shared.join("data/retrieval/cmrc2018/cmrc2018_dev.json");
    let mut set = eval::load_squad(&file, 150).unwrap();
    eval::add_distractors(&mut set, 100_000, 7);
    let dir = tempfile::tempdir().unwrap();
    let threads = std::env::var("KB_BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    // KB_BENCH_SHARE=1 keeps every query term (no common-term pruning), for comparison.
    let options = SearchOptions {
        common_term_share: std::env::var("KB_BENCH_SHARE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(SearchOptions::default().common_term_share),
        ..SearchOptions::default()
    };
    let report = eval::evaluate(&set, dir.path(), &options, threads, None, &|_, _, _| {}).unwrap();
    println!(
        "{} chunks, {} queries: R@10 {:.4} MRR@10 {:.4}; p50 {:.2} ms, p99 {:.2} ms, {:.0} q/s on {} threads; \
         {:.3} CPU ms/query; ingest {:.1} MB/s",
        report.chunks,
        report.queries,
        report.recall_at_10,
        report.mrr_at_10,
        report.latency_p50_ms,
        report.latency_p99_ms,
        report.queries_per_s,
        report.threads,
        report.cpu_ms_per_query,
        report.ingest_mb_per_s
    );
}
