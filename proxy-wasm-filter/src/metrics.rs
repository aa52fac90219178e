//! Metric names (ARCHITECTURE §4): counters per verdict, per reason and per agent, per
//! directory fetch outcome, and a histogram of verify time. Envoy shows them under
//! `wasmcustom.` in `/stats`. Which of them are kept is configurable (`metrics`).
//!
//! Agent segments come only from configured labels (`other` for the rest): a client must
//! not be able to mint new metric names.

use botauth_core::Verdict;

use crate::config::MetricSettings;

/// The counters one signed request increments. `label`: the configured label of the
/// verdict's agent, if it has one.
pub fn counters(prefix: &str, verdict: &Verdict, label: Option<&str>, settings: &MetricSettings) -> Vec<String> {
    let (kind, agent) = match verdict {
        Verdict::Unsigned => return Vec::new(),
        Verdict::Verified(v) => ("verified", v.agent.as_deref()),
        Verdict::Rejected(r) => ("rejected", r.agent.as_deref()),
    };
    if !settings.enabled {
        return Vec::new();
    }
    let mut names = vec![format!("{prefix}.verdict.{kind}")];
    if let Some(reason) = verdict.reason() {
        names.push(format!("{prefix}.reason.{}", reason.code()));
    }
    if settings.agents {
        names.push(format!("{prefix}.agent.{}.{kind}", agent_segment(agent, label)));
    }
    // An allow-listed agent answered 503 because its directory has no usable keys: the
    // agent is failing closed (alerted on by examples/prometheus/botauth-alerts.yml).
    if verdict.reason() == Some(botauth_core::Reason::DirectoryUnavailable) {
        names.push(directory_counter(prefix, &agent_segment(agent, label), "fail_closed"));
    }
    names
}

/// The verify-time histogram (microseconds).
pub fn histogram(prefix: &str) -> String {
    format!("{prefix}.verify_us")
}

/// The replay cache's size gauge: nonces it holds on this node, as its writes counted them.
pub fn replay_entries(prefix: &str) -> String {
    format!("{prefix}.replay.entries")
}

/// The counter of nonces evicted from a full replay cache before they expired: a replay of
/// one of them would no longer be caught (raise `replay.capacity`).
pub fn replay_evicted(prefix: &str) -> String {
    format!("{prefix}.replay.evicted")
}

/// A directory counter: `<prefix>.directory.<label>.<event>` (`fetch_ok`, `fetch_failed`,
/// `fail_closed`).
pub fn directory_counter(prefix: &str, label: &str, event: &str) -> String {
    format!("{prefix}.directory.{}.{event}", segment(label))
}

/// `chatgpt_com` for an agent labelled `chatgpt.com`, `none` without an agent, `other`
/// for an agent without a label here.
pub fn agent_segment(agent: Option<&str>, label: Option<&str>) -> String {
    match (agent, label) {
        (None, _) => "none".into(),
        (Some(_), None) => "other".into(),
        (Some(_), Some(l)) => segment(l),
    }
}

/// A label as a metric name segment: lowercase, anything outside `[a-z0-9_-]` as `_`.
fn segment(label: &str) -> String {
    label
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect()
}

/// Metric ids defined on first use (proxy-wasm `define_metric` is idempotent per name).
#[cfg(target_arch = "wasm32")]
#[derive(Default)]
pub struct Metrics {
    ids: std::cell::RefCell<std::collections::BTreeMap<String, u32>>,
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
    pub fn record(&self, prefix: &str, verdict: &Verdict, label: Option<&str>, settings: &MetricSettings, us: u64) {
        use proxy_wasm::types::MetricType;
        for name in counters(prefix, verdict, label, settings) {
            self.increment(&name);
        }
        if settings.enabled && settings.verify_time && !matches!(verdict, Verdict::Unsigned) {
            if let Some(id) = self.id(MetricType::Histogram, &histogram(prefix)) {
                let _ = proxy_wasm::hostcalls::record_metric(id, us);
            }
        }
    }

    /// Add one to the counter `name`.
    pub fn increment(&self, name: &str) {
        self.add(name, 1);
    }

    /// Add `n` to the counter `name`.
    pub fn add(&self, name: &str, n: u64) {
        if let Some(id) = self.id(proxy_wasm::types::MetricType::Counter, name) {
            let _ = proxy_wasm::hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Move the gauge `name` by `delta`.
    pub fn add_gauge(&self, name: &str, delta: i64) {
        if let Some(id) = self.id(proxy_wasm::types::MetricType::Gauge, name) {
            let _ = proxy_wasm::hostcalls::increment_metric(id, delta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botauth_core::{Reason, Rejected, Verified};

    const ALL: MetricSettings = MetricSettings { enabled: true, agents: true, verify_time: true };

    #[test]
    fn names() {
        let ok = Verdict::Verified(Verified {
            agent: Some("https://chatgpt.com".into()),
            claimed_agent: None,
            keyid: "k".into(),
            label: "sig1".into(),
            created: None,
            expires: None,
            nonce: None,
            ..Verified::default()
        });
        assert_eq!(
            counters("botauth", &ok, Some("chatgpt.com"), &ALL),
            ["botauth.verdict.verified", "botauth.agent.chatgpt_com.verified"]
        );
        let bad = Verdict::Rejected(Rejected {
            agent: Some("https://evil.test/x.y".into()),
            ..Rejected::new(Reason::UnknownKey)
        });
        assert_eq!(
            counters("p", &bad, None, &ALL),
            ["p.verdict.rejected", "p.reason.unknown_key", "p.agent.other.rejected"]
        );
        assert_eq!(counters("p", &Verdict::Unsigned, None, &ALL), Vec::<String>::new());
        let closed = Verdict::Rejected(Rejected {
            agent: Some("https://chatgpt.com".into()),
            ..Rejected::new(Reason::DirectoryUnavailable)
        });
        assert_eq!(
            counters("p", &closed, Some("chatgpt"), &MetricSettings { agents: false, ..ALL }),
            ["p.verdict.rejected", "p.reason.directory_unavailable", "p.directory.chatgpt.fail_closed"]
        );
        assert_eq!(agent_segment(None, None), "none");
        assert_eq!(agent_segment(Some("https://x"), Some("Chat.GPT")), "chat_gpt");
        assert_eq!(directory_counter("botauth", "chatgpt.com", "fetch_ok"), "botauth.directory.chatgpt_com.fetch_ok");
        assert_eq!((replay_entries("p"), replay_evicted("p")), ("p.replay.entries".into(), "p.replay.evicted".into()));
    }

    #[test]
    fn settings_turn_counters_off() {
        let bad = Verdict::Rejected(Rejected::new(Reason::SignatureInvalid));
        let no_agents = MetricSettings { agents: false, ..ALL };
        assert_eq!(counters("p", &bad, None, &no_agents), ["p.verdict.rejected", "p.reason.signature_invalid"]);
        let off = MetricSettings { enabled: false, ..ALL };
        assert!(counters("p", &bad, None, &off).is_empty());
    }
}
