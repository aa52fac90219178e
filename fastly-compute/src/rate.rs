//! Rate limits with Fastly Edge Rate Limiting (ARCHITECTURE §5):
//! - per agent: a rate counter and a penalty box keyed by the verified agent and keyid; over
//!   the limit → 429 `rate_limited`;
//! - per source: rejections that cost an Ed25519 verify (`Reason::spent_a_verify`: forged
//!   signatures over a known key, replays) are counted by client address; a source over
//!   `invalid_signature_limit` goes into a penalty box, and while there its signed requests
//!   get 429 `source_penalized` before any parsing or crypto. Unsigned requests and other
//!   sources are never looked at.
//!
//! Checked where the request is first verified (the edge POP, or the only POP without
//! shielding), not again at the shield, so one request counts once. Viceroy stubs ERL (its
//! counters never trip): the blocking path is covered by the decision tests below, not end
//! to end.

use std::time::Duration;

use botauth_core::Verified;
use fastly::erl::{Penaltybox, RateCounter, RateWindow, ERL};
use serde::Deserialize;

use crate::config::{PENALTY_BOX, RATE_COUNTER, SOURCE_PENALTY_BOX, SOURCE_RATE_COUNTER};

/// The `rate_limit` setting: `{"limit": 50, "window": 10, "penalty": 300}`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Average requests per second allowed over the window, per agent and keyid.
    pub limit: u32,
    /// Window in seconds: 1, 10 or 60.
    pub window: u32,
    /// Seconds an agent over the limit stays blocked: 60 to 3600 (ERL truncates to minutes).
    pub penalty: u32,
}

/// Parse and check the `rate_limit` item.
pub fn parse(v: &str) -> Result<RateLimit, String> {
    let r: RateLimit =
        serde_json::from_str(v).map_err(|e| format!("expected {{\"limit\",\"window\",\"penalty\"}}: {e}"))?;
    if r.limit == 0 {
        return Err("limit must be at least 1".into());
    }
    if !matches!(r.window, 1 | 10 | 60) {
        return Err("window must be 1, 10 or 60 seconds".into());
    }
    if !(60..=3600).contains(&r.penalty) {
        return Err("penalty must be between 60 and 3600 seconds".into());
    }
    Ok(r)
}

/// The ERL entry of a source: its client address (`-` when the platform gives none).
pub fn source_entry(client: Option<std::net::IpAddr>) -> String {
    client.map_or_else(|| "-".into(), |ip| ip.to_string())
}

/// Whether `verdict` counts against its source: a rejection that cost a verify.
pub fn counts_against_source(verdict: &botauth_core::Verdict) -> bool {
    verdict.reason().is_some_and(botauth_core::Reason::spent_a_verify)
}

/// Whether the source is in the penalty box (an ERL error lets the request through).
pub fn source_penalized(source: &str) -> bool {
    match Penaltybox::open(SOURCE_PENALTY_BOX).has(source) {
        Ok(boxed) => boxed,
        Err(e) => {
            crate::log::warning(&format!("edge rate limiting unavailable ({e:?}); source not checked"));
            false
        }
    }
}

/// Count a rejection that cost a verify against `source`; over `limit` it enters the
/// penalty box for `limit.penalty` seconds. Returns whether it is now over.
pub fn count_source(limit: &RateLimit, source: &str) -> bool {
    let erl = ERL::open(RateCounter::open(SOURCE_RATE_COUNTER), Penaltybox::open(SOURCE_PENALTY_BOX));
    match erl.check_rate(source, 1, window(limit), limit.limit, Duration::from_secs(u64::from(limit.penalty))) {
        Ok(over) => over,
        Err(e) => {
            crate::log::warning(&format!("edge rate limiting unavailable ({e:?}); source not counted"));
            false
        }
    }
}

fn window(limit: &RateLimit) -> RateWindow {
    match limit.window {
        1 => RateWindow::OneSec,
        60 => RateWindow::SixtySecs,
        _ => RateWindow::TenSecs,
    }
}

/// The ERL entry of a verified request: agent and keyid.
pub fn entry(v: &Verified) -> String {
    format!("{} {}", v.agent.as_deref().unwrap_or("-"), v.keyid)
}

/// Count this request; `true` when the agent is over its limit (or in the penalty box). An
/// ERL error is logged and lets the request through.
pub fn over_limit(limit: &RateLimit, v: &Verified) -> bool {
    let erl = ERL::open(RateCounter::open(RATE_COUNTER), Penaltybox::open(PENALTY_BOX));
    match erl.check_rate(&entry(v), 1, window(limit), limit.limit, Duration::from_secs(u64::from(limit.penalty))) {
        Ok(blocked) => blocked,
        Err(e) => {
            crate::log::warning(&format!("edge rate limiting unavailable ({e:?}); request not limited"));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert_eq!(
            parse(r#"{"limit":50,"window":10,"penalty":300}"#),
            Ok(RateLimit { limit: 50, window: 10, penalty: 300 })
        );
        for bad in [
            r#"{"limit":0,"window":10,"penalty":300}"#,
            r#"{"limit":5,"window":5,"penalty":300}"#,
            r#"{"limit":5,"window":10,"penalty":30}"#,
            r#"{"limit":5,"window":10,"penalty":300,"burst":1}"#,
            r#"{"limit":5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entries_separate_agents_and_keys() {
        let v = |agent: Option<&str>, keyid: &str| Verified {
            agent: agent.map(String::from),
            claimed_agent: None,
            keyid: keyid.into(),
            label: "sig1".into(),
            created: None,
            expires: None,
            nonce: None,
            ..Verified::default()
        };
        assert_eq!(entry(&v(Some("https://a.test"), "k1")), "https://a.test k1");
        assert_ne!(entry(&v(Some("https://a.test"), "k1")), entry(&v(Some("https://a.test"), "k2")));
        assert_eq!(entry(&v(None, "k1")), "- k1");
    }

    #[test]
    fn only_rejections_that_cost_a_verify_count_against_their_source() {
        use botauth_core::{Reason, Verdict};
        let counted: Vec<&str> =
            Reason::ALL.iter().filter(|r| counts_against_source(&Verdict::from(**r))).map(|r| r.code()).collect();
        assert_eq!(counted, ["signature_invalid", "replay"]);
        assert!(!counts_against_source(&Verdict::Unsigned));
        assert!(!counts_against_source(&Verdict::Verified(Verified::default())));
        // Sources are told apart by address; IPv6 and IPv4 alike.
        let v4 = source_entry(Some("192.0.2.7".parse().unwrap()));
        let v6 = source_entry(Some("2001:db8::7".parse().unwrap()));
        assert_eq!((v4.as_str(), v6.as_str(), source_entry(None).as_str()), ("192.0.2.7", "2001:db8::7", "-"));
    }

    #[test]
    fn viceroy_stubs_erl_so_no_source_is_penalized_here() {
        let limit = RateLimit { limit: 1, window: 1, penalty: 60 };
        assert!((0..5).all(|_| !count_source(&limit, "192.0.2.7")));
        assert!(!source_penalized("192.0.2.7"));
    }

    #[test]
    fn viceroy_stubs_erl_so_nothing_is_limited_here() {
        // Documents the local limitation the README describes: under Viceroy the counter
        // never trips, even for a limit of 1 request per second.
        let limit = RateLimit { limit: 1, window: 1, penalty: 60 };
        let v = Verified {
            agent: Some("https://a.test".into()),
            claimed_agent: None,
            keyid: "k".into(),
            label: "sig1".into(),
            created: None,
            expires: None,
            nonce: None,
            ..Verified::default()
        };
        assert!((0..5).all(|_| !over_limit(&limit, &v)));
    }
}
