//! 蚁鉴, finllm's red team: a library of leaf risks with seed attack goals, attack strategies that
//! rewrite those goals (encodings, Chinese-specific rewrites, jailbreak templates, multi-turn
//! escalation), campaigns that drive any OpenAI-compatible endpoint or the guard alone, judges that
//! decide whether an attack succeeded, and reports.
//!
//! The crate reaches models only through a target trait or over HTTP, never through the engine, so it
//! attacks any deployment the same way: ours, a third party's, or the guard on its own.

pub mod attack;
pub mod risks;
pub mod strategy;

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
}

impl ErrorCode for RedteamError {
    fn error_code(&self) -> Code {
        match self {
            RedteamError::Config { .. } => Code::InvalidConfig,
            RedteamError::Unknown { .. } => Code::InvalidParameter,
        }
    }
}
