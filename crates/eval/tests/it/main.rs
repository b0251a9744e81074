//! Integration tests for `eval`: one binary, one module per area.

// Tests may panic on failure: clippy.toml covers unit tests, not tests/ (rust-clippy#13981).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod arrow;
mod backend;
mod contamination;
mod extract;
mod judge;
mod load;
mod metrics;
mod multimodal;
mod postgres;
mod run;
mod stats;
