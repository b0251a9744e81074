//! Integration tests for `engine`: one binary, one module per area.

// Tests may panic on failure: clippy.toml covers unit tests, not tests/ (rust-clippy#13981).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod bad_input;
mod batching;
mod chat_template;
mod fake_hub;
mod fixtures;
mod generate;
mod golden;
mod hub;
mod long_context;
mod mutations;
mod sampling;
mod tokenizer;
mod tokenizer_parity;
