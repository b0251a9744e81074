//! 蚁鉴, finllm's red team: a library of leaf risks with seed attack goals, attack strategies that
//! rewrite those goals (encodings, Chinese-specific rewrites, jailbreak templates, multi-turn
//! escalation), campaigns that drive any OpenAI-compatible endpoint or the guard alone, judges that
//! decide whether an attack succeeded, and reports.
//!
//! The crate reaches models only through a target trait or over HTTP, never through the engine, so it
//! attacks any deployment the same way: ours, a third party's, or the guard on its own.

pub mod attack;
pub mod campaign;
pub mod export;
pub mod http;
pub mod judge;
pub mod pair;
pub mod report;
pub mod risks;
pub mod runner;
pub mod store;
pub mod strategy;
pub mod target;

use types::{Code, ErrorCode};

/// Everything that can go wrong while building, running or reporting a red-team campaign.
#[derive(Debug, thiserror::Error)]
pub enum RedteamError {
    /// A data or campaign file is invalid; the message names the file and what is wrong.
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    /// A strategy or risk id that does not exist.
    #[error("unknown {kind} `{id}`")]
    Unknown { kind: &'static str, id: String },
    /// A target, judge or attacker endpoint failed (after its retries).
    #[error("{0}")]
    Endpoint(String),
    /// A target, judge or attacker endpoint did not answer in time (after its retries).
    #[error("{0}")]
    Timeout(String),
    /// The campaign store (SQLite or PostgreSQL) failed.
    #[error("campaign store: {0}")]
    Store(String),
    /// A campaign or run that is not in the store.
    #[error("no campaign `{0}` in the store")]
    NoCampaign(String),
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

impl From<rusqlite::Error> for RedteamError {
    fn from(e: rusqlite::Error) -> Self {
        RedteamError::Store(e.to_string())
    }
}

impl From<tokio_postgres::Error> for RedteamError {
    fn from(e: tokio_postgres::Error) -> Self {
        RedteamError::Store(e.to_string())
    }
}

impl ErrorCode for RedteamError {
    fn error_code(&self) -> Code {
        match self {
            RedteamError::Config { .. } => Code::InvalidConfig,
            RedteamError::Unknown { .. } => Code::InvalidParameter,
            RedteamError::Endpoint(_) => Code::UpstreamError,
            RedteamError::Timeout(_) => Code::UpstreamTimeout,
            RedteamError::Store(_) | RedteamError::Io { .. } => Code::StorageError,
            RedteamError::NoCampaign(_) => Code::NotFound,
        }
    }
}
