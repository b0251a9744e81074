//! The guard's typed errors and their rows in the error-code table.

use std::path::PathBuf;

use types::{Code, ErrorCode};

/// Everything that can go wrong loading, training or evaluating the guard.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// A data file (taxonomy, lexicon, policy) does not parse or breaks a rule; `line` is 1-based.
    #[error("{file}:{line}: {message}")]
    Invalid {
        /// The file, as given.
        file: String,
        /// 1-based line of the problem (0 when it concerns the whole file).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The model file is missing, truncated or of another version.
    #[error("model {path}: {message}")]
    Model {
        /// Where the model was read from.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A dataset or report file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A dataset record is malformed.
    #[error("{path}:{line}: {message}")]
    Data {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line (record) number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The LLM judge did not give a verdict (endpoint down, bad answer, out of time).
    #[error("judge {endpoint}: {message}")]
    Judge {
        /// The endpoint called.
        endpoint: String,
        /// What went wrong.
        message: String,
        /// Whether it ran out of its time budget.
        timed_out: bool,
    },
}

impl GuardError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GuardError::Io { path: path.into(), source }
    }

    /// An error for a TOML file, with the line computed from the parser's byte span.
    pub(crate) fn toml(file: &str, source: &str, err: &toml::de::Error) -> Self {
        let line = err.span().map_or(0, |span| line_of(source, span.start));
        GuardError::Invalid { file: file.to_owned(), line, message: err.message().to_owned() }
    }
}

/// 1-based line number of byte offset `at` in `source`.
pub(crate) fn line_of(source: &str, at: usize) -> usize {
    source.as_bytes()[..at.min(source.len())].iter().filter(|b| **b == b'\n').count() + 1
}

impl ErrorCode for GuardError {
    fn error_code(&self) -> Code {
        match self {
            GuardError::Invalid { .. } => Code::InvalidConfig,
            GuardError::Model { .. } | GuardError::Data { .. } => Code::UnsupportedFormat,
            GuardError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Code::NotFound
            }
            GuardError::Io { .. } => Code::StorageError,
            GuardError::Judge { timed_out: true, .. } => Code::UpstreamTimeout,
            GuardError::Judge { .. } => Code::UpstreamError,
        }
    }
}
