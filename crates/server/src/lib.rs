//! `finllm serve`: the only crate that speaks HTTP.
//!
//! It puts finllm's capabilities behind the OpenAI wire format, so that the official SDKs, LangChain and curl
//! examples work unchanged. Model requests go to a [`backend::Backend`]: upstream OpenAI-compatible servers
//! (vLLM, SGLang, llama.cpp, Ollama, a cloud API) with routing, retries, failover and a circuit breaker, or —
//! when none is configured — an answer `503` that says how to get a model, while the rest of the API stays up.
//! Every failure leaves as an OpenAI-style error body whose status and code come from `types::Code`.

pub mod audit;
pub mod backend;
pub mod engine_backend;
mod error;
pub mod guard_layer;
mod json;
pub mod kb;
pub mod keys;
mod metrics;
pub mod openapi;
mod routes;
pub mod scheduler;
pub mod store;
mod tools;
mod upstream;
pub mod wire;

use std::{
    future::Future,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

pub use error::ApiError;
pub use store::{Database, Store, StoreError};
pub use upstream::UpstreamConfig;

/// Everything `finllm serve` needs to know, built by the CLI from the layered configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on; 0 picks a free one (tests).
    pub port: u16,
    /// The in-process model, when one is configured (takes precedence over upstreams).
    pub engine: Option<engine_backend::EngineConfig>,
    /// Upstream OpenAI-compatible servers, tried in order with failover.
    pub upstreams: Vec<UpstreamConfig>,
    /// How long an upstream may take to start answering (headers), and the longest pause inside a stream.
    pub upstream_timeout: Duration,
    /// How many further upstream attempts a failed request gets.
    pub upstream_retries: u32,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Where keys and the audit trail live.
    pub database: Database,
    /// Serve a request even when its audit record cannot be written (default: refuse it).
    pub audit_fail_open: bool,
    /// Assistant mode: chat requests without tools get the finance tools, and the server runs the calls.
    pub assistant_tools: bool,
    /// The guard (天鉴) on requests and answers; `None` disables it.
    pub guard: Option<guard_layer::GuardConfig>,
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The host is not an IP address or `localhost`.
    #[error("invalid listen address {0:?}: expected an IP address or localhost")]
    InvalidHost(String),
    /// Listening beyond loopback without keys would expose the model to the network unauthenticated.
    #[error(
        "refusing to listen on {0}: no API keys are configured, so finllm serve only binds to loopback \
         (127.0.0.1 or ::1); create a key first or use --host 127.0.0.1"
    )]
    PublicWithoutKeys(IpAddr),
    /// The port is taken or not permitted.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// An upstream URL is not http(s).
    #[error("invalid upstream URL {0:?}: expected http://host:port or https://host")]
    InvalidUpstream(String),
    /// The HTTP client could not be built (TLS roots).
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(String),
    /// Serving failed after start.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    /// The guard's model or policy could not be loaded.
    #[error("cannot load the guard: {0}")]
    Guard(String),
    /// The model could not be loaded.
    #[error("cannot load the model {0}")]
    Model(String),
    /// The database for keys and audit could not be opened.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// The knowledge base could not be opened.
    #[error("cannot open the {0}")]
    Knowledge(String),
}

impl types::ErrorCode for ServerError {
    fn error_code(&self) -> types::Code {
        match self {
            ServerError::InvalidHost(_)
            | ServerError::PublicWithoutKeys(_)
            | ServerError::InvalidUpstream(_) => types::Code::InvalidConfig,
            ServerError::Model(_) => types::Code::UnsupportedFormat,
            ServerError::Guard(_) => types::Code::InvalidConfig,
            ServerError::Bind { .. } | ServerError::Client(_) | ServerError::Serve(_) => {
                types::Code::Internal
            }
            ServerError::Store(err) => err.error_code(),
            ServerError::Knowledge(_) => types::Code::StorageError,
        }
    }
}

/// A server bound to its port, not yet serving: tests read the port before the first request.
#[derive(Debug)]
pub struct BoundServer {
    listener: tokio::net::TcpListener,
    app: axum::Router,
    state: routes::SharedState,
}

impl BoundServer {
    /// The address actually listened on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Attaches the knowledge base at `source` (`/v1/kb/...`, grounded answers); once per server.
    pub async fn attach_knowledge(
        &self,
        source: &kb::KnowledgeSource,
        options: &kb::KnowledgeOptions,
    ) -> Result<(), ServerError> {
        let (source, options) = (source.clone(), options.clone());
        let handle = tokio::task::spawn_blocking(move || kb::KbHandle::open(&source, &options))
            .await
            .map_err(|err| ServerError::Knowledge(format!("knowledge base: {err}")))??;
        self.state
            .knowledge
            .set(Arc::new(handle))
            .map_err(|_| ServerError::Knowledge("knowledge base: one is attached already".into()))
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests (streams
    /// included) finish before returning.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServerError::Serve)?;
        // The last streams' response records are written off the request path: wait for them.
        if !self.state.pending_audit.wait_idle(Duration::from_secs(10)).await {
            tracing::error!("shutting down with audit records still unwritten after 10 s");
        }
        Ok(())
    }
}

/// Validates the configuration, builds the backends and binds the listening socket.
pub async fn bind(config: ServerConfig) -> Result<BoundServer, ServerError> {
    let ip: IpAddr = match config.host.as_str() {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        host => host.parse().map_err(|_| ServerError::InvalidHost(host.to_owned()))?,
    };
    let store = Store::open(&config.database).await?;
    let has_keys = store.has_active_keys().await?;
    if !ip.is_loopback() && !has_keys {
        return Err(ServerError::PublicWithoutKeys(ip));
    }
    let backend = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || backend::Backend::from_config(&config))
            .await
            .map_err(|err| ServerError::Model(format!("loader crashed: {err}")))??
    };
    let mut state =
        routes::AppState::new(backend, store, has_keys, config.audit_fail_open, config.body_limit);
    state.assistant_tools = config.assistant_tools;
    if let Some(guard) = &config.guard {
        state.guard = Some(guard_layer::GuardLayer::load(guard)?);
    }
    let state = Arc::new(state);
    let app = routes::router(state.clone());
    let addr = SocketAddr::new(ip, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok(BoundServer { listener, app, state })
}

/// Resolves on SIGTERM or Ctrl-C: the signal `serve` drains in-flight requests on.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed, wait forever rather than shut down at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: draining in-flight requests");
}
