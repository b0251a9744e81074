//! The OpenAI request shapes finllm accepts, and their validation.
//!
//! Fields are typed so that a wrong type or an out-of-range value is rejected here with the field named,
//! before any backend spends a token. Unknown fields are kept (upstream servers such as vLLM accept
//! extensions like `top_k`), which is why the raw body, not a re-serialisation, is what gets forwarded.

use std::collections::HashMap;

use serde::Deserialize;
use types::Code;

use crate::error::ApiError;

/// `stop`: one string or up to four.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

/// `content` of a message: plain text, or a list of typed parts (text, image_url).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts, as multimodal clients send them.
    Parts(Vec<serde_json::Value>),
}

/// One chat message.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text; absent for assistant turns that only call tools.
    #[serde(default)]
    pub content: Option<Content>,
    /// Optional participant name.
    #[serde(default)]
    pub name: Option<String>,
    /// Tool calls an assistant turn made.
    #[serde(default)]
    pub tool_calls: Option<Vec<serde_json::Value>>,
    /// Which call a `tool` message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with token usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling fields shared by chat and text completions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sampling {
    /// 0 to 2.
    pub temperature: Option<f64>,
    /// 0 to 1.
    pub top_p: Option<f64>,
    /// Completions to generate per prompt.
    pub n: Option<u32>,
    /// Stop strings.
    pub stop: Option<Stop>,
    /// Seed for reproducible sampling.
    pub seed: Option<i64>,
    /// -2 to 2.
    pub presence_penalty: Option<f64>,
    /// -2 to 2.
    pub frequency_penalty: Option<f64>,
    /// Token id (as a string) to bias from -100 to 100.
    pub logit_bias: Option<HashMap<String, f64>>,
    /// End user id, for abuse tracking.
    pub user: Option<String>,
    /// Stream server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    /// Model to use.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Legacy output limit.
    pub max_tokens: Option<u32>,
    /// Output limit.
    pub max_completion_tokens: Option<u32>,
    /// Return per-token log-probabilities.
    #[serde(default)]
    pub logprobs: bool,
    /// Alternatives per position, 0 to 20.
    pub top_logprobs: Option<u32>,
    /// Tool definitions.
    pub tools: Option<Vec<serde_json::Value>>,
    /// `none`, `auto`, `required` or a named function.
    pub tool_choice: Option<serde_json::Value>,
    /// `{"type": "text" | "json_object" | "json_schema", ...}`.
    pub response_format: Option<serde_json::Value>,
    /// Sampling fields, parsed from the same body by the handler (flattening would lose field paths in
    /// error messages).
    #[serde(skip)]
    pub sampling: Sampling,
}

/// `prompt` of a text completion: text, texts, token ids, or lists of token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One prompt.
    Text(String),
    /// Several prompts.
    Texts(Vec<String>),
    /// One prompt as token ids.
    Tokens(Vec<u32>),
    /// Several prompts as token ids.
    TokenLists(Vec<Vec<u32>>),
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// Model to use.
    pub model: String,
    /// The prompt(s).
    pub prompt: Prompt,
    /// Output limit (default 16, as OpenAI's).
    pub max_tokens: Option<u32>,
    /// Echo the prompt before the completion (with `logprobs`: prompt log-probabilities).
    #[serde(default)]
    pub echo: bool,
    /// Number of alternatives with log-probabilities per position, 0 to 5.
    pub logprobs: Option<u32>,
    /// Text appended after the completion.
    pub suffix: Option<String>,
    /// Sampling fields, parsed from the same body by the handler (flattening would lose field paths in
    /// error messages).
    #[serde(skip)]
    pub sampling: Sampling,
}

#[track_caller]
fn in_range(value: Option<f64>, low: f64, high: f64, param: &str) -> Result<(), ApiError> {
    match value {
        Some(v) if !(low..=high).contains(&v) || v.is_nan() => Err(ApiError::new(
            Code::InvalidParameter,
            format!("{param} must be between {low} and {high}, got {v}"),
        )
        .with_param(param)),
        _ => Ok(()),
    }
}

impl Sampling {
    fn validate(&self) -> Result<(), ApiError> {
        in_range(self.temperature, 0.0, 2.0, "temperature")?;
        in_range(self.top_p, 0.0, 1.0, "top_p")?;
        in_range(self.presence_penalty, -2.0, 2.0, "presence_penalty")?;
        in_range(self.frequency_penalty, -2.0, 2.0, "frequency_penalty")?;
        if let Some(n) = self.n
            && !(1..=128).contains(&n)
        {
            return Err(ApiError::new(
                Code::InvalidParameter,
                format!("n must be between 1 and 128, got {n}"),
            )
            .with_param("n"));
        }
        if let Some(Stop::Many(stops)) = &self.stop
            && stops.len() > 4
        {
            return Err(ApiError::new(Code::InvalidParameter, "stop takes at most 4 sequences")
                .with_param("stop"));
        }
        for (token, bias) in self.logit_bias.iter().flatten() {
            if token.parse::<u32>().is_err() {
                return Err(ApiError::new(
                    Code::InvalidParameter,
                    format!("logit_bias keys must be token ids, got {token:?}"),
                )
                .with_param("logit_bias"));
            }
            in_range(Some(*bias), -100.0, 100.0, "logit_bias")?;
        }
        Ok(())
    }
}

const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool", "function"];

impl ChatCompletionRequest {
    /// Checks ranges and shapes the type system cannot.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::new(Code::InvalidParameter, "messages must not be empty")
                .with_param("messages"));
        }
        for (i, message) in self.messages.iter().enumerate() {
            if !ROLES.contains(&message.role.as_str()) {
                return Err(ApiError::new(
                    Code::InvalidParameter,
                    format!(
                        "unknown role {:?}; expected one of {}",
                        message.role,
                        ROLES.join(", ")
                    ),
                )
                .with_param(format!("messages[{i}].role")));
            }
        }
        if let Some(top) = self.top_logprobs
            && top > 20
        {
            return Err(ApiError::new(
                Code::InvalidParameter,
                "top_logprobs must be between 0 and 20",
            )
            .with_param("top_logprobs"));
        }
        self.sampling.validate()
    }
}

impl CompletionRequest {
    /// Checks ranges and shapes the type system cannot.
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(n) = self.logprobs
            && n > 5
        {
            return Err(ApiError::new(Code::InvalidParameter, "logprobs must be between 0 and 5")
                .with_param("logprobs"));
        }
        self.sampling.validate()
    }
}
