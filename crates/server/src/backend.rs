//! Where model requests go: the in-process engine, upstream OpenAI-compatible servers, or nowhere yet.
//!
//! The server's handlers see only this enum.

use bytes::Bytes;
use types::Code;

use crate::{
    ServerConfig, ServerError,
    engine_backend::EngineBackend,
    error::ApiError,
    upstream::{Forwarded, UpstreamPool},
    wire::{ChatCompletionRequest, CompletionRequest},
};

/// The component that answers model requests.
#[derive(Debug)]
pub enum Backend {
    /// No model is configured: model endpoints answer 503 with a hint.
    Unavailable,
    /// Upstream servers.
    Upstream(UpstreamPool),
    /// A model loaded in this process.
    Engine(Box<EngineBackend>),
}

/// A validated model request, with its body as received (upstreams get the body unchanged).
#[derive(Debug, Clone, Copy)]
pub enum ModelCall<'a> {
    /// `POST /v1/chat/completions`.
    Chat(&'a ChatCompletionRequest),
    /// `POST /v1/completions`.
    Completion(&'a CompletionRequest),
}

impl ModelCall<'_> {
    /// The endpoint path.
    pub fn path(&self) -> &'static str {
        match self {
            ModelCall::Chat(_) => "/v1/chat/completions",
            ModelCall::Completion(_) => "/v1/completions",
        }
    }

    /// The model asked for.
    pub fn model(&self) -> &str {
        match self {
            ModelCall::Chat(request) => &request.model,
            ModelCall::Completion(request) => &request.model,
        }
    }

    /// Whether the answer streams.
    pub fn stream(&self) -> bool {
        match self {
            ModelCall::Chat(request) => request.sampling.stream,
            ModelCall::Completion(request) => request.sampling.stream,
        }
    }
}

/// The message a client gets when no model is configured.
pub const NO_MODEL_HINT: &str = "no model is configured on this server; get one with \
    `finllm pull Qwen/Qwen2.5-1.5B-Instruct-GGUF:Q4_K_M` (or copy a .gguf file or Hugging Face folder \
    onto this machine) and restart with `finllm serve --model NAME|PATH`, or run \
    `finllm serve --upstream http://HOST:PORT` to front an OpenAI-compatible server (vLLM, SGLang, \
    llama.cpp, Ollama); the guard, knowledge and tool endpoints work without a model";

impl Backend {
    /// Builds the backend the configuration asks for (loading a model takes seconds: call off the reactor).
    pub fn from_config(config: &ServerConfig) -> Result<Backend, ServerError> {
        if let Some(engine) = &config.engine {
            return Ok(Backend::Engine(Box::new(EngineBackend::load(engine)?)));
        }
        if config.upstreams.is_empty() {
            return Ok(Backend::Unavailable);
        }
        Ok(Backend::Upstream(UpstreamPool::new(config)?))
    }

    /// Whether model endpoints can answer.
    pub fn is_ready(&self) -> bool {
        !matches!(self, Backend::Unavailable)
    }

    /// The in-process engine, when that is the backend.
    pub fn engine(&self) -> Option<&EngineBackend> {
        match self {
            Backend::Engine(engine) => Some(engine),
            _ => None,
        }
    }

    /// The models served, in OpenAI's `/v1/models` entry shape.
    pub async fn models(&self) -> Vec<serde_json::Value> {
        match self {
            Backend::Unavailable => Vec::new(),
            Backend::Upstream(pool) => pool.models().await,
            Backend::Engine(engine) => engine.models(),
        }
    }

    /// Answers a validated request.
    pub async fn forward(&self, call: ModelCall<'_>, raw: Bytes) -> Result<Forwarded, ApiError> {
        match self {
            Backend::Unavailable => Err(ApiError::new(Code::ModelUnavailable, NO_MODEL_HINT)),
            Backend::Upstream(pool) => {
                pool.forward(call.path(), call.model(), raw, call.stream()).await
            }
            Backend::Engine(engine) => match call {
                ModelCall::Chat(request) => engine.chat(request).await,
                ModelCall::Completion(request) => engine.completion(request).await,
            },
        }
    }
}
