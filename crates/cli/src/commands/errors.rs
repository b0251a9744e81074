//! `finllm errors`: the error-code table every API error and CLI failure is classified by.

use std::io::Write;

use types::Code;

/// Arguments of `finllm errors`.
#[derive(Debug, clap::Args)]
pub struct ErrorsArgs {
    /// Print a JSON array instead of a table
    #[arg(long)]
    json: bool,
}

/// Prints every code with its HTTP status, type and meaning.
pub fn run(args: &ErrorsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<_> = Code::ALL
            .iter()
            .map(|code| {
                serde_json::json!({
                    "code": code.as_str(),
                    "status": code.http_status(),
                    "type": code.error_type().as_str(),
                    "meaning": code.meaning(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{:<24} {:>6}  {:<26} meaning", "code", "status", "type")?;
    for code in Code::ALL {
        writeln!(
            out,
            "{:<24} {:>6}  {:<26} {}",
            code.as_str(),
            code.http_status(),
            code.error_type().as_str(),
            code.meaning()
        )?;
    }
    Ok(())
}
