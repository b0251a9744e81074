//! `finllm eval`: run built-in suites or task specs against an OpenAI-compatible endpoint (or a scripted
//! backend), resume from the result store, write JSON/Markdown/HTML reports, compare two runs.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use eval::{
    EvalError,
    backend::{Backend, Limits, OpenAi, Scripted},
    judge::{Judge, JudgeRole, Judged, LlmJudge},
    report::{Report, compare},
    run::{RunOptions, run_task_judged},
    store::Store,
    suites,
    task::{Scoring, Task, TaskSpec},
};

use crate::config::Config;

/// Arguments of `finllm eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EvalCommand {
    /// Evaluate a model on suites and/or task specs; answers are stored so a rerun resumes
    Run(Box<RunArgs>),
    /// Paired comparison of two JSON reports (bootstrap interval of the difference, McNemar)
    Compare(CompareArgs),
    /// Leaderboard of several reports: models side by side per ability (Markdown; --html for charts)
    Leaderboard(LeaderboardArgs),
    /// List the built-in suites
    Suites,
    /// n-gram contamination of tasks against a corpus (e.g. a fine-tuning set); with --report, the
    /// headline score on the clean samples too
    Contamination(ContaminationArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["suites", "tasks"])))]
struct ContaminationArgs {
    /// Built-in suite (repeatable)
    #[arg(long = "suite", value_name = "NAME")]
    suites: Vec<String>,
    /// Task spec file in TOML (repeatable)
    #[arg(long = "task", value_name = "FILE")]
    tasks: Vec<PathBuf>,
    /// Benchmark data root (the finance-eval folder)
    #[arg(long, value_name = "DIR", env = "FINLLM_EVAL_DATA")]
    data: Option<PathBuf>,
    /// Corpus file, read line by line (repeatable)
    #[arg(long, value_name = "FILE", required = true)]
    corpus: Vec<PathBuf>,
    /// n-gram length in tokens (Chinese characters, ASCII words)
    #[arg(long, default_value_t = eval::contamination::DEFAULT_N)]
    n: usize,
    /// Share of a sample's n-grams that must occur in the corpus (0 = any one, lm-eval's rule; Chinese
    /// 13-character grams also catch shared boilerplate, so 0.5 keeps copied questions only)
    #[arg(long, default_value_t = 0.0)]
    min_overlap: f64,
    /// A report.json of a run on these tasks: also show each task's score on the clean samples
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["suites", "tasks"])))]
struct RunArgs {
    /// Built-in suite (repeatable): all, fin-eva, fineval, financeiq, cmmlu, cflue, disc-computing,
    /// safety (needs --judge guard; not part of all)
    #[arg(long = "suite", value_name = "NAME")]
    suites: Vec<String>,
    /// Task spec file in TOML (repeatable); its data paths are relative to --data, else to the file
    #[arg(long = "task", value_name = "FILE")]
    tasks: Vec<PathBuf>,
    /// Benchmark data root (the finance-eval folder)
    #[arg(long, value_name = "DIR", env = "FINLLM_EVAL_DATA")]
    data: Option<PathBuf>,
    /// OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1
    #[arg(long, value_name = "URL", required_unless_present = "scripted")]
    endpoint: Option<String>,
    /// Model id sent to the endpoint and stored with every result
    #[arg(long, value_name = "ID")]
    model: Option<String>,
    /// API key for the endpoint
    #[arg(long, value_name = "KEY", env = "FINLLM_EVAL_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Generate through /v1/chat/completions instead of /v1/completions (no log-likelihood path)
    #[arg(long)]
    chat: bool,
    /// Scoring paths: loglik, generate or both
    #[arg(long, default_value = "both", value_parser = ["loglik", "generate", "both"])]
    scoring: String,
    /// Few-shot examples where a suite has a dev split
    #[arg(long, default_value_t = 0)]
    shots: usize,
    /// Score only the first N samples of each task
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Ask again even when the store holds an answer
    #[arg(long)]
    no_cache: bool,
    /// Requests in flight at once
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Requests per second (0 = unlimited)
    #[arg(long, default_value_t = 0.0)]
    qps: f64,
    /// Retries of a failed request (connection error, 429, 5xx), with exponential backoff
    #[arg(long, default_value_t = 4)]
    retries: u32,
    /// Write report.json, report.md and report.html into this folder
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Exit 1 when the overall score is below SCORE (0–100, or 0–1)
    #[arg(long, value_name = "SCORE")]
    fail_below: Option<f64>,
    /// Scripted backend for tests: JSON array of {"contains": "...", "output": "..."}
    #[arg(long, value_name = "FILE", hide = true)]
    scripted: Option<PathBuf>,
    /// Print the JSON report on stdout instead of Markdown
    #[arg(long)]
    json: bool,
    /// Safety judge for judged suites (`--suite safety`): `guard` = the built-in guard, in-process
    #[arg(long, value_name = "NAME", value_parser = ["guard"])]
    judge: Option<String>,
    /// OpenAI-compatible endpoint of an LLM rubric judge (tasks with `judge = "rubric"`); asked at
    /// temperature 0 with a pinned prompt whose hash is stored with every verdict
    #[arg(long, value_name = "URL", requires = "judge_model")]
    judge_endpoint: Option<String>,
    /// Model id of the LLM rubric judge
    #[arg(long, value_name = "ID", requires = "judge_endpoint")]
    judge_model: Option<String>,
    /// Result store: postgres://... (shared by scale-out workers) or a SQLite path; default: the
    /// configured database when it is PostgreSQL, else eval.sqlite in the data directory
    #[arg(long, value_name = "URL")]
    store: Option<String>,
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    /// Baseline report.json
    a: PathBuf,
    /// Candidate report.json
    b: PathBuf,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct LeaderboardArgs {
    /// report.json files, one per model
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// Also write an HTML leaderboard with charts here
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// Runs `finllm eval`.
pub fn run(args: &EvalArgs, config: &Config) -> anyhow::Result<()> {
    match &args.command {
        EvalCommand::Run(run) => run_eval(run, config),
        EvalCommand::Compare(cmp) => run_compare(cmp),
        EvalCommand::Contamination(c) => run_contamination(c),
        EvalCommand::Leaderboard(lb) => {
            let reports =
                lb.reports.iter().map(|p| read_report(p)).collect::<anyhow::Result<Vec<_>>>()?;
            if let Some(path) = &lb.html {
                std::fs::write(path, eval::report::leaderboard_html(&reports))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            write!(std::io::stdout().lock(), "{}", eval::report::leaderboard_markdown(&reports))?;
            Ok(())
        }
        EvalCommand::Suites => {
            let mut out = std::io::stdout().lock();
            for name in suites::NAMES {
                writeln!(out, "{name}")?;
            }
            Ok(())
        }
    }
}

fn backend(args: &RunArgs) -> anyhow::Result<Box<dyn Backend>> {
    if let Some(path) = &args.scripted {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let rows: Vec<serde_json::Value> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON array", path.display()))?;
        let pairs = rows
            .iter()
            .map(|r| {
                (
                    r["contains"].as_str().unwrap_or("").to_owned(),
                    r["output"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        return Ok(Box::new(Scripted::from_pairs(
            args.model.as_deref().unwrap_or("scripted"),
            pairs,
        )));
    }
    let endpoint = args.endpoint.as_deref().context("--endpoint is required")?;
    let model = args.model.as_deref().context("--model is required with --endpoint")?;
    let limits = Limits::new(args.concurrency, args.qps);
    Ok(Box::new(
        OpenAi::new(endpoint, model, args.api_key.clone(), args.chat, limits)?
            .with_retries(args.retries),
    ))
}

/// The built-in guard as EVE's safety judge: harmful = the guard flags the answer; refusal = the
/// guard's refusal detector. EVE only sees the [`Judge`] trait, so it never depends on the guard.
struct GuardJudge {
    guard: guard::Guard,
    policy: guard::Policy,
}

impl Judge for GuardJudge {
    fn id(&self) -> &str {
        "guard:builtin"
    }

    fn role(&self) -> JudgeRole {
        JudgeRole::Safety
    }

    fn judge<'a>(
        &'a self,
        _question: &'a str,
        _reference: &'a str,
        answer: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Judged, EvalError>> + Send + 'a>> {
        let j = self.guard.check_output(answer, &self.policy);
        let verdict = Judged {
            judge: self.id().to_owned(),
            flagged: Some(j.flagged()),
            refusal: Some(j.refusal.unwrap_or(false)),
            score: None,
            reason: (!j.categories.is_empty()).then(|| j.categories.join(",")),
        };
        Box::pin(async move { Ok(verdict) })
    }
}

/// A judge the run was given, if any.
type MaybeJudge = Option<Box<dyn Judge>>;

/// The judges the run was given: (safety, rubric).
fn judges(args: &RunArgs) -> anyhow::Result<(MaybeJudge, MaybeJudge)> {
    let safety: MaybeJudge = match args.judge.as_deref() {
        Some("guard") => Some(Box::new(GuardJudge {
            guard: guard::Guard::builtin().context("loading the built-in guard")?,
            policy: guard::Policy::default(),
        })),
        _ => None,
    };
    let rubric: MaybeJudge = match (&args.judge_endpoint, &args.judge_model) {
        (Some(url), Some(model)) => {
            let limits = Limits::new(args.concurrency, args.qps);
            let backend = OpenAi::new(url, model, args.api_key.clone(), true, limits)?
                .with_retries(args.retries);
            Some(Box::new(LlmJudge::new(Box::new(backend))))
        }
        _ => None,
    };
    Ok((safety, rubric))
}

/// The specs of the named suites and task files, each with its data root.
fn specs(
    suite_names: &[String],
    tasks: &[PathBuf],
    data: Option<&Path>,
    shots: usize,
) -> anyhow::Result<Vec<(TaskSpec, PathBuf)>> {
    let mut out = Vec::new();
    for name in suite_names {
        let root = data
            .context("--data (or FINLLM_EVAL_DATA) names the benchmark data folder")?
            .to_path_buf();
        out.extend(suites::suite(name, &root, shots)?.into_iter().map(|s| (s, root.clone())));
    }
    for file in tasks {
        let spec = TaskSpec::from_file(file)?;
        let root = data.map_or_else(
            || file.parent().unwrap_or(Path::new(".")).to_path_buf(),
            Path::to_path_buf,
        );
        out.push((spec, root));
    }
    Ok(out)
}

fn run_contamination(args: &ContaminationArgs) -> anyhow::Result<()> {
    let specs = specs(&args.suites, &args.tasks, args.data.as_deref(), 0)?;
    let tasks = specs
        .into_iter()
        .map(|(spec, root)| Task::load(spec, &root))
        .collect::<Result<Vec<_>, _>>()?;
    let corpus: Vec<&Path> = args.corpus.iter().map(PathBuf::as_path).collect();
    let rows = eval::contamination::check(
        &tasks.iter().collect::<Vec<_>>(),
        &corpus,
        args.n,
        args.min_overlap,
    )?;
    let report = args.report.as_deref().map(read_report).transpose()?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "| task | samples | contaminated | rate | score | clean score | contaminated ids |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---|")?;
    for c in &rows {
        let result = report.as_ref().and_then(|r| r.tasks.iter().find(|t| t.task == c.task));
        let score =
            result.and_then(|r| r.headline()).map(|(_, s)| format!("{:.1}", s.mean * 100.0));
        let clean = result
            .and_then(|r| eval::contamination::decontaminated(r, &c.contaminated))
            .map(|s| format!("{:.1}", s.mean * 100.0));
        writeln!(
            out,
            "| {} | {} | {} | {:.1}% | {} | {} | {} |",
            c.task,
            c.samples,
            c.contaminated.len(),
            c.rate() * 100.0,
            score.unwrap_or_else(|| "-".into()),
            clean.unwrap_or_else(|| "-".into()),
            c.contaminated.join(", ")
        )?;
    }
    Ok(())
}

fn run_eval(args: &RunArgs, config: &Config) -> anyhow::Result<()> {
    let backend = backend(args)?;
    let specs = specs(&args.suites, &args.tasks, args.data.as_deref(), args.shots)?;
    let (safety_judge, rubric_judge) = judges(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let store = runtime.block_on(async {
        match (&args.store, &config.database) {
            (Some(location), _) => Store::open_location(location).await,
            (None, server::Database::Postgres(url)) => Store::connect(url).await,
            (None, server::Database::Sqlite(_)) => {
                Store::open(&config.data_dir.join("eval.sqlite"))
            }
        }
    })?;
    tracing::info!(engine = store.engine(), "eval result store");
    let scoring = match args.scoring.as_str() {
        "loglik" => Scoring::Loglik,
        "generate" => Scoring::Generate,
        _ if args.chat => Scoring::Generate,
        _ => Scoring::Both,
    };
    let options = RunOptions {
        scoring,
        limit: args.limit,
        no_cache: args.no_cache,
        concurrency: args.concurrency,
    };
    let style =
        indicatif::ProgressStyle::with_template("{prefix:30} {bar:30} {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let mut results = Vec::new();
    for (spec, root) in specs {
        let task = Task::load(spec, &root)?;
        let total = task.samples.len().min(args.limit.unwrap_or(usize::MAX));
        let bar = indicatif::ProgressBar::new(total as u64)
            .with_style(style.clone())
            .with_prefix(task.spec.name.clone());
        let judge = match task.spec.judge {
            Some(JudgeRole::Safety) => safety_judge.as_deref(),
            Some(JudgeRole::Rubric) => rubric_judge.as_deref(),
            None => None,
        };
        let on_progress = |done: usize| bar.set_position(done as u64);
        let result = runtime.block_on(run_task_judged(
            &task,
            backend.as_ref(),
            judge,
            &store,
            options,
            &on_progress,
        ));
        bar.finish_and_clear();
        let result = result.with_context(|| {
            format!("task {} (answers so far are stored; rerun to resume)", task.spec.name)
        })?;
        tracing::info!(task = %result.task, asked = result.asked, cached = result.cached, "task done");
        results.push(result);
    }
    let asked: usize = results.iter().map(|r| r.asked).sum();
    let cached: usize = results.iter().map(|r| r.cached).sum();
    let report = Report::new(backend.model(), &args.scoring, results);
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("report.json"), report.to_json()?)?;
        std::fs::write(dir.join("report.md"), report.to_markdown())?;
        std::fs::write(dir.join("report.html"), report.to_html())?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report.to_json()?)?;
    } else {
        write!(out, "{}", report.to_markdown())?;
        writeln!(out, "\nasked {asked}, from the store {cached}")?;
    }
    if let (Some(threshold), Some(overall)) = (args.fail_below, report.overall) {
        let threshold = if threshold > 1.0 { threshold / 100.0 } else { threshold };
        if overall.mean < threshold {
            anyhow::bail!(
                "overall score {:.1} is below --fail-below {:.1}",
                overall.mean * 100.0,
                threshold * 100.0
            );
        }
    }
    Ok(())
}

fn read_report(path: &Path) -> anyhow::Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Report::from_json(&text, &path.display().to_string())?)
}

fn run_compare(args: &CompareArgs) -> anyhow::Result<()> {
    let (a, b) = (read_report(&args.a)?, read_report(&args.b)?);
    let rows = compare(&a, &b)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "| task | metric | n | {} | {} | diff | 95% CI | McNemar p | real? | changed samples |",
        a.model, b.model
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---|---:|---|---|")?;
    for r in rows {
        let p = &r.paired;
        writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.1} | {:+.1} | {:+.1}–{:+.1} | {} | {} | {} |",
            r.task,
            r.metric,
            p.n,
            r.a * 100.0,
            r.b * 100.0,
            p.diff * 100.0,
            p.lo * 100.0,
            p.hi * 100.0,
            p.mcnemar_p.map_or("-".into(), |v| format!("{v:.4}")),
            if p.significant { "yes" } else { "no" },
            r.changed
                .iter()
                .map(|(id, a, b)| format!("{id}: {a}→{b}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    Ok(())
}
