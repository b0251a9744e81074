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
