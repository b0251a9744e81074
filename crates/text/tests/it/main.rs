//! Integration tests for `text`: the public API on edge inputs (empty, invalid UTF-8, 1 MB, nesting).

// Tests may panic on failure: clippy.toml covers unit tests, not tests/ (rust-clippy#13981).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod edges;
