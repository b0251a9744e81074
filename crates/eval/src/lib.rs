//! EVE, finllm's evaluation harness: task specs, dataset loaders, two scoring paths (choice log-likelihood
//! and generate-then-extract), metrics, a resumable result store (SQLite, or PostgreSQL for scale-out), bootstrap statistics and reports.
//!
//! The crate reaches models only through [`backend::Backend`] (an OpenAI-compatible HTTP client or a
//! scripted backend for tests), never through the engine, so it evaluates any deployment the same way.

pub mod arrow;
pub mod backend;
pub mod contamination;
pub mod extract;
pub mod judge;
pub mod load;
pub mod metrics;
pub mod report;
pub mod run;
pub mod stats;
pub mod store;
pub mod suites;
pub mod task;

use types::{Code, ErrorCode};

/// Everything that can go wrong while loading, running or reporting an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A data file is malformed; the message names file, row and column.
    #[error("{file}: row {row}{}: {message}", column.as_ref().map(|c| format!(", column {c}")).unwrap_or_default())]
    Data { file: String, row: usize, column: Option<String>, message: String },
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// A task spec is invalid.
    #[error("task spec {path}: {message}")]
    Spec { path: String, message: String },
    /// The prompt template does not render.
    #[error("template of task {task}: {message}")]
    Template { task: String, message: String },
    /// The model endpoint failed or answered with something unusable.
    #[error("backend: {0}")]
    Backend(String),
    /// The backend cannot do what the task needs (e.g. prompt log-probabilities over a chat-only API).
    #[error("backend does not support {0}")]
    Unsupported(String),
    /// The result store failed.
    #[error("result store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The PostgreSQL result store failed.
    #[error("result store (postgres): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A report or comparison input is not what was expected.
    #[error("{0}")]
    Invalid(String),
}

impl ErrorCode for EvalError {
    fn error_code(&self) -> Code {
        match self {
            EvalError::Data { .. } => Code::UnsupportedFormat,
            EvalError::Io { .. } => Code::NotFound,
            EvalError::Spec { .. } | EvalError::Template { .. } => Code::InvalidConfig,
            EvalError::Backend(_) => Code::UpstreamError,
            EvalError::Unsupported(_) | EvalError::Invalid(_) => Code::InvalidParameter,
            EvalError::Store(_) | EvalError::Postgres(_) => Code::StorageError,
        }
    }
}

/// Reads a file, naming it in the error.
pub(crate) fn read_file(path: &std::path::Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path)
        .map_err(|source| EvalError::Io { path: path.display().to_string(), error: source })
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
