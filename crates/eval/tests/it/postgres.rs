//! The scale-out store: workers share answers through one real PostgreSQL database, resume each other's
//! runs, and score exactly what the embedded SQLite store scores.
//!
//! Needs `FINLLM_TEST_POSTGRES_URL` (`.ci/run` installs and starts PostgreSQL and sets it); without it the
//! tests say so and return.

use std::{
    path::{Path, PathBuf},
    sync::atomic::Ordering,
};

use eval::{
    backend::Scripted,
    run::{RunOptions, run_task},
    store::Store,
    suites,
    task::{Scoring, Task},
};

fn url() -> Option<String> {
    let url = std::env::var("FINLLM_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        eprintln!(
            "skipping: FINLLM_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)"
        );
    }
    url
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/finance-eval")
}

/// A model id no other test run has used, so runs sharing the database never see each other's rows.
fn fresh_model(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{name}-{}-{nanos}", std::process::id())
}

fn answer(prompt: &str) -> Result<String, eval::EvalError> {
    Ok(if prompt.contains("预收账款") { "答案：B" } else { "答案：A" }.to_string())
}

#[tokio::test]
async fn workers_share_answers_and_score_like_sqlite() {
    let Some(url) = url() else { return };
    let tasks: Vec<Task> = suites::suite("fineval", &root(), 1)
        .unwrap()
        .into_iter()
        .map(|s| Task::load(s, &root()).unwrap())
        .collect();
    let options =
        RunOptions { scoring: Scoring::Both, limit: None, no_cache: false, concurrency: 2 };
    let model = fresh_model("pg-workers");

    // Worker A answers the first two samples of every task, then stops.
    let a = Store::connect(&url).await.unwrap();
    assert_eq!(a.engine(), "postgres");
    let first = Scripted::new(&model, answer);
    for t in &tasks {
        run_task(t, &first, &a, RunOptions { limit: Some(2), ..options }, &|_| {}).await.unwrap();
    }
    let stored = a.count(Some(&model)).await.unwrap();
    assert_eq!(stored, tasks.iter().map(|t| t.samples.len().min(2)).sum::<usize>());

    // Worker B, another connection, finishes the run and asks only what A did not.
    let b = Store::connect(&url).await.unwrap();
    let second = Scripted::new(&model, answer);
    let calls = second.calls();
    let mut shared = Vec::new();
    for t in &tasks {
        shared.push(run_task(t, &second, &b, options, &|_| {}).await.unwrap());
    }
    let total: usize = tasks.iter().map(|t| t.samples.len()).sum();
    // Scripted counts one call per path (log-likelihood and generation) per sample.
    assert_eq!(calls.load(Ordering::SeqCst), 2 * (total - stored));
    assert_eq!(shared.iter().map(|r| r.cached).sum::<usize>(), stored);
    assert_eq!(b.count(Some(&model)).await.unwrap(), total);

    // The same run on the embedded store gives the same scores, sample by sample.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&dir.path().join("eval.sqlite")).unwrap();
    let alone = Scripted::new(&model, answer);
    for (t, r) in tasks.iter().zip(&shared) {
        let s = run_task(t, &alone, &sqlite, options, &|_| {}).await.unwrap();
        assert_eq!(s.metrics, r.metrics, "{}", t.spec.name);
        let strip = |v: &eval::run::TaskResult| {
            v.samples.iter().map(|s| (s.id.clone(), s.scores.clone())).collect::<Vec<_>>()
        };
        assert_eq!(strip(&s), strip(r));
    }
}

#[tokio::test]
async fn concurrent_workers_store_each_answer_once() {
    let Some(url) = url() else { return };
    let task = Task::load(suites::suite("cflue", &root(), 0).unwrap().remove(0), &root()).unwrap();
    let options =
        RunOptions { scoring: Scoring::Generate, limit: None, no_cache: false, concurrency: 3 };
    let model = fresh_model("pg-concurrent");
    let (a, b) = (Store::connect(&url).await.unwrap(), Store::open_location(&url).await.unwrap());
    let (x, y) = (Scripted::new(&model, answer), Scripted::new(&model, answer));
    let (rx, ry) = tokio::join!(
        run_task(&task, &x, &a, options, &|_| {}),
        run_task(&task, &y, &b, options, &|_| {})
    );
    let (rx, ry) = (rx.unwrap(), ry.unwrap());
    assert_eq!(rx.metrics, ry.metrics);
    assert_eq!(a.count(Some(&model)).await.unwrap(), task.samples.len());
    // A third run reuses everything.
    let z = Scripted::new(&model, answer);
    let calls = z.calls();
    let rz = run_task(&task, &z, &a, options, &|_| {}).await.unwrap();
    assert_eq!((calls.load(Ordering::SeqCst), rz.cached), (0, task.samples.len()));
}
