//! The finance tools over HTTP and in assistant mode, where the server runs the model's tool calls.

use serde_json::{Value, json};

use crate::{
    config,
    fake_upstream::{Behaviour, spawn},
    start,
};

async fn post(url: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new().post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn tools_are_listed_and_run_directly_without_a_model() {
    let server = start(config(&[])).await;
    let list: Value = reqwest::get(server.url("/v1/tools")).await.unwrap().json().await.unwrap();
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    for name in
        ["liquidity", "rates", "portfolio", "allocate", "suitability", "loan", "rating", "calc"]
    {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(list["data"][0]["function"]["parameters"]["type"] == "object");

    let (status, result) = post(
        &server.url("/v1/tools/calc"),
        &json!({"expression": "10000*(1+3.5%)^3", "decimals": 2}),
    )
    .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["result"], "11087.18");

    let (status, error) = post(&server.url("/v1/tools/calc"), &json!({"expression": "1/0"})).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{error}"
    );
    let (status, error) = post(&server.url("/v1/tools/teleport"), &json!({})).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));
    let response = reqwest::Client::new()
        .post(server.url("/v1/tools/calc"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.shutdown().await;
}

#[tokio::test]
async fn assistant_mode_runs_the_models_tool_calls() {
    let up = spawn("tools", "qwen", Behaviour::ToolCaller).await;
    let mut cfg = config(&[&up.url]);
    cfg.assistant_tools = true;
    let server = start(cfg).await;
    let question = json!({"model": "qwen", "messages": [{"role": "user", "content": "一万元按3.5%复利存三年，本息多少？"}]});
    let (status, answer) = post(&server.url("/v1/chat/completions"), &question).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "本息合计 11087.18 元");
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one round to call the tool, one to answer"
    );

    // Streaming clients get the final answer as chunks.
    let mut streamed = question.clone();
    streamed["stream"] = json!(true);
    let text = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .json(&streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("本息合计 11087.18 元") && text.ends_with("data: [DONE]\n\n"), "{text}");

    // A client that passes its own tools gets the model's tool_calls back, as OpenAI clients expect.
    let mut own = question.clone();
    own["tools"] = json!([{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]);
    let (_, answer) = post(&server.url("/v1/chat/completions"), &own).await;
    assert_eq!(answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "calc");
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    server.shutdown().await;
}
