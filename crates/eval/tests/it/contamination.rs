//! Contamination: n-gram overlap between tasks and a corpus, insensitive to spaces and punctuation,
//! and the headline score on the clean samples.

use std::path::{Path, PathBuf};

use eval::{
    backend::Scripted,
    contamination::{check, decontaminated, tokens},
    run::{RunOptions, run_task},
    store::Store,
    suites,
    task::{Scoring, Task},
};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

#[test]
fn tokens_are_characters_and_ascii_words() {
    let check = |text: &str, expect: &[&str]| assert_eq!(tokens(text), expect, "{text}");
    check("存货 期末，A.", &["存", "货", "期", "末"]);
    check("GDP增长3.5% x ab", &["gdp", "增", "长", "3", "5", "ab"]);
    check("  ", &[]);
}

#[test]
fn a_question_in_the_corpus_is_found_and_excluded_from_the_clean_score() {
    let root = data().join("finance-eval");
    let specs = suites::suite("fineval", &root, 0).unwrap();
    let tasks: Vec<Task> = specs.into_iter().map(|s| Task::load(s, &root).unwrap()).collect();
    let refs: Vec<&Task> = tasks.iter().collect();
    let corpus = data().join("contamination_corpus.txt");
    // The corpus holds accounting question 0 with its options (reformatted) and a 12-character piece of
    // question 1: at n = 13 only question 0 is contaminated, at n = 8 both are.
    let at13 = check(&refs, &[&corpus], 13, 0.0).unwrap();
    let accounting = at13.iter().find(|c| c.task == "fineval/accounting").unwrap();
    assert_eq!(accounting.contaminated, vec!["0".to_string()]);
    assert_eq!(accounting.rate(), 0.25);
    assert!(
        at13.iter().filter(|c| c.task != "fineval/accounting").all(|c| c.contaminated.is_empty())
    );
    let at8 = check(&refs, &[&corpus], 8, 0.0).unwrap();
    let accounting8 = at8.iter().find(|c| c.task == "fineval/accounting").unwrap();
    assert_eq!(accounting8.contaminated, vec!["0".to_string(), "1".to_string()]);
    // Question 0 (30 tokens, 18 distinct 13-grams) is in the corpus through its second option (公允价值,
    // its first 22 tokens), so the 13-grams starting at tokens 0..=9 are found: 10 of 18.
    assert!((accounting.overlap[0] - 10.0 / 18.0).abs() < 1e-12, "{:?}", accounting.overlap);
    // Question 1 (24 tokens at n = 8: 17 distinct 8-grams) shares only 应收账款属于流动资产非流: 5 of them.
    assert!((accounting8.overlap[1] - 5.0 / 17.0).abs() < 1e-12, "{:?}", accounting8.overlap);
    // A threshold keeps the copied question and drops the shared phrase.
    let strict = check(&refs, &[&corpus], 8, 0.5).unwrap();
    let strict = strict.iter().find(|c| c.task == "fineval/accounting").unwrap();
    assert_eq!(strict.contaminated, vec!["0".to_string()]);

    // Always-A on accounting: answers A,A,B,B give 2 of 4; without sample 0 it is 1 of 3.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("eval.sqlite")).unwrap();
    let task = tasks.iter().find(|t| t.spec.name == "fineval/accounting").unwrap();
    let options =
        RunOptions { scoring: Scoring::Loglik, limit: None, no_cache: false, concurrency: 1 };
    let backend = Scripted::new("a", |_| Ok("A".into()));
    let result = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(run_task(task, &backend, &store, options, &|_| {}))
        .unwrap();
    assert_eq!(result.headline().unwrap().1.mean, 0.5);
    let clean = decontaminated(&result, &accounting.contaminated).unwrap();
    assert!((clean.mean - 1.0 / 3.0).abs() < 1e-12);
    assert!(decontaminated(&result, &["0".into(), "1".into(), "2".into(), "3".into()]).is_none());
}

#[test]
fn a_missing_corpus_is_a_clear_error() {
    let err = check(&[], &[Path::new("/nonexistent/corpus.txt")], 13, 0.0).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/corpus.txt"), "{err}");
}
