//! The local reply for a rejected request in enforce mode (ARCHITECTURE §4): RFC 9457
//! problem+json from core, a fixed set of headers, never a request value.

use botauth_core::outcome::{problem_json, PROBLEM_JSON};
use botauth_core::Reason;

/// A local reply: status, headers, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    /// 400, 403 or 429.
    pub status: u32,
    /// Response headers.
    pub headers: Vec<(&'static str, String)>,
    /// The problem document.
    pub body: String,
}

/// The reply for `reason`; `retry_after` seconds are sent with 429 (a replay) and 503 (a
/// directory that could not be loaded: worth retrying later).
pub fn reject(reason: Reason, retry_after: u64) -> LocalReply {
    let status = reason.status().code();
    let mut headers = vec![("content-type", PROBLEM_JSON.into()), ("cache-control", "no-store".into())];
    if status == 429 || status == 503 {
        headers.push(("retry-after", retry_after.to_string()));
    }
    // RFC 9421 §5.1: tell an honest agent what signature is wanted.
    if reason == Reason::UnverifiedClaim {
        headers.push(("accept-signature", botauth_core::outcome::ACCEPT_SIGNATURE.into()));
    }
    LocalReply { status: u32::from(status), headers, body: problem_json(reason) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_maps_to_a_problem() {
        for &reason in Reason::ALL {
            let r = reject(reason, 9);
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["type"], format!("urn:botauth:problem:{}", reason.code()));
            assert_eq!(body["status"], r.status);
            assert!(matches!(r.status, 400 | 403 | 429 | 503));
            let retry = r.headers.iter().any(|(n, v)| *n == "retry-after" && v == "9");
            assert_eq!(retry, matches!(r.status, 429 | 503), "{reason:?}");
            assert!(r.headers.contains(&("content-type", "application/problem+json".into())));
            let accept = r.headers.iter().any(|(n, _)| *n == "accept-signature");
            assert_eq!(accept, reason == Reason::UnverifiedClaim, "{reason:?}");
        }
    }
}
