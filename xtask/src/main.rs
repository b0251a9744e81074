//! Project automation for finllm, written in Rust so it runs wherever cargo does.
//!
//! `cargo xtask tidy` runs the architecture checks (crate layering, module docs). The same checks run as
//! `#[test]`s, so `cargo test` enforces them without a separate CI step. `cargo xtask bench-engine` and
//! `cargo xtask bench-serve` run the engine and serving benchmarks against llama.cpp.

mod bench;
mod bench_engine;
mod layering;
mod tidy;

use std::process::ExitCode;

#[allow(clippy::print_stderr, reason = "xtask reports to the terminal")]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("tidy") => tidy::run(),
        Some("bench-serve") => bench::serve(&args[1..]),
        Some("bench-engine") => bench_engine::run(&args[1..]),
        _ => Err(anyhow::anyhow!(
            "usage: cargo xtask tidy | cargo xtask bench-engine [--rounds N] [...] | cargo xtask bench-serve <gateway|prefix|throughput|all> [--model M.gguf] [...]"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
