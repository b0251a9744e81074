//! 天鉴 in the request path: `/v1/moderations`, the input guard before the model and the output guard after it.
//!
//! A blocked request never reaches the model: the client gets an ordinary chat completion whose content is
//! the policy's template and whose `finish_reason` is `content_filter`, so OpenAI clients handle it without
//! special code. An answer judged unsafe is replaced the same way. Every verdict goes into the audit record.

use std::path::{Path, PathBuf};

use axum::{extract::State, response::IntoResponse, response::Response};
use guard::{Action, Guard, Judgement, Policy, SharedPolicy};
use serde::Deserialize;
use serde_json::{Value, json};
use types::Code;

use crate::{ServerError, error::ApiError, json::JsonBody, routes::SharedState};

/// Where the guard's model and policy come from.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// The classifier file (`finllm guard train` writes one).
    pub model: PathBuf,
    /// A policy TOML file; `None` uses the built-in financial-compliance pack.
    pub policy: Option<PathBuf>,
}

/// The loaded guard and the live policy.
#[derive(Debug)]
pub struct GuardLayer {
    guard: Guard,
    policy: SharedPolicy,
}

/// What the guard decided for one request, as the audit trail records it.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Verdicts {
    /// The input verdict and action.
    pub input: Option<(String, Action)>,
    /// The output verdict and action.
    pub output: Option<(String, Action)>,
}

impl GuardLayer {
    /// Loads the model and the policy.
    pub fn load(config: &GuardConfig) -> Result<GuardLayer, ServerError> {
        let guard = Guard::load(&config.model).map_err(|e| ServerError::Guard(e.to_string()))?;
        let policy = match &config.policy {
            Some(path) => read_policy(path)?,
            None => Policy::finance().map_err(|e| ServerError::Guard(e.to_string()))?,
        };
        Ok(GuardLayer { guard, policy: SharedPolicy::new(policy) })
    }

    /// Judges the text a user sends to the model.
    pub fn check_input(&self, text: &str) -> Judgement {
        self.guard.check_input(text, &self.policy.load())
    }

    /// Judges a model's answer.
    pub fn check_output(&self, text: &str) -> Judgement {
        self.guard.check_output(text, &self.policy.load())
    }

    /// The text sent instead of a blocked request or answer, or `None` when it goes through.
    ///
    /// Only `unsafe` texts are replaced. A `controversial` one (a biased premise, a sensitive topic) is one a
    /// responsible assistant answers with care: blocking it is a failure too, so it passes and its verdict is
    /// recorded in the audit trail.
    pub fn replacement(&self, judgement: &Judgement) -> Option<String> {
        if judgement.verdict != guard::Verdict::Unsafe {
            return None;
        }
        let policy = self.policy.load();
        match judgement.action {
            Action::Allow | Action::Flag | Action::Mask => None,
            Action::Rewrite => Some(policy.templates.rewrite.clone()),
            Action::Refuse | Action::Review | Action::Throttle => {
                Some(policy.templates.refuse.clone())
            }
        }
    }
}

fn read_policy(path: &Path) -> Result<Policy, ServerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServerError::Guard(format!("{}: cannot read policy: {e}", path.display())))?;
    Policy::parse(&path.display().to_string(), &text).map_err(|e| ServerError::Guard(e.to_string()))
}

/// The user-side text of a chat request the input guard judges: every user message, latest last.
pub fn user_text(messages: &[crate::wire::Message]) -> String {
    let mut text = String::new();
    for message in messages.iter().filter(|m| m.role == "user") {
        match &message.content {
            Some(crate::wire::Content::Text(t)) => text.push_str(t),
            Some(crate::wire::Content::Parts(parts)) => {
                for part in parts {
                    text.push_str(part["text"].as_str().unwrap_or_default());
                }
            }
            None => {}
        }
        text.push('\n');
    }
    text
}

/// A chat completion that carries the guard's replacement instead of a model answer.
pub fn blocked_completion(model: &str, content: &str, judgement: &Judgement) -> Value {
    json!({
        "id": format!("chatcmpl-{}", types::Id::new().to_string().replace('-', "")),
        "object": "chat.completion",
        "created": types::Timestamp::now().unix_seconds(),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": null, "finish_reason": "content_filter"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "finllm_guard": judgement,
    })
}

/// Replaces unsafe answers in a complete chat completion body; returns the output verdict.
pub fn moderate_answer(layer: &GuardLayer, answer: &mut Value) -> Option<(String, Action)> {
    let mut worst: Option<Judgement> = None;
    for choice in answer["choices"].as_array_mut().into_iter().flatten() {
        let Some(content) = choice["message"]["content"].as_str().map(str::to_owned) else {
            continue;
        };
        let judgement = layer.check_output(&content);
        if let Some(replacement) = layer.replacement(&judgement) {
            choice["message"]["content"] = json!(replacement);
            choice["finish_reason"] = json!("content_filter");
        }
        if worst.as_ref().is_none_or(|w| judgement.action.severity() > w.action.severity()) {
            worst = Some(judgement);
        }
    }
    worst.map(|j| (j.verdict.as_str().to_owned(), j.action))
}

/// `POST /v1/moderations` input: one text or several.
#[derive(Debug, Deserialize)]
pub struct ModerationRequest {
    input: ModerationInput,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ModerationInput {
    One(String),
    Many(Vec<String>),
}

/// `POST /v1/moderations` in OpenAI's shape, each result also carrying finllm's verdict, categories,
/// intents, techniques, spans, scores and action. `flagged` is true exactly when the verdict is unsafe.
pub async fn moderations(
    State(state): State<SharedState>,
    body: JsonBody<ModerationRequest>,
) -> Result<Response, ApiError> {
    let Some(layer) = state.guard.as_ref() else {
        return Err(ApiError::new(
            Code::ModelUnavailable,
            "the guard is disabled on this server (guard.enabled = false)",
        ));
    };
    let inputs = match &body.value.input {
        ModerationInput::One(text) => vec![text.clone()],
        ModerationInput::Many(texts) => texts.clone(),
    };
    let results: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let judgement = layer.check_input(text);
            let categories: serde_json::Map<String, Value> = judgement
                .scores
                .categories
                .keys()
                .map(|c| (c.clone(), json!(judgement.categories.contains(c))))
                .collect();
            let mut result = serde_json::to_value(&judgement).unwrap_or(Value::Null);
            result["flagged"] = json!(judgement.flagged());
            result["categories"] = Value::Object(categories);
            result["category_scores"] = json!(judgement.scores.categories);
            result["finllm_categories"] = json!(judgement.categories);
            result
        })
        .collect();
    let model = body.value.model.clone().unwrap_or_else(|| "finllm-guard".to_owned());
    Ok(axum::Json(
        json!({"id": format!("modr-{}", types::Id::new()), "model": model, "results": results}),
    )
    .into_response())
}
