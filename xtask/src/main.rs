//! Project automation for finllm, written in Rust so it runs wherever cargo does.
//!
//! `cargo xtask tidy` runs the architecture checks (crate layering, module docs). The same checks run as
//! `#[test]`s, so `cargo test` enforces them without a separate CI step.

mod layering;
mod tidy;

use std::process::ExitCode;

#[allow(clippy::print_stderr, reason = "xtask reports to the terminal")]
fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("tidy") => tidy::run(),
        _ => Err(anyhow::anyhow!("usage: cargo xtask tidy")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
