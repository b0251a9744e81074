//! Integration tests for `guard`: taxonomy, lexicon, policy, model file, judgements, streaming,
//! conversations, injection scanning and evaluation metrics.

// Tests may panic on failure: clippy.toml covers unit tests, not tests/ (rust-clippy#13981).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod behaviour;
mod data;
mod frames;
mod judge;
mod policy;
mod regression;
mod reload;
mod taxonomy;

use std::sync::OnceLock;

/// The committed model, loaded once for all tests.
pub fn guard() -> &'static guard::Guard {
    static GUARD: OnceLock<guard::Guard> = OnceLock::new();
    GUARD.get_or_init(|| guard::Guard::builtin().unwrap())
}
