//! `finllm guard`: the 天鉴 guard from the command line — check one text, scan a JSONL file, train the
//! classifier from the shared datasets and the crate's own data, and evaluate against held-out splits.

use std::{
    io::{BufRead, Write},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context;
use guard::{
    Guard, Policy,
    dataset::{Corpus, Example, Split, attack_variants, split_of},
    eval,
    guard::Direction,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `finllm guard`.
#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    #[command(subcommand)]
    command: GuardCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GuardCommand {
    /// Judge one text and print the judgement as JSON
    Check(CheckArgs),
    /// Judge every line of a JSONL file (field `text`, or a plain string per line); JSON lines out
    Scan(ScanArgs),
    /// Rebuild the classifier from the shared datasets and the guard's own data
    Train(TrainArgs),
    /// Evaluate on a labelled JSONL file: recall, precision, FPR, AUPRC, confusion, latency (HTML + JSON)
    Eval(EvalArgs),
}

#[derive(Debug, clap::Args)]
struct ModelArgs {
    /// Model file [default: the model committed with the guard crate]
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Policy TOML file, or `finance` for the built-in financial-compliance pack [default: built-in default]
    #[arg(long, value_name = "FILE")]
    policy: Option<String>,
    /// LLM judge for the uncertain band: an OpenAI-compatible base URL ending in /v1 (key from
    /// FINLLM_GUARD_JUDGE_KEY)
    #[arg(long, value_name = "URL")]
    judge_url: Option<String>,
    /// Model name sent to the judge endpoint
    #[arg(long, value_name = "NAME", default_value = "default", requires = "judge_url")]
    judge_model: String,
    /// How the judge model is asked: `instructed` (any chat model, given our instructions; JSON
    /// answer), `qwen3guard` (Qwen3Guard-Gen) or `llama-guard` (Llama Guard 3), which get the bare
    /// text and answer in their own formats
    #[arg(long, value_name = "STYLE", default_value = "instructed", requires = "judge_url")]
    judge_style: guard::JudgeStyle,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The text to judge
    text: String,
    /// Judge it as a model answer (output guard) instead of a request
    #[arg(long)]
    output: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Debug, clap::Args)]
struct ScanArgs {
    /// JSONL file: objects with a `text` field (and optionally `direction`), or JSON strings
    file: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// The shared data folder (with safety/ and finance-eval/) [default: ../shared/data from the working directory or the repository]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Where to write the model [default: the guard crate's model/guard.bin]
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Where to write the held-out evaluation set (test split plus attack variants)
    #[arg(long, value_name = "FILE", default_value = "target/guard/heldout.jsonl")]
    heldout: PathBuf,
    /// Where to write the validation set (calibration split plus its attack variants): tune
    /// thresholds and rules on this file, never on the held-out one
    #[arg(long, value_name = "FILE", default_value = "target/guard/validation.jsonl")]
    validation: PathBuf,
    /// Passes over the training data
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// Hidden units of the model's deep part (0: linear only, the default: on the validation split a
    /// 32–128-unit hidden layer matched the linear model's AUPRC and did not beat it)
    #[arg(long, default_value_t = 0)]
    hidden: usize,
    /// AdaGrad learning rate of the deep part
    #[arg(long, default_value_t = 0.05)]
    deep_learning_rate: f32,
    /// AdaGrad learning rate of the linear part
    #[arg(long, default_value_t = 0.5)]
    learning_rate: f32,
    /// L2 penalty per update
    #[arg(long, default_value_t = 1e-6)]
    l2: f32,
    /// Largest weight given to the positive class of a rare head
    #[arg(long, default_value_t = 8.0)]
    max_positive_weight: f32,
    /// Labelled JSONL rows added to the training data (repeatable), e.g. from `finllm redteam export`;
    /// they are split like the rest (by key: a fifth stays in the held-out test split)
    #[arg(long, value_name = "FILE")]
    extra: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// Labelled JSONL (fields text, verdict, categories, intents, direction, group), e.g. from `guard train`
    file: PathBuf,
    /// Folder for report.json and report.html
    #[arg(long, value_name = "DIR", default_value = "target/guard")]
    report: PathBuf,
    /// Seconds spent on the throughput and long-input latency benchmark (0 skips it)
    #[arg(long, default_value_t = 5)]
    bench_seconds: u64,
    #[command(flatten)]
    model: ModelArgs,
}

/// Runs `finllm guard …`.
pub fn run(args: &GuardArgs) -> anyhow::Result<()> {
    match &args.command {
        GuardCommand::Check(a) => check(a),
        GuardCommand::Scan(a) => scan(a),
        GuardCommand::Train(a) => train(a),
        GuardCommand::Eval(a) => evaluate(a),
    }
}

fn load(args: &ModelArgs) -> anyhow::Result<(Guard, Policy)> {
    let guard = match &args.model {
        Some(path) => Guard::load(path)
            .with_context(|| "loading the guard model (rebuild it with `finllm guard train`)")?,
        None => Guard::builtin()?,
    };
    let guard = match &args.judge_url {
        Some(url) => {
            let key = std::env::var("FINLLM_GUARD_JUDGE_KEY").ok().filter(|k| !k.is_empty());
            guard.with_judge(std::sync::Arc::new(
                guard::OpenAiJudge::new(url, &args.judge_model, key).with_style(args.judge_style),
            ))
        }
        None => guard,
    };
    let policy = match args.policy.as_deref() {
        None => Policy::default(),
        Some("finance") => Policy::finance()?,
        Some(file) => {
            let source =
                std::fs::read_to_string(file).with_context(|| format!("reading policy {file}"))?;
            Policy::parse(file, &source).map_err(|e| match e {
                // A bad policy is bad configuration: exit code 2, with its file and line.
                guard::GuardError::Invalid { file, line, message } => {
                    anyhow::Error::from(crate::config::ConfigError::Syntax {
                        path: file.into(),
                        line,
                        message,
                    })
                }
                other => other.into(),
            })?
        }
    };
    Ok((guard, policy))
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let (guard, policy) = load(&args.model)?;
    let direction = if args.output { Direction::Output } else { Direction::Input };
    let judgement = guard.judge(&args.text, direction, &policy);
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &judgement)?;
    writeln!(out)?;
    Ok(())
}

fn scan(args: &ScanArgs) -> anyhow::Result<()> {
    let (guard, policy) = load(&args.model)?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(file).lines().collect::<Result<_, _>>()?;
    let bar = progress(lines.len() as u64, "scanning");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (i, line) in lines.iter().enumerate() {
        bar.inc(1);
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", args.file.display(), i + 1))?;
        let (text, direction) = match &value {
            serde_json::Value::String(s) => (s.as_str(), Direction::Input),
            other => {
                let text = other.get("text").and_then(|t| t.as_str()).with_context(|| {
                    format!("{}:{}: no `text` field", args.file.display(), i + 1)
                })?;
                let output = other.get("direction").and_then(|d| d.as_str()) == Some("output");
                (text, if output { Direction::Output } else { Direction::Input })
            }
        };
        let judgement = guard.judge(text, direction, &policy);
        let row = serde_json::json!({"line": i + 1, "flagged": judgement.flagged(), "judgement": judgement});
        serde_json::to_writer(&mut out, &row)?;
        writeln!(out)?;
    }
    bar.finish_and_clear();
    out.flush()?;
    Ok(())
}

fn default_data_dir() -> PathBuf {
    let from_cwd = PathBuf::from("../shared/data");
    if from_cwd.is_dir() {
        return from_cwd;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

#[allow(clippy::print_stderr, reason = "training progress goes to stderr")]
fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    let taxonomy = guard::Taxonomy::builtin()?;
    let lexicon = guard::lexicon::Lexicon::builtin(&taxonomy)?;
    let (mut corpus, warnings) = Corpus::load(&data, &taxonomy)?;
    for file in &args.extra {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let e: Example = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a labelled example", file.display(), i + 1))?;
            corpus.examples.push(e);
        }
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let trainable =
        corpus.examples.iter().filter(|e| e.trainable && split_of(e) != Split::Test).count();
    eprintln!(
        "loaded {} examples from {} ({} trainable outside the test split)",
        corpus.examples.len(),
        data.display(),
        trainable
    );
    let manifest = serde_json::json!({
        "built_by": "finllm guard train",
        "data_dir": "../shared/data",
        "files": corpus.provenance.files.iter().map(|(f, n, l, h)| serde_json::json!({"file": f, "records": n, "license": l, "fnv1a64": h})).collect::<Vec<_>>(),
        "split": "fnv1a64(key or text) % 10: 0-1 test (never trained), 2 calibration, 3-9 train; NC-licensed sources evaluation only",
        "rebuild": format!("finllm guard train --data ../shared/data --epochs {} --hidden {} --deep-learning-rate {} --learning-rate {} --l2 {} --max-positive-weight {} (from the repository root, with the shared data folder next to it)", args.epochs, args.hidden, args.deep_learning_rate, args.learning_rate, args.l2, args.max_positive_weight),
    });
    let config = guard::train::TrainConfig {
        epochs: args.epochs,
        hidden: args.hidden,
        deep_learning_rate: args.deep_learning_rate,
        learning_rate: args.learning_rate,
        l2: args.l2,
        max_positive_weight: args.max_positive_weight,
        ..Default::default()
    };
    let bar = progress(config.epochs as u64, "training");
    let start = Instant::now();
    let model = guard::train::train(
        &corpus.examples,
        &taxonomy,
        &lexicon,
        &config,
        manifest,
        |epoch, loss| {
            bar.set_position(epoch as u64);
            bar.set_message(format!("loss {loss:.4}"));
        },
    );
    bar.finish_and_clear();
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(guard::DEFAULT_MODEL_PATH));
    model.save(&out)?;
    let manifest_path = out.with_extension("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&model.header.manifest)? + "\n")?;
    eprintln!(
        "trained in {:.1}s; wrote {} and {}",
        start.elapsed().as_secs_f64(),
        out.display(),
        manifest_path.display()
    );
    let test: Vec<Example> = corpus
        .examples
        .iter()
        .filter(|e| split_of(e) == Split::Test || !e.trainable)
        .cloned()
        .collect();
    let n = write_with_attacks(&args.heldout, &test, &corpus.templates)?;
    eprintln!(
        "wrote {n} held-out examples to {} (evaluate with `finllm guard eval`)",
        args.heldout.display()
    );
    let calibration: Vec<Example> = corpus
        .examples
        .iter()
        .filter(|e| split_of(e) == Split::Calibrate && e.trainable)
        .cloned()
        .collect();
    let n = write_with_attacks(&args.validation, &calibration, &corpus.templates)?;
    eprintln!("wrote {n} validation examples to {}", args.validation.display());
    Ok(())
}

/// Writes `examples` and their attack variants as JSON lines; returns how many were written.
fn write_with_attacks(
    path: &Path,
    examples: &[Example],
    templates: &[String],
) -> anyhow::Result<usize> {
    let mut all = examples.to_vec();
    all.extend(attack_variants(examples, templates));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for e in &all {
        serde_json::to_writer(&mut file, e)?;
        writeln!(file)?;
    }
    file.flush()?;
    Ok(all.len())
}

#[allow(clippy::print_stderr, reason = "benchmark notes go to stderr")]
fn evaluate(args: &EvalArgs) -> anyhow::Result<()> {
    let (guard, policy) = load(&args.model)?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let mut examples = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let e: Example = serde_json::from_str(line).with_context(|| {
            format!("{}:{}: not a labelled example", args.file.display(), i + 1)
        })?;
        examples.push(e);
    }
    let bar = progress(examples.len() as u64, "evaluating");
    let scored = eval::score_all(&guard, &policy, &examples, || bar.inc(1));
    bar.finish_and_clear();
    let taxonomy = guard.taxonomy();
    let categories: Vec<String> = taxonomy.categories.iter().map(|c| c.id.clone()).collect();
    let intents: Vec<String> = taxonomy.intents.iter().map(|i| i.id.clone()).collect();
    let mut report = eval::report(&scored, &categories, &intents);
    if args.bench_seconds > 0 {
        report.performance = benchmark(&guard, &policy, &examples, args.bench_seconds);
    }
    std::fs::create_dir_all(&args.report)?;
    std::fs::write(args.report.join("report.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(args.report.join("report.html"), eval::html(&report))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} examples; latency p50 {} µs, p99 {} µs",
        report.examples, report.latency.p50, report.latency.p99
    )?;
    for (name, t) in &report.targets {
        let value = t.value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4}"));
        let met = match t.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        writeln!(
            out,
            "{name:<34} {value:>8}  target {} {:<5} n={:<6} {met}",
            t.direction, t.target, t.n
        )?;
    }
    for g in &report.groups {
        writeln!(
            out,
            "  group {:<28} n={:<5} gold {:<13} safe {:.3} controversial {:.3} unsafe {:.3}",
            g.group,
            g.n,
            g.gold.as_str(),
            g.safe,
            g.controversial,
            g.unsafe_
        )?;
    }
    for (k, v) in &report.performance {
        writeln!(out, "  {k:<34} {v:.1}")?;
    }
    writeln!(out, "report: {}", args.report.join("report.html").display())?;
    Ok(())
}

/// Latency on 2,000-character inputs (one thread) and throughput of ordinary inputs on two threads.
fn benchmark(
    guard: &Guard,
    policy: &Policy,
    examples: &[Example],
    seconds: u64,
) -> std::collections::BTreeMap<String, f64> {
    let mut perf = std::collections::BTreeMap::new();
    let mut long_inputs = Vec::new();
    let mut buf = String::new();
    for e in examples {
        buf.push_str(&e.text);
        buf.push('\n');
        if buf.chars().count() >= 2000 {
            long_inputs.push(buf.chars().take(2000).collect::<String>());
            buf.clear();
        }
        if long_inputs.len() >= 200 {
            break;
        }
    }
    let budget = std::time::Duration::from_secs(seconds);
    let mut micros = Vec::new();
    let start = Instant::now();
    'outer: loop {
        for input in &long_inputs {
            let t = Instant::now();
            let _ = guard.check_input(input, policy);
            micros.push(t.elapsed().as_micros() as u64);
            if start.elapsed() > budget / 2 && micros.len() >= long_inputs.len() {
                break 'outer;
            }
        }
        if long_inputs.is_empty() {
            break;
        }
    }
    let lat = eval::latency(micros.clone());
    perf.insert("latency_2000_chars_p50_us".into(), lat.p50 as f64);
    perf.insert("latency_2000_chars_p99_us".into(), lat.p99 as f64);
    perf.insert("latency_2000_chars_samples".into(), micros.len() as f64);
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let start = Instant::now();
    let total: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|k| {
                let texts = &texts;
                s.spawn(move || {
                    let mut n = 0;
                    while start.elapsed() < budget / 2 {
                        let _ = guard.check_input(texts[(n * 2 + k) % texts.len().max(1)], policy);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    perf.insert("checks_per_second_2_threads".into(), total as f64 / start.elapsed().as_secs_f64());
    perf
}

fn progress(len: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {msg} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what);
    bar
}
