//! `cargo xtask bench-serve`: the serving benchmarks of issue 5 (gateway overhead, prefix-cache time to first
//! token, throughput against llama.cpp's server) in one command. The measuring is done by
//! `scripts/bench-serve/bench_serve.py` (standard-library Python, so that llama-cpp-python runs beside it);
//! this wrapper builds the release binary first so the figures are never taken from a debug build.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, bail};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The benchmark script.
pub fn script() -> PathBuf {
    workspace_root().join("scripts/bench-serve/bench_serve.py")
}

/// Builds `finllm` in release mode, then runs the benchmark script with `args` (e.g. `all --model M.gguf`).
pub fn serve(args: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    let skip_build = args.iter().any(|a| a == "--finllm" || a.starts_with("--finllm="));
    if !skip_build {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .current_dir(&root)
            .args(["build", "--release", "-p", "cli"])
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo build --release -p cli failed");
        }
    }
    let mut command = Command::new("python3");
    command.current_dir(&root).arg(script()).args(args);
    if !skip_build {
        command.args(["--finllm", "target/release/finllm"]);
    }
    let status = command.status().context("cannot run python3")?;
    if !status.success() {
        bail!("the benchmark failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script the command runs exists and parses its arguments (no benchmark is run).
    #[test]
    fn bench_script_answers_help() {
        let Ok(out) = Command::new("python3").arg(script()).arg("--help").output() else {
            println!("skipped: python3 is not installed");
            return;
        };
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{help}");
        for bench in ["gateway", "prefix", "throughput"] {
            assert!(help.contains(bench), "{help}");
        }
    }
}
