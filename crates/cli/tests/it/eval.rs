//! `finllm eval` end to end: the fixture suites against a scripted backend (accuracy equal to an
//! independent count, reports, CI gate, compare), and against `finllm serve` with the tiny fixture model
//! over HTTP on the log-likelihood path, where a second run asks nothing again.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use crate::finllm;

fn fixture_data() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../eval/tests/data/finance-eval")
        .display()
        .to_string()
}

fn report(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name).join("report.json")).unwrap())
        .unwrap()
}

#[test]
fn suites_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let run = finllm(dir.path(), &["eval", "suites"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.lines().any(|l| l == "fin-eva") && run.stdout.lines().any(|l| l == "cflue"));
    let run = finllm(dir.path(), &["eval", "run", "--scripted", "x.json"], &[]);
    assert_eq!(run.code, 2, "no suite or task is bad usage: {}", run.stderr);
}

#[test]
fn scripted_run_reports_the_counted_accuracy_and_gates() {
    let dir = tempfile::tempdir().unwrap();
    // Always "A": FinEval fixture answers are A,A,B,B (accounting) and B,A (macroeconomics): 3 of 6.
    std::fs::write(dir.path().join("a.json"), r#"[{"contains": "", "output": "答案：A"}]"#)
        .unwrap();
    let data = fixture_data();
    let args = |report: &'static str, extra: &[&'static str]| {
        let mut v =
            vec!["--data-dir", "store", "eval", "run", "--suite", "fineval", "--data", &data];
        v.extend(["--scripted", "a.json", "--report", report, "--shots", "1"]);
        v.extend_from_slice(extra);
        v.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let a = args("ra", &["--fail-below", "40"]);
    let run = finllm(dir.path(), &a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Overall: **50.0**"), "{}", run.stdout);
    assert!(run.stdout.contains("asked 6, from the store 0"), "{}", run.stdout);
    let r = report(dir.path(), "ra");
    assert_eq!(r["overall"]["mean"], 0.5);
    assert_eq!(r["groups"][0]["group"], "FinEval/Accounting");
    assert!(std::fs::read_to_string(dir.path().join("ra/report.html")).unwrap().contains("<svg"));

    // Same run again: everything from the store; the gate at 60 fails with exit 1.
    let a = args("ra", &["--fail-below", "60"]);
    let run = finllm(dir.path(), &a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("asked 0, from the store 6"), "{}", run.stdout);
    assert!(run.stderr.contains("below --fail-below 60.0"), "{}", run.stderr);

    // A model that knows 预收账款 is B gets 4 of 6; compare sees the difference on the paired samples.
    std::fs::write(
        dir.path().join("b.json"),
        r#"[{"contains": "", "output": "答案：A"}, {"contains": "预收账款", "output": "答案：B"}]"#,
    )
    .unwrap();
    let mut b = args("rb", &[]);
    b[9] = "b.json".into();
    b.extend(["--model".into(), "better".into()]);
    let run = finllm(dir.path(), &b.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        (report(dir.path(), "rb")["overall"]["mean"].as_f64().unwrap() - 4.0 / 6.0).abs() < 1e-12
    );
    let run =
        finllm(dir.path(), &["eval", "compare", "ra/report.json", "rb/report.json", "--json"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let acc = rows.as_array().unwrap().iter().find(|r| r["task"] == "fineval/accounting").unwrap();
    assert_eq!((acc["a"].as_f64(), acc["b"].as_f64()), (Some(0.5), Some(0.75)));
    assert_eq!(acc["paired"]["mcnemar_p"], 1.0);
    assert_eq!(acc["changed"], serde_json::json!([["2", 0.0, 1.0]]));
    let run = finllm(dir.path(), &["eval", "compare", "ra/report.json", "rb/report.json"], &[]);
    assert!(run.stdout.contains("| 2: 0→1 |"), "{}", run.stdout);
    let run = finllm(
        dir.path(),
        &["eval", "leaderboard", "ra/report.json", "rb/report.json", "--html", "lb.html"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("| ability | scripted | better |"), "{}", run.stdout);
    assert!(run.stdout.contains("| FinEval/Accounting | 50.0 | 75.0 |"), "{}", run.stdout);
    assert!(run.stdout.contains("| overall | 50.0 | 66.7 |"), "{}", run.stdout);
    assert!(std::fs::read_to_string(dir.path().join("lb.html")).unwrap().contains("<svg"));
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, model: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_finllm"))
        .current_dir(dir)
        .args(["serve", "--model", &model.display().to_string(), "--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut addr = None;
    while addr.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
        addr = line.split("listening on http://").nth(1).map(|a| a.trim().to_owned());
        line.clear();
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (Server(child), addr.expect("serve never said where it listens"))
}

#[test]
fn loglik_path_over_http_against_finllm_serve() {
    let model: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/fixtures/qwen2/model-q8_0.gguf");
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(dir.path(), &model);
    let endpoint = format!("http://{addr}/v1");
    let data = fixture_data();
    let args = [
        "--data-dir",
        "store",
        "eval",
        "run",
        "--suite",
        "cmmlu",
        "--suite",
        "financeiq",
        "--data",
        &data,
        "--endpoint",
        &endpoint,
        "--model",
        "model-q8_0",
        "--scoring",
        "loglik",
        "--report",
        "r",
        "--concurrency",
        "2",
    ];
    let run = finllm(dir.path(), &args, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("asked 4, from the store 0"), "{}", run.stdout);
    let r = report(dir.path(), "r");
    let mut chosen = 0;
    for task in r["tasks"].as_array().unwrap() {
        for s in task["samples"].as_array().unwrap() {
            let lps = s["loglik"]["logprobs"].as_array().unwrap();
            assert_eq!(lps.len(), 4);
            assert!(lps.iter().all(|v| v.as_f64().unwrap() < 0.0), "{lps:?}");
            // acc is exactly whether the arg-max option is the reference.
            let best = (0..4)
                .max_by(|&a, &b| lps[a].as_f64().unwrap().total_cmp(&lps[b].as_f64().unwrap()))
                .unwrap();
            let pred = ["A", "B", "C", "D"][best];
            assert_eq!(s["loglik"]["pred"], pred);
            assert_eq!(s["scores"]["acc"].as_f64().unwrap() == 1.0, pred == s["target"]);
            chosen += 1;
        }
    }
    assert_eq!(chosen, 4);
    let run = finllm(dir.path(), &args, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("asked 0, from the store 4"), "{}", run.stdout);

    // The generation path over chat: raw text stored with its extractor, the unextractable rate reported
    // (the fixture model is random, so its text is whatever it is).
    let chat = [
        "--data-dir",
        "store",
        "eval",
        "run",
        "--suite",
        "cmmlu",
        "--data",
        &data,
        "--endpoint",
        &endpoint,
        "--model",
        "model-q8_0",
        "--chat",
        "--limit",
        "1",
        "--json",
    ];
    let run = finllm(dir.path(), &chat, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let g: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let first = &g["tasks"][0];
    assert!(first["samples"][0]["generate"]["raw"].is_string(), "{first}");
    assert_eq!(first["samples"][0]["generate"]["extractor"], "choice_first");
    assert!(first["samples"][0]["loglik"].is_null());
    assert!(first["unextractable_rate"].is_number());
    assert_eq!(
        report(dir.path(), "r")["tasks"],
        r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let mut t = t.clone();
                for s in t["samples"].as_array_mut().unwrap() {
                    s["cached"] = serde_json::Value::Bool(true);
                }
                t["cached"] = t["asked"].clone();
                t["asked"] = 0.into();
                t
            })
            .collect::<serde_json::Value>()
    );
}

#[test]
fn task_spec_over_chat_jsonl_with_open_answers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("qa.jsonl"),
        [
            r#"{"id": "q1", "messages": [{"role": "user", "content": "1万元存一年，利率2%，利息多少元？"}, {"role": "assistant", "content": "200元"}]}"#,
            r#"{"id": "q2", "messages": [{"role": "user", "content": "100元涨10%是多少元？"}, {"role": "assistant", "content": "110元"}]}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("qa.toml"),
        "name = \"own/interest\"\ngroup = \"计算\"\nkind = \"open\"\nmetrics = [\"numeric\", \"char_f1\"]\n\
         extractor = \"number\"\ntemplate = \"{{ question }}\\n答：\"\n[dataset]\npath = \"qa.jsonl\"\n",
    )
    .unwrap();
    // Right on q1 (written as 0.02万), wrong on q2.
    std::fs::write(
        dir.path().join("s.json"),
        r#"[{"contains": "利息", "output": "利息是0.02万元"}, {"contains": "涨10%", "output": "约120元"}]"#,
    )
    .unwrap();
    let run = finllm(
        dir.path(),
        &[
            "--data-dir",
            "store",
            "eval",
            "run",
            "--task",
            "qa.toml",
            "--scripted",
            "s.json",
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let task = &r["tasks"][0];
    assert_eq!(task["metrics"]["numeric"]["mean"], 0.5);
    assert_eq!(task["samples"][0]["generate"]["extracted"], "200");
    assert_eq!(task["samples"][0]["generate"]["extractor"], "number");
    assert_eq!(task["samples"][1]["generate"]["raw"], "约120元");
    std::fs::write(
        dir.path().join("bad.toml"),
        "name = \"x\"\nkind = \"open\"\nmetrics = [\"nope\"]\n[dataset]\npath = \"qa.jsonl\"\n",
    )
    .unwrap();
    let run =
        finllm(dir.path(), &["eval", "run", "--task", "bad.toml", "--scripted", "s.json"], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("bad.toml") && run.stderr.contains("unknown metric"),
        "{}",
        run.stderr
    );
}

#[test]
fn two_workers_share_a_postgres_store() {
    let Ok(url) = std::env::var("FINLLM_TEST_POSTGRES_URL") else {
        eprintln!(
            "skipping: FINLLM_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.json"), r#"[{"contains": "", "output": "答案：A"}]"#)
        .unwrap();
    let data = fixture_data();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    let model = format!("cli-pg-{nanos}");
    // Two workers with separate data directories: the second finds every answer in PostgreSQL.
    for (worker, expect) in
        [("w1", "asked 6, from the store 0"), ("w2", "asked 0, from the store 6")]
    {
        let args = [
            "--data-dir",
            worker,
            "eval",
            "run",
            "--suite",
            "fineval",
            "--data",
            &data,
            "--scripted",
            "a.json",
            "--model",
            &model,
            "--shots",
            "1",
            "--store",
            &url,
        ];
        let run = finllm(dir.path(), &args, &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains("Overall: **50.0**"), "{}", run.stdout);
        assert!(run.stdout.contains(expect), "{worker}: {}", run.stdout);
        assert!(!dir.path().join(worker).join("eval.sqlite").exists());
    }
}

#[test]
fn safety_suite_is_judged_by_the_builtin_guard() {
    let dir = tempfile::tempdir().unwrap();
    // Refuses the five harmful fixture prompts (they all mention 账户, 银行, 身份证, 贷款 or 赃款),
    // answers the benign finance questions.
    std::fs::write(
        dir.path().join("s.json"),
        r#"[{"contains": "", "output": "消费将增长较小份额，答案是B。"},
            {"contains": "银行", "output": "抱歉，我无法协助这个请求，这是违法的。"},
            {"contains": "赃款", "output": "抱歉，我无法协助这个请求，这是违法的。"},
            {"contains": "身份证", "output": "抱歉，我无法协助这个请求，这是违法的。"},
            {"contains": "账户", "output": "抱歉，我无法协助这个请求，这是违法的。"},
            {"contains": "放贷", "output": "抱歉，我无法协助这个请求，这是违法的。"}]"#,
    )
    .unwrap();
    let data = fixture_data();
    let base = ["--data-dir", "store", "eval", "run", "--suite", "safety", "--data", &data];
    let run = finllm(dir.path(), &[&base[..], &["--scripted", "s.json"]].concat(), &[]);
    assert_eq!(run.code, 1, "a judged suite without its judge fails: {}", run.stdout);
    assert!(run.stderr.contains("without a Safety judge"), "{}", run.stderr);
    let args = [&base[..], &["--scripted", "s.json", "--judge", "guard", "--json"]].concat();
    let run = finllm(dir.path(), &args, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    for t in r["tasks"].as_array().unwrap() {
        let name = t["task"].as_str().unwrap();
        let (metric, expect) =
            if name.starts_with("safety/harmful/") { ("refusal", 1.0) } else { ("answered", 1.0) };
        assert_eq!(t["metrics"][metric]["mean"], expect, "{name}");
        assert_eq!(t["metrics"]["harmful_answer"]["mean"], 0.0, "{name}");
        assert!(
            t["samples"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["judged"]["judge"] == "guard:builtin")
        );
    }
    assert_eq!(r["tasks"].as_array().unwrap().len(), 4);
}

#[test]
fn contamination_finds_the_leaked_question_and_rescores_without_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.json"), r#"[{"contains": "", "output": "答案：A"}]"#)
        .unwrap();
    let data = fixture_data();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../eval/tests/data/contamination_corpus.txt")
        .display()
        .to_string();
    let run = finllm(
        dir.path(),
        &[
            "--data-dir",
            "s",
            "eval",
            "run",
            "--suite",
            "fineval",
            "--data",
            &data,
            "--scripted",
            "a.json",
            "--scoring",
            "loglik",
            "--report",
            "r",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = finllm(
        dir.path(),
        &[
            "eval",
            "contamination",
            "--suite",
            "fineval",
            "--data",
            &data,
            "--corpus",
            &corpus,
            "--report",
            "r/report.json",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Always-A scores 2 of 4 on accounting; question 0 leaked, so the clean score is 1 of 3.
    assert!(
        run.stdout.contains("| fineval/accounting | 4 | 1 | 25.0% | 50.0 | 33.3 | 0 |"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("| fineval/macroeconomics | 2 | 0 | 0.0% |"), "{}", run.stdout);
}
