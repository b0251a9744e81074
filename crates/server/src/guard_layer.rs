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

/// Marks the guard's own judge calls to this server (the value is a random token made at start-up), so
/// they are not judged again: a judge pointed at the server it guards, the natural way to use the
/// in-process engine, would otherwise ask itself about its own question without end. The token goes to
/// whichever endpoint is the judge; that endpoint already decides the uncertain band.
pub const JUDGE_HEADER: &str = "x-finllm-guard-judge";

/// Where the guard's model and policy come from.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// The classifier file (`finllm guard train` writes one); `None` uses the model built into finllm.
    pub model: Option<PathBuf>,
    /// A policy TOML file; `None` uses the built-in financial-compliance pack.
    pub policy: Option<PathBuf>,
    /// The LLM judge for the policy's uncertain band, when one is configured.
    pub judge: Option<guard::OpenAiJudge>,
}

/// The loaded guard and the live policy.
#[derive(Debug)]
pub struct GuardLayer {
    guard: Guard,
    /// The [`JUDGE_HEADER`] value the judge sends, when there is a judge (a check can then wait on the
    /// network).
    judge_token: Option<String>,
    policy: SharedPolicy,
    /// Watches the policy file and swaps in edits (hot reload); stops when the layer is dropped.
    _reload: Option<guard::reload::ReloadHandle>,
}

impl std::fmt::Debug for ModeratedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModeratedStream")
            .field("judged_chars", &self.judged_chars)
            .finish_non_exhaustive()
    }
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
        let guard = match &config.model {
            Some(path) => Guard::load(path),
            None => Guard::builtin(),
        }
        .map_err(|e| ServerError::Guard(e.to_string()))?;
        let judge_token = config.judge.as_ref().map(|_| format!("{:032x}", rand::random::<u128>()));
        let guard = match (&config.judge, &judge_token) {
            (Some(judge), Some(token)) => guard
                .with_judge(std::sync::Arc::new(judge.clone().with_header(JUDGE_HEADER, token))),
            _ => guard,
        };
        let policy = match &config.policy {
            Some(path) => read_policy(path)?,
            None => Policy::finance().map_err(|e| ServerError::Guard(e.to_string()))?,
        };
        let policy = SharedPolicy::new(policy);
        // A tenant's policy file is reloaded when it changes; a broken edit keeps the old policy.
        let reload = config.policy.as_ref().map(|path| {
            let mut reloader = guard::reload::Reloader::default();
            reloader.watch_policy(path, policy.clone());
            reloader.spawn(std::time::Duration::from_secs(2))
        });
        Ok(GuardLayer { guard, judge_token, policy, _reload: reload })
    }

    /// Whether a request is the guard's own judge asking this server (see [`JUDGE_HEADER`]).
    pub fn is_own_judge(&self, headers: &axum::http::HeaderMap) -> bool {
        self.judge_token.as_deref().is_some_and(|token| {
            headers.get(JUDGE_HEADER).is_some_and(|v| v.as_bytes() == token.as_bytes())
        })
    }

    /// Judges the text a user sends to the model.
    pub fn check_input(&self, text: &str) -> Judgement {
        self.off_the_runtime(|| self.guard.check_input(text, &self.policy.load()))
    }

    /// Judges a model's answer.
    pub fn check_output(&self, text: &str) -> Judgement {
        self.off_the_runtime(|| self.guard.check_output(text, &self.policy.load()))
    }

    /// Runs a check that may wait on the judge's endpoint (up to the policy's budget) without stalling
    /// the other tasks of a multi-threaded runtime; checks without a judge take microseconds and run
    /// in place.
    fn off_the_runtime(&self, check: impl FnOnce() -> Judgement) -> Judgement {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current() {
            Ok(handle)
                if self.judge_token.is_some()
                    && handle.runtime_flavor() == RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(check)
            }
            _ => check(),
        }
    }

    /// Scans a retrieved document for instructions aimed at the model (indirect prompt injection).
    pub fn scan_document(&self, text: &str) -> guard::injection::InjectionReport {
        self.guard.scan_document(text, &self.policy.load())
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

/// A streamed chat answer moderated as it goes: events are held back until the text they carry has been
/// judged (at each sentence end, or every [`JUDGE_EVERY_CHARS`] characters), so text the guard stops is never
/// sent. When the answer turns unsafe, the client gets the policy's stop message with `finish_reason`
/// `content_filter`, then `[DONE]`, and the model's stream is dropped (which frees its sequence).
pub struct ModeratedStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    state: SharedState,
    /// Bytes of an unfinished line.
    line: Vec<u8>,
    /// Complete events not yet judged safe.
    held: Vec<u8>,
    /// The answer text so far.
    text: String,
    judged_chars: usize,
    /// What is ready to send.
    ready: std::collections::VecDeque<Bytes>,
    done: bool,
    template: Value,
}

/// Characters between judgements when no sentence ends.
pub const JUDGE_EVERY_CHARS: usize = 48;

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::Stream;

impl ModeratedStream {
    /// Wraps a chat completion event stream.
    pub fn new(
        inner: Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
        state: SharedState,
    ) -> ModeratedStream {
        ModeratedStream {
            inner,
            state,
            line: Vec::new(),
            held: Vec::new(),
            text: String::new(),
            judged_chars: 0,
            ready: std::collections::VecDeque::new(),
            done: false,
            template: Value::Null,
        }
    }

    /// Takes in a chunk of bytes; returns true when the answer was stopped.
    fn take(&mut self, chunk: &[u8]) -> bool {
        for &byte in chunk {
            self.line.push(byte);
            if byte != b'\n' {
                continue;
            }
            let line = std::mem::take(&mut self.line);
            if let Some(data) = line.strip_prefix(b"data: ")
                && let Ok(event) = serde_json::from_slice::<Value>(data)
            {
                if self.template.is_null() {
                    self.template = event.clone();
                }
                for choice in event["choices"].as_array().into_iter().flatten() {
                    self.text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
                }
            }
            self.held.extend_from_slice(&line);
            let sentence_end = self.text.ends_with(['。', '！', '？', '.', '!', '?', '\n', '；']);
            let chars = self.text.chars().count();
            let due = (sentence_end && chars > self.judged_chars)
                || chars - self.judged_chars >= JUDGE_EVERY_CHARS;
            if due && self.judge() {
                return true;
            }
        }
        false
    }

    /// Judges the text so far; on safe releases the held events, on unsafe queues the stop message.
    fn judge(&mut self) -> bool {
        self.judged_chars = self.text.chars().count();
        let Some(layer) = self.state.guard.as_ref() else { return false };
        let skip = self.judged_chars.saturating_sub(2000);
        let tail: String = self.text.chars().skip(skip).collect();
        let judgement = layer.check_output(&tail);
        if judgement.verdict == guard::Verdict::Unsafe
            && let Some(_) = layer.replacement(&judgement)
        {
            let stop = layer.policy.load().templates.stream_stop.clone();
            let mut event = self.template.clone();
            event["choices"] = json!([{"index": 0, "delta": {"content": stop}, "logprobs": null, "finish_reason": "content_filter"}]);
            event["finllm_guard"] = serde_json::to_value(&judgement).unwrap_or(Value::Null);
            self.held.clear();
            self.ready.push_back(Bytes::from(format!("data: {event}\n\n")));
            self.ready.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
            self.done = true;
            return true;
        }
        if !self.held.is_empty() {
            self.ready.push_back(Bytes::from(std::mem::take(&mut self.held)));
        }
        false
    }
}

impl Stream for ModeratedStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(bytes) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(bytes)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if self.take(&chunk) {
                        // Stop reading the model: dropping its stream cancels the generation.
                        self.inner = Box::pin(futures_util::stream::empty());
                    }
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => {
                    let rest = std::mem::take(&mut self.line);
                    self.held.extend_from_slice(&rest);
                    if !self.judge() && !self.held.is_empty() {
                        let held = std::mem::take(&mut self.held);
                        self.ready.push_back(Bytes::from(held));
                    }
                    self.done = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
