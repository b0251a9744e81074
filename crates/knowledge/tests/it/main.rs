//! Integration tests of the knowledge crate: one binary, one module per area. Golden files live in
//! `tests/golden/`; run with `UPDATE_GOLDEN=1` to rewrite them after an intended change.

// Tests may panic on failure: clippy.toml covers unit tests, not tests/ (rust-clippy#13981).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod chunk;
mod cite;
mod clean;
mod cmrc;
mod encoding;
mod fusion;
mod hnsw;
mod ingest;
// The red team's scripted OpenAI-compatible server (an upstream `/v1/embeddings` here).
#[allow(dead_code)]
#[path = "../../../redteam/tests/it/mock.rs"]
mod mock;
mod office;
mod pg;
mod search;
mod tokenize;
mod upstream;
mod vectors;

use std::path::PathBuf;

/// Compares `actual` with `tests/golden/<name>`, or writes it when `UPDATE_GOLDEN` is set.
pub fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("missing golden file {}; run with UPDATE_GOLDEN=1", path.display())
    });
    assert_eq!(
        actual, expected,
        "golden file {name} differs; run with UPDATE_GOLDEN=1 if intended"
    );
}

/// `../shared` next to the repository, when present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    dir.is_dir().then_some(dir)
}
