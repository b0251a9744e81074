//! Upstream mode: pass-through, streaming, routing, failover, timeouts, the circuit breaker and draining.

use std::{sync::atomic::Ordering, time::Duration};

use futures_util::StreamExt;

use crate::{
    chat_body, config,
    fake_upstream::{Behaviour, spawn},
    start,
};

async fn chat(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new().post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn requests_pass_through_unchanged_and_models_are_listed() {
    let up = spawn("a", "qwen", Behaviour::Healthy).await;
    let server = start(config(&[&up.url])).await;
    let mut body = chat_body("qwen", false);
    body["top_k"] = serde_json::json!(40);
    let (status, answer) = chat(&server.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "from a");
    assert_eq!(answer["echo_top_k"], 40, "extension fields reach the upstream");
    let models: serde_json::Value =
        reqwest::get(server.url("/v1/models")).await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "qwen");
    assert_eq!(reqwest::get(server.url("/ready")).await.unwrap().status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_models_are_404_and_routing_picks_the_serving_upstream() {
    let a = spawn("a", "qwen", Behaviour::Healthy).await;
    let b = spawn("b", "ling", Behaviour::Healthy).await;
    let server = start(config(&[&a.url, &b.url])).await;
    for _ in 0..4 {
        let (status, answer) =
            chat(&server.url("/v1/chat/completions"), &chat_body("ling", false)).await;
        assert_eq!(status, 200);
        assert_eq!(answer["choices"][0]["message"]["content"], "from b");
    }
    assert_eq!(a.hits.load(Ordering::SeqCst), 0);
    let (status, answer) =
        chat(&server.url("/v1/chat/completions"), &chat_body("gpt-9", false)).await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["code"], "model_not_found");
    let models: serde_json::Value =
        reqwest::get(server.url("/v1/models")).await.unwrap().json().await.unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn failing_and_hanging_upstreams_fail_over() {
    let failing = spawn("failing", "qwen", Behaviour::Failing).await;
    let hanging = spawn("hanging", "qwen", Behaviour::Hanging).await;
    let healthy = spawn("healthy", "qwen", Behaviour::Healthy).await;
    let server = start(config(&[&failing.url, &hanging.url, &healthy.url])).await;
    for _ in 0..3 {
        let (status, answer) =
            chat(&server.url("/v1/chat/completions"), &chat_body("qwen", false)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["choices"][0]["message"]["content"], "from healthy");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_dead_upstream_is_skipped_and_its_breaker_opens() {
    // A port nothing listens on: connection refused.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let failing = spawn("failing", "qwen", Behaviour::Failing).await;
    let healthy = spawn("healthy", "qwen", Behaviour::Healthy).await;
    let mut cfg = config(&[&failing.url, &healthy.url]);
    cfg.upstreams[0].models = vec!["qwen".to_owned()];
    cfg.upstreams.insert(
        0,
        server::UpstreamConfig { url: dead, api_key: None, models: vec!["qwen".to_owned()] },
    );
    let server = start(cfg).await;
    for _ in 0..12 {
        let (status, _) =
            chat(&server.url("/v1/chat/completions"), &chat_body("qwen", false)).await;
        assert_eq!(status, 200);
    }
    // After three consecutive failures the failing upstream's breaker opens and it stops being tried.
    let failing_hits = failing.hits.load(Ordering::SeqCst);
    assert!(failing_hits <= 4, "failing upstream was tried {failing_hits} times");
    server.shutdown().await;
}

#[tokio::test]
async fn all_upstreams_down_gives_502_or_504_and_4xx_passes_through() {
    let hanging = spawn("hanging", "qwen", Behaviour::Hanging).await;
    let mut cfg = config(&[&hanging.url]);
    cfg.upstreams[0].models = vec!["qwen".to_owned()];
    cfg.upstream_retries = 0;
    let server = start(cfg).await;
    let (status, answer) =
        chat(&server.url("/v1/chat/completions"), &chat_body("qwen", false)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (504, Some("upstream_timeout")),
        "{answer}"
    );
    server.shutdown().await;

    let failing = spawn("failing", "qwen", Behaviour::Failing).await;
    let server = start(config(&[&failing.url])).await;
    let (status, answer) =
        chat(&server.url("/v1/chat/completions"), &chat_body("qwen", false)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (502, Some("upstream_error")),
        "{answer}"
    );
    assert_eq!(failing.hits.load(Ordering::SeqCst), 3, "one attempt plus two retries");
    server.shutdown().await;

    let rejecting = spawn("rejecting", "qwen", Behaviour::Rejecting).await;
    let server = start(config(&[&rejecting.url])).await;
    let (status, answer) =
        chat(&server.url("/v1/chat/completions"), &chat_body("qwen", false)).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["param"], "top_k");
    assert_eq!(rejecting.hits.load(Ordering::SeqCst), 1, "a 4xx is not retried");
    server.shutdown().await;
}

#[tokio::test]
async fn streams_are_relayed_and_drained_on_shutdown() {
    let up = spawn("a", "qwen", Behaviour::Healthy).await;
    let server = start(config(&[&up.url])).await;
    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .json(&chat_body("qwen", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // Ask the server to stop while the stream is still running: the stream must still complete.
    let mut server = server;
    let _ = server.stop.take().unwrap().send(());
    let mut text = String::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let contents: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str::<serde_json::Value>(data).unwrap()["choices"][0]["delta"]["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(contents, ["a-0 ", "a-1 ", "a-2 ", "a-3 ", "a-4 "]);
    assert!(text.trim_end().ends_with("data: [DONE]"));
    tokio::time::timeout(Duration::from_secs(5), server.done).await.unwrap().unwrap();
}
