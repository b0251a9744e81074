//! Logging set-up: human-readable lines or JSON objects on stderr, at the configured level.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. Stdout stays free for command output.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let level = [
        LevelFilter::ERROR,
        LevelFilter::WARN,
        LevelFilter::INFO,
        LevelFilter::DEBUG,
        LevelFilter::TRACE,
    ]
    .get(config.log_level)
    .copied()
    .unwrap_or(LevelFilter::INFO);
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level);
    let installed = match config.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|err| anyhow::anyhow!("cannot install the logger: {err}"))
}
