//! The one table that gives every error an HTTP status and a stable code.
//!
//! Library crates keep their own typed errors; each implements [`ErrorCode`] to say which row of this
//! table it belongs to. The server turns any such error into the OpenAI-style JSON body
//! `{"error": {"message", "type", "param", "code"}}` using the row's status, type and code, so the wire
//! contract lives here and nowhere else. Codes are part of the public API: never rename one.

use std::fmt;

/// The broad class of an error, as sent in the `type` field of an OpenAI-style error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// The caller sent something we cannot accept; retrying the same request will fail again.
    InvalidRequest,
    /// The caller is not who they claim, or may not do this.
    Authentication,
    /// The caller is over a limit; retrying later can succeed.
    RateLimit,
    /// A dependency (model, upstream, store) is missing or failing; not the caller's fault.
    Unavailable,
    /// A bug or an unexpected state inside finllm.
    Internal,
}

impl ErrorType {
    /// The string sent on the wire, in OpenAI's naming.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request_error",
            ErrorType::Authentication => "authentication_error",
            ErrorType::RateLimit => "rate_limit_error",
            ErrorType::Unavailable => "service_unavailable_error",
            ErrorType::Internal => "internal_error",
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every library error so that the edge (HTTP or CLI) can classify it without
/// knowing the library.
pub trait ErrorCode {
    /// The row of the error-code table this error belongs to.
    fn error_code(&self) -> Code;
}

macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])* $variant:ident => ($status:literal, $ty:ident, $name:literal), )*) => {
        /// A stable error code: one row of the table (HTTP status, error type, wire name, meaning).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The HTTP status the server answers with.
            pub const fn http_status(self) -> u16 {
                match self { $(Code::$variant => $status,)* }
            }

            /// The broad class sent as the error body's `type`.
            pub const fn error_type(self) -> ErrorType {
                match self { $(Code::$variant => ErrorType::$ty,)* }
            }

            /// The snake_case name sent as the error body's `code`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// One line saying what the code means, for documentation and `finllm` help.
            pub const fn meaning(self) -> &'static str {
                match self { $(Code::$variant => concat!($($doc),*),)* }
            }
        }
    };
}

error_codes! {
    /// The request body is not valid JSON or not valid UTF-8.
    MalformedJson => (400, InvalidRequest, "malformed_json"),
    /// A field is missing, has the wrong type or an out-of-range value.
    InvalidParameter => (400, InvalidRequest, "invalid_parameter"),
    /// A configuration file or value is invalid.
    InvalidConfig => (400, InvalidRequest, "invalid_config"),
    /// The named model is not served here.
    ModelNotFound => (404, InvalidRequest, "model_not_found"),
    /// The requested resource (document, key, campaign, run) does not exist.
    NotFound => (404, InvalidRequest, "not_found"),
    /// The prompt plus the requested completion do not fit the model's context window.
    ContextLengthExceeded => (400, InvalidRequest, "context_length_exceeded"),
    /// The request body is larger than the configured limit.
    PayloadTooLarge => (413, InvalidRequest, "payload_too_large"),
    /// An input file or model file is corrupt, truncated or of an unsupported kind.
    UnsupportedFormat => (422, InvalidRequest, "unsupported_format"),
    /// The guard judged the input or output unsafe under the active policy.
    ContentBlocked => (400, InvalidRequest, "content_blocked"),
    /// No API key was sent, or the key is unknown or revoked.
    InvalidApiKey => (401, Authentication, "invalid_api_key"),
    /// The key is valid but may not use this model or endpoint.
    PermissionDenied => (403, Authentication, "permission_denied"),
    /// The key is over its request or token rate limit.
    RateLimited => (429, RateLimit, "rate_limit_exceeded"),
    /// The request queue is full; retry later.
    QueueFull => (429, RateLimit, "queue_full"),
    /// No model is loaded or configured to answer this endpoint.
    ModelUnavailable => (503, Unavailable, "model_unavailable"),
    /// The audit store cannot record the request and the policy is to fail closed.
    AuditUnavailable => (503, Unavailable, "audit_unavailable"),
    /// A storage engine (SQLite, PostgreSQL, index) failed.
    StorageError => (503, Unavailable, "storage_error"),
    /// An upstream model server answered with an error.
    UpstreamError => (502, Unavailable, "upstream_error"),
    /// An upstream model server did not answer in time.
    UpstreamTimeout => (504, Unavailable, "upstream_timeout"),
    /// An unexpected internal failure; the message says what was being done.
    Internal => (500, Internal, "internal_error"),
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
