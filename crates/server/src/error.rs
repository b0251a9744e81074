//! The OpenAI-style error body, `{"error": {"message", "type", "param", "code"}}`, for every failure.
//!
//! Status, type and code come from the one table in `types`; handlers only choose the row and the message.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use types::Code;

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The row of the error-code table.
    pub code: Code,
    /// A sentence for people: what was wrong and how to fix it.
    pub message: String,
    /// The request field at fault, when there is one (`messages[0].role`).
    pub param: Option<String>,
}

impl ApiError {
    /// An error of `code` with a message.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), param: None }
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    /// The JSON body OpenAI clients parse.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.code.error_type().as_str(),
                "param": self.param,
                "code": self.code.as_str(),
            }
        })
    }
}

impl<E: std::error::Error + types::ErrorCode> From<&E> for ApiError {
    fn from(err: &E) -> ApiError {
        ApiError::new(err.error_code(), err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
    }
}
