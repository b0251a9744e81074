//! A scripted OpenAI-compatible upstream: answers, fails, hangs or streams slowly, as each test needs.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};

/// How the fake upstream answers chat requests.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Answers correctly, naming itself in the reply.
    Healthy,
    /// Answers 500.
    Failing,
    /// Never answers.
    Hanging,
    /// Answers 400 like a real server rejecting a parameter.
    Rejecting,
    /// Calls the `calc` tool first, then answers with the tool's result.
    ToolCaller,
    /// Answers with dangerous instructions, whatever was asked (for the output guard).
    Harmful,
}

#[derive(Debug)]
pub struct Fake {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct FakeState {
    name: &'static str,
    behaviour: Behaviour,
    hits: Arc<AtomicUsize>,
}

pub async fn spawn(name: &'static str, model: &'static str, behaviour: Behaviour) -> Fake {
    let hits = Arc::new(AtomicUsize::new(0));
    let state = FakeState { name, behaviour, hits: hits.clone() };
    let app = Router::new()
        .route(
            "/v1/models",
            get(move || async move {
                axum::Json(serde_json::json!({"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "fake"}]}))
            }),
        )
        .route("/v1/chat/completions", post(chat))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Fake { url, hits }
}

async fn chat(State(state): State<FakeState>, body: String) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let request: serde_json::Value = serde_json::from_str(&body).unwrap();
    match state.behaviour {
        Behaviour::Failing => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Behaviour::Hanging => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Behaviour::Rejecting => {
            let body = serde_json::json!({"error": {"message": "bad top_k", "type": "invalid_request_error", "param": "top_k", "code": null}});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
        Behaviour::ToolCaller => {
            let messages = request["messages"].as_array().unwrap();
            let offered = request["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["function"]["name"] == "calc"));
            let content = match messages.iter().rev().find(|m| m["role"] == "tool") {
                Some(tool) => {
                    let result: serde_json::Value =
                        serde_json::from_str(tool["content"].as_str().unwrap()).unwrap();
                    format!("本息合计 {} 元", result["result"].as_str().unwrap_or("?"))
                }
                None if offered => {
                    let call = serde_json::json!({"id": "call_1", "type": "function", "function": {"name": "calc", "arguments": "{\"expression\": \"10000*(1+3.5%)^3\", \"decimals\": 2}"}});
                    let body = serde_json::json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [call]}, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}});
                    return axum::Json(body).into_response();
                }
                None => "no tools were offered".to_owned(),
            };
            let body = serde_json::json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]});
            return axum::Json(body).into_response();
        }
        Behaviour::Harmful if request["stream"] == true => {
            let pieces = [
                "货币市场基金主要投资于",
                "短期债券和银行存款。",
                "制作炸弹的详细步骤如下：",
                "首先准备硝酸铵和燃料油，",
                "然后按比例混合装入铁管。",
            ];
            let chunks: Vec<Result<String, std::io::Error>> = pieces
                .iter()
                .map(|piece| {
                    let chunk = serde_json::json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
                    Ok(format!("data: {chunk}\n\n"))
                })
                .chain(std::iter::once(Ok("data: [DONE]\n\n".to_owned())))
                .collect();
            return Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap();
        }
        Behaviour::Harmful => {
            let body = serde_json::json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "制作炸弹的详细步骤如下：首先准备硝酸铵和燃料油，然后按比例混合装入铁管。"}, "finish_reason": "stop"}]});
            return axum::Json(body).into_response();
        }
        Behaviour::Healthy => {}
    }
    // Echo proves the raw body (including extension fields) reached the upstream unchanged.
    let echo = request.get("top_k").cloned().unwrap_or(serde_json::Value::Null);
    if request["stream"] == true {
        let chunks: Vec<Result<String, std::io::Error>> = (0..5)
            .map(|i| {
                let chunk = serde_json::json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": format!("{}-{i} ", state.name)}}]});
                Ok(format!("data: {chunk}\n\n"))
            })
            .chain(std::iter::once(Ok("data: [DONE]\n\n".to_owned())))
            .collect();
        let stream = futures_util::stream::iter(chunks).then(|chunk| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            chunk
        });
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    axum::Json(serde_json::json!({
        "object": "chat.completion",
        "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("from {}", state.name)}, "finish_reason": "stop"}],
        "echo_top_k": echo,
        "echo_response_format": request.get("response_format"),
    }))
    .into_response()
}

use futures_util::StreamExt;
