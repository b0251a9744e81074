//! Integration tests for `finance`: one binary, one module per tool.

// Tests may panic on failure: clippy.toml covers unit tests, not tests/ (rust-clippy#13981).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod allocation;
mod calc;
mod credit;
mod liquidity;
mod portfolio;
mod rates;
mod rating;
mod suitability;
mod support;
mod tools;
