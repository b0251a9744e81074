//! The HTTP routes and their handlers: authentication, rate limits and the audit trail wrap every model call.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use futures_util::Stream;
use types::Code;

use crate::{
    audit::{self, AuditRecord, Phase},
    backend::{Backend, ModelCall},
    error::ApiError,
    json::JsonBody,
    keys::{self, Limit, RateLimiter},
    metrics::Metrics,
    store::{KeyRecord, Store},
    upstream::{ForwardBody, Forwarded},
    wire::{ChatCompletionRequest, CompletionRequest},
};

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    backend: Backend,
    metrics: Metrics,
    store: Store,
    limiter: RateLimiter,
    /// Whether requests must carry an API key (some active key existed at start).
    auth_required: bool,
    /// Whether a request proceeds when its audit record cannot be written.
    audit_fail_open: bool,
    /// Whether chat requests without tools get the finance tools, run by the server.
    pub assistant_tools: bool,
    /// The guard, when enabled.
    pub guard: Option<crate::guard_layer::GuardLayer>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The knowledge base behind `/v1/kb`, once attached.
    pub knowledge: std::sync::OnceLock<Arc<crate::kb::KbHandle>>,
    /// Response audit records still being written (shutdown waits for them).
    pub pending_audit: audit::PendingWrites,
}

/// The state as handlers receive it.
pub type SharedState = Arc<AppState>;

impl AppState {
    /// State around a backend and a store.
    pub fn new(
        backend: Backend,
        store: Store,
        auth_required: bool,
        audit_fail_open: bool,
        body_limit: usize,
    ) -> AppState {
        AppState {
            backend,
            metrics: Metrics::default(),
            store,
            limiter: RateLimiter::default(),
            auth_required,
            audit_fail_open,
            assistant_tools: false,
            guard: None,
            body_limit,
            knowledge: std::sync::OnceLock::new(),
            pending_audit: audit::PendingWrites::default(),
        }
    }
}

/// Every route of the API.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/moderations", post(crate::guard_layer::moderations))
        .route("/v1/tools", get(crate::tools::list))
        .route("/v1/tools/{name}", post(crate::tools::call))
        .merge(crate::kb::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// Counts every request by route and status.
async fn record(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let route = match request.uri().path() {
        "/v1/chat/completions" => "chat_completions",
        "/v1/completions" => "completions",
        "/v1/models" => "models",
        "/health" => "health",
        "/ready" => "ready",
        "/metrics" => "metrics",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.record(route, response.status().as_u16(), started.elapsed());
    response
}

async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn ready(State(state): State<SharedState>) -> Response {
    if state.backend.is_ready() {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::new(Code::ModelUnavailable, crate::backend::NO_MODEL_HINT).into_response()
    }
}

async fn metrics(State(state): State<SharedState>) -> Response {
    let mut text = state.metrics.render();
    if let Some(engine) = state.backend.engine() {
        crate::metrics::render_scheduler(engine.stats(), &mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The caller's key, when keys are required; `None` on a loopback server without keys.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<KeyRecord>, ApiError> {
    if !state.auth_required {
        return Ok(None);
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|key| !key.is_empty());
    let Some(presented) = presented else {
        return Err(ApiError::new(
            Code::InvalidApiKey,
            "missing API key: send it as `Authorization: Bearer fk-...` (create one with `finllm keys create`)",
        ));
    };
    match state.store.find_active_key(&keys::hash_key(presented)).await {
        Ok(Some(key)) => Ok(Some(key)),
        Ok(None) => {
            Err(ApiError::new(Code::InvalidApiKey, "the API key is unknown or has been revoked"))
        }
        Err(err) => Err(ApiError::from(&err)),
    }
}

async fn models(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authenticate(&state, &headers).await?;
    let mut data = state.backend.models().await;
    if let Some(key) = key.filter(|key| !key.models.is_empty()) {
        data.retain(|entry| {
            entry["id"].as_str().is_some_and(|id| key.models.iter().any(|m| m == id))
        });
    }
    Ok(axum::Json(serde_json::json!({"object": "list", "data": data})).into_response())
}

async fn chat_completions(
    State(state): State<SharedState>,
    headers: HeaderMap,
    mut body: JsonBody<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    // The guard's own judge asking this server goes straight to the model: judged again, it would ask
    // itself again.
    let guarded = !state.guard.as_ref().is_some_and(|layer| layer.is_own_judge(&headers));
    if guarded && crate::kb::wants_grounding(&state, &body.raw) {
        return crate::kb::chat(State(state), headers, body.raw).await;
    }
    let key = authenticate(&state, &headers).await?;
    body.value.sampling = crate::json::parse(&body.raw)?;
    body.value.validate()?;
    if let Some(layer) = state.guard.as_ref().filter(|_| guarded) {
        let judgement = layer.check_input(&crate::guard_layer::user_text(&body.value.messages));
        if let Some(replacement) = layer.replacement(&judgement) {
            return blocked(&state, key, &body.value, &replacement, &judgement).await;
        }
    }
    if state.assistant_tools && body.value.tools.is_none() {
        return assistant(&state, key, &body.raw).await;
    }
    forward(&state, key, ModelCall::Chat(&body.value), body.raw, guarded).await
}

/// Answers a request the input guard blocked, without calling the model; the audit trail records it.
pub(crate) async fn blocked(
    state: &SharedState,
    key: Option<KeyRecord>,
    request: &ChatCompletionRequest,
    replacement: &str,
    judgement: &guard::Judgement,
) -> Result<Response, ApiError> {
    let mut record = request_record(
        key.as_ref(),
        "/v1/chat/completions",
        &request.model,
        request.sampling.stream,
    );
    record.guard_input =
        Some(format!("{}/{}", judgement.verdict.as_str(), action_name(judgement.action)));
    record.status = Some(200);
    audit_or_refuse(state, &record).await?;
    let answer = crate::guard_layer::blocked_completion(&request.model, replacement, judgement);
    if request.sampling.stream {
        let include_usage =
            request.sampling.stream_options.as_ref().is_some_and(|o| o.include_usage);
        return Ok(sse_response(crate::engine_backend::whole_as_chunks(&answer, include_usage)));
    }
    Ok(axum::Json(answer).into_response())
}

fn action_name(action: guard::Action) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn sse_response(chunks: Vec<serde_json::Value>) -> Response {
    let events = chunks
        .into_iter()
        .map(|chunk| Ok::<_, std::io::Error>(Bytes::from(format!("data: {chunk}\n\n"))))
        .chain(std::iter::once(Ok(Bytes::from_static(b"data: [DONE]\n\n"))));
    let body = Body::from_stream(futures_util::stream::iter(events));
    let content_type = axum::http::HeaderValue::from_static("text/event-stream");
    Forwarded::into_response(StatusCode::OK, content_type, body)
}

fn request_record(
    key: Option<&KeyRecord>,
    endpoint: &str,
    model: &str,
    stream: bool,
) -> AuditRecord {
    AuditRecord {
        phase: Phase::Request,
        request_id: types::Id::new().to_string(),
        at: types::Timestamp::now().to_string(),
        endpoint: endpoint.to_owned(),
        model: model.to_owned(),
        key_id: key.map(|k| k.id.clone()),
        tenant: key.map(|k| k.tenant.clone()),
        status: None,
        stream,
        prompt_tokens: None,
        completion_tokens: None,
        first_byte_ms: None,
        total_ms: None,
        client_disconnected: false,
        guard_input: None,
        guard_output: None,
    }
}

/// Writes a request's audit record; when that fails the request is refused unless the policy is fail-open.
async fn audit_or_refuse(state: &SharedState, record: &AuditRecord) -> Result<(), ApiError> {
    if let Err(err) = audit::append(&state.store, record).await {
        if state.audit_fail_open {
            tracing::error!("audit store failed, serving anyway (audit.fail_open): {err}");
        } else {
            tracing::error!("audit store failed, refusing the request: {err}");
            return Err(ApiError::new(
                Code::AuditUnavailable,
                "the audit trail cannot record this request, so it is refused; retry later",
            ));
        }
    }
    Ok(())
}

/// Assistant mode: offers the finance tools, runs the calls the model makes and returns its final answer.
async fn assistant(
    state: &SharedState,
    key: Option<KeyRecord>,
    raw: &Bytes,
) -> Result<Response, ApiError> {
    let mut body: serde_json::Value = crate::json::parse(raw)?;
    let stream = body["stream"] == true;
    let include_usage = body["stream_options"]["include_usage"] == true;
    if let Some(fields) = body.as_object_mut() {
        fields.remove("stream");
        fields.remove("stream_options");
    }
    crate::tools::offer(&mut body);
    for _ in 0..crate::tools::MAX_ROUNDS {
        let raw = Bytes::from(body.to_string());
        let mut request: ChatCompletionRequest = crate::json::parse(&raw)?;
        request.sampling = crate::json::parse(&raw)?;
        let response = forward(state, key.clone(), ModelCall::Chat(&request), raw, true).await?;
        if !response.status().is_success() {
            return Ok(response);
        }
        let bytes =
            axum::body::to_bytes(response.into_body(), usize::MAX).await.map_err(|err| {
                ApiError::new(Code::UpstreamError, format!("cannot read the model's answer: {err}"))
            })?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes).map_err(|err| {
            ApiError::new(Code::UpstreamError, format!("the model's answer is not JSON: {err}"))
        })?;
        if crate::tools::execute_calls(&mut body, &answer).await {
            continue;
        }
        if stream {
            return Ok(sse_response(crate::engine_backend::whole_as_chunks(
                &answer,
                include_usage,
            )));
        }
        return Ok(axum::Json(answer).into_response());
    }
    Err(ApiError::new(
        Code::InvalidParameter,
        format!(
            "the model kept calling tools for {} rounds without answering",
            crate::tools::MAX_ROUNDS
        ),
    ))
}

async fn completions(
    State(state): State<SharedState>,
    headers: HeaderMap,
    mut body: JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    let key = authenticate(&state, &headers).await?;
    body.value.sampling = crate::json::parse(&body.raw)?;
    body.value.validate()?;
    forward(&state, key, ModelCall::Completion(&body.value), body.raw, true).await
}

/// Checks permissions and limits, writes the request's audit record (refusing the request when that fails
/// and the policy is fail-closed), calls the backend, and arranges the response record. A `guarded` chat
/// answer goes through the output guard.
pub(crate) async fn forward(
    state: &SharedState,
    key: Option<KeyRecord>,
    call: ModelCall<'_>,
    raw: Bytes,
    guarded: bool,
) -> Result<Response, ApiError> {
    let (endpoint, model, stream) = (call.path(), call.model(), call.stream());
    if let Some(key) = &key {
        if !key.models.is_empty() && !key.models.iter().any(|m| m == model) {
            return Err(ApiError::new(
                Code::PermissionDenied,
                format!("API key {} may not use model {model:?}", key.id),
            )
            .with_param("model"));
        }
        if let Err(limit) = state.limiter.admit(key) {
            let message = match limit {
                Limit::Requests(n) => {
                    format!("API key {} is over its limit of {n} requests per minute", key.id)
                }
                Limit::Tokens(n) => {
                    format!("API key {} is over its limit of {n} tokens per minute", key.id)
                }
            };
            return Err(ApiError::new(Code::RateLimited, message));
        }
    }
    let mut record = request_record(key.as_ref(), endpoint, model, stream);
    audit_or_refuse(state, &record).await?;
    record.phase = Phase::Response;
    let in_flight = state.metrics.start();
    let started = Instant::now();
    let forwarded = match state.backend.forward(call, raw).await {
        Ok(forwarded) => forwarded,
        Err(err) => {
            record.status = Some(err.code.http_status());
            record.total_ms = Some(millis(started));
            finish(state.clone(), key.as_ref(), record);
            return Err(err);
        }
    };
    drop(in_flight);
    let Forwarded { status, content_type, body } = forwarded;
    record.status = Some(status.as_u16());
    let body = match body {
        ForwardBody::Full(mut bytes) => {
            if let (Some(layer), ModelCall::Chat(_), true) =
                (state.guard.as_ref().filter(|_| guarded), call, status.is_success())
                && let Ok(mut answer) = serde_json::from_slice::<serde_json::Value>(&bytes)
            {
                if let Some((verdict, action)) =
                    crate::guard_layer::moderate_answer(layer, &mut answer)
                {
                    record.guard_output = Some(format!("{verdict}/{}", action_name(action)));
                }
                bytes = Bytes::from(answer.to_string());
            }
            state.metrics.first_byte(started.elapsed());
            record.first_byte_ms = Some(millis(started));
            record.total_ms = record.first_byte_ms;
            if let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                take_usage(&answer, &mut record);
            }
            finish(state.clone(), key.as_ref(), record);
            Body::from(bytes)
        }
        ForwardBody::Stream(mut inner) => {
            if guarded
                && state.guard.is_some()
                && matches!(call, ModelCall::Chat(_))
                && status.is_success()
            {
                inner = Box::pin(crate::guard_layer::ModeratedStream::new(inner, state.clone()));
            }
            Body::from_stream(AuditedStream {
                inner,
                state: state.clone(),
                key,
                record: Some(record),
                started,
                line: Vec::new(),
            })
        }
    };
    Ok(Forwarded::into_response(status, content_type, body))
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn take_usage(answer: &serde_json::Value, record: &mut AuditRecord) {
    let usage = &answer["usage"];
    if let Some(prompt) = usage["prompt_tokens"].as_u64() {
        record.prompt_tokens = Some(prompt);
    }
    if let Some(completion) = usage["completion_tokens"].as_u64() {
        record.completion_tokens = Some(completion);
    }
}

/// Writes the response record and charges the key's token allowance, off the request path.
fn finish(state: SharedState, key: Option<&KeyRecord>, record: AuditRecord) {
    if let Some(key) = key {
        let used = record.prompt_tokens.unwrap_or(0) + record.completion_tokens.unwrap_or(0);
        state.limiter.charge_tokens(key, used);
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    state.pending_audit.begin();
    runtime.spawn(async move {
        if let Err(err) = audit::append(&state.store, &record).await {
            tracing::error!(request_id = %record.request_id, "cannot write the response audit record: {err}");
        }
        state.pending_audit.end();
    });
}

/// Relays a streamed answer, noting the time to first byte and the usage chunk, and writes the response
/// record when the stream ends or the client goes away (the stream is dropped).
struct AuditedStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    state: SharedState,
    key: Option<KeyRecord>,
    record: Option<AuditRecord>,
    started: Instant,
    /// The unfinished last line of what has passed so far.
    line: Vec<u8>,
}

impl AuditedStream {
    fn scan(&mut self, chunk: &[u8]) {
        let Some(record) = self.record.as_mut() else { return };
        if record.first_byte_ms.is_none() {
            record.first_byte_ms = Some(millis(self.started));
            self.state.metrics.first_byte(self.started.elapsed());
        }
        for &byte in chunk {
            if byte != b'\n' {
                self.line.push(byte);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let Some(data) = line.strip_prefix(b"data: ") else { continue };
            if data.windows(7).any(|w| w == b"\"usage\"")
                && let Ok(event) = serde_json::from_slice::<serde_json::Value>(data)
            {
                take_usage(&event, record);
            }
        }
    }

    fn close(&mut self, disconnected: bool) {
        if let Some(mut record) = self.record.take() {
            record.client_disconnected = disconnected;
            record.total_ms = Some(millis(self.started));
            finish(self.state.clone(), self.key.as_ref(), record);
        }
    }
}

impl Stream for AuditedStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                let chunk = chunk.clone();
                self.scan(&chunk);
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => self.close(false),
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for AuditedStream {
    fn drop(&mut self) {
        self.close(true);
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        Code::NotFound,
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> Response {
    let err = ApiError::new(
        Code::InvalidParameter,
        format!("method {} is not allowed on {}", request.method(), request.uri().path()),
    );
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(err.body())).into_response()
}
