//! End to end on the committed fixture rows: every built-in suite against a scripted backend, the
//! reported accuracy checked against an independent count of the data; resume after a failure.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

use eval::{
    EvalError,
    backend::{Backend, Scripted},
    report::{Report, compare},
    run::{RunOptions, TaskResult, run_task},
    store::Store,
    suites,
    task::{Scoring, Task},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/finance-eval")
}

fn block<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn run_suite(
    name: &str,
    backend: &dyn Backend,
    store: &Store,
    scoring: Scoring,
) -> Result<Vec<TaskResult>, EvalError> {
    let options = RunOptions { scoring, limit: None, no_cache: false, concurrency: 2 };
    let mut out = Vec::new();
    for spec in suites::suite(name, &root(), 1)? {
        let task = Task::load(spec, &root())?;
        out.push(block(run_task(&task, backend, store, options, &|_| {}))?);
    }
    Ok(out)
}

/// Counts rows whose answer is "A" (or 是) straight from the files, without the crate's loaders.
fn count_answer_a() -> (usize, usize) {
    let (mut right, mut total) = (0, 0);
    let mut stack = vec![root()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().unwrap() == "csv"
                && !path.to_string_lossy().contains("/dev/")
            {
                for line in std::fs::read_to_string(&path).unwrap().lines().skip(1) {
                    total += 1;
                    let last = line.rsplit(',').next().unwrap();
                    right += usize::from(last == "A" || last == "是");
                }
            } else if path.to_string_lossy().contains("/dev/")
                && !path.to_string_lossy().contains("fineval")
            {
                for line in std::fs::read_to_string(&path).unwrap().lines().skip(1) {
                    total += 1;
                    right += usize::from(line.rsplit(',').next().unwrap() == "A");
                }
            }
        }
    }
    let cflue: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(root().join("cflue/knowledge_dev_half.json")).unwrap(),
    )
    .unwrap();
    for item in cflue {
        total += 1;
        right += usize::from(item["answer"] == "A");
    }
    (right, total)
}

#[test]
fn every_suite_scores_what_an_independent_count_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("eval.sqlite")).unwrap();
    let backend = Scripted::new("always-a", |_| Ok("A".to_string()));
    let mut tasks = Vec::new();
    // The safety suite needs a judge (tests/it/judge.rs).
    for name in suites::NAMES.iter().filter(|n| **n != "safety") {
        let got = run_suite(name, &backend, &store, Scoring::Both).unwrap();
        assert!(!got.is_empty(), "suite {name} is empty on the fixture");
        tasks.extend(got);
    }
    let (right, total) = count_answer_a();
    let choice_tasks: Vec<&TaskResult> =
        tasks.iter().filter(|t| !t.task.starts_with("disc")).collect();
    let n: usize = choice_tasks.iter().map(|t| t.samples.len()).sum();
    assert_eq!(n, total);
    // Headline of single-choice tasks is acc (log-likelihood), of multi-select set_exact (generation).
    let correct: f64 =
        choice_tasks.iter().map(|t| t.headline().unwrap().1.mean * t.samples.len() as f64).sum();
    assert_eq!(correct.round() as usize, right);
    // Both paths agree for an always-"A" model, and "A" is always extractable.
    for t in &choice_tasks {
        if let Some(gen_acc) = t.metrics.get("gen_acc") {
            assert_eq!(gen_acc.mean, t.metrics["acc"].mean, "{}", t.task);
        }
        assert_eq!(t.unextractable_rate, Some(0.0), "{}", t.task);
    }
    let disc = tasks.iter().find(|t| t.task.starts_with("disc")).unwrap();
    assert_eq!((disc.metrics["numeric"].mean, disc.unextractable_rate), (0.0, Some(1.0)));

    let report = Report::new("always-a", "both", tasks);
    assert_eq!(report.groups.iter().find(|g| g.group == "金融知识").unwrap().n, 2);
    let overall = report.overall.unwrap();
    assert!(overall.lo <= overall.mean && overall.mean <= overall.hi);
    assert!(report.to_html().contains("<svg"));
    assert!(
        report
            .to_markdown()
            .contains("| fineval/accounting | FinEval/Accounting | 4 | acc | 50.0 |")
    );
    let back = Report::from_json(&report.to_json().unwrap(), "r").unwrap();
    assert_eq!(back, report);
}

#[test]
fn a_right_model_scores_full_marks_and_compare_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("eval.sqlite")).unwrap();
    let task = Task::load(suites::suite("cflue", &root(), 0).unwrap().remove(1), &root()).unwrap();
    let pairs =
        task.samples.iter().map(|s| (s.question.clone(), format!("答案：{}", s.target))).collect();
    let right = Scripted::from_pairs("right", pairs);
    let wrong = Scripted::new("wrong", |_| Ok("答案：A".to_string()));
    let options =
        RunOptions { scoring: Scoring::Generate, limit: None, no_cache: false, concurrency: 1 };
    let a = block(run_task(&task, &wrong, &store, options, &|_| {})).unwrap();
    let b = block(run_task(&task, &right, &store, options, &|_| {})).unwrap();
    assert_eq!(b.metrics["set_exact"].mean, 1.0);
    // "A" is a third of ABD and of ABC.
    assert_eq!(a.metrics["set_partial"].mean, 1.0 / 3.0);
    let cmp = compare(
        &Report::new("wrong", "generate", vec![a]),
        &Report::new("right", "generate", vec![b]),
    )
    .unwrap();
    assert_eq!(cmp[0].paired.n, 2);
    assert!(cmp[0].b > cmp[0].a);
}

#[test]
fn a_failed_run_resumes_without_asking_again() {
    let options =
        RunOptions { scoring: Scoring::Generate, limit: None, no_cache: false, concurrency: 1 };
    let specs = suites::suite("fineval", &root(), 1).unwrap();
    let tasks: Vec<Task> = specs.into_iter().map(|s| Task::load(s, &root()).unwrap()).collect();
    let total: usize = tasks.iter().map(|t| t.samples.len()).sum();
    let answer =
        |prompt: &str| if prompt.contains("预收账款") { "答案：B" } else { "答案：A" }.to_string();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("eval.sqlite")).unwrap();
    let asked = AtomicUsize::new(0);
    let dying = Scripted::new("m", move |p| {
        if asked.fetch_add(1, Ordering::SeqCst) >= 3 {
            Err(EvalError::Backend("killed".into()))
        } else {
            Ok(answer(p))
        }
    });
    let first = block(run_task(&tasks[0], &dying, &store, options, &|_| {}));
    assert!(first.is_err());
    assert_eq!(block(store.count(None)).unwrap(), 3);

    let fresh = Scripted::new("m", move |p| Ok(answer(p)));
    let calls = fresh.calls();
    let resumed: Vec<TaskResult> = tasks
        .iter()
        .map(|t| block(run_task(t, &fresh, &store, options, &|_| {})).unwrap())
        .collect();
    assert_eq!(calls.load(Ordering::SeqCst), total - 3);
    assert_eq!(resumed[0].cached, 3);

    let clean_dir = tempfile::tempdir().unwrap();
    let clean_store = Store::open(&clean_dir.path().join("eval.sqlite")).unwrap();
    let clean = Scripted::new("m", move |p| Ok(answer(p)));
    for (t, r) in tasks.iter().zip(&resumed) {
        let c = block(run_task(t, &clean, &clean_store, options, &|_| {})).unwrap();
        assert_eq!(c.metrics, r.metrics);
        let strip = |v: &TaskResult| {
            v.samples
                .iter()
                .map(|s| (s.id.clone(), s.generate.clone(), s.scores.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&c), strip(r));
    }
    // A repeated run asks nothing; --no-cache asks everything again.
    let again = Scripted::new("m", move |p| Ok(answer(p)));
    let calls = again.calls();
    for t in &tasks {
        block(run_task(t, &again, &store, options, &|_| {})).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let no_cache = RunOptions { no_cache: true, ..options };
    block(run_task(&tasks[0], &again, &store, no_cache, &|_| {})).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), tasks[0].samples.len());
}

#[test]
fn task_specs_parse_validate_and_version() {
    let toml = r#"
name = "mine"
group = "test"
kind = "single_choice"
metrics = ["acc", "gen_acc"]
fewshot = { k = 1, seed = 3 }
[dataset]
path = "fineval/val/accounting_val.csv"
dev_path = "fineval/dev/accounting_dev.csv"
"#;
    let spec = eval::task::TaskSpec::from_toml(toml, "mine.toml").unwrap();
    let task = Task::load(spec.clone(), &root()).unwrap();
    assert_eq!(task.shots.len(), 1);
    let prompt = task.prompt(&task.samples[0]).unwrap();
    assert!(prompt.ends_with("存货期末计量采用？\nA. 成本与可变现净值孰低\nB. 公允价值\nC. 历史成本\nD. 重置成本\n答案："), "{prompt}");
    assert_eq!(Task::load(spec.clone(), &root()).unwrap().version, task.version);
    let mut changed = spec;
    changed.template = Some("{{ question }}".into());
    assert_ne!(Task::load(changed, &root()).unwrap().version, task.version);
    let err =
        eval::task::TaskSpec::from_toml(&toml.replace("gen_acc", "nope"), "mine.toml").unwrap_err();
    assert!(err.to_string().contains("unknown metric \"nope\""), "{err}");
}

#[test]
fn every_suite_loads_the_shared_benchmark_data() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/finance-eval");
    if !shared.is_dir() {
        println!("skipped: {} is absent", shared.display());
        return;
    }
    // Row counts from the data's MANIFEST (Fin-Eva 2,343; FinEval val 2,420; CFLUE half 1,941; ...).
    for (suite, rows) in [
        ("fin-eva", 2343),
        ("fineval", 2420),
        ("financeiq", 50),
        ("cmmlu", 30),
        ("cflue", 1941),
        ("disc-computing", 100),
        // JADE's 150 harmful prompts and FinanceIQ's 50 questions as benign ones.
        ("safety", 200),
    ] {
        let n: usize = suites::suite(suite, &shared, 0)
            .unwrap()
            .into_iter()
            .map(|spec| Task::load(spec, &shared).unwrap().samples.len())
            .sum();
        assert_eq!(n, rows, "{suite}");
    }
}
