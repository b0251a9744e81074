//! The JSON body extractor: size limit, syntax and type errors become OpenAI-style errors naming the field.
//!
//! axum's own `Json` rejection answers in plain text; OpenAI clients expect a JSON error body, and a client
//! debugging a 400 wants to know which field was wrong, so we read and parse the body ourselves.

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, Request},
};
use serde::de::DeserializeOwned;
use types::Code;

use crate::{error::ApiError, routes::SharedState};

/// A parsed request body together with its raw bytes (forwarded unchanged to upstream servers).
#[derive(Debug)]
pub struct JsonBody<T> {
    /// The typed request.
    pub value: T,
    /// The body as received.
    pub raw: Bytes,
}

impl<T: DeserializeOwned> FromRequest<SharedState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let limit = state.body_limit;
        let raw = read_body(req.into_body(), limit).await?;
        let value = parse(&raw)?;
        Ok(JsonBody { value, raw })
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let cause = err.into_inner();
        if cause.is::<http_body_util::LengthLimitError>() {
            ApiError::new(
                Code::PayloadTooLarge,
                format!("request body is larger than the limit of {limit} bytes"),
            )
        } else {
            ApiError::new(Code::MalformedJson, format!("cannot read request body: {cause}"))
        }
    })
}

/// Parses a JSON body, telling syntax errors (`malformed_json`) from wrong fields (`invalid_parameter`).
pub fn parse<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(raw);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let mut api =
                    ApiError::new(Code::InvalidParameter, format!("invalid request: {inner}"));
                if path != "." {
                    api = api.with_param(path);
                }
                api
            }
            _ => ApiError::new(
                Code::MalformedJson,
                format!("request body is not valid JSON: {inner}"),
            ),
        }
    })
}
