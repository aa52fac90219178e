//! Responses the service makes itself: RFC 9457 problem documents, never cached, never
//! echoing request data.

use botauth_core::outcome::{self, problem_json, PROBLEM_JSON, RETRY_AFTER_SECS};
use botauth_core::Reason;
use fastly::http::{header, StatusCode};
use fastly::Response;

use crate::upstream::Failure;

/// The problem `type` of [`unavailable`].
pub const CONFIG_ERROR_CODE: &str = "configuration_error";

/// The enforce-mode answer to a rejection: 400/403/429 with a stable `type` per reason.
pub fn rejected(reason: Reason) -> Response {
    let status = StatusCode::from_u16(reason.status().code()).unwrap_or(StatusCode::FORBIDDEN);
    let mut resp = problem(status, problem_json(reason));
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.set_header(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string());
    }
    // RFC 9421 §5.1: tell an honest agent what signature is wanted.
    if reason == Reason::UnverifiedClaim {
        resp.set_header("accept-signature", outcome::ACCEPT_SIGNATURE);
    }
    resp
}

/// A verified agent over its rate limit (Edge Rate Limiting): 429 until the penalty ends.
pub fn rate_limited(retry_after_secs: u32) -> Response {
    let body = outcome::problem("rate_limited", "the agent is over its rate limit", 429);
    problem(StatusCode::TOO_MANY_REQUESTS, body).with_header(header::RETRY_AFTER, retry_after_secs.to_string())
}

/// A signed request from a source in the penalty box of `invalid_signature_limit`: 429,
/// decided before verification.
pub fn source_penalized(retry_after_secs: u32) -> Response {
    let body = outcome::problem("source_penalized", "too many failed signatures from this source", 429);
    problem(StatusCode::TOO_MANY_REQUESTS, body).with_header(header::RETRY_AFTER, retry_after_secs.to_string())
}

/// Signed requests while the keys or settings are unusable: fail closed with 503.
pub fn unavailable() -> Response {
    let body = outcome::problem(CONFIG_ERROR_CODE, "signature verification is not configured correctly", 503);
    problem(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// The origin (or the shield) could not be reached (502), or sent no response head in time
/// (504).
pub fn upstream_failed(failure: Failure) -> Response {
    match failure {
        Failure::Unreachable => problem(
            StatusCode::BAD_GATEWAY,
            outcome::problem("origin_unreachable", "the origin could not be reached", 502),
        ),
        Failure::Timeout => problem(
            StatusCode::GATEWAY_TIMEOUT,
            outcome::problem("origin_timeout", "the origin did not answer in time", 504),
        ),
    }
}

fn problem(status: StatusCode, body: String) -> Response {
    Response::from_status(status)
        .with_header(header::CONTENT_TYPE, PROBLEM_JSON)
        .with_header(header::CACHE_CONTROL, "no-store")
        .with_body(body)
}

/// `Server-Timing` for debug mode: the verification time and outcome.
pub fn server_timing(verify_us: Option<u64>, outcome: &str) -> String {
    match verify_us {
        // Server-Timing `dur` is in milliseconds (W3C Server Timing §3).
        Some(us) => format!("botauth;dur={}.{:03};desc=\"{outcome}\"", us / 1000, us % 1000),
        None => format!("botauth;desc=\"{outcome}\""),
    }
}

/// `Server-Timing` for debug mode: one phase of a signed request (`settings`, `keys`).
pub fn phase_timing(phase: &str, us: u64) -> String {
    format!("{phase};dur={}.{:03}", us / 1000, us % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_statuses_types_and_retry_after() {
        let r = rejected(Reason::SignatureInvalid);
        assert_eq!(r.get_status(), StatusCode::FORBIDDEN);
        assert_eq!(r.get_header_str(header::CONTENT_TYPE), Some(PROBLEM_JSON));
        assert_eq!(r.get_header_str(header::CACHE_CONTROL), Some("no-store"));
        assert_eq!(r.get_header(header::RETRY_AFTER), None);
        let body: serde_json::Value = serde_json::from_str(&r.into_body_str()).unwrap();
        assert_eq!(body["type"], "urn:botauth:problem:signature_invalid");
        assert_eq!(body["status"], 403);

        let r = rejected(Reason::Replay);
        assert_eq!(r.get_status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.get_header_str(header::RETRY_AFTER), Some("60"));

        assert_eq!(rejected(Reason::SignatureBadBase64).get_status(), StatusCode::BAD_REQUEST);
        let r = rate_limited(300);
        assert_eq!(r.get_status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.get_header_str(header::RETRY_AFTER), Some("300"));
        let body: serde_json::Value = serde_json::from_str(&r.into_body_str()).unwrap();
        assert_eq!(body["type"], "urn:botauth:problem:rate_limited");
        assert_eq!(unavailable().get_status(), StatusCode::SERVICE_UNAVAILABLE);
        for (failure, status, code) in
            [(Failure::Unreachable, 502, "origin_unreachable"), (Failure::Timeout, 504, "origin_timeout")]
        {
            let r = upstream_failed(failure);
            assert_eq!(r.get_status().as_u16(), status);
            assert_eq!(r.get_header_str(header::CONTENT_TYPE), Some(PROBLEM_JSON));
            assert_eq!(r.get_header_str(header::CACHE_CONTROL), Some("no-store"));
            let body: serde_json::Value = serde_json::from_str(&r.into_body_str()).unwrap();
            assert_eq!((body["code"].as_str(), body["status"].as_u64()), (Some(code), Some(u64::from(status))));
        }
    }

    #[test]
    fn server_timing_is_in_milliseconds() {
        assert_eq!(server_timing(Some(1234), "verified"), "botauth;dur=1.234;desc=\"verified\"");
        assert_eq!(server_timing(Some(7), "rejected"), "botauth;dur=0.007;desc=\"rejected\"");
        assert_eq!(server_timing(None, "unsigned"), "botauth;desc=\"unsigned\"");
        assert_eq!(phase_timing("keys", 42), "keys;dur=0.042");
    }
}
