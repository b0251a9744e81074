//! Where model requests go: upstream OpenAI-compatible servers, or nowhere yet.
//!
//! The server's handlers see only this enum, so adding the in-process engine is adding a variant.

use bytes::Bytes;
use types::Code;

use crate::{
    ServerConfig, ServerError,
    error::ApiError,
    upstream::{Forwarded, UpstreamPool},
};

/// The component that answers model requests.
#[derive(Debug)]
pub enum Backend {
    /// No model is configured: model endpoints answer 503 with a hint.
    Unavailable,
    /// Upstream servers.
    Upstream(UpstreamPool),
}

/// The message a client gets when no model is configured.
pub const NO_MODEL_HINT: &str = "no model is configured on this server; restart it with \
    `finllm serve --upstream http://HOST:PORT` to front an OpenAI-compatible server (vLLM, SGLang, \
    llama.cpp, Ollama); the guard, knowledge and tool endpoints work without a model";

impl Backend {
    /// Builds the backend the configuration asks for.
    pub fn from_config(config: &ServerConfig) -> Result<Backend, ServerError> {
        if config.upstreams.is_empty() {
            return Ok(Backend::Unavailable);
        }
        Ok(Backend::Upstream(UpstreamPool::new(config)?))
    }

    /// Whether model endpoints can answer.
    pub fn is_ready(&self) -> bool {
        !matches!(self, Backend::Unavailable)
    }

    /// The models served, in OpenAI's `/v1/models` entry shape.
    pub async fn models(&self) -> Vec<serde_json::Value> {
        match self {
            Backend::Unavailable => Vec::new(),
            Backend::Upstream(pool) => pool.models().await,
        }
    }

    /// Sends a validated request body for `model` to `path` (`/v1/chat/completions`, ...).
    pub async fn forward(
        &self,
        path: &str,
        model: &str,
        body: Bytes,
        stream: bool,
    ) -> Result<Forwarded, ApiError> {
        match self {
            Backend::Unavailable => Err(ApiError::new(Code::ModelUnavailable, NO_MODEL_HINT)),
            Backend::Upstream(pool) => pool.forward(path, model, body, stream).await,
        }
    }
}
