//! The HTTP routes and their handlers.

use std::{sync::Arc, time::Instant};

use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use types::Code;

use crate::{
    backend::Backend,
    error::ApiError,
    json::JsonBody,
    metrics::Metrics,
    wire::{ChatCompletionRequest, CompletionRequest},
};

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    backend: Backend,
    metrics: Metrics,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
}

/// The state as handlers receive it.
pub type SharedState = Arc<AppState>;

impl AppState {
    /// State around a backend.
    pub fn new(backend: Backend, body_limit: usize) -> AppState {
        AppState { backend, metrics: Metrics::default(), body_limit }
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

async fn models(State(state): State<SharedState>) -> Response {
    let data = state.backend.models().await;
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

async fn chat_completions(
    State(state): State<SharedState>,
    mut body: JsonBody<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    body.value.sampling = crate::json::parse(&body.raw)?;
    body.value.validate()?;
    let stream = body.value.sampling.stream;
    forward(&state, "/v1/chat/completions", &body.value.model, body.raw, stream).await
}

async fn completions(
    State(state): State<SharedState>,
    mut body: JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    body.value.sampling = crate::json::parse(&body.raw)?;
    body.value.validate()?;
    let stream = body.value.sampling.stream;
    forward(&state, "/v1/completions", &body.value.model, body.raw, stream).await
}

async fn forward(
    state: &AppState,
    path: &str,
    model: &str,
    raw: bytes::Bytes,
    stream: bool,
) -> Result<Response, ApiError> {
    let _in_flight = state.metrics.start();
    let started = Instant::now();
    let response = state.backend.forward(path, model, raw, stream).await?;
    state.metrics.first_byte(started.elapsed());
    Ok(response)
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
