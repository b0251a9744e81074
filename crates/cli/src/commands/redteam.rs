//! `finllm redteam`: 蚁鉴 from the command line — run a campaign file against a target (resumable,
//! shareable by several worker processes through PostgreSQL), show its status, write its report
//! (with a CI gate), export its successful attacks as guard training data, list the risk library and
//! the strategies, and measure the harness's own throughput and CPU use.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use redteam::{
    RedteamError,
    campaign::{self, CampaignConfig},
    export,
    judge::Panel,
    pair::Attacker,
    report::{self, Report},
    risks::RiskLibrary,
    runner::{self, Progress, RunOptions},
    store::Store,
    strategy,
    target::{self, TargetKind},
};

use crate::config::{Config, ConfigError};

/// Arguments of `finllm redteam`.
#[derive(Debug, clap::Args)]
pub struct RedteamArgs {
    #[command(subcommand)]
    command: RedteamCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RedteamCommand {
    /// Run (or resume) a campaign file; several processes may run the same campaign on one store
    Run(RunArgs),
    /// Progress of the campaigns in the store (all, or the named one)
    Status(StatusArgs),
    /// Write a campaign's report: HTML with charts, JSON, JSONL of every attempt, judge disagreements
    Report(ReportArgs),
    /// Write a campaign's successful attacks as labelled guard training data (JSONL for `guard train --extra`)
    Export(ExportArgs),
    /// List the leaf risks (all, or those matching the patterns)
    ListRisks(ListRisksArgs),
    /// List the attack strategies
    ListStrategies,
    /// Harness throughput against the guard alone: attacks per second and the harness's CPU use
    Bench(BenchArgs),
}

#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// Campaign store: a SQLite path or a postgres:// URL [default: <data_dir>/redteam.sqlite]
    #[arg(long, value_name = "URL")]
    database: Option<String>,
}

#[derive(Debug, clap::Args)]
struct GuardArgs {
    /// Guard model file for the guard target and the guard_output judge [default: the built-in model]
    #[arg(long, value_name = "PATH")]
    guard_model: Option<PathBuf>,
    /// Guard policy TOML, or `finance` for the built-in financial-compliance pack [default: built-in default]
    #[arg(long, value_name = "FILE")]
    guard_policy: Option<String>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The campaign file (TOML)
    campaign: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Attempts in flight in this process [default: the campaign's budget.concurrency]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Seconds a claim stays valid; a killed worker's attempts are taken over after this
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    lease_secs: f64,
    /// Attempts claimed per store round trip [default: 16 against the guard, else 1]
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
    /// Stop claiming after this many seconds [default: the campaign's budget.max_time_secs]
    #[arg(long, value_name = "SECS")]
    max_time: Option<f64>,
    /// Put attempts that ended in a target error back in the queue first
    #[arg(long)]
    retry_errors: bool,
    /// Return when nothing is claimable, instead of waiting for other workers' claims to finish or expire
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    guard: GuardArgs,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// Campaign name [default: every campaign]
    name: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// Campaign name
    name: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Folder for report.html, report.json, attempts.jsonl, disagreements.jsonl [default: target/redteam/<name>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A previous run's report.json to compare with
    #[arg(long, value_name = "FILE")]
    against: Option<PathBuf>,
    /// Exit with code 1 when the overall attack success rate is above RATE (0 to 1): a CI gate
    #[arg(long, value_name = "RATE")]
    fail_above: Option<f64>,
    /// Successful attacks shown with their transcripts
    #[arg(long, value_name = "N", default_value_t = 20)]
    top: usize,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Campaign name
    name: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Output JSONL file
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ListRisksArgs {
    /// Selection patterns (`*`, a category such as `CRI`, a TC260 risk such as `A1h`, `fin.*`)
    patterns: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Seconds to run
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Attempts in flight
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Strategies and chains to use (repeatable) [default: every strategy]
    #[arg(long = "strategy", value_name = "CHAIN")]
    strategies: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Runs `finllm redteam …`.
pub fn run(args: &RedteamArgs, config: &Config) -> anyhow::Result<()> {
    match &args.command {
        RedteamCommand::Run(a) => run_campaign(a, config),
        RedteamCommand::Status(a) => status(a, config),
        RedteamCommand::Report(a) => write_report(a, config),
        RedteamCommand::Export(a) => export_rows(a, config),
        RedteamCommand::ListRisks(a) => list_risks(a),
        RedteamCommand::ListStrategies => list_strategies(),
        RedteamCommand::Bench(a) => bench(a, config),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn location(store: &StoreArgs, config: &Config) -> String {
    store
        .database
        .clone()
        .unwrap_or_else(|| config.data_dir.join("redteam.sqlite").display().to_string())
}

/// A campaign-file problem is bad configuration (exit code 2), named by file and line.
fn config_error(e: RedteamError) -> anyhow::Error {
    match e {
        RedteamError::Config { path, message } => {
            let (file, line) = match path.rsplit_once(':') {
                Some((file, line)) if line.parse::<usize>().is_ok() => {
                    (file.to_owned(), line.parse().unwrap_or(1))
                }
                _ => (path, 1),
            };
            ConfigError::Syntax { path: file.into(), line, message }.into()
        }
        RedteamError::Unknown { kind, id } => ConfigError::Syntax {
            path: "campaign".into(),
            line: 1,
            message: format!("unknown {kind} `{id}`"),
        }
        .into(),
        other => other.into(),
    }
}

fn load_guard(args: &GuardArgs) -> anyhow::Result<(Arc<guard::Guard>, guard::Policy)> {
    let guard = match &args.guard_model {
        Some(path) => guard::Guard::load(path)?,
        None => guard::Guard::builtin()?,
    };
    let policy = match args.guard_policy.as_deref() {
        None => guard::Policy::default(),
        Some("finance") => guard::Policy::finance()?,
        Some(file) => {
            let source =
                std::fs::read_to_string(file).with_context(|| format!("reading policy {file}"))?;
            guard::Policy::parse(file, &source)?
        }
    };
    Ok((Arc::new(guard), policy))
}

/// Reads an API key from the environment variable a campaign file names.
fn api_key(var: Option<&String>) -> anyhow::Result<Option<String>> {
    match var {
        None => Ok(None),
        Some(var) => match std::env::var(var) {
            Ok(key) => Ok(Some(key)),
            Err(_) => Err(ConfigError::Syntax {
                path: "campaign".into(),
                line: 1,
                message: format!("api_key_env names `{var}`, which is not set"),
            }
            .into()),
        },
    }
}

fn load_campaign(path: &Path) -> anyhow::Result<CampaignConfig> {
    let source = std::fs::read_to_string(path)
        .with_context(|| format!("reading campaign {}", path.display()))?;
    let mut campaign =
        CampaignConfig::parse(&path.display().to_string(), &source).map_err(config_error)?;
    campaign.target.api_key = api_key(campaign.target.api_key_env.as_ref())?;
    if let Some(llm) = campaign.judges.llm.as_mut() {
        llm.endpoint.api_key = api_key(llm.endpoint.api_key_env.as_ref())?;
    }
    if let Some(attacker) = campaign.attacker.as_mut() {
        attacker.endpoint.api_key = api_key(attacker.endpoint.api_key_env.as_ref())?;
    }
    Ok(campaign)
}

fn progress_bar(total: u64, at: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("attacks [{bar:40}] {pos}/{len} {per_sec} {msg} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(at);
    bar
}

/// CPU seconds (user, system) this process has used, from /proc/self/stat (Linux; zero elsewhere).
/// The kernel counts in clock ticks of 1/100 s on every Linux configuration finllm ships for.
fn cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return (0.0, 0.0) };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else { return (0.0, 0.0) };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (tick(11), tick(12))
}

/// Everything a run needs, built from a campaign file.
async fn prepare(
    campaign: &CampaignConfig,
    config_json: &str,
    store: Arc<Store>,
    guard: &GuardArgs,
) -> anyhow::Result<Arc<runner::Context>> {
    let library = RiskLibrary::builtin()?;
    let seeds = campaign::resolve_seeds(campaign, &library).map_err(config_error)?;
    let chains = campaign::resolve_chains(&campaign.strategies.chains).map_err(config_error)?;
    let plan = campaign::plan(&seeds, &chains, campaign.seed, campaign.budget.max_attacks);
    if plan.is_empty() {
        anyhow::bail!(
            "campaign `{}` plans no attempts (no goals in the chosen languages?)",
            campaign.name
        );
    }
    store.register(&campaign.name, config_json, &plan).await?;
    let needs_guard = campaign.target.kind == TargetKind::Guard
        || campaign.judges.judges.iter().any(|j| j == "guard_output")
        || campaign.judges.judges.is_empty();
    let guard = if needs_guard { Some(load_guard(guard)?) } else { None };
    let target = target::build(&campaign.target, guard.clone()).map_err(config_error)?;
    let panel =
        Panel::build(&campaign.judges, campaign.target.kind == TargetKind::Guard, guard.as_ref())
            .map_err(config_error)?;
    let attacker = campaign.attacker.as_ref().map(Attacker::new).transpose()?;
    Ok(Arc::new(runner::Context {
        store,
        campaign: campaign.name.clone(),
        target,
        panel,
        attacker,
    }))
}

fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}-{}", std::process::id())
}

#[allow(clippy::print_stderr, reason = "run notes go to stderr")]
fn run_campaign(args: &RunArgs, config: &Config) -> anyhow::Result<()> {
    let campaign = load_campaign(&args.campaign)?;
    let config_json = serde_json::to_string(&campaign)?;
    let location = location(&args.store, config);
    let runtime = runtime()?;
    let guard_target = campaign.target.kind == TargetKind::Guard;
    let options = RunOptions {
        worker: worker_id(),
        concurrency: args.workers.unwrap_or(campaign.budget.concurrency).max(1),
        batch: args.batch.unwrap_or(if guard_target { 16 } else { 1 }).max(1),
        lease: Duration::from_secs_f64(args.lease_secs.clamp(0.1, 86_400.0)),
        max_time: args
            .max_time
            .or((campaign.budget.max_time_secs > 0.0).then_some(campaign.budget.max_time_secs))
            .map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e9))),
        max_tokens: campaign.budget.max_tokens,
        wait_for_leases: !args.no_wait,
    };
    let (summary, counts, planned) = runtime.block_on(async {
        let store = Arc::new(Store::open_location(&location).await?);
        let ctx = prepare(&campaign, &config_json, Arc::clone(&store), &args.guard).await?;
        if args.retry_errors {
            let n = store.requeue_errors(&campaign.name).await?;
            eprintln!("requeued {n} attempts that ended in an error");
        }
        let before = store.counts(&campaign.name).await?;
        eprintln!(
            "campaign {}: {} attempts planned, {} recorded, target {} ({} store, worker {})",
            campaign.name,
            before.planned,
            before.done + before.error,
            ctx.target.describe(),
            store.engine(),
            options.worker
        );
        let progress = Arc::new(Progress::default());
        let bar = progress_bar(before.planned, before.done + before.error);
        let ticker = {
            let (bar, progress) = (bar.clone(), Arc::clone(&progress));
            let base = before.done + before.error;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let recorded = progress.recorded.load(Ordering::Relaxed);
                    bar.set_position(base + recorded);
                    bar.set_message(format!(
                        "successes {} errors {}",
                        progress.success.load(Ordering::Relaxed),
                        progress.errors.load(Ordering::Relaxed)
                    ));
                }
            })
        };
        let summary = runner::run(Arc::clone(&ctx), options.clone(), progress, before.tokens).await;
        ticker.abort();
        bar.finish_and_clear();
        let counts = store.counts(&campaign.name).await?;
        anyhow::Ok((summary?, counts, before.planned))
    })?;
    if summary.stop == runner::Stop::TargetDown {
        anyhow::bail!(
            "the target failed {} attempts in a row, so the run stopped (the rest stay queued; rerun with \
             --retry-errors once it is fixed); last error: {}",
            runner::TARGET_DOWN_AFTER,
            summary.last_error.as_deref().unwrap_or("?")
        );
    }
    let (user, system) = cpu_seconds();
    let mut out = std::io::stdout().lock();
    let rate = summary.recorded as f64 / summary.seconds.max(1e-9);
    writeln!(
        out,
        "recorded {} attempts ({} successes, {} target errors) in {:.1} s: {:.1} attempts/s ({:.0}/day); stop: {}",
        summary.recorded,
        summary.success,
        summary.errors,
        summary.seconds,
        rate,
        rate * 86_400.0,
        serde_json::to_value(summary.stop)?.as_str().unwrap_or_default()
    )?;
    let judged = counts.done;
    writeln!(
        out,
        "campaign {}: {}/{} recorded ({} errors, {} pending, {} claimed, {} resent after a lost claim); ASR {:.1}% ({} of {})",
        campaign.name,
        counts.done + counts.error,
        planned,
        counts.error,
        counts.pending,
        counts.claimed,
        counts.reclaims,
        if judged == 0 { 0.0 } else { counts.success as f64 * 100.0 / judged as f64 },
        counts.success,
        judged
    )?;
    writeln!(
        out,
        "harness CPU: user {user:.2} s, system {system:.2} s ({:.0}% of one core over the run)",
        (user + system) * 100.0 / summary.seconds.max(1e-9)
    )?;
    Ok(())
}

fn status(args: &StatusArgs, config: &Config) -> anyhow::Result<()> {
    let location = location(&args.store, config);
    let runtime = runtime()?;
    let rows = runtime.block_on(async {
        let store = Store::open_location(&location).await?;
        let names = match &args.name {
            Some(n) => vec![n.clone()],
            None => store.campaigns().await?,
        };
        let mut rows = Vec::new();
        for name in names {
            if store.campaign(&name).await?.is_none() {
                return Err(RedteamError::NoCampaign(name).into());
            }
            rows.push((name.clone(), store.counts(&name).await?));
        }
        anyhow::Ok(rows)
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<32} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "campaign", "planned", "done", "errors", "pending", "claimed", "resent", "ASR"
    )?;
    for (name, c) in rows {
        let asr = if c.done == 0 { 0.0 } else { c.success as f64 * 100.0 / c.done as f64 };
        writeln!(
            out,
            "{name:<32} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6.1}%",
            c.planned, c.done, c.error, c.pending, c.claimed, c.reclaims, asr
        )?;
    }
    Ok(())
}

fn write_lines(
    path: &Path,
    lines: impl Iterator<Item = serde_json::Value>,
) -> anyhow::Result<usize> {
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut n = 0;
    for line in lines {
        serde_json::to_writer(&mut file, &line)?;
        writeln!(file)?;
        n += 1;
    }
    file.flush()?;
    Ok(n)
}

fn write_report(args: &ReportArgs, config: &Config) -> anyhow::Result<()> {
    if let Some(rate) = args.fail_above
        && !(0.0..=1.0).contains(&rate)
    {
        return Err(ConfigError::BadValue {
            origin: crate::config::Source::Flag("--fail-above".into()),
            key: "fail-above".into(),
            expected: "a rate from 0 to 1".into(),
            found: rate.to_string(),
        }
        .into());
    }
    let location = location(&args.store, config);
    let runtime = runtime()?;
    let (row, counts, attempts) = runtime.block_on(async {
        let store = Store::open_location(&location).await?;
        let row = store
            .campaign(&args.name)
            .await?
            .ok_or_else(|| RedteamError::NoCampaign(args.name.clone()))?;
        let counts = store.counts(&args.name).await?;
        let attempts = store.attempts(&args.name).await?;
        anyhow::Ok((row, counts, attempts))
    })?;
    let campaign: Option<CampaignConfig> = serde_json::from_str(&row.config).ok();
    let seed = campaign.as_ref().map_or(0, |c| c.seed);
    let target = campaign.as_ref().map_or_else(String::new, |c| match c.target.kind {
        TargetKind::Guard => "guard".to_owned(),
        TargetKind::Openai => format!("openai:{}@{}", c.target.model, c.target.base_url),
        TargetKind::Http => format!("http:{} {}", c.target.method, c.target.url),
    });
    let mut report = report::build(&args.name, &target, counts, &attempts, seed, args.top);
    if let Some(previous) = &args.against {
        let text = std::fs::read_to_string(previous)
            .with_context(|| format!("reading {}", previous.display()))?;
        let previous: Report = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a red-team report.json", previous.display()))?;
        report.compare(&previous);
    }
    let dir = args.out.clone().unwrap_or_else(|| Path::new("target/redteam").join(&args.name));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(dir.join("report.html"), report::html(&report))?;
    write_lines(&dir.join("attempts.jsonl"), attempts.iter().map(report::attempt_line))?;
    let disagreements = write_lines(
        &dir.join("disagreements.jsonl"),
        report::disagreement_lines(&attempts).into_iter(),
    )?;
    let mut out = std::io::stdout().lock();
    let r = &report;
    writeln!(
        out,
        "campaign {}: ASR {:.1}% ({} of {}; 95% CI {:.1}% – {:.1}%); {} target errors, {} unfinished",
        r.campaign,
        r.asr.rate * 100.0,
        r.asr.successes,
        r.asr.n,
        r.asr.lo * 100.0,
        r.asr.hi * 100.0,
        r.counts.error,
        r.counts.pending + r.counts.claimed
    )?;
    writeln!(out, "{:<28} {:>7} {:>7} {:>17}", "strategy", "n", "ASR", "95% CI")?;
    for row in &r.by_strategy {
        writeln!(
            out,
            "{:<28} {:>7} {:>6.1}% {:>7.1}% – {:>5.1}%",
            row.key,
            row.rate.n,
            row.rate.rate * 100.0,
            row.rate.lo * 100.0,
            row.rate.hi * 100.0
        )?;
    }
    for a in &r.agreement {
        writeln!(
            out,
            "judges {} / {}: agreement {:.1}%, kappa {:.3} (n={})",
            a.a,
            a.b,
            a.agreement * 100.0,
            a.kappa,
            a.n
        )?;
    }
    if let Some(d) = &r.diff {
        writeln!(
            out,
            "against {}: ASR {:+.1} pt{}",
            d.previous,
            d.overall.delta.unwrap_or(0.0) * 100.0,
            if d.overall.significant { " (beyond resampling noise)" } else { "" }
        )?;
    }
    writeln!(
        out,
        "{disagreements} disagreements for review; report: {}",
        dir.join("report.html").display()
    )?;
    if let Some(rate) = args.fail_above
        && r.asr.rate > rate
    {
        anyhow::bail!(
            "attack success rate {:.2}% is above the gate {:.2}%",
            r.asr.rate * 100.0,
            rate * 100.0
        );
    }
    Ok(())
}

fn export_rows(args: &ExportArgs, config: &Config) -> anyhow::Result<()> {
    let location = location(&args.store, config);
    let runtime = runtime()?;
    let attempts = runtime.block_on(async {
        let store = Store::open_location(&location).await?;
        if store.campaign(&args.name).await?.is_none() {
            return Err(RedteamError::NoCampaign(args.name.clone()).into());
        }
        anyhow::Ok(store.attempts(&args.name).await?)
    })?;
    let families: std::collections::BTreeMap<&'static str, &'static str> =
        strategy::registry().iter().map(|s| (s.id(), s.family())).collect();
    let taxonomy = guard::Taxonomy::builtin()?;
    let library = RiskLibrary::builtin()?;
    let rows = export::training_rows(
        &args.name,
        &attempts,
        &export::Labels {
            family: &|id| families.get(id).map(|f| (*f).to_owned()),
            category_ok: &|c| taxonomy.category_index(c).is_some(),
            intent_of: &|risk| {
                library
                    .get(risk)
                    .map(|leaf| leaf.intent.clone())
                    .filter(|i| taxonomy.intent_index(i).is_some())
            },
        },
    );
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let n =
        write_lines(&args.out, rows.iter().map(|r| serde_json::to_value(r).unwrap_or_default()))?;
    writeln!(std::io::stdout().lock(), "wrote {n} labelled attacks to {}", args.out.display())?;
    Ok(())
}

fn list_risks(args: &ListRisksArgs) -> anyhow::Result<()> {
    let library = RiskLibrary::builtin()?;
    let patterns: Vec<&str> = if args.patterns.is_empty() {
        vec!["*"]
    } else {
        args.patterns.iter().map(String::as_str).collect()
    };
    let leaves = library.select(&patterns).map_err(config_error)?;
    let mut out = std::io::stdout().lock();
    for leaf in &leaves {
        writeln!(
            out,
            "{:<44} {:<4} {:<4} {:>2} zh {:>2} en  {} / {}",
            leaf.id,
            leaf.category,
            leaf.risk,
            leaf.goals_zh.len(),
            leaf.goals_en.len(),
            leaf.zh,
            leaf.en
        )?;
    }
    writeln!(out, "{} leaf risks", leaves.len())?;
    Ok(())
}

fn list_strategies() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let all = strategy::registry();
    for s in &all {
        let langs: Vec<&str> = s.langs().iter().map(|l| campaign::lang_code(*l)).collect();
        writeln!(out, "{:<28} {:<12} {}", s.id(), s.family(), langs.join(","))?;
    }
    writeln!(out, "{:<28} {:<12} zh,en (needs [attacker])", "pair", "llm")?;
    writeln!(out, "{:<28} {:<12} zh,en (needs [attacker])", "tap", "llm")?;
    writeln!(out, "{:<28} {:<12} zh,en (needs [attacker])", runner::ADAPTIVE_CRESCENDO, "llm")?;
    writeln!(
        out,
        "{} strategies (+ pair, tap, {}); chain them with `+`, e.g. base64+dan",
        all.len(),
        runner::ADAPTIVE_CRESCENDO
    )?;
    Ok(())
}

fn bench(args: &BenchArgs, config: &Config) -> anyhow::Result<()> {
    let name = format!(
        "bench-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let strategies =
        if args.strategies.is_empty() { vec!["*".to_owned()] } else { args.strategies.clone() };
    let source = format!(
        "name = \"{name}\"\nseed = 1\n[target]\nkind = \"guard\"\n[strategies]\nuse = {}\n[budget]\nmax_time_secs = {}\nconcurrency = {}\n",
        serde_json::to_string(&strategies)?,
        args.seconds.max(0.1),
        args.workers.max(1)
    );
    let file = config.data_dir.join(format!("{name}.toml"));
    std::fs::create_dir_all(&config.data_dir)?;
    std::fs::write(&file, source)?;
    // A throw-away store unless one is named: a bench plans tens of thousands of rows each time.
    let scratch = config.data_dir.join(format!("{name}.sqlite"));
    let database = args.store.database.clone().unwrap_or_else(|| scratch.display().to_string());
    let start = Instant::now();
    let run = RunArgs {
        campaign: file.clone(),
        store: StoreArgs { database: Some(database) },
        workers: Some(args.workers),
        lease_secs: 120.0,
        batch: None,
        max_time: Some(args.seconds),
        retry_errors: false,
        no_wait: true,
        guard: GuardArgs { guard_model: None, guard_policy: None },
    };
    let result = run_campaign(&run, config);
    let _ = std::fs::remove_file(&file);
    if args.store.database.is_none() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
        }
    }
    result?;
    writeln!(
        std::io::stdout().lock(),
        "bench campaign `{name}` (planning and store set-up included): {:.1} s wall",
        start.elapsed().as_secs_f64()
    )?;
    Ok(())
}
