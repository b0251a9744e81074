//! `finllm pull`: download a model from the Hugging Face hub (or a mirror of its API) into
//! `<data_dir>/models/<owner>/<name>/`, resumably and checksum-verified, with a progress bar on stderr.

use std::io::Write;
use std::path::PathBuf;

use engine::hub::{self, HubClient, Progress, PullSpec};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;

/// Arguments of `finllm pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// OWNER/NAME (a checkpoint, or the Q4_K_M of a GGUF repository), OWNER/NAME/FILE, or OWNER/NAME:QUANT
    #[arg(value_name = "REPO[/FILE]")]
    model: String,
    /// Branch, tag or commit to download
    #[arg(long, default_value = "main")]
    revision: String,
}

/// Downloads and prints the local paths, one a line.
pub fn run(args: &PullArgs, config: &Config) -> anyhow::Result<()> {
    let paths = pull(config, &args.model, &args.revision)?;
    let mut out = std::io::stdout().lock();
    for p in paths {
        writeln!(out, "{}", p.display())?;
    }
    Ok(())
}

/// Pulls `spec` at `revision` and returns the downloaded (or already present) files.
pub fn pull(config: &Config, spec: &str, revision: &str) -> anyhow::Result<Vec<PathBuf>> {
    let spec = PullSpec::parse(spec)?;
    // `HF_TOKEN` is what the Hugging Face tools use; honour it when `hub.token` is not set.
    let token = config.hub_token.clone().or_else(|| std::env::var("HF_TOKEN").ok());
    let client = HubClient::new(&config.hub_endpoint, token);
    tracing::info!("listing {} at {} on {}", spec.repo, revision, client.endpoint());
    let files = client.list_files(&spec.repo, revision)?;
    let chosen = hub::select_files(&spec, &files)?;
    let total: u64 = chosen.iter().map(|f| f.size).sum();
    tracing::info!(
        "pulling {} file(s), {} into {}",
        chosen.len(),
        super::models::human_size(total),
        hub::repo_dir(&config.data_dir, &spec.repo).display()
    );
    let dest = hub::repo_dir(&config.data_dir, &spec.repo);
    let style = ProgressStyle::with_template(
        "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )?
    .progress_chars("=> ");
    let mut paths = Vec::with_capacity(chosen.len());
    for file in &chosen {
        let bar =
            ProgressBar::new(file.size).with_style(style.clone()).with_message(file.path.clone());
        let path = client.download(&spec.repo, revision, file, &dest, &mut |event| match event {
            Progress::Start { done, .. } | Progress::Resume { done } => bar.set_position(done),
            Progress::Advance(n) => bar.inc(n),
            Progress::Finish => bar.finish(),
            Progress::AlreadyPresent { file } => {
                bar.finish_and_clear();
                tracing::info!("{file}: already present and verified");
            }
        });
        if path.is_err() {
            bar.abandon();
        }
        paths.push(path?);
    }
    Ok(paths)
}
