//! Upstream OpenAI-compatible servers: routing by model, timeouts, retries with backoff, failover and a
//! circuit breaker.
//!
//! This is how a deployment grows past one machine: many `finllm serve` replicas in front of a GPU cluster of
//! vLLM or SGLang servers. A request goes to the first healthy upstream that serves its model; a connection
//! failure, a timeout or a 5xx moves it to the next, after a short backoff. An upstream that keeps failing is
//! skipped (its breaker opens) until a cool-down passes, then one trial request decides. A 4xx is the
//! caller's fault and is passed through unchanged. Once an upstream has started streaming, the stream is
//! relayed as is: a mid-stream failure ends the stream rather than replaying tokens the client already has.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use bytes::Bytes;
use futures_util::StreamExt;
use types::Code;

use crate::{ServerConfig, ServerError, error::ApiError};

/// Consecutive failures that open an upstream's breaker.
const BREAKER_THRESHOLD: u32 = 3;
/// How long an open breaker keeps an upstream out of rotation.
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(10);
/// How long a discovered model list is trusted.
const MODELS_TTL: Duration = Duration::from_secs(30);
/// First retry backoff; doubles per attempt.
const BASE_BACKOFF: Duration = Duration::from_millis(50);

/// One upstream server as configured.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL, such as `http://10.0.0.5:8000` (a trailing `/v1` is accepted).
    pub url: String,
    /// Bearer token sent upstream, if the upstream needs one.
    pub api_key: Option<String>,
    /// Models this upstream serves; empty means ask it (`GET /v1/models`).
    pub models: Vec<String>,
}

#[derive(Debug)]
struct Upstream {
    base: String,
    api_key: Option<String>,
    configured_models: Vec<String>,
    discovered: tokio::sync::Mutex<Option<(Instant, Vec<serde_json::Value>)>>,
    breaker: Breaker,
}

/// A circuit breaker: closed while requests succeed, open for a cool-down after repeated failures.
#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
}

impl Breaker {
    fn allows(&self) -> bool {
        let Ok(mut open_until) = self.open_until.lock() else { return true };
        match *open_until {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                // Half-open: let this one request through; a failure re-opens the breaker at once.
                *open_until = None;
                self.consecutive_failures.store(BREAKER_THRESHOLD - 1, Ordering::Relaxed);
                true
            }
            None => true,
        }
    }

    fn success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    fn failure(&self) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= BREAKER_THRESHOLD
            && let Ok(mut open_until) = self.open_until.lock()
        {
            *open_until = Some(Instant::now() + BREAKER_COOL_DOWN);
        }
    }
}

/// The configured upstreams and the client that talks to them.
#[derive(Debug)]
pub struct UpstreamPool {
    upstreams: Vec<Upstream>,
    client: reqwest::Client,
    timeout: Duration,
    retries: u32,
    next: AtomicUsize,
}

enum Attempt {
    Done(Forwarded),
    Failed(ApiError),
}

/// A relayed answer body: complete, or a stream of server-sent events.
pub enum ForwardBody {
    /// The whole answer.
    Full(Bytes),
    /// Chunks as the upstream sends them.
    Stream(
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    ),
}

impl std::fmt::Debug for ForwardBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardBody::Full(bytes) => write!(f, "Full({} bytes)", bytes.len()),
            ForwardBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// An upstream's answer, ready to relay.
#[derive(Debug)]
pub struct Forwarded {
    /// The upstream's status (2xx or 4xx; 5xx answers are retried, not relayed).
    pub status: StatusCode,
    /// The upstream's content type.
    pub content_type: HeaderValue,
    /// The body.
    pub body: ForwardBody,
}

impl Forwarded {
    /// Turns the answer into a response, with `body` replaced by the caller's (possibly wrapped) body.
    pub fn into_response(status: StatusCode, content_type: HeaderValue, body: Body) -> Response {
        let mut out = Response::new(body);
        *out.status_mut() = status;
        out.headers_mut().insert(header::CONTENT_TYPE, content_type);
        out
    }
}

impl UpstreamPool {
    /// Validates the upstream URLs and builds the HTTP client.
    pub fn new(config: &ServerConfig) -> Result<UpstreamPool, ServerError> {
        let mut upstreams = Vec::new();
        for upstream in &config.upstreams {
            let url = upstream.url.trim_end_matches('/');
            let base = url.strip_suffix("/v1").unwrap_or(url).to_owned();
            let valid = reqwest::Url::parse(&base)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !valid {
                return Err(ServerError::InvalidUpstream(upstream.url.clone()));
            }
            upstreams.push(Upstream {
                base,
                api_key: upstream.api_key.clone(),
                configured_models: upstream.models.clone(),
                discovered: tokio::sync::Mutex::new(None),
                breaker: Breaker::default(),
            });
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.upstream_timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|err| ServerError::Client(err.to_string()))?;
        Ok(UpstreamPool {
            upstreams,
            client,
            timeout: config.upstream_timeout,
            retries: config.upstream_retries,
            next: AtomicUsize::new(0),
        })
    }

    /// The union of every upstream's models, first upstream first, without duplicates.
    pub async fn models(&self) -> Vec<serde_json::Value> {
        let mut seen = std::collections::HashSet::new();
        let mut all = Vec::new();
        for upstream in &self.upstreams {
            for entry in self.models_of(upstream).await.unwrap_or_default() {
                let id = entry["id"].as_str().unwrap_or_default().to_owned();
                if seen.insert(id) {
                    all.push(entry);
                }
            }
        }
        all
    }

    /// The models one upstream serves, or `None` when it could not be asked.
    async fn models_of(&self, upstream: &Upstream) -> Option<Vec<serde_json::Value>> {
        if !upstream.configured_models.is_empty() {
            let entries = upstream
                .configured_models
                .iter()
                .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "upstream"}))
                .collect();
            return Some(entries);
        }
        let mut cached = upstream.discovered.lock().await;
        if let Some((at, models)) = cached.as_ref()
            && at.elapsed() < MODELS_TTL
        {
            return Some(models.clone());
        }
        let mut request =
            self.client.get(format!("{}/v1/models", upstream.base)).timeout(self.timeout);
        if let Some(key) = &upstream.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: serde_json::Value = response.json().await.ok()?;
        let models = body["data"].as_array()?.clone();
        *cached = Some((Instant::now(), models.clone()));
        Some(models)
    }

    /// Upstreams to try for `model`, starting at a rotating offset so load spreads over equals.
    async fn candidates(&self, model: &str) -> Result<Vec<&Upstream>, ApiError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.upstreams.len();
        let mut serving = Vec::new();
        let mut unknown = Vec::new();
        for i in 0..n {
            let upstream = &self.upstreams[(start + i) % n];
            match self.models_of(upstream).await {
                Some(models) if models.iter().any(|m| m["id"] == model) => serving.push(upstream),
                Some(_) => {}
                // An upstream we cannot ask may still serve the model: try it after the known ones.
                None => unknown.push(upstream),
            }
        }
        serving.extend(unknown);
        if serving.is_empty() {
            return Err(ApiError::new(
                Code::ModelNotFound,
                format!("the model {model:?} does not exist or is not served here; GET /v1/models lists the models"),
            )
            .with_param("model"));
        }
        Ok(serving)
    }

    /// Forwards `body` to `path` on the first upstream that answers, with retries and failover.
    pub async fn forward(
        &self,
        path: &str,
        model: &str,
        body: Bytes,
        stream: bool,
    ) -> Result<Forwarded, ApiError> {
        let candidates = self.candidates(model).await?;
        let mut last_error =
            ApiError::new(Code::UpstreamError, "every upstream server is failing (circuit open)");
        let mut attempts = 0;
        for upstream in
            candidates.iter().cycle().take(candidates.len().max(1 + self.retries as usize))
        {
            if attempts > self.retries {
                break;
            }
            if !upstream.breaker.allows() {
                continue;
            }
            if attempts > 0 {
                tokio::time::sleep(BASE_BACKOFF * 2u32.saturating_pow(attempts - 1)).await;
            }
            attempts += 1;
            match self.attempt(upstream, path, body.clone(), stream).await {
                Attempt::Done(response) => return Ok(response),
                Attempt::Failed(err) => {
                    tracing::warn!(upstream = %upstream.base, code = %err.code, "upstream attempt failed: {}", err.message);
                    last_error = err;
                }
            }
        }
        Err(last_error)
    }

    async fn attempt(&self, upstream: &Upstream, path: &str, body: Bytes, stream: bool) -> Attempt {
        let mut request = self
            .client
            .post(format!("{}{path}", upstream.base))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &upstream.api_key {
            request = request.bearer_auth(key);
        }
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => {
                upstream.breaker.failure();
                return Attempt::Failed(ApiError::new(
                    Code::UpstreamTimeout,
                    format!("upstream {} did not answer within {:?}", upstream.base, self.timeout),
                ));
            }
            Ok(Err(err)) => {
                upstream.breaker.failure();
                return Attempt::Failed(ApiError::new(
                    Code::UpstreamError,
                    format!("upstream {} failed: {err}", upstream.base),
                ));
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_server_error() {
            upstream.breaker.failure();
            return Attempt::Failed(ApiError::new(
                Code::UpstreamError,
                format!("upstream {} answered {status}", upstream.base),
            ));
        }
        upstream.breaker.success();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = if stream && status.is_success() {
            ForwardBody::Stream(Box::pin(idle_timeout(response.bytes_stream(), self.timeout)))
        } else {
            match tokio::time::timeout(self.timeout, response.bytes()).await {
                Ok(Ok(bytes)) => ForwardBody::Full(bytes),
                Ok(Err(err)) => {
                    return Attempt::Failed(ApiError::new(
                        Code::UpstreamError,
                        format!("upstream {} broke off its answer: {err}", upstream.base),
                    ));
                }
                Err(_) => {
                    return Attempt::Failed(ApiError::new(
                        Code::UpstreamTimeout,
                        format!("upstream {} stalled while answering", upstream.base),
                    ));
                }
            }
        };
        Attempt::Done(Forwarded {
            status: StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            content_type: content_type
                .unwrap_or_else(|| HeaderValue::from_static("application/json")),
            body,
        })
    }
}

/// Ends a relayed stream with an error when the upstream pauses longer than `idle`.
fn idle_timeout(
    stream: impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    idle: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(Box::pin(stream), move |mut stream| async move {
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), stream)),
            Ok(Some(Err(err))) => Some((Err(std::io::Error::other(err)), stream)),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream stream stalled")),
                stream,
            )),
        }
    })
}
