//! `finllm audit`: verify the hash chain of the audit trail, or export it as JSON lines.

use std::{io::Write, path::PathBuf};

use server::{Store, audit};

use crate::config::Config;

/// Arguments of `finllm audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    action: AuditAction,
}

#[derive(Debug, clap::Subcommand)]
enum AuditAction {
    /// Check every record's hash and link; exit 1 naming the first broken record
    Verify {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Write every record as a JSON line (seq, hash, prev_hash, record)
    Export {
        /// Output file [default: stdout]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// The chain is broken; the message names where.
#[derive(Debug, thiserror::Error)]
#[error("audit chain is broken after {rows} records: {problem}")]
pub struct BrokenChain {
    rows: usize,
    problem: String,
}

/// Runs an audit action against the configured database.
pub fn run(args: &AuditArgs, config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let rows = runtime.block_on(async {
        let store = Store::open(&config.database).await?;
        anyhow::Ok(store.audit_rows().await?)
    })?;
    match &args.action {
        AuditAction::Verify { json } => {
            let verification = audit::verify(&rows);
            let mut out = std::io::stdout().lock();
            if *json {
                writeln!(out, "{}", serde_json::to_string(&verification)?)?;
            }
            if let Some(problem) = verification.first_problem {
                return Err(BrokenChain { rows: verification.rows, problem }.into());
            }
            if !*json {
                writeln!(
                    out,
                    "ok: {} records, chain intact, head {}",
                    verification.rows, verification.head
                )?;
            }
        }
        AuditAction::Export { out } => {
            let mut writer: Box<dyn Write> = match out {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::stdout().lock()),
            };
            for row in &rows {
                let record: serde_json::Value = serde_json::from_str(&row.record)?;
                let line = serde_json::json!({"seq": row.seq, "hash": row.hash, "prev_hash": row.prev_hash, "record": record});
                writeln!(writer, "{line}")?;
            }
            writer.flush()?;
        }
    }
    Ok(())
}
