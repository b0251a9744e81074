//! Integration tests for the `finllm` binary: one test binary, one module per command.

// Tests may panic on failure: clippy.toml covers unit tests, not tests/ (rust-clippy#13981).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod bench_chat;
mod config;
mod eval;
#[path = "../../../engine/tests/it/fake_hub.rs"]
mod fake_hub;
mod finance;
mod generate;
mod guard;
mod help;
mod kb;
mod keys_audit;
mod pull;
mod redteam;
#[path = "../../../redteam/tests/it/mock.rs"]
mod redteam_mock;
mod serve;
mod serve_default_model;
mod serve_drain;

use std::{path::Path, process::Command};

/// The finished run of `finllm` with `args` in `dir`, with no inherited `FINLLM_*` variables.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn finllm(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_finllm"));
    cmd.current_dir(dir).args(args);
    for (var, _) in std::env::vars() {
        if var.starts_with("FINLLM_") {
            cmd.env_remove(var);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}
