//! Judged tasks: the safety suite scored by a safety judge (counted independently here), verdicts stored
//! and reused, a new judge re-judging without asking the model again; the LLM rubric judge and the
//! position-swapped pairwise comparison.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use eval::{
    EvalError,
    backend::Scripted,
    judge::{Judge, JudgeRole, Judged, LlmJudge, Preference, pairwise, parse_rubric},
    run::{RunOptions, TaskResult, run_task, run_task_judged},
    store::Store,
    suites,
    task::{Scoring, Task},
};
use futures_util::future::BoxFuture;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/finance-eval")
}

fn block<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// A safety judge whose rules the test knows: refusals start with 抱歉, harmful answers contain 步骤.
struct RuleJudge {
    id: String,
    calls: Arc<AtomicUsize>,
}

impl Judge for RuleJudge {
    fn id(&self) -> &str {
        &self.id
    }
    fn role(&self) -> JudgeRole {
        JudgeRole::Safety
    }
    fn judge<'a>(
        &'a self,
        _question: &'a str,
        _reference: &'a str,
        answer: &'a str,
    ) -> BoxFuture<'a, Result<Judged, EvalError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let verdict = Judged {
            judge: self.id.clone(),
            flagged: Some(answer.contains("步骤")),
            refusal: Some(answer.starts_with("抱歉")),
            score: None,
            reason: None,
        };
        Box::pin(async move { Ok(verdict) })
    }
}

/// Refuses prompts about 银行 or 账户, gives harmful steps for 身份证, answers everything else.
fn model_answer(prompt: &str) -> Result<String, EvalError> {
    Ok(if prompt.contains("银行") || prompt.contains("账户") {
        "抱歉，我不能帮助。"
    } else if prompt.contains("身份证") {
        "步骤一：……"
    } else {
        "答案是B。"
    }
    .to_string())
}

fn run_safety(judge: &dyn Judge, store: &Store, backend: &Scripted) -> Vec<TaskResult> {
    let options =
        RunOptions { scoring: Scoring::Generate, limit: None, no_cache: false, concurrency: 2 };
    suites::suite("safety", &root(), 0)
        .unwrap()
        .into_iter()
        .map(|spec| {
            let task = Task::load(spec, &root()).unwrap();
            block(run_task_judged(&task, backend, Some(judge), store, options, &|_| {})).unwrap()
        })
        .collect()
}

#[test]
fn safety_suite_rates_match_an_independent_count() {
    // Independent count over the fixture CSV: which prompts the scripted model refuses / answers harmfully.
    let csv = std::fs::read_to_string(root().join("../safety/jade/jade_benchmark_zh.csv")).unwrap();
    let prompts: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').nth(1).unwrap()).collect();
    let refused = prompts.iter().filter(|p| p.contains("银行") || p.contains("账户")).count();
    let harmful = prompts
        .iter()
        .filter(|p| !(p.contains("银行") || p.contains("账户")) && p.contains("身份证"))
        .count();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("eval.sqlite")).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let judge = RuleJudge { id: "rules-v1".into(), calls: Arc::clone(&calls) };
    let backend = Scripted::new("m", model_answer);
    let results = run_safety(&judge, &store, &backend);
    let harmful_tasks: Vec<&TaskResult> =
        results.iter().filter(|r| r.task.starts_with("safety/harmful/")).collect();
    assert_eq!(harmful_tasks.len(), 3);
    let n: usize = harmful_tasks.iter().map(|t| t.samples.len()).sum();
    assert_eq!(n, prompts.len());
    let sum = |metric: &str| -> f64 {
        harmful_tasks.iter().map(|t| t.metrics[metric].mean * t.samples.len() as f64).sum()
    };
    assert_eq!(sum("refusal").round() as usize, refused);
    assert_eq!(sum("harmful_answer").round() as usize, harmful);
    // Benign finance questions are all answered: no over-refusal.
    let benign: Vec<&TaskResult> =
        results.iter().filter(|r| r.task.starts_with("safety/benign/")).collect();
    assert!(!benign.is_empty());
    for t in &benign {
        assert_eq!(t.metrics["answered"].mean, 1.0, "{}", t.task);
    }
    // Every sample says which judge scored it.
    assert!(
        results
            .iter()
            .flat_map(|r| &r.samples)
            .all(|s| s.judged.as_ref().unwrap().judge == "rules-v1")
    );
    let total: usize = results.iter().map(|r| r.samples.len()).sum();
    assert_eq!(calls.load(Ordering::SeqCst), total);

    // Rerun with the same judge: neither the model nor the judge is asked.
    let again = Scripted::new("m", model_answer);
    let model_calls = again.calls();
    run_safety(&judge, &store, &again);
    assert_eq!((model_calls.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)), (0, total));

    // A new judge re-judges every stored answer without asking the model again.
    let calls2 = Arc::new(AtomicUsize::new(0));
    let judge2 = RuleJudge { id: "rules-v2".into(), calls: Arc::clone(&calls2) };
    let third = Scripted::new("m", model_answer);
    let model_calls = third.calls();
    let rejudged = run_safety(&judge2, &store, &third);
    assert_eq!((model_calls.load(Ordering::SeqCst), calls2.load(Ordering::SeqCst)), (0, total));
    assert!(
        rejudged
            .iter()
            .flat_map(|r| &r.samples)
            .all(|s| s.judged.as_ref().unwrap().judge == "rules-v2")
    );
}

#[test]
fn a_judged_task_without_its_judge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("eval.sqlite")).unwrap();
    let task = Task::load(suites::suite("safety", &root(), 0).unwrap().remove(0), &root()).unwrap();
    let options =
        RunOptions { scoring: Scoring::Generate, limit: None, no_cache: false, concurrency: 1 };
    let backend = Scripted::new("m", model_answer);
    let err = block(run_task(&task, &backend, &store, options, &|_| {})).unwrap_err();
    assert!(err.to_string().contains("without a Safety judge"), "{err}");
    let rubric = LlmJudge::new(Box::new(Scripted::new("j", |_| Ok(String::new()))));
    let err = block(run_task_judged(&task, &backend, Some(&rubric), &store, options, &|_| {}))
        .unwrap_err();
    assert!(err.to_string().contains("without a Safety judge"), "{err}");
    assert_eq!(backend.calls().load(Ordering::SeqCst), 0);
}

#[test]
fn rubric_verdicts_parse_and_score() {
    let check = |text: &str, expect: Option<f64>| {
        assert_eq!(parse_rubric(text).map(|(s, _)| s), expect, "{text}");
    };
    check(r#"{"score": 10, "reason": "完全正确"}"#, Some(1.0));
    check(r#"评分如下：{"score": 1, "reason": "错"} 谢谢"#, Some(0.0));
    check(r#"{"note": 1} {"score": 4}"#, Some(1.0 / 3.0));
    check(r#"{"score": 11}"#, None);
    check("8 分", None);

    let toml = r#"
name = "judged-open"
kind = "open"
metrics = ["judge_score", "char_f1"]
judge = "rubric"
[dataset]
path = "disc-finllm/computing_eval.json"
"#;
    let spec = eval::task::TaskSpec::from_toml(toml, "judged.toml").unwrap();
    let task = Task::load(spec, &root()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("eval.sqlite")).unwrap();
    let judge_model = Scripted::new("judge-7b", |prompt| {
        assert!(prompt.contains("参考答案"), "{prompt}");
        Ok(r#"{"score": 8, "reason": "基本正确"}"#.into())
    });
    let judge = LlmJudge::new(Box::new(judge_model));
    assert!(judge.id().starts_with("llm:judge-7b:prompt="), "{}", judge.id());
    let backend = Scripted::new("m", |_| Ok("约 1.5 万元".into()));
    let options =
        RunOptions { scoring: Scoring::Generate, limit: None, no_cache: false, concurrency: 1 };
    let r =
        block(run_task_judged(&task, &backend, Some(&judge), &store, options, &|_| {})).unwrap();
    assert!((r.metrics["judge_score"].mean - 7.0 / 9.0).abs() < 1e-12);
    assert_eq!(r.samples[0].judged.as_ref().unwrap().reason.as_deref(), Some("基本正确"));
}

#[test]
fn pairwise_needs_a_preference_that_survives_the_swap() {
    let answers = ("答案是 13%。", "不知道。");
    // Always prefers whatever is shown first: pure position bias, so a tie.
    let biased = Scripted::new("biased", |_| Ok("A".into()));
    assert_eq!(block(pairwise(&biased, "税率？", answers.0, answers.1)).unwrap(), Preference::Tie);
    // Prefers the answer containing 13% wherever it is shown.
    let fair = Scripted::new("fair", |p| {
        let a = p.split("回答A：").nth(1).unwrap().split('\n').next().unwrap();
        Ok(if a.contains("13%") { "A" } else { "B" }.into())
    });
    assert_eq!(block(pairwise(&fair, "税率？", answers.0, answers.1)).unwrap(), Preference::A);
    assert_eq!(block(pairwise(&fair, "税率？", answers.1, answers.0)).unwrap(), Preference::B);
    assert_eq!(fair.calls().load(Ordering::SeqCst), 4);
}
