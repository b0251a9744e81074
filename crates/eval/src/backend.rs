//! How EVE reaches a model: the [`Backend`] trait, an OpenAI-compatible HTTP client (chat or
//! completions, with concurrency and QPS limits and retries) and a scripted backend whose answers tests
//! choose.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::{
    sync::{Mutex, Semaphore},
    time::Instant,
};

use crate::EvalError;

/// A model under evaluation.
pub trait Backend: Send + Sync {
    /// The model id results are stored under.
    fn model(&self) -> &str;
    /// The model's continuation of `prompt` (greedy, at most `max_tokens`).
    fn generate<'a>(
        &'a self,
        prompt: &'a str,
        max_tokens: u32,
    ) -> BoxFuture<'a, Result<String, EvalError>>;
    /// The log-probability of each continuation after `context` (sum over its tokens).
    fn loglik<'a>(
        &'a self,
        context: &'a str,
        continuations: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<f64>, EvalError>>;
    /// Whether the backend takes images (OpenAI image content parts).
    fn supports_images(&self) -> bool {
        false
    }
    /// The model's answer to `prompt` showing `images` (`data:` URLs); backends without image input
    /// answer [`EvalError::Unsupported`], which a run reports instead of scoring zero.
    fn generate_with_images<'a>(
        &'a self,
        _prompt: &'a str,
        _images: &'a [String],
        _max_tokens: u32,
    ) -> BoxFuture<'a, Result<String, EvalError>> {
        Box::pin(async { Err(EvalError::Unsupported("image input".into())) })
    }
}

/// Per-backend limits on parallel requests and requests per second.
#[derive(Debug)]
pub struct Limits {
    permits: Semaphore,
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl Limits {
    /// At most `concurrency` requests in flight and `qps` per second (0 = unlimited).
    pub fn new(concurrency: usize, qps: f64) -> Limits {
        Limits {
            permits: Semaphore::new(concurrency.max(1)),
            interval: (qps > 0.0).then(|| Duration::from_secs_f64(1.0 / qps)),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait_turn(&self) {
        if let Some(interval) = self.interval {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            if *next > now {
                tokio::time::sleep_until(*next).await;
            }
            *next = Instant::now().max(*next) + interval;
        }
    }
}

/// An OpenAI-compatible endpoint (`finllm serve`, vLLM, llama.cpp, a vendor API).
#[derive(Debug)]
pub struct OpenAi {
    client: reqwest::Client,
    base: String,
    model: String,
    api_key: Option<String>,
    chat: bool,
    retries: u32,
    limits: Limits,
    /// Whether to send all options of a sample as one request with a list of prompts (cleared when the
    /// endpoint refuses a list).
    prompt_lists: AtomicBool,
    /// Whether to score the context alone too, first (set once echoed offsets failed to locate an option).
    context_first: AtomicBool,
}

impl OpenAi {
    /// A client for `base` (e.g. `http://127.0.0.1:8080/v1`); `chat` sends generations to
    /// `/chat/completions` instead of `/completions`.
    pub fn new(
        base: &str,
        model: &str,
        api_key: Option<String>,
        chat: bool,
        limits: Limits,
    ) -> Result<OpenAi, EvalError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| EvalError::Backend(e.to_string()))?;
        let base = base.trim_end_matches('/');
        let base = if base.ends_with("/v1") { base.to_owned() } else { format!("{base}/v1") };
        Ok(OpenAi {
            client,
            base,
            model: model.to_owned(),
            api_key,
            chat,
            retries: 4,
            limits,
            prompt_lists: AtomicBool::new(true),
            context_first: AtomicBool::new(false),
        })
    }

    /// Sets how often a failed request (connection error, 429, 5xx) is retried.
    #[must_use]
    pub fn with_retries(mut self, retries: u32) -> OpenAi {
        self.retries = retries;
        self
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, EvalError> {
        let _permit =
            self.limits.permits.acquire().await.map_err(|e| EvalError::Backend(e.to_string()))?;
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            self.limits.wait_turn().await;
            let mut req = self.client.post(&url).json(body);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        return serde_json::from_str(&text)
                            .map_err(|e| EvalError::Backend(format!("{url}: not JSON: {e}")));
                    }
                    let retry = status.as_u16() == 429 || status.is_server_error();
                    let message = format!(
                        "{url}: HTTP {status}: {}",
                        text.chars().take(300).collect::<String>()
                    );
                    if !retry {
                        return Err(EvalError::Backend(message));
                    }
                    message
                }
                Err(e) => format!("{url}: {e}"),
            };
            if attempt >= self.retries {
                return Err(EvalError::Backend(format!("{outcome} (after {} tries)", attempt + 1)));
            }
            tokio::time::sleep(Duration::from_millis(250 << attempt.min(6))).await;
            attempt += 1;
        }
    }
}

impl OpenAi {
    /// The echoed prompt log-probabilities of `prompt` (`max_tokens: 0`, `echo`, `logprobs`).
    async fn echo(&self, prompt: &str) -> Result<Value, EvalError> {
        let body = json!({"model": self.model, "prompt": prompt, "max_tokens": 0, "echo": true,
            "logprobs": 1, "temperature": 0});
        let mut v = self.post("/completions", &body).await?;
        Ok(v["choices"][0]["logprobs"].take())
    }

    /// [`OpenAi::echo`] of every prompt, in order. The prompts go as one request with a list of prompts
    /// (one round trip, and a server that shares the prompts' common start computes it once); an endpoint
    /// that refuses lists (HTTP 400 or 422) gets one request per prompt from then on.
    async fn echo_all(&self, prompts: &[String]) -> Result<Vec<Value>, EvalError> {
        if prompts.len() > 1 && self.prompt_lists.load(Ordering::Relaxed) {
            let body = json!({"model": self.model, "prompt": prompts, "max_tokens": 0, "echo": true,
                "logprobs": 1, "temperature": 0});
            match self.post("/completions", &body).await {
                Ok(v) => return by_prompt(v, prompts.len()),
                Err(EvalError::Backend(m)) if m.contains("HTTP 400") || m.contains("HTTP 422") => {
                    self.prompt_lists.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let mut out = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            out.push(self.echo(prompt).await?);
        }
        Ok(out)
    }
}

/// The `logprobs` of each choice of a completions answer to `n` prompts, in prompt order (by `index`).
fn by_prompt(mut answer: Value, n: usize) -> Result<Vec<Value>, EvalError> {
    let mut out = vec![Value::Null; n];
    let choices = answer["choices"].as_array_mut().map(std::mem::take).unwrap_or_default();
    if choices.len() != n {
        return Err(EvalError::Backend(format!(
            "asked to score {n} prompts, got {} choices",
            choices.len()
        )));
    }
    for (position, mut choice) in choices.into_iter().enumerate() {
        let index =
            choice["index"].as_u64().and_then(|i| usize::try_from(i).ok()).unwrap_or(position);
        let slot = out.get_mut(index).filter(|slot| slot.is_null()).ok_or_else(|| {
            EvalError::Backend(format!("choice index {index} out of range or repeated"))
        })?;
        *slot = choice["logprobs"].take();
        if slot.is_null() {
            return Err(EvalError::Backend(format!("choice {index} has no logprobs")));
        }
    }
    Ok(out)
}

impl Backend for OpenAi {
    fn model(&self) -> &str {
        &self.model
    }

    fn generate<'a>(
        &'a self,
        prompt: &'a str,
        max_tokens: u32,
    ) -> BoxFuture<'a, Result<String, EvalError>> {
        Box::pin(async move {
            if self.chat {
                let body = json!({"model": self.model, "temperature": 0, "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": prompt}]});
                let v = self.post("/chat/completions", &body).await?;
                v["choices"][0]["message"]["content"].as_str().map(str::to_owned).ok_or_else(|| {
                    EvalError::Backend(format!("no choices[0].message.content in {v}"))
                })
            } else {
                let body = json!({"model": self.model, "temperature": 0, "max_tokens": max_tokens, "prompt": prompt});
                let v = self.post("/completions", &body).await?;
                v["choices"][0]["text"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| EvalError::Backend(format!("no choices[0].text in {v}")))
            }
        })
    }

    fn loglik<'a>(
        &'a self,
        context: &'a str,
        continuations: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<f64>, EvalError>> {
        Box::pin(async move {
            if self.chat {
                return Err(EvalError::Unsupported(
                    "prompt log-probabilities over a chat API: use --scoring generate or a /v1/completions endpoint"
                        .into(),
                ));
            }
            // Once offsets have failed, the context goes first in the same request: its token count is
            // then at hand without another round trip, and the options reuse its computed prefix.
            let with_context = !context.is_empty() && self.context_first.load(Ordering::Relaxed);
            let mut prompts: Vec<String> = Vec::with_capacity(continuations.len() + 1);
            if with_context {
                prompts.push(context.to_owned());
            }
            prompts.extend(continuations.iter().map(|cont| format!("{context}{cont}")));
            let mut echoes = self.echo_all(&prompts).await?;
            let mut context_tokens = None;
            if with_context {
                prompts.remove(0);
                context_tokens = Some(token_count(&echoes.remove(0))?);
            }
            let mut out = Vec::with_capacity(continuations.len());
            for (prompt, logprobs) in prompts.iter().zip(&echoes) {
                let lp = match continuation_logprob(logprobs, prompt, context.len())? {
                    Some(lp) => lp,
                    None => {
                        // Offsets that do not describe the prompt (e.g. byte-fallback tokens shown as U+FFFD):
                        // count the context's own tokens instead, asked once per sample.
                        let n = match context_tokens {
                            Some(n) => n,
                            None => {
                                self.context_first.store(true, Ordering::Relaxed);
                                let n = token_count(&self.echo(context).await?)?;
                                context_tokens = Some(n);
                                n
                            }
                        };
                        tail_logprob(logprobs, n)?
                    }
                };
                out.push(lp);
            }
            Ok(out)
        })
    }

    fn supports_images(&self) -> bool {
        self.chat
    }

    fn generate_with_images<'a>(
        &'a self,
        prompt: &'a str,
        images: &'a [String],
        max_tokens: u32,
    ) -> BoxFuture<'a, Result<String, EvalError>> {
        Box::pin(async move {
            if !self.chat {
                return Err(EvalError::Unsupported("image input over /v1/completions".into()));
            }
            let mut content = vec![json!({"type": "text", "text": prompt})];
            content.extend(
                images.iter().map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
            );
            let body = json!({"model": self.model, "temperature": 0, "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": content}]});
            let v = match self.post("/chat/completions", &body).await {
                Ok(v) => v,
                // A model without vision rejects image parts as a bad request: unsupported, not wrong.
                Err(EvalError::Backend(m)) if m.contains("HTTP 400") || m.contains("HTTP 422") => {
                    return Err(EvalError::Unsupported(format!("image input: {m}")));
                }
                Err(e) => return Err(e),
            };
            v["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| EvalError::Backend(format!("no choices[0].message.content in {v}")))
        })
    }
}

/// An echo response's tokens, their log-probabilities and their text offsets (empty when absent).
type EchoParts<'a> = (Vec<&'a str>, &'a Vec<Value>, Vec<usize>);

fn parts(logprobs: &Value) -> Result<EchoParts<'_>, EvalError> {
    let bad = |what: &str| EvalError::Backend(format!("echo logprobs: {what} in {logprobs}"));
    let tokens: Vec<&str> = logprobs["tokens"]
        .as_array()
        .ok_or_else(|| bad("no tokens"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let lps = logprobs["token_logprobs"].as_array().ok_or_else(|| bad("no token_logprobs"))?;
    let offsets: Vec<usize> = logprobs["text_offset"]
        .as_array()
        .map(|o| {
            o.iter().filter_map(|o| o.as_u64().and_then(|o| usize::try_from(o).ok())).collect()
        })
        .unwrap_or_default();
    if tokens.is_empty() || lps.len() != tokens.len() {
        return Err(bad("tokens and token_logprobs differ in length"));
    }
    Ok((tokens, lps, offsets))
}

fn sum_from(logprobs: &Value, lps: &[Value], first: usize) -> Result<f64, EvalError> {
    if first >= lps.len() {
        return Err(EvalError::Backend(format!(
            "echo logprobs: no token covers the continuation in {logprobs}"
        )));
    }
    lps[first..].iter().try_fold(0.0, |sum, lp| {
        lp.as_f64().map(|lp| sum + lp).ok_or_else(|| {
            EvalError::Backend(format!(
                "echo logprobs: a continuation token has no logprob in {logprobs}"
            ))
        })
    })
}

/// Sums the log-probabilities of the tokens that overlap the continuation, found by text offset. Offsets
/// may count bytes (finllm, llama.cpp) or characters. Where under neither unit do the offsets describe the
/// prompt, but the tokens' text is the prompt after some leading text of the tokenizer's own (a
/// SentencePiece dummy-prefix `▁`, a BOS piece), byte offsets are counted from the tokens themselves.
/// `None` when none of these holds (then [`tail_logprob`] with the context's token count is the fallback).
pub fn continuation_logprob(
    logprobs: &Value,
    prompt: &str,
    context_bytes: usize,
) -> Result<Option<f64>, EvalError> {
    let (tokens, lps, offsets) = parts(logprobs)?;
    let Some((offsets, boundary, width)) = served_offsets(&tokens, offsets, prompt, context_bytes)
        .or_else(|| counted_offsets(&tokens, prompt, context_bytes))
    else {
        return Ok(None);
    };
    // The first token that reaches past the context (a token straddling the boundary counts).
    let first = offsets
        .iter()
        .zip(&tokens)
        .position(|(&o, t)| o + width(t).max(1) > boundary)
        .unwrap_or(tokens.len());
    sum_from(logprobs, lps, first).map(Some)
}

/// Token offsets, the context's end and the width of a token, all in one unit (bytes or characters).
type Offsets = (Vec<usize>, usize, fn(&str) -> usize);

/// The server's `text_offset`s, when they cover the prompt exactly in bytes or in characters.
fn served_offsets(
    tokens: &[&str],
    offsets: Vec<usize>,
    prompt: &str,
    context_bytes: usize,
) -> Option<Offsets> {
    if offsets.len() != tokens.len() {
        return None;
    }
    let (last, last_token) = (*offsets.last()?, *tokens.last()?);
    if last + last_token.len() == prompt.len() {
        Some((offsets, context_bytes, str::len))
    } else if last + last_token.chars().count() == prompt.chars().count() {
        let boundary = prompt.get(..context_bytes).map_or(context_bytes, |c| c.chars().count());
        Some((offsets, boundary, |t| t.chars().count()))
    } else {
        None
    }
}

/// Byte offsets counted from the tokens' own text, when it ends with the prompt.
fn counted_offsets(tokens: &[&str], prompt: &str, context_bytes: usize) -> Option<Offsets> {
    let text = tokens.concat();
    let lead = text.strip_suffix(prompt)?.len();
    let offsets = tokens
        .iter()
        .scan(0, |at, t| {
            let start = *at;
            *at += t.len();
            Some(start)
        })
        .collect();
    Some((offsets, lead + context_bytes, str::len))
}

/// The number of tokens in an echo response.
pub fn token_count(logprobs: &Value) -> Result<usize, EvalError> {
    Ok(parts(logprobs)?.0.len())
}

/// Sums the log-probabilities of the tokens after the first `context_tokens`.
pub fn tail_logprob(logprobs: &Value, context_tokens: usize) -> Result<f64, EvalError> {
    let (_, lps, _) = parts(logprobs)?;
    sum_from(logprobs, lps, context_tokens)
}

type AnswerFn = dyn Fn(&str) -> Result<String, EvalError> + Send + Sync;

/// Answers chosen by a test: `answer(prompt)` is the generation; for log-likelihood, the option the
/// answer ends with (`A` for `答案：A`) gets 0 and every other one -10. Counts every call, so tests can prove what was (not) asked.
pub struct Scripted {
    model: String,
    answer: Box<AnswerFn>,
    calls: Arc<AtomicUsize>,
    images: bool,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted").field("model", &self.model).field("calls", &self.calls).finish()
    }
}

impl Scripted {
    /// A scripted model called `model`.
    pub fn new(
        model: &str,
        answer: impl Fn(&str) -> Result<String, EvalError> + Send + Sync + 'static,
    ) -> Scripted {
        Scripted {
            model: model.to_owned(),
            answer: Box::new(answer),
            calls: Arc::new(AtomicUsize::new(0)),
            images: false,
        }
    }

    /// Accepts images: the answer function then sees the prompt followed by `[N images]`.
    #[must_use]
    pub fn with_images(mut self) -> Scripted {
        self.images = true;
        self
    }

    /// A scripted model answering from `(needle, output)` pairs: the pair whose needle occurs latest in
    /// the prompt (an empty needle is the fallback) (the question being asked, not a few-shot example) gives the output; none gives "".
    pub fn from_pairs(model: &str, pairs: Vec<(String, String)>) -> Scripted {
        Scripted::new(model, move |prompt| {
            Ok(pairs
                .iter()
                // An empty needle is the default answer: it matches, but last in priority.
                .filter_map(|(needle, out)| {
                    if needle.is_empty() {
                        Some((0, out))
                    } else {
                        prompt.rfind(needle.as_str()).map(|at| (at + 1, out))
                    }
                })
                .max_by_key(|(at, _)| *at)
                .map(|(_, out)| out.clone())
                .unwrap_or_default())
        })
    }

    /// The shared call counter.
    pub fn calls(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.calls)
    }
}

impl Backend for Scripted {
    fn model(&self) -> &str {
        &self.model
    }

    fn generate<'a>(
        &'a self,
        prompt: &'a str,
        _max_tokens: u32,
    ) -> BoxFuture<'a, Result<String, EvalError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let out = (self.answer)(prompt);
        Box::pin(async move { out })
    }

    fn loglik<'a>(
        &'a self,
        context: &'a str,
        continuations: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<f64>, EvalError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let out = (self.answer)(context).map(|a| {
            continuations
                .iter()
                .map(|c| if a.trim().ends_with(c.trim()) { 0.0 } else { -10.0 })
                .collect()
        });
        Box::pin(async move { out })
    }

    fn supports_images(&self) -> bool {
        self.images
    }

    fn generate_with_images<'a>(
        &'a self,
        prompt: &'a str,
        images: &'a [String],
        _max_tokens: u32,
    ) -> BoxFuture<'a, Result<String, EvalError>> {
        if !self.images {
            return Box::pin(async { Err(EvalError::Unsupported("image input".into())) });
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        let out = (self.answer)(&format!("{prompt}\n[{} images]", images.len()));
        Box::pin(async move { out })
    }
}
