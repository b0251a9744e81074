//! The in-process engine behind the OpenAI endpoints: chat templates, tokenization, sampling parameters, and
//! OpenAI-shaped answers (whole or streamed as server-sent events) from the scheduler's events.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use engine::{
    chat_template::{ChatMessage, ChatTemplate, FunctionCall, ToolCall},
    constrain::{Constraint, Grammar, TokenTrie},
    kv_cache::{KvCache, KvCacheConfig},
    model::{self, LoadOptions},
    sampling::{SamplingParams, TokenLogprob},
    tokenizer::{StreamDecoder, Tokenizer},
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use types::Code;

use crate::{
    ServerError,
    error::ApiError,
    scheduler::{self, Event, Finish, GenRequest, SchedulerConfig, SchedulerHandle},
    upstream::{ForwardBody, Forwarded},
    wire::{ChatCompletionRequest, CompletionRequest, Content, Prompt, Sampling, Stop},
};

/// How to run the in-process model.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// A `.gguf` file or a Hugging Face folder.
    pub model: PathBuf,
    /// Bytes of KV cache shared by all sequences.
    pub kv_cache_bytes: usize,
    /// Longest sequence (prompt + output), capped at the model's window.
    pub max_context: usize,
    /// Scheduler limits.
    pub scheduler: SchedulerConfig,
}

/// A loaded model with its scheduler thread.
#[derive(Debug)]
pub struct EngineBackend {
    handle: SchedulerHandle,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    model_id: String,
    max_context: usize,
    /// The vocabulary's token bytes for constrained decoding, built on the first `response_format` request.
    trie: OnceLock<Arc<TokenTrie>>,
}

fn load_error(path: &Path, err: impl std::fmt::Display) -> ServerError {
    ServerError::Model(format!("{}: {err}", path.display()))
}

impl EngineBackend {
    /// Loads the model, its tokenizer and chat template, and starts the scheduler (blocking: seconds).
    pub fn load(config: &EngineConfig) -> Result<EngineBackend, ServerError> {
        let path = &config.model;
        let loaded =
            model::load(path, &LoadOptions { warm_up: true }).map_err(|e| load_error(path, e))?;
        let (tokenizer, template) = match (&loaded.gguf, &loaded.hf_dir) {
            (Some(gguf), _) => (
                Tokenizer::from_gguf(gguf.content()).map_err(|e| load_error(path, e))?,
                ChatTemplate::from_gguf(gguf.content()).map_err(|e| load_error(path, e))?,
            ),
            (None, Some(dir)) => (
                Tokenizer::from_hf_dir(dir).map_err(|e| load_error(path, e))?,
                ChatTemplate::from_hf_dir(dir).map_err(|e| load_error(path, e))?,
            ),
            (None, None) => return Err(load_error(path, "neither a GGUF file nor a model folder")),
        };
        let model_config = loaded.model.config().clone();
        let cache = KvCache::new(
            &model_config,
            &KvCacheConfig {
                block_size: 16,
                max_bytes: config.kv_cache_bytes,
                max_context: config.max_context,
            },
        )
        .map_err(|e| load_error(path, e))?;
        let max_context = cache.max_context();
        let tokenizer = Arc::new(tokenizer);
        let handle = scheduler::spawn(loaded.model, cache, tokenizer.clone(), config.scheduler)
            .map_err(|e| load_error(path, e))?;
        let model_id = path
            .file_stem()
            .or_else(|| path.file_name())
            .map_or_else(|| "model".to_owned(), |name| name.to_string_lossy().into_owned());
        Ok(EngineBackend {
            handle,
            tokenizer,
            template,
            model_id,
            max_context,
            trie: OnceLock::new(),
        })
    }

    /// The model, in `/v1/models` entry shape.
    pub fn models(&self) -> Vec<Value> {
        vec![
            json!({"id": self.model_id, "object": "model", "created": 0, "owned_by": "finllm", "max_model_len": self.max_context}),
        ]
    }

    /// Live scheduler counters.
    pub fn stats(&self) -> &scheduler::SchedulerStats {
        &self.handle.stats
    }

    fn check_model(&self, model: &str) -> Result<(), ApiError> {
        if model == self.model_id {
            return Ok(());
        }
        Err(ApiError::new(
            Code::ModelNotFound,
            format!("the model {model:?} is not served here; this server runs {:?}", self.model_id),
        )
        .with_param("model"))
    }

    /// Sampling parameters and stop strings from the OpenAI fields.
    fn params(
        &self,
        sampling: &Sampling,
        top_logprobs: usize,
        choice: u64,
    ) -> Result<(SamplingParams, Vec<String>), ApiError> {
        let mut params = SamplingParams::greedy();
        params.temperature = sampling.temperature.unwrap_or(1.0) as f32;
        params.top_p = sampling.top_p.unwrap_or(1.0) as f32;
        params.presence_penalty = sampling.presence_penalty.unwrap_or(0.0) as f32;
        params.frequency_penalty = sampling.frequency_penalty.unwrap_or(0.0) as f32;
        params.top_logprobs = top_logprobs;
        params.seed = match sampling.seed {
            Some(seed) => (seed as u64).wrapping_add(choice),
            None => rand_seed().wrapping_add(choice),
        };
        for (token, bias) in sampling.logit_bias.iter().flatten() {
            let id: u32 = token.parse().map_err(|_| {
                ApiError::new(
                    Code::InvalidParameter,
                    format!("logit_bias key {token:?} is not a token id"),
                )
                .with_param("logit_bias")
            })?;
            if id as usize >= self.tokenizer.vocab_size() {
                return Err(ApiError::new(
                    Code::InvalidParameter,
                    format!("logit_bias token {id} is outside the vocabulary"),
                )
                .with_param("logit_bias"));
            }
            params.logit_bias.insert(id, *bias as f32);
        }
        let stop = match &sampling.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        Ok((params, stop))
    }

    /// Checks the context window and picks the output limit.
    fn max_tokens(&self, prompt_len: usize, asked: Option<u32>) -> Result<usize, ApiError> {
        let room = self.max_context.saturating_sub(prompt_len);
        let asked = asked.map(|n| n as usize);
        if prompt_len > self.max_context || asked.is_some_and(|n| n > room) {
            return Err(ApiError::new(
                Code::ContextLengthExceeded,
                format!(
                    "this model's context window is {} tokens; the prompt has {prompt_len} and {} more were requested",
                    self.max_context,
                    asked.unwrap_or(0)
                ),
            )
            .with_param("messages"));
        }
        Ok(asked.unwrap_or(room))
    }

    /// The grammar `response_format` asks for (`None`: free text). Unsupported schemas are refused by name.
    fn grammar(&self, format: Option<&Value>) -> Result<Option<Arc<Grammar>>, ApiError> {
        let Some(format) = format else { return Ok(None) };
        let bad = |message: String, param: &str| {
            ApiError::new(Code::InvalidParameter, message).with_param(param.to_owned())
        };
        let grammar = match format["type"].as_str() {
            Some("text") => return Ok(None),
            Some("json_object") => Grammar::json_object(),
            Some("json_schema") => {
                let spec = &format["json_schema"];
                if !spec.is_object() {
                    return Err(bad(
                        "response_format of type json_schema needs a json_schema object".to_owned(),
                        "response_format.json_schema",
                    ));
                }
                match spec.get("schema") {
                    None => Grammar::json_object(),
                    Some(schema) => Grammar::from_schema(schema)
                        .map_err(|e| bad(e.to_string(), "response_format.json_schema.schema"))?,
                }
            }
            other => {
                return Err(bad(
                    format!(
                        "response_format type {other:?} is not supported; use text, json_object or json_schema"
                    ),
                    "response_format.type",
                ));
            }
        };
        Ok(Some(Arc::new(grammar)))
    }

    fn constraint(&self, grammar: Option<&Arc<Grammar>>) -> Option<Constraint> {
        let trie = self.trie.get_or_init(|| Arc::new(TokenTrie::new(&self.tokenizer)));
        grammar.map(|g| Constraint::new(g.clone(), trie.clone()))
    }

    fn submit(
        &self,
        prompt: Vec<u32>,
        params: SamplingParams,
        max_tokens: usize,
        stop: Vec<String>,
        prompt_logprobs: bool,
        constraint: Option<Constraint>,
    ) -> UnboundedReceiver<Event> {
        let (events, receiver) = unbounded_channel();
        self.handle.submit(GenRequest {
            prompt,
            params,
            max_tokens,
            stop,
            prompt_logprobs,
            constraint,
            events,
            arrived: std::time::Instant::now(),
        });
        receiver
    }

    /// `POST /v1/chat/completions`.
    pub async fn chat(&self, request: &ChatCompletionRequest) -> Result<Forwarded, ApiError> {
        self.check_model(&request.model)?;
        let messages = request
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| to_chat_message(i, m))
            .collect::<Result<Vec<_>, _>>()?;
        // The rendered prompt is encoded with special tokens recognised (the template's own turn markers must
        // be), so a control token typed into a message would forge a turn: refuse it.
        for (i, message) in messages.iter().enumerate() {
            if let Some(id) = self.tokenizer.find_control_token(&message.content) {
                let token = self.tokenizer.token_text(id).unwrap_or_default().to_owned();
                return Err(ApiError::new(
                    Code::InvalidParameter,
                    format!("message {i} contains the model's control token {token:?}, which would forge a conversation turn"),
                )
                .with_param(format!("messages[{i}].content")));
            }
        }
        let tools = request.tools.as_ref().map(|tools| Value::Array(tools.clone()));
        let tools_wanted =
            tools.is_some() && request.tool_choice.as_ref().is_none_or(|c| c != "none");
        let rendered = self
            .template
            .render(&messages, if tools_wanted { tools.as_ref() } else { None }, true)
            .map_err(|e| {
                ApiError::new(
                    Code::InvalidParameter,
                    format!("cannot apply the chat template: {e}"),
                )
                .with_param("messages")
            })?;
        let prompt = self
            .tokenizer
            .encode_chat(&rendered)
            .map_err(|e| ApiError::new(Code::InvalidParameter, e.to_string()))?;
        let max_tokens =
            self.max_tokens(prompt.len(), request.max_completion_tokens.or(request.max_tokens))?;
        let top = if request.logprobs { request.top_logprobs.unwrap_or(0) as usize } else { 0 };
        let n = request.sampling.n.unwrap_or(1) as usize;
        let grammar = self.grammar(request.response_format.as_ref())?;
        let mut receivers = Vec::with_capacity(n);
        for choice in 0..n {
            let (params, stop) = self.params(&request.sampling, top, choice as u64)?;
            let constraint = self.constraint(grammar.as_ref());
            receivers.push(self.submit(
                prompt.clone(),
                params,
                max_tokens,
                stop,
                false,
                constraint,
            ));
        }
        let meta = Meta::new("chatcmpl", &self.model_id);
        if request.sampling.stream && !tools_wanted {
            let include_usage =
                request.sampling.stream_options.as_ref().is_some_and(|o| o.include_usage);
            return Ok(sse(chat_stream(
                &meta,
                receivers,
                include_usage,
                request.logprobs,
                self.tokenizer.clone(),
            )));
        }
        let mut choices = Vec::new();
        let mut usage = Usage::default();
        for (index, receiver) in receivers.into_iter().enumerate() {
            let outcome = collect(receiver).await?;
            usage.add(&outcome, index == 0);
            let (content, tool_calls) = if tools_wanted {
                split_tool_calls(&outcome.text)
            } else {
                (outcome.text.clone(), Vec::new())
            };
            let mut message = json!({"role": "assistant", "content": content});
            let mut finish = finish_name(outcome.finish);
            if !tool_calls.is_empty() {
                message["tool_calls"] = Value::Array(tool_calls);
                finish = "tool_calls";
            }
            let logprobs = request.logprobs.then(|| json!({"content": outcome.tokens.iter().map(|t| chat_logprob(&self.tokenizer, t)).collect::<Vec<_>>()}));
            choices.push(json!({"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish}));
        }
        let body = json!({
            "id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
            "choices": choices, "usage": usage.json(), "system_fingerprint": null,
        });
        if request.sampling.stream {
            // Tool calls are parsed from the whole output, so a streamed answer with tools arrives as one chunk.
            return Ok(sse(futures_util::stream::iter(whole_as_chunks(
                &body,
                request.sampling.stream_options.as_ref().is_some_and(|o| o.include_usage),
            ))));
        }
        Ok(full(&body))
    }

    /// `POST /v1/completions`.
    pub async fn completion(&self, request: &CompletionRequest) -> Result<Forwarded, ApiError> {
        self.check_model(&request.model)?;
        // The echoed text is the prompt as given; token prompts are decoded without special tokens.
        let (prompts, texts): (Vec<Vec<u32>>, Vec<Option<String>>) = match &request.prompt {
            Prompt::Text(text) => (vec![self.encode(text)?], vec![Some(text.clone())]),
            Prompt::Texts(texts) => (
                texts.iter().map(|t| self.encode(t)).collect::<Result<_, _>>()?,
                texts.iter().cloned().map(Some).collect(),
            ),
            Prompt::Tokens(tokens) => (vec![tokens.clone()], vec![None]),
            Prompt::TokenLists(lists) => (lists.clone(), vec![None; lists.len()]),
        };
        let echo_texts: Vec<String> = prompts
            .iter()
            .zip(&texts)
            .map(|(tokens, text)| {
                text.clone().unwrap_or_else(|| {
                    self.tokenizer.decode_skip_special(tokens).unwrap_or_default()
                })
            })
            .collect();
        if prompts.iter().any(Vec::is_empty) {
            return Err(ApiError::new(Code::InvalidParameter, "prompt must not be empty")
                .with_param("prompt"));
        }
        if let Some(bad) =
            prompts.iter().flatten().find(|&&t| t as usize >= self.tokenizer.vocab_size())
        {
            return Err(ApiError::new(
                Code::InvalidParameter,
                format!("token id {bad} is outside the vocabulary"),
            )
            .with_param("prompt"));
        }
        let n = request.sampling.n.unwrap_or(1) as usize;
        let top = request.logprobs.unwrap_or(0) as usize;
        let want_logprobs = request.logprobs.is_some();
        let mut receivers = Vec::new();
        for prompt in &prompts {
            let max_tokens =
                self.max_tokens(prompt.len(), Some(request.max_tokens.unwrap_or(16)))?;
            for choice in 0..n {
                let (params, stop) = self.params(&request.sampling, top, choice as u64)?;
                let score = request.echo && want_logprobs;
                receivers.push((
                    prompt.clone(),
                    self.submit(prompt.clone(), params, max_tokens, stop, score, None),
                ));
            }
        }
        let meta = Meta::new("cmpl", &self.model_id);
        if request.sampling.stream {
            let include_usage =
                request.sampling.stream_options.as_ref().is_some_and(|o| o.include_usage);
            let echo = request.echo.then_some(echo_texts);
            return Ok(sse(completion_stream(
                &meta,
                receivers.into_iter().map(|(_, r)| r).collect(),
                include_usage,
                echo,
                n,
            )));
        }
        let mut choices = Vec::new();
        let mut usage = Usage::default();
        for (index, (prompt, receiver)) in receivers.into_iter().enumerate() {
            let outcome = collect(receiver).await?;
            usage.add(&outcome, index % n == 0);
            let mut text = String::new();
            let mut entries: Vec<(String, Option<f32>, Vec<TokenLogprob>)> = Vec::new();
            if request.echo {
                text.push_str(&echo_texts[index / n]);
                let pieces = self.pieces(&prompt, StreamDecoder::new());
                for (i, piece) in pieces.into_iter().enumerate() {
                    let (lp, top) = outcome.prompt.get(i).cloned().unwrap_or((None, Vec::new()));
                    entries.push((piece, lp, top));
                }
            }
            text.push_str(&outcome.text);
            let generated: Vec<u32> = outcome.tokens.iter().map(|t| t.id).collect();
            let pieces = self.pieces(&generated, StreamDecoder::after_prompt());
            for (t, piece) in outcome.tokens.iter().zip(pieces) {
                entries.push((piece, Some(t.logprob), t.top.clone()));
            }
            let logprobs = want_logprobs.then(|| completion_logprobs(&entries, &self.tokenizer));
            choices.push(json!({"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_name(outcome.finish)}));
        }
        let body = json!({"id": meta.id, "object": "text_completion", "created": meta.created, "model": meta.model, "choices": choices, "usage": usage.json()});
        Ok(full(&body))
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, ApiError> {
        self.tokenizer
            .encode(text, true)
            .map_err(|e| ApiError::new(Code::InvalidParameter, e.to_string()).with_param("prompt"))
    }

    /// The text each token adds, so that the pieces concatenate to the decoded text and `text_offset`s point
    /// into it: a token that ends inside a UTF-8 character adds nothing, the one that completes it adds the
    /// character; special tokens add nothing.
    fn pieces(&self, tokens: &[u32], decoder: StreamDecoder) -> Vec<String> {
        let mut decoder = decoder.skip_special(true);
        let mut pieces: Vec<String> =
            tokens.iter().map(|&t| decoder.push(&self.tokenizer, t).unwrap_or_default()).collect();
        if let Some(last) = pieces.last_mut() {
            last.push_str(&decoder.finish());
        }
        pieces
    }
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

fn to_chat_message(index: usize, message: &crate::wire::Message) -> Result<ChatMessage, ApiError> {
    let content = match &message.content {
        None => String::new(),
        Some(Content::Text(text)) => text.clone(),
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match part["type"].as_str() {
                    Some("text") => text.push_str(part["text"].as_str().unwrap_or_default()),
                    other => {
                        return Err(ApiError::new(
                            Code::InvalidParameter,
                            format!("this model accepts text only; content part of type {other:?} is not supported"),
                        )
                        .with_param(format!("messages[{index}].content")));
                    }
                }
            }
            text
        }
    };
    let mut chat = ChatMessage::new(message.role.clone(), content);
    chat.name.clone_from(&message.name);
    chat.tool_call_id.clone_from(&message.tool_call_id);
    if let Some(calls) = &message.tool_calls {
        let mut parsed = Vec::new();
        for call in calls {
            let arguments = &call["function"]["arguments"];
            // OpenAI sends arguments as a JSON-encoded string; templates want the object.
            let arguments = match arguments {
                Value::String(text) => {
                    serde_json::from_str(text).unwrap_or_else(|_| arguments.clone())
                }
                other => other.clone(),
            };
            parsed.push(ToolCall {
                id: call["id"].as_str().map(str::to_owned),
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: call["function"]["name"].as_str().unwrap_or_default().to_owned(),
                    arguments,
                },
            });
        }
        chat.tool_calls = Some(parsed);
    }
    Ok(chat)
}

/// One generated token as collected.
#[derive(Debug, Clone)]
struct TokenOut {
    id: u32,
    logprob: f32,
    top: Vec<TokenLogprob>,
}

#[derive(Debug, Default)]
struct Outcome {
    text: String,
    tokens: Vec<TokenOut>,
    prompt: Vec<(Option<f32>, Vec<TokenLogprob>)>,
    finish: Option<Finish>,
    prompt_tokens: usize,
    completion_tokens: usize,
    cached_tokens: usize,
}

async fn collect(mut receiver: UnboundedReceiver<Event>) -> Result<Outcome, ApiError> {
    let mut outcome = Outcome::default();
    while let Some(event) = receiver.recv().await {
        match event {
            Event::Prompt(scored) => outcome.prompt = scored,
            Event::Token { id, text, logprob, top } => {
                outcome.text.push_str(&text);
                outcome.tokens.push(TokenOut { id, logprob, top });
            }
            Event::Text(text) => outcome.text.push_str(&text),
            Event::Done { finish, prompt_tokens, completion_tokens, cached_tokens } => {
                outcome.finish = Some(finish);
                outcome.prompt_tokens = prompt_tokens;
                outcome.completion_tokens = completion_tokens;
                outcome.cached_tokens = cached_tokens;
                return Ok(outcome);
            }
            Event::Failed { overloaded, message } => return Err(failure(overloaded, message)),
        }
    }
    Err(ApiError::new(Code::Internal, "the engine stopped before finishing the request"))
}

fn failure(overloaded: bool, message: String) -> ApiError {
    ApiError::new(if overloaded { Code::QueueFull } else { Code::Internal }, message)
}

fn finish_name(finish: Option<Finish>) -> &'static str {
    match finish {
        Some(Finish::Length) => "length",
        _ => "stop",
    }
}

#[derive(Debug, Default)]
struct Usage {
    prompt: usize,
    completion: usize,
    cached: usize,
}

impl Usage {
    fn add(&mut self, outcome: &Outcome, count_prompt: bool) {
        if count_prompt {
            self.prompt += outcome.prompt_tokens;
            self.cached += outcome.cached_tokens;
        }
        self.completion += outcome.completion_tokens;
    }

    fn json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached},
        })
    }
}

struct Meta {
    id: String,
    created: i64,
    model: String,
}

impl Meta {
    fn new(prefix: &str, model: &str) -> Meta {
        Meta {
            id: format!("{prefix}-{}", types::Id::new().to_string().replace('-', "")),
            created: types::Timestamp::now().unix_seconds(),
            model: model.to_owned(),
        }
    }
}

fn full(body: &Value) -> Forwarded {
    Forwarded {
        status: axum::http::StatusCode::OK,
        content_type: axum::http::HeaderValue::from_static("application/json"),
        body: ForwardBody::Full(Bytes::from(body.to_string())),
    }
}

fn sse(stream: impl futures_util::Stream<Item = Value> + Send + 'static) -> Forwarded {
    let events = stream
        .map(|value| Ok::<_, std::io::Error>(Bytes::from(format!("data: {value}\n\n"))))
        .chain(futures_util::stream::once(async { Ok(Bytes::from_static(b"data: [DONE]\n\n")) }));
    Forwarded {
        status: axum::http::StatusCode::OK,
        content_type: axum::http::HeaderValue::from_static("text/event-stream"),
        body: ForwardBody::Stream(Box::pin(events)),
    }
}

fn chat_logprob(tokenizer: &Tokenizer, token: &TokenOut) -> Value {
    let entry = |id: u32, logprob: f32| {
        let piece = tokenizer.token_to_piece(id).unwrap_or_default();
        json!({"token": piece, "logprob": logprob, "bytes": piece.as_bytes()})
    };
    let mut value = entry(token.id, token.logprob);
    value["top_logprobs"] =
        Value::Array(token.top.iter().map(|t| entry(t.token, t.logprob)).collect());
    value
}

fn completion_logprobs(
    entries: &[(String, Option<f32>, Vec<TokenLogprob>)],
    tokenizer: &Tokenizer,
) -> Value {
    let mut offset = 0;
    let mut offsets = Vec::new();
    for (piece, ..) in entries {
        offsets.push(offset);
        offset += piece.len();
    }
    json!({
        "tokens": entries.iter().map(|(p, ..)| p.clone()).collect::<Vec<_>>(),
        "token_logprobs": entries.iter().map(|(_, lp, _)| *lp).collect::<Vec<_>>(),
        "top_logprobs": entries.iter().map(|(_, lp, top)| {
            if lp.is_none() { return Value::Null; }
            let map: serde_json::Map<String, Value> = top.iter().map(|t| (tokenizer.token_to_piece(t.token).unwrap_or_default(), json!(t.logprob))).collect();
            Value::Object(map)
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

/// Splits `<tool_call>{"name": ..., "arguments": ...}</tool_call>` blocks (the Qwen and Ling convention) out of
/// the output. Text that does not parse stays in the content.
fn split_tool_calls(text: &str) -> (String, Vec<Value>) {
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<tool_call>") {
        let after = &rest[start + "<tool_call>".len()..];
        let Some(end) = after.find("</tool_call>") else { break };
        let inner = after[..end].trim();
        match serde_json::from_str::<Value>(inner) {
            Ok(call) if call["name"].is_string() => {
                content.push_str(&rest[..start]);
                let arguments = match &call["arguments"] {
                    Value::String(s) => s.clone(),
                    Value::Null => "{}".to_owned(),
                    other => other.to_string(),
                };
                calls.push(json!({
                    "id": format!("call_{}", &types::Id::new().to_string().replace('-', "")[..24]),
                    "type": "function",
                    "function": {"name": call["name"], "arguments": arguments},
                }));
            }
            _ => {
                content.push_str(&rest[..start + "<tool_call>".len() + end + "</tool_call>".len()]);
            }
        }
        rest = &after[end + "</tool_call>".len()..];
    }
    content.push_str(rest);
    (content.trim().to_owned(), calls)
}

/// A whole chat answer re-shaped as stream chunks (used when tool calls had to be parsed first).
pub(crate) fn whole_as_chunks(body: &Value, include_usage: bool) -> Vec<Value> {
    let mut chunks = Vec::new();
    for choice in body["choices"].as_array().into_iter().flatten() {
        let mut delta = json!({"role": "assistant", "content": choice["message"]["content"]});
        if let Some(calls) = choice["message"]["tool_calls"].as_array() {
            let indexed: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut c = c.clone();
                    c["index"] = json!(i);
                    c
                })
                .collect();
            delta["tool_calls"] = Value::Array(indexed);
        }
        chunks.push(chunk(body, json!([{"index": choice["index"], "delta": delta, "logprobs": null, "finish_reason": null}])));
        chunks.push(chunk(body, json!([{"index": choice["index"], "delta": {}, "logprobs": null, "finish_reason": choice["finish_reason"]}])));
    }
    if include_usage {
        let mut last = chunk(body, json!([]));
        last["usage"] = body["usage"].clone();
        chunks.push(last);
    }
    chunks
}

fn chunk(body: &Value, choices: Value) -> Value {
    let mut value = json!({
        "id": body["id"], "object": "chat.completion.chunk", "created": body["created"],
        "model": body["model"], "system_fingerprint": null,
    });
    value["choices"] = choices;
    value
}

/// Merges several receivers into one stream of (choice index, event).
fn merged(
    receivers: Vec<UnboundedReceiver<Event>>,
) -> impl futures_util::Stream<Item = (usize, Event)> + Send {
    let streams = receivers.into_iter().enumerate().map(|(i, receiver)| {
        Box::pin(
            futures_util::stream::unfold(receiver, |mut r| async move {
                r.recv().await.map(|e| (e, r))
            })
            .map(move |e| (i, e)),
        )
    });
    futures_util::stream::select_all(streams)
}

fn chat_stream(
    meta: &Meta,
    receivers: Vec<UnboundedReceiver<Event>>,
    include_usage: bool,
    logprobs: bool,
    tokenizer: Arc<Tokenizer>,
) -> impl futures_util::Stream<Item = Value> + Send + use<> {
    let base = json!({"id": meta.id, "object": "chat.completion.chunk", "created": meta.created, "model": meta.model});
    let n = receivers.len();
    let first: Vec<Value> = (0..n).map(|i| chunk(&base, json!([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]))).collect();
    let usage = Arc::new(std::sync::Mutex::new((Usage::default(), 0usize)));
    let usage_end = usage.clone();
    let base_end = base.clone();
    let body = merged(receivers).filter_map(move |(i, event)| {
        let value = match event {
            Event::Token { text, id, logprob, top } => {
                let lp = logprobs.then(|| json!({"content": [chat_logprob(&tokenizer, &TokenOut { id, logprob, top })]}));
                if text.is_empty() && lp.is_none() { None } else {
                    Some(chunk(&base, json!([{"index": i, "delta": {"content": text}, "logprobs": lp, "finish_reason": null}])))
                }
            }
            Event::Text(text) => Some(chunk(&base, json!([{"index": i, "delta": {"content": text}, "logprobs": null, "finish_reason": null}]))),
            Event::Done { finish, prompt_tokens, completion_tokens, cached_tokens } => {
                if let Ok(mut u) = usage.lock() {
                    let outcome = Outcome { prompt_tokens, completion_tokens, cached_tokens, ..Outcome::default() };
                    let first = u.1 == 0;
                    u.0.add(&outcome, first);
                    u.1 += 1;
                }
                Some(chunk(&base, json!([{"index": i, "delta": {}, "logprobs": null, "finish_reason": finish_name(Some(finish))}])))
            }
            Event::Failed { message, .. } => Some(json!({"error": {"message": message, "type": "server_error", "param": null, "code": "internal_error"}})),
            Event::Prompt(_) => None,
        };
        std::future::ready(value)
    });
    let tail = futures_util::stream::once(async move {
        if !include_usage {
            return None;
        }
        let usage = usage_end.lock().map(|u| u.0.json()).unwrap_or(Value::Null);
        let mut last = chunk(&base_end, json!([]));
        last["usage"] = usage;
        Some(last)
    })
    .filter_map(std::future::ready);
    futures_util::stream::iter(first).chain(body).chain(tail)
}

fn completion_stream(
    meta: &Meta,
    receivers: Vec<UnboundedReceiver<Event>>,
    include_usage: bool,
    echo: Option<Vec<String>>,
    n: usize,
) -> impl futures_util::Stream<Item = Value> + Send + use<> {
    let base = json!({"id": meta.id, "object": "text_completion", "created": meta.created, "model": meta.model});
    let piece = |base: &Value, i: usize, text: String, finish: Value| {
        let mut v = base.clone();
        v["choices"] =
            json!([{"index": i, "text": text, "logprobs": null, "finish_reason": finish}]);
        v
    };
    let echoes: Vec<Value> = echo
        .into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(p, text)| (0..n).map(move |c| (p * n + c, text.clone())))
        .map(|(i, text)| piece(&base, i, text, Value::Null))
        .collect();
    let usage = Arc::new(std::sync::Mutex::new(Usage::default()));
    let usage_end = usage.clone();
    let base_body = base.clone();
    let body = merged(receivers).filter_map(move |(i, event)| {
        let value = match event {
            Event::Token { text, .. } | Event::Text(text) if !text.is_empty() => Some(piece(&base_body, i, text, Value::Null)),
            Event::Done { finish, prompt_tokens, completion_tokens, cached_tokens } => {
                if let Ok(mut u) = usage.lock() {
                    u.add(&Outcome { prompt_tokens, completion_tokens, cached_tokens, ..Outcome::default() }, i % n == 0);
                }
                Some(piece(&base_body, i, String::new(), json!(finish_name(Some(finish)))))
            }
            Event::Failed { message, .. } => Some(json!({"error": {"message": message, "type": "server_error", "param": null, "code": "internal_error"}})),
            _ => None,
        };
        std::future::ready(value)
    });
    let tail = futures_util::stream::once(async move {
        if !include_usage {
            return None;
        }
        let mut last = base.clone();
        last["choices"] = json!([]);
        last["usage"] = usage_end.lock().map(|u| u.json()).unwrap_or(Value::Null);
        Some(last)
    })
    .filter_map(std::future::ready);
    futures_util::stream::iter(echoes).chain(body).chain(tail)
}

/// Default limits for `finllm serve --model`.
pub fn default_scheduler() -> SchedulerConfig {
    SchedulerConfig {
        max_step_tokens: 512,
        max_running: 64,
        max_waiting: 256,
        queue_timeout: Duration::from_secs(120),
        max_prefixes: 8,
    }
}
