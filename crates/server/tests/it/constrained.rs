//! `response_format` on the in-process engine: the fixture model has random weights, so its free output is
//! garbage; with constrained decoding every answer must parse as JSON and match the schema, for any seed and
//! any output budget.

use serde_json::{Value, json};

use crate::{
    config,
    engine::{MODEL, engine_server, post, stream},
    fake_upstream::{self, Behaviour},
    start,
};

async fn server() -> crate::TestServer {
    engine_server(64 << 20).await
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "payee": {"type": "string"},
            "amount": {"type": "number"},
            "installments": {"type": "integer"},
            "urgent": {"type": "boolean"},
            "memo": {"type": ["string", "null"]},
            "currency": {"enum": ["CNY", "USD", "HKD"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "account": {
                "type": "object",
                "properties": {"bank": {"type": "string"}, "number": {"type": "string"}},
                "required": ["bank", "number"]
            }
        },
        "required": ["payee", "amount", "currency", "account"]
    })
}

/// Checks `value` against the schema subset the server enforces; returns what is wrong.
fn violation(schema: &Value, value: &Value, at: &str) -> Option<String> {
    if let Some(options) = schema["enum"].as_array() {
        return (!options.contains(value)).then(|| format!("{at}: {value} not in {options:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let fits = |t: &str| match t {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => false,
    };
    if !types.iter().any(|t| fits(t)) {
        return Some(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !object.contains_key(name) {
                return Some(format!("{at}: missing {name}"));
            }
        }
        for (key, item) in object {
            let Some(sub) = schema["properties"].get(key) else {
                return Some(format!("{at}: unexpected property {key}"));
            };
            if let Some(v) = violation(sub, item, &format!("{at}.{key}")) {
                return Some(v);
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = violation(&schema["items"], item, &format!("{at}[{i}]")) {
                return Some(v);
            }
        }
    }
    None
}

fn request(format: &Value, seed: u64, max_tokens: u32) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Extract the payment as JSON."}],
        "max_tokens": max_tokens,
        "temperature": 1.0,
        "seed": seed,
        "response_format": format,
    })
}

async fn chat(server: &crate::TestServer, body: &Value) -> (u16, Value) {
    post(server, "/v1/chat/completions", body).await
}

#[tokio::test]
async fn json_schema_output_parses_and_validates_for_every_seed_and_budget() {
    let server = server().await;
    let schema = schema();
    let format = json!({"type": "json_schema", "json_schema": {"name": "payment", "schema": schema, "strict": true}});
    // Budgets from the shortest valid document up to room to wander: the constraint closes the document in
    // time either way.
    for (seed, max_tokens) in
        [(0, 400), (1, 400), (2, 200), (3, 150), (4, 120), (5, 100), (6, 300), (7, 90)]
    {
        let (status, answer) = chat(&server, &request(&format, seed, max_tokens)).await;
        assert_eq!(status, 200, "{answer}");
        let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
        let value: Value = serde_json::from_str(content)
            .unwrap_or_else(|e| panic!("seed {seed}, budget {max_tokens}: {e}: {content}"));
        assert_eq!(violation(&schema, &value, "$"), None, "seed {seed}: {content}");
        assert_eq!(answer["choices"][0]["finish_reason"], "stop", "{content}");
        assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() <= u64::from(max_tokens));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn json_object_output_is_an_object_streamed_or_not_with_several_choices() {
    let server = server().await;
    for seed in 0..4 {
        let mut body = request(&json!({"type": "json_object"}), seed, 200);
        body["n"] = json!(2);
        let (status, answer) = chat(&server, &body).await;
        assert_eq!(status, 200, "{answer}");
        for choice in answer["choices"].as_array().unwrap() {
            let content = choice["message"]["content"].as_str().unwrap();
            let value: Value = serde_json::from_str(content)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}: {content}"));
            assert!(value.is_object(), "{content}");
        }
        body["n"] = json!(1);
        body["stream"] = json!(true);
        let (content, _) = stream(&server, "/v1/chat/completions", &body).await;
        let value: Value = serde_json::from_str(&content)
            .unwrap_or_else(|e| panic!("streamed, seed {seed}: {e}: {content}"));
        assert!(value.is_object());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn unsupported_formats_are_refused_by_name() {
    let server = server().await;
    let check = |format: Value, want: &'static str, param: &'static str| {
        let server = &server;
        async move {
            let (status, answer) = chat(server, &request(&format, 0, 20)).await;
            assert_eq!(status, 400, "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(want), "{message}");
            assert_eq!(answer["error"]["param"], param);
        }
    };
    check(
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "^[A-Z]+$"}}}),
        "`pattern`",
        "response_format.json_schema.schema",
    )
    .await;
    check(
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}}}),
        "`format` (at #/properties/d)",
        "response_format.json_schema.schema",
    )
    .await;
    check(json!({"type": "yaml"}), "\"yaml\"", "response_format.type").await;
    check(json!({"type": "json_schema"}), "json_schema object", "response_format.json_schema")
        .await;
    // Plain text stays unconstrained.
    let (status, _) = chat(&server, &request(&json!({"type": "text"}), 0, 5)).await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn upstream_backends_get_response_format_unchanged() {
    let upstream = fake_upstream::spawn("up", "remote-model", Behaviour::Healthy).await;
    let server = start(config(&[upstream.url.as_str()])).await;
    // Even a keyword the engine refuses is the upstream's business.
    let format = json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": {"type": "string", "pattern": "^[A-Z]{3}$"}}});
    let mut body = request(&format, 0, 5);
    body["model"] = json!("remote-model");
    let (status, answer) = chat(&server, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["echo_response_format"], format);
    server.shutdown().await;
}
