//! `finllm`: the one binary of the finllm platform.
//!
//! This crate is the only place that parses arguments, reads the process environment and chooses exit
//! codes; everything it does is call into the library crates. Exit codes: 0 success (also when stdout is
//! closed early, as by `| head`), 1 a command failed, 2 bad usage or bad configuration.

mod commands;
mod config;
mod logging;

use std::{io, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use types::ErrorCode;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG_FILE, Layers};

/// finllm: a self-hosted, trustworthy LLM platform for financial institutions.
#[derive(Debug, Parser)]
#[command(name = "finllm", version, propagate_version = true, max_term_width = 100)]
struct Args {
    /// Configuration file [default: ./finllm.toml when present]
    #[arg(long, global = true, value_name = "PATH", env = "FINLLM_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for embedded stores (config key `data_dir`)
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<String>,
    /// Log format on stderr: human or json (config key `log.format`)
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log more: -v for debug, -vv for trace
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Log less: -q for warnings only, -qq for errors only
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    quiet: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the effective configuration and where each value came from
    Config(commands::config::ConfigArgs),
    /// Print the table of error codes: HTTP status, type and meaning
    Errors(commands::errors::ErrorsArgs),
    /// EVE: evaluate a model on financial benchmarks or task specs; reports, comparisons, CI gates
    Eval(commands::eval::EvalArgs),
    /// Exact financial tools: liquidity, rates, portfolio, allocation, suitability, loans, ratings, calculator
    Finance(commands::finance::FinanceArgs),
    /// 天鉴 guard: check, scan, train and evaluate the input/output guard
    Guard(commands::guard::GuardArgs),
    /// Continue a raw prompt with a local model (GGUF file or Hugging Face folder)
    Generate(commands::generate::GenerateArgs),
    /// Chat with a local model in the terminal, through its chat template
    Chat(commands::chat::ChatArgs),
    /// Prefill and decode speed of a local model at chosen context depths
    Bench(commands::bench::BenchArgs),
    /// Download a model from the Hugging Face hub (resumable, checksum-verified)
    Pull(commands::pull::PullArgs),
    /// List the models in the data directory
    Models(commands::models::ModelsArgs),
    /// Run the OpenAI-compatible server
    Serve(commands::serve::ServeArgs),
    /// Create, list and revoke API keys
    Keys(commands::keys::KeysArgs),
    /// Verify or export the tamper-evident audit trail
    Audit(commands::audit::AuditArgs),
    /// Knowledge base: add, remove, list, search documents; stats, retrieval eval, corpus cleaning
    Kb(commands::kb::KbArgs),
    /// 蚁鉴 red team: run attack campaigns against a model endpoint or the guard; status, reports, export
    Redteam(commands::redteam::RedteamArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let (resolved, config, warnings) = load_config(&args)?;
    logging::init(&config)?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    tracing::debug!(data_dir = %config.data_dir.display(), "configuration loaded");
    match args.command {
        Command::Config(cmd) => commands::config::run(&cmd, &resolved),
        Command::Errors(cmd) => commands::errors::run(&cmd),
        Command::Eval(cmd) => commands::eval::run(&cmd, &config),
        Command::Finance(cmd) => commands::finance::run(&cmd),
        Command::Guard(cmd) => commands::guard::run(&cmd),
        Command::Generate(cmd) => commands::generate::run(&cmd, &config),
        Command::Chat(cmd) => commands::chat::run(&cmd, &config),
        Command::Bench(cmd) => commands::bench::run(&cmd, &config),
        Command::Pull(cmd) => commands::pull::run(&cmd, &config),
        Command::Models(cmd) => commands::models::run(&cmd, &config),
        Command::Serve(_) => commands::serve::run(&config),
        Command::Keys(cmd) => commands::keys::run(&cmd, &config),
        Command::Audit(cmd) => commands::audit::run(&cmd, &config),
        Command::Kb(cmd) => commands::kb::run(&cmd, &config),
        Command::Redteam(cmd) => commands::redteam::run(&cmd, &config),
    }
}

type Loaded = (config::Resolved, Config, Vec<String>);

fn load_config(args: &Args) -> Result<Loaded, ConfigError> {
    let file = match &args.config {
        Some(path) => Some((path.as_path(), true)),
        None => Some((std::path::Path::new(DEFAULT_CONFIG_FILE), false)),
    };
    let mut layers = Layers { file, env: std::env::vars().collect(), flags: Vec::new() };
    if let Some(dir) = &args.data_dir {
        layers.flags.push(("data_dir", dir.clone(), "--data-dir"));
    }
    if let Some(format) = &args.log_format {
        layers.flags.push(("log.format", format.clone(), "--log-format"));
    }
    if let Command::Serve(serve) = &args.command {
        layers.flags.extend(serve.flags());
    }
    let (resolved, warnings) = config::resolve(&layers)?;
    let base = Config::from_resolved(&resolved);
    if args.verbose == 0 && args.quiet == 0 {
        return Ok((resolved, base, warnings));
    }
    // -v/-q move the configured level, so the flags are applied on top of the merged level.
    let (level, flag) = if args.verbose > 0 {
        ((base.log_level + usize::from(args.verbose)).min(4), "-v")
    } else {
        (base.log_level.saturating_sub(usize::from(args.quiet)), "-q")
    };
    let name = ["error", "warn", "info", "debug", "trace"][level];
    layers.flags.push(("log.level", name.to_owned(), flag));
    let (resolved, warnings) = config::resolve(&layers)?;
    let config = Config::from_resolved(&resolved);
    Ok((resolved, config, warnings))
}

/// Prints the error chain on one line and picks the exit code.
#[allow(clippy::print_stderr, reason = "the binary's last word goes to stderr")]
fn report(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {err:#}");
    let bad_config = err.downcast_ref::<ConfigError>().is_some()
        || err
            .downcast_ref::<server::ServerError>()
            .is_some_and(|e| e.error_code() == types::Code::InvalidConfig);
    if bad_config { ExitCode::from(2) } else { ExitCode::FAILURE }
}
