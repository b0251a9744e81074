//! Integration tests of the red team: one binary, one module per area.

// Tests may panic on failure: clippy.toml covers unit tests, not tests/ (rust-clippy#13981).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod campaigns;
mod judges;
mod mock;
mod refusal;
mod risks;
mod strategy;
mod targets;
