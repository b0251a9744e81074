//! The OpenAPI 3.1 description of finllm's HTTP API, generated from code and committed as
//! `docs/openapi.json`; a test fails when the committed file is stale.
//!
//! Schemas list the fields finllm reads and validates; like OpenAI's API, unknown request fields are
//! accepted (and forwarded to upstream servers).

use serde_json::{Value, json};

fn error_responses() -> Value {
    let error = json!({"description": "OpenAI-style error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "400": error, "401": error, "403": error, "404": error, "413": error, "429": error,
        "500": error, "502": error, "503": error, "504": error,
    })
}

fn json_body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn operation(summary: &str, body: Option<&str>, ok: Value) -> Value {
    let mut responses = error_responses();
    responses["200"] = ok;
    let mut op = json!({"summary": summary, "responses": responses});
    if let Some(schema) = body {
        op["requestBody"] = json_body(schema);
    }
    op
}

fn ok_json(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"type": "object"}}}})
}

fn ok_json_or_stream(description: &str) -> Value {
    json!({"description": description, "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/event-stream": {"schema": {"type": "string", "description": "`data: {chunk}` events, ending with `data: [DONE]`"}},
    }})
}

fn number(min: f64, max: f64) -> Value {
    json!({"type": "number", "minimum": min, "maximum": max})
}

fn sampling_properties() -> serde_json::Map<String, Value> {
    let mut p = serde_json::Map::new();
    p.insert("model".into(), json!({"type": "string"}));
    p.insert("temperature".into(), number(0.0, 2.0));
    p.insert("top_p".into(), number(0.0, 1.0));
    p.insert("n".into(), json!({"type": "integer", "minimum": 1, "maximum": 128}));
    p.insert("stop".into(), json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4}]}));
    p.insert("seed".into(), json!({"type": "integer"}));
    p.insert("presence_penalty".into(), number(-2.0, 2.0));
    p.insert("frequency_penalty".into(), number(-2.0, 2.0));
    p.insert(
        "logit_bias".into(),
        json!({"type": "object", "additionalProperties": number(-100.0, 100.0)}),
    );
    p.insert("user".into(), json!({"type": "string"}));
    p.insert("stream".into(), json!({"type": "boolean"}));
    p.insert(
        "stream_options".into(),
        json!({"type": "object", "properties": {"include_usage": {"type": "boolean"}}}),
    );
    p
}

/// The whole document.
pub fn document() -> Value {
    let mut chat = sampling_properties();
    chat.insert(
        "messages".into(),
        json!({"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"}}),
    );
    chat.insert("max_tokens".into(), json!({"type": "integer", "minimum": 0}));
    chat.insert("max_completion_tokens".into(), json!({"type": "integer", "minimum": 0}));
    chat.insert("logprobs".into(), json!({"type": "boolean"}));
    chat.insert("top_logprobs".into(), json!({"type": "integer", "minimum": 0, "maximum": 20}));
    chat.insert("tools".into(), json!({"type": "array", "items": {"type": "object"}}));
    chat.insert("tool_choice".into(), json!({}));
    chat.insert("response_format".into(), json!({"type": "object"}));
    let mut completion = sampling_properties();
    completion.insert("prompt".into(), json!({"oneOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}},
        {"type": "array", "items": {"type": "integer"}}, {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    ]}));
    completion.insert("max_tokens".into(), json!({"type": "integer", "minimum": 0, "default": 16}));
    completion.insert("echo".into(), json!({"type": "boolean"}));
    completion.insert("logprobs".into(), json!({"type": "integer", "minimum": 0, "maximum": 5}));
    completion.insert("suffix".into(), json!({"type": "string"}));
    let codes: Vec<&str> = types::Code::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "openapi": "3.1.0",
        "info": {"title": "finllm", "version": env!("CARGO_PKG_VERSION"), "description": "OpenAI-compatible API of finllm serve."},
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "`finllm keys create`; required once any key exists"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["message", "type", "code"], "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string", "enum": ["invalid_request_error", "authentication_error", "rate_limit_error", "service_unavailable_error", "internal_error"]},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": "string", "enum": codes},
                }}}},
                "Message": {"type": "object", "required": ["role"], "properties": {
                    "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool", "function"]},
                    "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}, {"type": "null"}]},
                    "name": {"type": "string"},
                    "tool_calls": {"type": "array", "items": {"type": "object"}},
                    "tool_call_id": {"type": "string"},
                }},
                "ChatCompletionRequest": {"type": "object", "required": ["model", "messages"], "properties": chat},
                "CompletionRequest": {"type": "object", "required": ["model", "prompt"], "properties": completion},
            },
        },
        "security": [{"apiKey": []}, {}],
        "paths": {
            "/v1/chat/completions": {"post": operation("Chat completion (streamed with `stream: true`)", Some("ChatCompletionRequest"), ok_json_or_stream("chat.completion or chat.completion.chunk events"))},
            "/v1/completions": {"post": operation("Text completion; `echo` with `logprobs` scores the prompt", Some("CompletionRequest"), ok_json_or_stream("text_completion"))},
            "/v1/models": {"get": operation("Models served", None, ok_json("list of models"))},
            "/v1/moderations": {"post": {
                "summary": "天鉴 guard in OpenAI's moderation shape, plus verdict, intents, techniques, spans, scores and action",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["input"], "properties": {
                    "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "model": {"type": "string"},
                }}}}},
                "responses": {"200": ok_json("results[]: flagged, categories, category_scores, verdict (safe|controversial|unsafe), intents, techniques, spans, scores, action"), "400": error_responses()["400"], "503": error_responses()["503"]},
            }},
            "/v1/tools": {"get": operation("Finance tools as OpenAI function definitions", None, ok_json("list of tools"))},
            "/v1/tools/{name}": {"post": {
                "summary": "Run one finance tool on a JSON object of parameters",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": ok_json("the tool's result"), "400": error_responses()["400"], "404": error_responses()["404"]},
            }},
            "/health": {"get": {"summary": "Liveness", "responses": {"200": ok_json("ok")}}},
            "/ready": {"get": {"summary": "Whether a model can answer", "responses": {"200": ok_json("ready"), "503": error_responses()["503"]}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
    })
}
