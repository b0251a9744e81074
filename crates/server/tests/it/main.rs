//! Integration tests for `server`: real servers on ephemeral loopback ports, driven over HTTP.

// Tests may panic on failure: clippy.toml covers unit tests, not tests/ (rust-clippy#13981).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod api_errors;
mod audit_keys;
mod constrained;
mod engine;
mod fake_upstream;
mod guard;
mod kb;
mod openapi;
mod postgres;
mod tools;
mod upstream;

use std::{net::SocketAddr, time::Duration};

use server::{ServerConfig, UpstreamConfig};
use tokio::sync::oneshot;

/// A running `finllm serve` on a free loopback port; dropping `stop` (or sending on it) drains it.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.done.await.unwrap();
    }
}

pub fn config(upstreams: &[&str]) -> ServerConfig {
    ServerConfig {
        host: "127.0.0.1".to_owned(),
        port: 0,
        engine: None,
        upstreams: upstreams
            .iter()
            .map(|url| UpstreamConfig { url: (*url).to_owned(), api_key: None, models: Vec::new() })
            .collect(),
        upstream_timeout: Duration::from_millis(500),
        upstream_retries: 2,
        body_limit: 64 * 1024,
        database: server::Database::Sqlite(
            tempfile::tempdir().unwrap().keep().join("finllm.sqlite"),
        ),
        audit_fail_open: false,
        assistant_tools: false,
        guard: None,
    }
}

pub async fn start(config: ServerConfig) -> TestServer {
    let bound = server::bind(config).await.unwrap();
    let addr = bound.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        bound
            .serve(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    TestServer { addr, stop: Some(stop), done }
}

pub fn chat_body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "你好"}]})
}
