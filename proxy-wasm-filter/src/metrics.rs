//! Metric names (ARCHITECTURE §4): counters per verdict, per reason and per agent, and a
//! histogram of verify time. Envoy shows them under `wasmcustom.` in `/stats`.
//!
//! Agent labels come only from the configured agents (`other` for the rest): a client must
//! not be able to mint new metric names.

use botauth_core::Verdict;

/// The counters one signed request increments.
pub fn counters(prefix: &str, verdict: &Verdict, agents: &[String]) -> Vec<String> {
    let (kind, agent) = match verdict {
        Verdict::Unsigned => return Vec::new(),
        Verdict::Verified(v) => ("verified", v.agent.as_deref()),
        Verdict::Rejected(r) => ("rejected", r.agent.as_deref()),
    };
    let mut names = vec![format!("{prefix}.verdict.{kind}")];
    if let Some(reason) = verdict.reason() {
        names.push(format!("{prefix}.reason.{}", reason.code()));
    }
    names.push(format!("{prefix}.agent.{}.{kind}", agent_label(agent, agents)));
    names
}

/// The verify-time histogram (microseconds).
pub fn histogram(prefix: &str) -> String {
    format!("{prefix}.verify_us")
}

/// `chatgpt_com` for a configured `https://chatgpt.com`, `none` without an agent, `other`
/// for an agent that has no keys here.
pub fn agent_label(agent: Option<&str>, agents: &[String]) -> String {
    let Some(agent) = agent else { return "none".into() };
    if !agents.iter().any(|a| a == agent) {
        return "other".into();
    }
    let bare = agent.strip_prefix("https://").or_else(|| agent.strip_prefix("http://")).unwrap_or(agent);
    bare.trim_end_matches('/').chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// Metric ids defined on first use (proxy-wasm `define_metric` is idempotent per name).
#[cfg(target_arch = "wasm32")]
#[derive(Default)]
pub struct Metrics {
    ids: std::cell::RefCell<std::collections::HashMap<String, u32>>,
}

#[cfg(target_arch = "wasm32")]
impl Metrics {
    fn id(&self, kind: proxy_wasm::types::MetricType, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.borrow().get(name) {
            return Some(*id);
        }
        let id = proxy_wasm::hostcalls::define_metric(kind, name).ok()?;
        self.ids.borrow_mut().insert(name.into(), id);
        Some(id)
    }

    /// Count one signed request and record its verify time.
    pub fn record(&self, prefix: &str, verdict: &Verdict, agents: &[String], verify_us: u64) {
        use proxy_wasm::types::MetricType;
        for name in counters(prefix, verdict, agents) {
            if let Some(id) = self.id(MetricType::Counter, &name) {
                let _ = proxy_wasm::hostcalls::increment_metric(id, 1);
            }
        }
        if let Some(id) = self.id(MetricType::Histogram, &histogram(prefix)) {
            let _ = proxy_wasm::hostcalls::record_metric(id, verify_us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botauth_core::{Reason, Rejected, Verified};

    #[test]
    fn names() {
        let agents = vec!["https://chatgpt.com".to_string(), "*".to_string()];
        let ok = Verdict::Verified(Verified {
            agent: Some("https://chatgpt.com".into()),
            keyid: "k".into(),
            label: "sig1".into(),
            created: None,
            expires: None,
            nonce: None,
        });
        assert_eq!(
            counters("botauth", &ok, &agents),
            ["botauth.verdict.verified", "botauth.agent.chatgpt_com.verified"]
        );
        let bad = Verdict::Rejected(Rejected {
            agent: Some("https://evil.test/x.y".into()),
            ..Rejected::new(Reason::UnknownKey)
        });
        assert_eq!(
            counters("p", &bad, &agents),
            ["p.verdict.rejected", "p.reason.unknown_key", "p.agent.other.rejected"]
        );
        assert_eq!(counters("p", &Verdict::Unsigned, &agents), Vec::<String>::new());
        assert_eq!(agent_label(None, &agents), "none");
        assert_eq!(agent_label(Some("*"), &agents), "_");
    }
}
