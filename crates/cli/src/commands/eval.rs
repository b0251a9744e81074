//! `finllm eval`: run built-in suites or task specs against an OpenAI-compatible endpoint (or a scripted
//! backend), resume from the result store, write JSON/Markdown/HTML reports, compare two runs.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use eval::{
    backend::{Backend, Limits, OpenAi, Scripted},
    report::{Report, compare},
    run::{RunOptions, run_task},
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
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["suites", "tasks"])))]
struct RunArgs {
    /// Built-in suite (repeatable): all, fin-eva, fineval, financeiq, cmmlu, cflue, disc-computing
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

fn specs(args: &RunArgs) -> anyhow::Result<Vec<(TaskSpec, PathBuf)>> {
    let mut out = Vec::new();
    for name in &args.suites {
        let root = args
            .data
            .clone()
            .context("--data (or FINLLM_EVAL_DATA) names the benchmark data folder")?;
        out.extend(suites::suite(name, &root, args.shots)?.into_iter().map(|s| (s, root.clone())));
    }
    for file in &args.tasks {
        let spec = TaskSpec::from_file(file)?;
        let root = args
            .data
            .clone()
            .unwrap_or_else(|| file.parent().unwrap_or(Path::new(".")).to_path_buf());
        out.push((spec, root));
    }
    Ok(out)
}

fn run_eval(args: &RunArgs, config: &Config) -> anyhow::Result<()> {
    let backend = backend(args)?;
    let specs = specs(args)?;
    let store = Store::open(&config.data_dir.join("eval.sqlite"))?;
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
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
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
        let result =
            runtime.block_on(run_task(&task, backend.as_ref(), &store, options, &|done| {
                bar.set_position(done as u64);
            }));
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
