//! The finance tools over HTTP (`/v1/tools`, `/v1/tools/{name}`) and in assistant mode.
//!
//! A language model is bad at arithmetic and has no fresh data, so in assistant mode the server offers the
//! exact tools of the `finance` crate to the model as OpenAI functions, runs the calls the model makes, feeds
//! the results back, and returns the model's final answer. Every model round goes through the normal request
//! path, so each is authenticated, rate-limited and audited.

use axum::{
    body::Bytes,
    extract::{Path, State},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use types::Code;

use crate::{error::ApiError, routes::SharedState};

/// Most model rounds one assistant turn may take (each round may call several tools).
pub const MAX_ROUNDS: usize = 5;

/// `GET /v1/tools`: every tool as an OpenAI function definition.
pub async fn list() -> Response {
    axum::Json(json!({"object": "list", "data": finance::tools::openai_functions()}))
        .into_response()
}

/// `POST /v1/tools/{name}`: runs one tool on a JSON body of parameters.
pub async fn call(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if finance::tools::find(&name).is_none() {
        return Err(ApiError::new(
            Code::NotFound,
            format!("no tool named {name:?}; GET /v1/tools lists them"),
        ));
    }
    if body.len() > state.body_limit {
        return Err(ApiError::new(Code::PayloadTooLarge, "request body is larger than the limit"));
    }
    let params: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        crate::json::parse(&body)?
    };
    let result = run(&name, params).await.map_err(|err| ApiError::new(err.0, err.1))?;
    Ok(axum::Json(result).into_response())
}

/// Runs a tool on a blocking thread (allocation and statistics can take milliseconds).
async fn run(name: &str, params: Value) -> Result<Value, (Code, String)> {
    let name = name.to_owned();
    let joined = tokio::task::spawn_blocking(move || finance::tools::run(&name, params)).await;
    match joined {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err((types::ErrorCode::error_code(&err), err.to_string())),
        Err(err) => Err((Code::Internal, format!("the tool failed: {err}"))),
    }
}

/// Adds the finance tools to a chat request body that has none.
pub fn offer(body: &mut Value) {
    body["tools"] = finance::tools::openai_functions();
}

/// If the answer calls known tools, appends the assistant turn and one `tool` message per call to the
/// conversation and returns true; otherwise (a final answer) returns false.
pub async fn execute_calls(body: &mut Value, answer: &Value) -> bool {
    let message = &answer["choices"][0]["message"];
    let Some(calls) = message["tool_calls"].as_array().filter(|calls| !calls.is_empty()) else {
        return false;
    };
    let known = calls.iter().all(|call| {
        call["function"]["name"].as_str().is_some_and(|name| finance::tools::find(name).is_some())
    });
    if !known {
        return false;
    }
    let Some(messages) = body["messages"].as_array_mut() else { return false };
    messages.push(json!({"role": "assistant", "content": message["content"], "tool_calls": calls}));
    for call in calls {
        let name = call["function"]["name"].as_str().unwrap_or_default();
        let arguments = match &call["function"]["arguments"] {
            Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            other => other.clone(),
        };
        let content = match run(name, arguments).await {
            Ok(result) => result.to_string(),
            Err((_, message)) => json!({"error": message}).to_string(),
        };
        messages.push(
            json!({"role": "tool", "tool_call_id": call["id"], "name": name, "content": content}),
        );
    }
    true
}
