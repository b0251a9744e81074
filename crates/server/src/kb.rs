//! The knowledge base over HTTP (`/v1/kb/...`) and grounded answers with checked citations.
//!
//! `finllm serve` attaches the knowledge base in its data directory when there is one, or one in
//! PostgreSQL with pgvector ([`KnowledgeSource::Postgres`]), which every server of a deployment shares:
//! a document added through one is found through all, at once. Documents can be
//! listed, added (JSON), read and deleted, the base searched and counted. `POST /v1/kb/chat/completions`
//! (and `/v1/chat/completions` with a `kb` field) takes an OpenAI chat request, retrieves passages for the
//! last user message, puts them in a system
//! message, asks the model through the normal audited request path, and checks every `[n]` citation of
//! the answer against the passages and the stored sources (`knowledge::cite`): the answer comes back in
//! OpenAI's shape with a `citations` list (document id, version, title, character span, verbatim quote)
//! and `rejected_citations`, on the streaming path as well as the plain one. An API key's tenant confines
//! every endpoint to that tenant's documents. With the guard on, the question passes the input guard as on
//! `/v1/chat/completions`, and retrieved passages that read as instructions to the model (indirect prompt
//! injection) are withheld from it and counted in `withheld_passages`.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path as UrlPath, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use knowledge::{
    AddOptions, KnowledgeBase, KnowledgeError, KnowledgeStore, SearchOptions, SearchRequest,
    cite::grounding_prompt, index::Filters, parse::SourceDoc, pg::PgKnowledgeBase,
};
use serde::Deserialize;
use serde_json::{Value, json};
use types::Code;

use crate::{
    ServerError, backend::ModelCall, error::ApiError, routes::SharedState, store::KeyRecord,
    upstream::Forwarded, wire::ChatCompletionRequest,
};

/// Passages retrieved for a grounded answer unless the request says otherwise.
pub const DEFAULT_PASSAGES: usize = 5;

/// Where the server's knowledge base lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnowledgeSource {
    /// The embedded base in a directory (`<data_dir>/kb`): this server only.
    Dir(PathBuf),
    /// A schema in PostgreSQL with pgvector, shared by every server (and `finllm kb --database`) that
    /// names it.
    Postgres {
        /// `postgres://user:pass@host:port/db`.
        url: String,
        /// The schema holding the knowledge base.
        schema: String,
        /// Connections this server opens (searches run on them in parallel).
        connections: usize,
    },
}

/// How the server uses its knowledge base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnowledgeOptions {
    /// The key of an upstream embedding endpoint the vectors came from, if it needs one.
    pub embed_api_key: Option<String>,
    /// Ground every `/v1/chat/completions` request that has a user message, not only those with a `kb`
    /// field (which can still set `k` and filters).
    pub ground_every_chat: bool,
}

/// One opened knowledge base.
#[derive(Debug)]
enum Backend {
    Embedded(Box<KnowledgeBase>),
    Postgres(Box<PgKnowledgeBase>),
}

impl Backend {
    fn store(&mut self) -> &mut dyn KnowledgeStore {
        match self {
            Backend::Embedded(kb) => kb.as_mut(),
            Backend::Postgres(kb) => kb.as_mut(),
        }
    }
}

/// The knowledge base the server holds. The embedded one is one handle (one writer at a time; searches
/// are fast enough to share the lock); PostgreSQL gets a pool of connections, each taken by one request
/// at a time, and a connection the database closed is opened again on its next use.
#[derive(Debug)]
pub struct KbHandle {
    pool: Vec<Mutex<Backend>>,
    next: AtomicUsize,
    ground_every_chat: bool,
}

impl KbHandle {
    /// Opens the knowledge base at `source`, with the embedding model its vectors came from. Call it on
    /// a blocking thread (PostgreSQL's client blocks).
    pub fn open(
        source: &KnowledgeSource,
        options: &KnowledgeOptions,
    ) -> Result<KbHandle, ServerError> {
        let embed_api_key = options.embed_api_key.clone();
        let pool = match source {
            KnowledgeSource::Dir(dir) => {
                let fail = |err: KnowledgeError| {
                    ServerError::Knowledge(format!("knowledge base {}: {err}", dir.display()))
                };
                let mut kb = KnowledgeBase::open(dir).map_err(fail)?;
                kb.embed_api_key = embed_api_key;
                kb.load_recorded_embedder().map_err(fail)?;
                vec![Backend::Embedded(Box::new(kb))]
            }
            KnowledgeSource::Postgres { url, schema, connections } => {
                let fail = |err: KnowledgeError| {
                    ServerError::Knowledge(format!(
                        "knowledge base in PostgreSQL (schema {schema}): {err}"
                    ))
                };
                let mut first = PgKnowledgeBase::connect(url, schema).map_err(fail)?;
                first.embed_api_key = embed_api_key;
                first.load_recorded_embedder().map_err(fail)?;
                let mut pool = Vec::with_capacity((*connections).max(1));
                for _ in 1..(*connections).max(1) {
                    pool.push(Backend::Postgres(Box::new(first.connect_again().map_err(fail)?)));
                }
                pool.insert(0, Backend::Postgres(Box::new(first)));
                pool
            }
        };
        Ok(KbHandle {
            pool: pool.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            ground_every_chat: options.ground_every_chat,
        })
    }

    /// Runs `f` on the knowledge base on a blocking thread: on a free pooled connection if there is
    /// one, else waiting for the next in turn.
    async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut dyn KnowledgeStore) -> Result<T, KnowledgeError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let handle = self.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let start = handle.next.fetch_add(1, Ordering::Relaxed);
            let n = handle.pool.len();
            let free = (0..n).find_map(|i| handle.pool[(start + i) % n].try_lock().ok());
            let mut backend = match free {
                Some(guard) => guard,
                None => {
                    handle.pool[start % n].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
                }
            };
            if let Backend::Postgres(kb) = &mut *backend
                && kb.is_broken()
            {
                tracing::warn!(
                    "knowledge base: the PostgreSQL connection was closed; reconnecting"
                );
                **kb = kb.connect_again()?;
            }
            f(backend.store())
        })
        .await;
        match joined {
            Ok(result) => result.map_err(|err| ApiError::from(&err)),
            Err(err) => {
                Err(ApiError::new(Code::Internal, format!("knowledge base task failed: {err}")))
            }
        }
    }
}

/// The `/v1/kb` routes.
pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/v1/kb/documents", get(list).post(add))
        .route("/v1/kb/documents/{id}", get(document).delete(remove))
        .route("/v1/kb/search", post(search))
        .route("/v1/kb/stats", get(stats))
        .route("/v1/kb/chat/completions", post(chat))
}

/// The attached knowledge base and the caller's key.
async fn attached(
    state: &SharedState,
    headers: &HeaderMap,
) -> Result<(Arc<KbHandle>, Option<KeyRecord>), ApiError> {
    let key = crate::routes::authenticate(state, headers).await?;
    let Some(kb) = state.knowledge.get().cloned() else {
        return Err(ApiError::new(
            Code::NotFound,
            "no knowledge base is attached to this server: add documents with `finllm kb add PATH` \
             (they go to <data_dir>/kb) and restart `finllm serve`, or serve one in PostgreSQL \
             (`finllm serve --kb-database postgres://...`)",
        ));
    };
    Ok((kb, key))
}

fn parse<T: serde::de::DeserializeOwned>(state: &SharedState, body: &Bytes) -> Result<T, ApiError> {
    if body.len() > state.body_limit {
        return Err(ApiError::new(Code::PayloadTooLarge, "request body is larger than the limit"));
    }
    crate::json::parse(body)
}

/// Confines filters to the key's tenant, when the key has one.
fn confine(filters: &mut Filters, key: Option<&KeyRecord>) -> Result<(), ApiError> {
    let Some(tenant) = key.map(|k| k.tenant.clone()).filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    if filters.tenant.as_ref().is_some_and(|t| *t != tenant) {
        return Err(ApiError::new(
            Code::PermissionDenied,
            format!("this API key acts for tenant {tenant:?} and may not read another tenant"),
        )
        .with_param("filters.tenant"));
    }
    filters.tenant = Some(tenant);
    Ok(())
}

fn key_tenant(key: Option<&KeyRecord>) -> Option<String> {
    key.map(|k| k.tenant.clone()).filter(|t| !t.is_empty())
}

async fn list(State(state): State<SharedState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (kb, key) = attached(&state, &headers).await?;
    let tenant = key_tenant(key.as_ref());
    let mut docs = kb.with(|kb| kb.list()).await?;
    if let Some(tenant) = tenant {
        docs.retain(|d| d.tenant == tenant);
    }
    Ok(axum::Json(json!({"object": "list", "data": docs})).into_response())
}

async fn document(
    State(state): State<SharedState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let (kb, key) = attached(&state, &headers).await?;
    let tenant = key_tenant(key.as_ref());
    let lookup = id.clone();
    let found = kb.with(move |kb| Ok((kb.get(&lookup)?, kb.text(&lookup)?))).await?;
    match found {
        (Some(record), Some(text)) if tenant.as_ref().is_none_or(|t| *t == record.tenant) => {
            let mut value = serde_json::to_value(&record).unwrap_or(Value::Null);
            value["text"] = Value::String(text);
            Ok(axum::Json(value).into_response())
        }
        _ => Err(ApiError::new(Code::NotFound, format!("no document with id {id}"))),
    }
}

async fn remove(
    State(state): State<SharedState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let (kb, key) = attached(&state, &headers).await?;
    let tenant = key_tenant(key.as_ref());
    let target = id.clone();
    kb.with(move |kb| {
        let owned =
            kb.get(&target)?.is_some_and(|d| tenant.as_ref().is_none_or(|t| *t == d.tenant));
        if !owned {
            return Err(KnowledgeError::NotFound(target));
        }
        kb.remove(&target)
    })
    .await?;
    Ok(axum::Json(json!({"id": id, "deleted": true})).into_response())
}

/// A document as a client sends it.
#[derive(Debug, Deserialize)]
struct NewDocument {
    /// Where it comes from (a URL or a name); the document id derives from it, so re-sending updates it.
    source: String,
    #[serde(default)]
    title: String,
    text: String,
    /// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or RFC 3339.
    #[serde(default)]
    published_at: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AddRequest {
    documents: Vec<NewDocument>,
    /// Tags added to every document.
    #[serde(default)]
    tags: Vec<String>,
}

async fn add(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (kb, key) = attached(&state, &headers).await?;
    let request: AddRequest = parse(&state, &body)?;
    let tenant = key_tenant(key.as_ref());
    let mut docs = Vec::with_capacity(request.documents.len());
    for (n, d) in request.documents.into_iter().enumerate() {
        if d.source.trim().is_empty() {
            return Err(ApiError::new(Code::InvalidParameter, "every document needs a source")
                .with_param(format!("documents[{n}].source")));
        }
        let published_at = match d.published_at.as_deref() {
            None => None,
            Some(date) => Some(knowledge::parse::parse_date(date).ok_or_else(|| {
                ApiError::new(
                    Code::InvalidParameter,
                    format!("`{date}` is not YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339"),
                )
                .with_param(format!("documents[{n}].published_at"))
            })?),
        };
        if let (Some(own), Some(asked)) = (&tenant, &d.tenant)
            && own != asked
        {
            return Err(ApiError::new(
                Code::PermissionDenied,
                format!("this API key acts for tenant {own:?} and may not write tenant {asked:?}"),
            )
            .with_param(format!("documents[{n}].tenant")));
        }
        docs.push(SourceDoc {
            source: d.source,
            title: d.title,
            text: d.text,
            published_at,
            tags: d.tags,
            tenant: d.tenant.or_else(|| tenant.clone()),
        });
    }
    let options = AddOptions { tags: request.tags, threads: 1, ..AddOptions::default() };
    let report = kb.with(move |kb| kb.add_docs(docs, &options)).await?;
    Ok(axum::Json(report).into_response())
}

async fn search(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (kb, key) = attached(&state, &headers).await?;
    let mut request: SearchRequest = parse(&state, &body)?;
    if request.query.trim().is_empty() {
        return Err(ApiError::new(Code::InvalidParameter, "query is empty").with_param("query"));
    }
    if request.k == 0 {
        request.k = 10;
    }
    confine(&mut request.filters, key.as_ref())?;
    let hits = kb.with(move |kb| kb.search(&request)).await?;
    Ok(axum::Json(json!({"object": "list", "data": hits})).into_response())
}

async fn stats(State(state): State<SharedState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (kb, _) = attached(&state, &headers).await?;
    let stats = kb.with(|kb| kb.stats()).await?;
    Ok(axum::Json(stats).into_response())
}

/// The `kb` field of a grounded chat request.
#[derive(Debug, Default, Deserialize)]
struct Retrieval {
    /// Passages to retrieve.
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    filters: Filters,
    #[serde(default)]
    options: Option<SearchOptions>,
}

/// The text of the last user message (string content or text parts).
fn last_user_text(body: &Value) -> Option<String> {
    let message = body["messages"].as_array()?.iter().rev().find(|m| m["role"] == "user")?;
    match &message["content"] {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            Some(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"))
        }
        _ => None,
    }
}

/// Whether a `/v1/chat/completions` body is answered by [`chat`]: it has a `kb` field (so OpenAI clients
/// get citations on the standard path by adding one field), or the server grounds every chat and it has
/// a user message.
pub(crate) fn wants_grounding(state: &SharedState, raw: &[u8]) -> bool {
    let Ok(body) = serde_json::from_slice::<Value>(raw) else { return false };
    body.get("kb").is_some()
        || state.knowledge.get().is_some_and(|kb| kb.ground_every_chat)
            && last_user_text(&body).is_some_and(|q| !q.trim().is_empty())
}

/// `POST /v1/kb/chat/completions`, and `/v1/chat/completions` with a `kb` field.
pub(crate) async fn chat(
    State(state): State<SharedState>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let (kb, key) = attached(&state, &headers).await?;
    let mut body: Value = parse(&state, &raw)?;
    let retrieval: Retrieval = match body.get("kb") {
        Some(value) => serde_json::from_value(value.clone()).map_err(|err| {
            ApiError::new(Code::InvalidParameter, format!("kb: {err}")).with_param("kb")
        })?,
        None => Retrieval::default(),
    };
    let Some(question) = last_user_text(&body).filter(|q| !q.trim().is_empty()) else {
        return Err(ApiError::new(
            Code::InvalidParameter,
            "the request has no user message to answer",
        )
        .with_param("messages"));
    };
    let stream = body["stream"] == true;
    let include_usage = body["stream_options"]["include_usage"] == true;
    if let Some(fields) = body.as_object_mut() {
        fields.remove("kb");
        fields.remove("stream");
        fields.remove("stream_options");
    }
    let stripped = Bytes::from(body.to_string());
    let mut probe: ChatCompletionRequest = crate::json::parse(&stripped)?;
    probe.sampling = crate::json::parse(&stripped)?;
    probe.sampling.stream = stream;
    if let Some(layer) = &state.guard {
        let judgement = layer.check_input(&crate::guard_layer::user_text(&probe.messages));
        if let Some(replacement) = layer.replacement(&judgement) {
            return crate::routes::blocked(&state, key, &probe, &replacement, &judgement).await;
        }
    }
    let mut filters = retrieval.filters;
    confine(&mut filters, key.as_ref())?;
    let request = SearchRequest {
        query: question,
        k: retrieval.k.unwrap_or(DEFAULT_PASSAGES).clamp(1, 50),
        filters,
        options: retrieval.options.unwrap_or_default(),
    };
    let mut passages = kb.with(move |kb| kb.search(&request)).await?;
    let retrieved = passages.len();
    if let Some(layer) = &state.guard {
        passages.retain(|p| !layer.scan_document(&p.chunk.body).suspicious);
    }
    let withheld = retrieved - passages.len();
    if let Some(messages) = body["messages"].as_array_mut() {
        messages.insert(0, json!({"role": "system", "content": grounding_prompt(&passages)}));
    }
    let raw = Bytes::from(body.to_string());
    let mut request: ChatCompletionRequest = crate::json::parse(&raw)?;
    request.sampling = crate::json::parse(&raw)?;
    request.validate()?;
    let response =
        crate::routes::forward(&state, key, ModelCall::Chat(&request), raw, true).await?;
    if !response.status().is_success() {
        return Ok(response);
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.map_err(|err| {
        ApiError::new(Code::UpstreamError, format!("cannot read the model's answer: {err}"))
    })?;
    let mut answer: Value = serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::new(Code::UpstreamError, format!("the model's answer is not JSON: {err}"))
    })?;
    let content =
        answer["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned();
    let checked = passages.clone();
    let grounded = kb.with(move |kb| Ok(kb.ground(&content, &checked))).await?;
    answer["choices"][0]["message"]["content"] = Value::String(grounded.content.clone());
    answer["citations"] = serde_json::to_value(&grounded.citations).unwrap_or(Value::Null);
    answer["rejected_citations"] = serde_json::to_value(&grounded.rejected).unwrap_or(Value::Null);
    answer["withheld_passages"] = json!(withheld);
    if stream {
        let mut chunks = crate::engine_backend::whole_as_chunks(&answer, include_usage);
        // Citations travel in one last chunk before [DONE], so streaming clients get them too.
        chunks.push(json!({
            "id": answer["id"], "object": "chat.completion.chunk", "created": answer["created"],
            "model": answer["model"], "choices": [],
            "citations": answer["citations"], "rejected_citations": answer["rejected_citations"],
            "withheld_passages": withheld,
        }));
        let events = chunks
            .into_iter()
            .map(|chunk| Ok::<_, std::io::Error>(Bytes::from(format!("data: {chunk}\n\n"))))
            .chain(std::iter::once(Ok(Bytes::from_static(b"data: [DONE]\n\n"))));
        let body = Body::from_stream(futures_util::stream::iter(events));
        let content_type = HeaderValue::from_static("text/event-stream");
        return Ok(Forwarded::into_response(StatusCode::OK, content_type, body));
    }
    Ok(axum::Json(answer).into_response())
}
