//! The error-code table is a wire contract: these tests pin it.

use std::collections::HashSet;

use types::{Code, ErrorType};

#[track_caller]
fn check(code: Code, status: u16, ty: &str, name: &str) {
    assert_eq!((code.http_status(), code.error_type().as_str(), code.as_str()), (status, ty, name));
}

#[test]
fn rows_are_pinned() {
    check(Code::MalformedJson, 400, "invalid_request_error", "malformed_json");
    check(Code::ModelNotFound, 404, "invalid_request_error", "model_not_found");
    check(Code::PayloadTooLarge, 413, "invalid_request_error", "payload_too_large");
    check(Code::InvalidApiKey, 401, "authentication_error", "invalid_api_key");
    check(Code::RateLimited, 429, "rate_limit_error", "rate_limit_exceeded");
    check(Code::ModelUnavailable, 503, "service_unavailable_error", "model_unavailable");
    check(Code::UpstreamTimeout, 504, "service_unavailable_error", "upstream_timeout");
    check(Code::Internal, 500, "internal_error", "internal_error");
}

#[test]
fn names_are_unique_snake_case_and_documented() {
    let mut seen = HashSet::new();
    for code in Code::ALL {
        let name = code.as_str();
        assert!(seen.insert(name), "duplicate code name {name}");
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name} is not snake_case"
        );
        assert!(!code.meaning().is_empty(), "{name} has no meaning line");
        assert!(code.meaning().ends_with('.'), "{name}: meaning should be one sentence");
    }
}

#[test]
fn status_agrees_with_type() {
    for code in Code::ALL {
        let status = code.http_status();
        let ok = match code.error_type() {
            ErrorType::InvalidRequest => {
                (400..500).contains(&status) && status != 401 && status != 429
            }
            ErrorType::Authentication => status == 401 || status == 403,
            ErrorType::RateLimit => status == 429,
            ErrorType::Unavailable => (502..=504).contains(&status),
            ErrorType::Internal => status == 500,
        };
        assert!(ok, "{code}: status {status} does not fit type {}", code.error_type());
    }
}
