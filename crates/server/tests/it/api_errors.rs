//! Bad input and missing models get OpenAI-style JSON errors with the right status; nothing panics.

use crate::{chat_body, config, start};

/// Sends `body` to `path` and checks status, code and (optionally) param of the JSON error.
#[track_caller]
fn check(response: (u16, serde_json::Value), status: u16, code: &str, param: Option<&str>) {
    let (got_status, body) = response;
    assert_eq!(got_status, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    if let Some(param) = param {
        assert_eq!(body["error"]["param"], param, "{body}");
    }
}

async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn without_a_model_the_api_stays_up_and_model_endpoints_answer_503() {
    let server = start(config(&[])).await;
    let client = reqwest::Client::new();
    let health = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(server.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let models: serde_json::Value =
        client.get(server.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models, serde_json::json!({"object": "list", "data": []}));

    let response =
        post(&server.url("/v1/chat/completions"), chat_body("any", false).to_string()).await;
    check(response.clone(), 503, "model_unavailable", None);
    assert!(response.1["error"]["message"].as_str().unwrap().contains("--upstream"));
    let completion = serde_json::json!({"model": "any", "prompt": "hi"}).to_string();
    check(post(&server.url("/v1/completions"), completion).await, 503, "model_unavailable", None);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_and_invalid_requests_name_the_problem() {
    let server = start(config(&[])).await;
    let url = server.url("/v1/chat/completions");
    check(post(&url, "{\"model\": ").await, 400, "malformed_json", None);
    check(post(&url, vec![0xff, 0xfe, 0x00]).await, 400, "malformed_json", None);
    check(post(&url, "").await, 400, "malformed_json", None);
    check(post(&url, r#"{"messages": []}"#).await, 400, "invalid_parameter", None);
    let cases = [
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
            "temperature",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#,
            "temperature",
        ),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_p":-1}"#, "top_p"),
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":0}"#, "n"),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"abc":1}}"#,
            "logit_bias",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}"#,
            "stop",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":21}"#,
            "top_logprobs",
        ),
        (r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#, "messages[0].role"),
        (r#"{"model":"m","messages":[{"role":"user","content":5}]}"#, "messages[0].content"),
        (r#"{"model":"m","messages":[]}"#, "messages"),
        (r#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#, "model"),
    ];
    for (body, param) in cases {
        check(post(&url, body).await, 400, "invalid_parameter", Some(param));
    }
    let completions = server.url("/v1/completions");
    check(
        post(&completions, r#"{"model":"m","prompt":"x","logprobs":6}"#).await,
        400,
        "invalid_parameter",
        Some("logprobs"),
    );
    check(
        post(&completions, r#"{"model":"m","prompt":{"a":1}}"#).await,
        400,
        "invalid_parameter",
        Some("prompt"),
    );
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_unknown_routes_and_methods() {
    let server = start(config(&[])).await;
    let big = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(100 * 1024)
    );
    check(post(&server.url("/v1/chat/completions"), big).await, 413, "payload_too_large", None);
    let client = reqwest::Client::new();
    let missing = client.get(server.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let wrong_method = client.get(server.url("/v1/chat/completions")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    let body: serde_json::Value = wrong_method.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("GET"));
    // The server still answers after all of the above.
    assert_eq!(client.get(server.url("/health")).send().await.unwrap().status(), 200);
    let metrics = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("finllm_requests_total{route=\"chat_completions\",status=\"413\"} 1"),
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn refuses_public_addresses_without_keys() {
    let mut public = config(&[]);
    public.host = "0.0.0.0".to_owned();
    let err = server::bind(public).await.unwrap_err().to_string();
    assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
    let mut bad = config(&[]);
    bad.host = "not a host".to_owned();
    assert!(server::bind(bad).await.is_err());
    let bad_upstream = config(&["ftp://example"]);
    assert!(
        server::bind(bad_upstream).await.unwrap_err().to_string().contains("invalid upstream URL")
    );
}
