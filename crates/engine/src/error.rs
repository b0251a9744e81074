//! The engine's one error type: every failure names its cause (which file, which tensor, which limit), so
//! that the server and the CLI can answer with a clear message and the right code instead of a panic.

use types::{Code, ErrorCode};

/// Anything that can go wrong while loading a model or running it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A model file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that failed.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is truncated, corrupt or not the format it claims to be.
    #[error("{path}: invalid model file: {reason}")]
    Corrupt {
        /// The file that is corrupt.
        path: String,
        /// What exactly is wrong.
        reason: String,
    },
    /// The model's architecture has no implementation here.
    #[error("unsupported model architecture `{0}` (supported: llama, qwen2)")]
    UnsupportedArchitecture(String),
    /// A tensor uses a quantization type the engine does not run.
    #[error("tensor `{tensor}` uses unsupported quantization type {dtype}")]
    UnsupportedQuant {
        /// The tensor's name.
        tensor: String,
        /// The GGML type name or id.
        dtype: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("model file has no tensor `{0}`")]
    MissingTensor(String),
    /// A tensor's shape differs from what the configuration implies.
    #[error("tensor `{tensor}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The tensor's name.
        tensor: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        actual: Vec<usize>,
    },
    /// The model configuration (config.json or GGUF metadata) is missing a key or inconsistent.
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// A sequence would grow beyond the model's context window.
    #[error("sequence of {needed} tokens exceeds the context window of {max} tokens")]
    ContextLength {
        /// Tokens the sequence would hold.
        needed: usize,
        /// The context window.
        max: usize,
    },
    /// The KV cache has no free blocks left for this step.
    #[error("KV cache is full: {needed} more blocks needed, {free} free")]
    CacheFull {
        /// Blocks the step needs.
        needed: usize,
        /// Blocks that are free.
        free: usize,
    },
    /// A sequence id that the cache does not know (never added, or already freed).
    #[error("unknown sequence {0}")]
    UnknownSequence(u64),
    /// The caller passed something the engine cannot act on (an out-of-vocabulary token, an empty chunk).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A tensor operation failed inside candle.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl EngineError {
    pub(crate) fn corrupt(path: &str, reason: impl Into<String>) -> Self {
        EngineError::Corrupt { path: path.to_owned(), reason: reason.into() }
    }
}

impl ErrorCode for EngineError {
    fn error_code(&self) -> Code {
        match self {
            EngineError::Io { .. } => Code::ModelUnavailable,
            EngineError::Corrupt { .. }
            | EngineError::UnsupportedArchitecture(_)
            | EngineError::UnsupportedQuant { .. }
            | EngineError::MissingTensor(_)
            | EngineError::ShapeMismatch { .. } => Code::UnsupportedFormat,
            EngineError::Config(_) => Code::InvalidConfig,
            EngineError::ContextLength { .. } => Code::ContextLengthExceeded,
            EngineError::CacheFull { .. } => Code::QueueFull,
            EngineError::UnknownSequence(_) | EngineError::Tensor(_) => Code::Internal,
            EngineError::InvalidRequest(_) => Code::InvalidParameter,
        }
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
