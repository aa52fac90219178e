//! The plugin configuration: one JSON document (Envoy `configuration`, Kong filter `config`),
//! validated once in `on_configure` (ARCHITECTURE §6). Unknown members are errors, so a
//! typo cannot silently weaken the policy. At least one agent must be trusted: pinned
//! `keys`, allow-listed `directories`, or both.
//!
//! ```json
//! {
//!   "keys": { "https://chatgpt.com": { "keys": [ { "kty": "OKP", "crv": "Ed25519", "x": "…" } ] } },
//!   "directories": { "agents": [ { "agent": "https://chatgpt.com", "upstream": "chatgpt_directory", "label": "chatgpt" } ] },
//!   "directory_cache": { "namespace": "botauth", "max_wait_ms": 2500, "tick_ms": 100, "prefetch": true },
//!   "labels": { "https://chatgpt.com": "chatgpt" },
//!   "policy": { "mode": "enforce", "clock_skew": 60, "max_validity": 86400 },
//!   "verdict_header": "botauth-verdict",
//!   "agent_header": "botauth-agent",
//!   "scheme": "https",
//!   "authority": "auto",
//!   "max_body_bytes": 65536,
//!   "replay": { "enabled": true, "namespace": "botauth", "capacity": 16384 },
//!   "log": { "enabled": true, "sample": 1, "always_rejected": true },
//!   "metrics": { "enabled": true, "agents": true, "verify_time": true },
//!   "stat_prefix": "botauth",
//!   "retry_after": 60,
//!   "verdict_auth": { "kid": "k1", "secret_base64": "…" },
//!   "claims": [{ "agent": "https://chatgpt.com", "user_agent": ["ChatGPT-User", "ChatGPT Agent"] }]
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use botauth_core::agent_uri::AgentUri;
use botauth_core::config::{ConfigError as PolicyError, PolicyConfig};
use botauth_core::directory::{Directories, DirectoriesConfig, DirectoriesError};
use botauth_core::outcome::{RETRY_AFTER_SECS, VERDICT_HEADER};
use botauth_core::verdict_auth::{KeyError, VerdictKey};
use botauth_core::{Keyring, KeysError, Policy, ANY_AGENT};
use serde::Deserialize;

use crate::request::AuthoritySource;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    keys: BTreeMap<String, serde_json::Value>,
    directories: Option<DirectoriesConfig>,
    directory_cache: Option<RawCache>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    policy: PolicyConfig,
    verdict_header: Option<String>,
    agent_header: Option<String>,
    scheme: Option<String>,
    authority: Option<String>,
    max_body_bytes: Option<usize>,
    replay: Option<RawReplay>,
    log: Option<RawLog>,
    metrics: Option<RawMetrics>,
    stat_prefix: Option<String>,
    retry_after: Option<u64>,
    verdict_auth: Option<RawVerdictAuth>,
    claims: Option<Vec<botauth_core::claims::ClaimConfig>>,
    /// Testing only: verify as if the clock read this unix time.
    testing_fixed_now: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerdictAuth {
    kid: String,
    secret_base64: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplay {
    enabled: Option<bool>,
    namespace: Option<String>,
    capacity: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    namespace: Option<String>,
    max_wait_ms: Option<u64>,
    tick_ms: Option<u64>,
    prefetch: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    enabled: Option<bool>,
    sample: Option<u64>,
    always_rejected: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enabled: Option<bool>,
    agents: Option<bool>,
    verify_time: Option<bool>,
}

/// The replay cache settings (nonces kept in host shared data, per node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// Shared-data key prefix: plugins that share a VM id share a cache unless this differs.
    pub namespace: String,
    /// Most nonces remembered at once (spread over [`crate::replay::SHARDS`] shards).
    pub capacity: usize,
}

/// How the filter holds directory state (the rules themselves are core's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryCache {
    /// Shared-data key prefix of the published entries and fetch leases (on Kong: the
    /// shared-memory zone, as for the replay cache).
    pub namespace: String,
    /// Longest a request waits for its agent's directory before it fails closed
    /// (`directory_unavailable`).
    pub max_wait_ms: u64,
    /// The root context's tick: how often refreshes are considered and how often a request
    /// waiting on another worker's fetch looks for its result.
    pub tick_ms: u64,
    /// Fetch every allow-listed directory at start-up instead of on first use.
    pub prefetch: bool,
}

/// The per-request log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// Log signed requests at all.
    pub enabled: bool,
    /// One line per `sample` signed requests (per worker); 1 logs every request.
    pub sample: u64,
    /// Log every rejection whatever the sampling.
    pub always_rejected: bool,
}

/// Which metrics are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricSettings {
    /// Counters at all (verdict, reason, agent, directory).
    pub enabled: bool,
    /// The per-agent counters.
    pub agents: bool,
    /// The verify-time histogram.
    pub verify_time: bool,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The verification policy (mode included).
    pub policy: Policy,
    /// Pinned keys per agent.
    pub keyring: Keyring,
    /// Allow-listed agents whose directories are fetched, if any.
    pub directories: Option<Directories>,
    /// Directory state settings (used only with `directories`).
    pub cache: DirectoryCache,
    /// Labels of pinned agents (as configured in `keys`), for the agent header and metrics.
    pub labels: BTreeMap<String, String>,
    /// Lowercase name of the verdict header sent upstream (and stripped from clients).
    pub verdict_header: String,
    /// Lowercase name of the verified agent's label header sent upstream (and stripped from
    /// clients), or `None` when disabled.
    pub agent_header: Option<String>,
    /// Fixed scheme, or `None` for the host's `:scheme`.
    pub scheme: Option<String>,
    /// Where `@authority` comes from.
    pub authority: AuthoritySource,
    /// Largest body buffered to check a covered `content-digest`.
    pub max_body_bytes: usize,
    /// Replay cache, or `None` when disabled.
    pub replay: Option<Replay>,
    /// The per-request log line.
    pub log: LogSettings,
    /// Which metrics are kept.
    pub metrics: MetricSettings,
    /// Prefix of every metric name.
    pub stat_prefix: String,
    /// `Retry-After` seconds on 429 and 503.
    pub retry_after: u64,
    /// The key that authenticates the verdict header (`botauth-verdict-auth`), if enabled.
    pub verdict_auth: Option<VerdictKey>,
    /// Agents that always sign: an unsigned request claiming one is `unverified_claim`.
    pub claims: botauth_core::claims::Claims,
    /// Testing only: a fixed clock.
    pub testing_fixed_now: Option<u64>,
    /// Keys that were skipped, for warnings: `(agent, index, reason code)`.
    pub skipped: Vec<(String, usize, &'static str)>,
}

impl Config {
    /// The low-cardinality label of a verified `agent`: its allow-list entry's, else its
    /// pinned label. `None` for agents trusted only through `"*"` without a label there.
    pub fn label(&self, agent: &str) -> Option<&str> {
        if let Some(a) = self.directories.as_ref().and_then(|d| d.get(agent)) {
            return Some(&a.label);
        }
        if let Some(l) = self.labels.get(agent) {
            return Some(l);
        }
        let canonical = AgentUri::parse(agent).ok();
        let by_uri = self
            .labels
            .iter()
            .find(|(a, _)| a.as_str() != ANY_AGENT && canonical.is_some() && AgentUri::parse(a).ok() == canonical);
        by_uri.or_else(|| self.labels.get_key_value(ANY_AGENT)).map(|(_, l)| l.as_str())
    }
}

/// What is wrong with a configuration; the message names the member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Not JSON of the expected shape (serde's message names the member).
    Json(String),
    /// `policy` is invalid.
    Policy(PolicyError),
    /// Neither `keys` nor `directories.agents` names an agent.
    NoKeys,
    /// `keys.<agent>` is not a JWK Set.
    NotAJwks(String),
    /// `keys.<agent>` has no usable Ed25519 key.
    NoUsableKey(String),
    /// `keys` has an empty agent name.
    EmptyAgent,
    /// `directories` is invalid.
    Directories(DirectoriesError),
    /// `directories.agents[i].label` has characters outside `[A-Za-z0-9._-]`.
    DirectoryLabel(usize),
    /// `labels.<agent>` names no agent of `keys`, or is not 1 to 64 of `[A-Za-z0-9._-]`.
    Label(String),
    /// `verdict_header` is not a lowercase token, or names a signature field.
    VerdictHeader,
    /// `agent_header` is not a lowercase token, names a signature field or the verdict header.
    AgentHeader,
    /// `scheme` is not `http` or `https`.
    Scheme,
    /// `authority` is not `auto`, `authority` or `host`.
    Authority,
    /// A namespace or `stat_prefix` has characters outside `[a-z0-9_-]` or is empty.
    Name(&'static str),
    /// `replay.capacity` is 0 or above 1 000 000.
    ReplayCapacity,
    /// `max_body_bytes` above 16 MiB.
    MaxBodyBytes,
    /// A member is out of range (its name and range).
    OutOfRange(&'static str),
    /// `verdict_auth.secret_base64` is not base64 (standard alphabet, padded).
    VerdictAuthBase64,
    /// `verdict_auth` has an invalid kid or a secret shorter than 32 bytes.
    VerdictAuthKey(KeyError),
    /// `claims` is invalid (the entry and the rule).
    Claims(botauth_core::claims::ClaimsError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "not a valid configuration: {e}"),
            Self::Policy(e) => write!(f, "policy: {e}"),
            Self::NoKeys => f.write_str(
                "keys: at least one agent with a JWK Set is required (or an allow-listed agent in directories.agents)",
            ),
            Self::NotAJwks(agent) => write!(f, "keys.{agent:?}: {}", KeysError::NotAJwks),
            Self::NoUsableKey(agent) => write!(f, "keys.{agent:?}: no usable Ed25519 key (kty OKP, crv Ed25519, no d)"),
            Self::EmptyAgent => f.write_str("keys: agent names must not be empty (use \"*\" for any agent)"),
            Self::Directories(e) => write!(f, "{e}"),
            Self::DirectoryLabel(i) => {
                write!(f, "directories.agents[{i}].label must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
            }
            Self::Label(agent) => write!(
                f,
                "labels.{agent:?}: must name an agent of keys and be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
            ),
            Self::VerdictHeader => f.write_str(
                "verdict_header must be a lowercase field name (a-z, 0-9, -) other than signature, signature-input, signature-agent",
            ),
            Self::AgentHeader => f.write_str(
                "agent_header must be \"\" (off) or a lowercase field name (a-z, 0-9, -) other than the signature fields and verdict_header",
            ),
            Self::Scheme => f.write_str("scheme must be \"http\" or \"https\""),
            Self::Authority => f.write_str("authority must be \"auto\", \"authority\" or \"host\""),
            Self::Name(member) => write!(f, "{member} must be 1 to 64 characters of a-z, 0-9, _ and -"),
            Self::ReplayCapacity => f.write_str("replay.capacity must be between 1 and 1000000"),
            Self::MaxBodyBytes => f.write_str("max_body_bytes must be at most 16777216"),
            Self::OutOfRange(what) => write!(f, "{what}"),
            Self::VerdictAuthBase64 => f.write_str("verdict_auth.secret_base64 is not base64"),
            Self::VerdictAuthKey(e) => write!(f, "verdict_auth: {e}"),
            Self::Claims(e) => write!(f, "{e}"),
        }
    }
}

/// Default `max_body_bytes`: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Default replay capacity.
pub const DEFAULT_REPLAY_CAPACITY: usize = 16 * 1024;
/// Default agent header.
pub const AGENT_HEADER: &str = "botauth-agent";
/// Default root tick, milliseconds.
pub const DEFAULT_TICK_MS: u64 = 100;

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A label fit for a header value and a metric name segment: 1 to 64 of `[A-Za-z0-9._-]`.
pub fn is_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A lowercase field name that is none of the signature fields nor `host`.
fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !matches!(s, "signature" | "signature-input" | "signature-agent" | "host")
}

/// The default label of a pinned agent: its host without a leading `www.` (as core's
/// allow-list does), with anything outside `[A-Za-z0-9._-]` replaced by `_`.
fn default_label(agent: &str) -> Option<String> {
    let uri = AgentUri::parse(agent).ok()?;
    let authority = uri.authority();
    let host = authority.rsplit_once(':').filter(|(h, _)| !h.ends_with(']')).map_or(authority, |(h, _)| h);
    let host = host.strip_prefix("www.").unwrap_or(host);
    let label: String = host
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    is_label(&label).then_some(label)
}

/// Parse and validate the plugin configuration.
pub fn parse(json: &[u8]) -> Result<Config, ConfigError> {
    let raw: Raw = serde_json::from_slice(json).map_err(|e| ConfigError::Json(e.to_string()))?;
    let policy = raw.policy.to_policy().map_err(ConfigError::Policy)?;
    let directories = match &raw.directories {
        Some(c) => {
            let d = Directories::from_config(c).map_err(ConfigError::Directories)?;
            d.require_upstreams().map_err(ConfigError::Directories)?;
            if let Some(i) = c.agents.iter().position(|a| a.label.as_deref().is_some_and(|l| !is_label(l))) {
                return Err(ConfigError::DirectoryLabel(i));
            }
            Some(d).filter(|d| !d.agents.is_empty())
        }
        None => None,
    };
    if raw.keys.is_empty() && directories.is_none() {
        return Err(ConfigError::NoKeys);
    }
    let mut keyring = Keyring::new();
    let mut skipped = Vec::new();
    for (agent, jwks) in &raw.keys {
        if agent.is_empty() {
            return Err(ConfigError::EmptyAgent);
        }
        let before = keyring.len();
        let json = serde_json::to_vec(jwks).map_err(|e| ConfigError::Json(e.to_string()))?;
        let skips = keyring.add_jwks(agent, &json).map_err(|_| ConfigError::NotAJwks(agent.clone()))?;
        if keyring.len() == before {
            return Err(ConfigError::NoUsableKey(agent.clone()));
        }
        skipped.extend(skips.into_iter().map(|s| (agent.clone(), s.index, s.reason.code())));
    }
    let mut labels = BTreeMap::new();
    for (agent, label) in &raw.labels {
        if !raw.keys.contains_key(agent) || !is_label(label) {
            return Err(ConfigError::Label(agent.clone()));
        }
    }
    for agent in raw.keys.keys() {
        let label = raw.labels.get(agent).cloned().or_else(|| default_label(agent));
        if let Some(label) = label {
            labels.insert(agent.clone(), label);
        }
    }
    let verdict_header = raw.verdict_header.unwrap_or_else(|| VERDICT_HEADER.into());
    if !is_field_name(&verdict_header) || verdict_header == botauth_core::verdict_auth::HEADER {
        return Err(ConfigError::VerdictHeader);
    }
    let agent_header = match raw.agent_header {
        None => Some(AGENT_HEADER.to_string()),
        Some(h) if h.is_empty() => None,
        Some(h) if is_field_name(&h) && h != verdict_header && h != botauth_core::verdict_auth::HEADER => Some(h),
        Some(_) => return Err(ConfigError::AgentHeader),
    };
    if agent_header.as_deref() == Some(verdict_header.as_str()) {
        return Err(ConfigError::AgentHeader);
    }
    if !matches!(raw.scheme.as_deref(), None | Some("http" | "https")) {
        return Err(ConfigError::Scheme);
    }
    let authority = match raw.authority.as_deref() {
        None | Some("auto") => AuthoritySource::Auto,
        Some("authority") => AuthoritySource::Authority,
        Some("host") => AuthoritySource::Host,
        Some(_) => return Err(ConfigError::Authority),
    };
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
    if max_body_bytes > 16 * 1024 * 1024 {
        return Err(ConfigError::MaxBodyBytes);
    }
    let replay = match raw.replay {
        Some(RawReplay { enabled: Some(false), .. }) => None,
        Some(RawReplay { namespace, capacity, .. }) => Some(replay(namespace, capacity)?),
        None => Some(replay(None, None)?),
    };
    let fetch_timeout_ms = directories.as_ref().map_or(2000, |d| d.settings.fetch_timeout_ms);
    let cache = cache(raw.directory_cache, fetch_timeout_ms)?;
    let log = match raw.log {
        None => LogSettings { enabled: true, sample: 1, always_rejected: true },
        Some(l) => LogSettings {
            enabled: l.enabled.unwrap_or(true),
            sample: match l.sample {
                None => 1,
                Some(n @ 1..=1_000_000) => n,
                Some(_) => return Err(ConfigError::OutOfRange("log.sample must be between 1 and 1000000")),
            },
            always_rejected: l.always_rejected.unwrap_or(true),
        },
    };
    let metrics = match raw.metrics {
        None => MetricSettings { enabled: true, agents: true, verify_time: true },
        Some(m) => MetricSettings {
            enabled: m.enabled.unwrap_or(true),
            agents: m.agents.unwrap_or(true),
            verify_time: m.verify_time.unwrap_or(true),
        },
    };
    let verdict_auth = match raw.verdict_auth {
        None => None,
        Some(v) => {
            use base64::Engine as _;
            let secret = base64::engine::general_purpose::STANDARD
                .decode(v.secret_base64.trim())
                .map_err(|_| ConfigError::VerdictAuthBase64)?;
            Some(VerdictKey::new(&v.kid, &secret).map_err(ConfigError::VerdictAuthKey)?)
        }
    };
    let claims = match raw.claims {
        None => botauth_core::claims::Claims::default(),
        Some(c) => botauth_core::claims::Claims::from_configs(&c).map_err(ConfigError::Claims)?,
    };
    let stat_prefix = raw.stat_prefix.unwrap_or_else(|| "botauth".into());
    if !is_name(&stat_prefix) {
        return Err(ConfigError::Name("stat_prefix"));
    }
    Ok(Config {
        policy,
        keyring,
        directories,
        cache,
        labels,
        verdict_header,
        agent_header,
        scheme: raw.scheme,
        authority,
        max_body_bytes,
        replay,
        log,
        metrics,
        stat_prefix,
        retry_after: raw.retry_after.unwrap_or(RETRY_AFTER_SECS),
        verdict_auth,
        claims,
        testing_fixed_now: raw.testing_fixed_now,
        skipped,
    })
}

fn replay(namespace: Option<String>, capacity: Option<usize>) -> Result<Replay, ConfigError> {
    let namespace = namespace.unwrap_or_else(|| "botauth".into());
    if !is_name(&namespace) {
        return Err(ConfigError::Name("replay.namespace"));
    }
    let capacity = capacity.unwrap_or(DEFAULT_REPLAY_CAPACITY);
    if capacity == 0 || capacity > 1_000_000 {
        return Err(ConfigError::ReplayCapacity);
    }
    Ok(Replay { namespace, capacity })
}

fn cache(raw: Option<RawCache>, fetch_timeout_ms: u64) -> Result<DirectoryCache, ConfigError> {
    let raw = raw.unwrap_or(RawCache { namespace: None, max_wait_ms: None, tick_ms: None, prefetch: None });
    let namespace = raw.namespace.unwrap_or_else(|| "botauth".into());
    if !is_name(&namespace) {
        return Err(ConfigError::Name("directory_cache.namespace"));
    }
    let tick_ms = match raw.tick_ms {
        None => DEFAULT_TICK_MS,
        Some(t @ 10..=60_000) => t,
        Some(_) => return Err(ConfigError::OutOfRange("directory_cache.tick_ms must be between 10 and 60000")),
    };
    // By default a request outwaits its own fetch (which ends at the fetch timeout) by a
    // little, so it is answered with what the fetch brought.
    let max_wait_ms = match raw.max_wait_ms {
        None => fetch_timeout_ms.saturating_add(500),
        Some(w @ 1..=60_000) => w,
        Some(_) => return Err(ConfigError::OutOfRange("directory_cache.max_wait_ms must be between 1 and 60000")),
    };
    Ok(DirectoryCache { namespace, max_wait_ms, tick_ms, prefetch: raw.prefetch.unwrap_or(true) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use botauth_core::Mode;

    const KEY: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"}]}"#;

    fn with(extra: &str) -> String {
        format!(r#"{{"keys":{{"https://a.test":{KEY}}}{extra}}}"#)
    }

    fn err(json: &str) -> String {
        parse(json.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn verdict_auth_member() {
        // 32 bytes: "0123456789abcdef0123456789abcdef".
        let b64 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let c = parse(with(&format!(r#","verdict_auth":{{"kid":"k1","secret_base64":"{b64}"}}"#)).as_bytes()).unwrap();
        assert_eq!(c.verdict_auth, Some(VerdictKey::new("k1", b"0123456789abcdef0123456789abcdef").unwrap()));
        assert!(!format!("{c:?}").contains(b64) && !format!("{c:?}").contains("0123456789abcdef"), "never shown");
        assert_eq!(parse(with("").as_bytes()).unwrap().verdict_auth, None, "off by default");
        // 31 bytes.
        let short = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZQ==";
        assert_eq!(
            parse(with(&format!(r#","verdict_auth":{{"kid":"k1","secret_base64":"{short}"}}"#)).as_bytes()).err(),
            Some(ConfigError::VerdictAuthKey(KeyError::SecretTooShort { len: 31 }))
        );
        assert_eq!(
            parse(with(r#","verdict_auth":{"kid":"k1","secret_base64":"not base64!"}"#).as_bytes()).err(),
            Some(ConfigError::VerdictAuthBase64)
        );
        assert_eq!(
            parse(with(&format!(r#","verdict_auth":{{"kid":"k 1","secret_base64":"{b64}"}}"#)).as_bytes()).err(),
            Some(ConfigError::VerdictAuthKey(KeyError::KidCharset))
        );
        assert!(err(&with(r#","verdict_auth":{"kid":"k1"}"#)).contains("secret_base64"));
        assert!(err(&with(&format!(r#","verdict_auth":{{"kid":"k1","secret":"{b64}"}}"#))).contains("unknown field"));
        let e = err(&with(&format!(r#","verdict_auth":{{"kid":"k1","secret_base64":"{short}"}}"#)));
        assert!(e.contains("31 bytes") && !e.contains(short), "{e}");
        assert_eq!(
            parse(with(r#","verdict_header":"botauth-verdict-auth""#).as_bytes()).err(),
            Some(ConfigError::VerdictHeader)
        );
        assert_eq!(
            parse(with(r#","agent_header":"botauth-verdict-auth""#).as_bytes()).err(),
            Some(ConfigError::AgentHeader)
        );
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let c = parse(with("").as_bytes()).unwrap();
        assert_eq!(c.policy, Policy::web_bot_auth());
        assert_eq!(c.verdict_header, "botauth-verdict");
        assert_eq!(c.agent_header.as_deref(), Some("botauth-agent"));
        assert_eq!(c.authority, AuthoritySource::Auto);
        assert_eq!(c.replay, Some(Replay { namespace: "botauth".into(), capacity: DEFAULT_REPLAY_CAPACITY }));
        assert_eq!(c.labels.get("https://a.test").map(String::as_str), Some("a.test"));
        assert_eq!(c.testing_fixed_now, None);
        assert!(c.directories.is_none());
        assert_eq!(c.log, LogSettings { enabled: true, sample: 1, always_rejected: true });
        assert_eq!(c.metrics, MetricSettings { enabled: true, agents: true, verify_time: true });
        assert_eq!(
            c.cache,
            DirectoryCache { namespace: "botauth".into(), max_wait_ms: 2500, tick_ms: 100, prefetch: true }
        );
    }

    #[test]
    fn full_config() {
        let c = parse(
            with(
                r#","policy":{"mode":"monitor","clock_skew":5},"verdict_header":"x-bot","scheme":"https",
                "authority":"host","max_body_bytes":10,"replay":{"enabled":false},"stat_prefix":"edge_1",
                "retry_after":7,"testing_fixed_now":1700000000,"agent_header":"x-bot-agent",
                "labels":{"https://a.test":"Agent_A"},"log":{"enabled":true,"sample":10,"always_rejected":false},
                "metrics":{"agents":false,"verify_time":false},
                "directory_cache":{"namespace":"dirs","max_wait_ms":300,"tick_ms":20,"prefetch":false}"#,
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(c.policy.mode, Mode::Monitor);
        assert_eq!(c.policy.clock_skew, 5);
        assert_eq!((c.verdict_header.as_str(), c.scheme.as_deref()), ("x-bot", Some("https")));
        assert_eq!((c.authority, c.max_body_bytes, &c.replay), (AuthoritySource::Host, 10, &None));
        assert_eq!((c.stat_prefix.as_str(), c.retry_after, c.testing_fixed_now), ("edge_1", 7, Some(1_700_000_000)));
        assert_eq!(c.agent_header.as_deref(), Some("x-bot-agent"));
        assert_eq!(c.label("https://a.test"), Some("Agent_A"));
        assert_eq!(c.label("https://A.test:443/"), Some("Agent_A"), "matched after normalisation");
        assert_eq!(c.label("https://b.test"), None);
        assert_eq!(c.log, LogSettings { enabled: true, sample: 10, always_rejected: false });
        assert_eq!(c.metrics, MetricSettings { enabled: true, agents: false, verify_time: false });
        assert_eq!(
            c.cache,
            DirectoryCache { namespace: "dirs".into(), max_wait_ms: 300, tick_ms: 20, prefetch: false }
        );
        let off = parse(with(r#","agent_header":"""#).as_bytes()).unwrap();
        assert_eq!(off.agent_header, None);
    }

    #[test]
    fn directories_without_keys() {
        let c = parse(
            br#"{"directories":{"agents":[{"agent":"https://ChatGPT.com","upstream":"chatgpt_directory","label":"chatgpt"}],
                "fetch_timeout_ms":900}}"#,
        )
        .unwrap();
        assert!(c.keyring.is_empty());
        let d = c.directories.as_ref().unwrap();
        assert_eq!(d.agents[0].agent.as_str(), "https://chatgpt.com");
        assert_eq!(c.label("https://chatgpt.com/"), Some("chatgpt"));
        assert_eq!(c.cache.max_wait_ms, 1400, "the fetch timeout plus 500 ms");
        // Pinned keys and directories together; labels of both kinds.
        let c = parse(
            with(r#","directories":{"agents":[{"agent":"https://b.test","upstream":"b","directory":"http://127.0.0.1:9/k"}]}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!((c.label("https://a.test"), c.label("https://b.test")), (Some("a.test"), Some("b.test")));
    }

    /// Each bad configuration is refused with a message naming the member.
    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            ("not json", "not a valid configuration"),
            ("{}", "keys: at least one agent"),
            (r#"{"keys":{}}"#, "keys: at least one agent"),
            (r#"{"directories":{"agents":[]}}"#, "keys: at least one agent"),
            (r#"{"keys":{"https://a.test":[1]}}"#, "keys.\"https://a.test\": not a JWK Set"),
            (r#"{"keys":{"https://a.test":{"keys":[{"kty":"RSA"}]}}}"#, "no usable Ed25519 key"),
            (&with(r#","mdoe":"monitor""#), "unknown field `mdoe`"),
            (&with(r#","policy":{"mode":"block"}"#), "policy: mode must be"),
            (&with(r#","policy":{"clock_skew":9999}"#), "policy: clock_skew"),
            (&with(r#","verdict_header":"Bad Header""#), "verdict_header must be"),
            (&with(r#","verdict_header":"signature""#), "verdict_header must be"),
            (&with(r#","agent_header":"botauth-verdict""#), "agent_header must be"),
            (&with(r#","agent_header":"Agent""#), "agent_header must be"),
            (&with(r#","scheme":"ftp""#), "scheme must be"),
            (&with(r#","authority":"client""#), "authority must be"),
            (&with(r#","replay":{"capacity":0}"#), "replay.capacity"),
            (&with(r#","replay":{"namespace":"a b"}"#), "replay.namespace must be"),
            (&with(r#","stat_prefix":"""#), "stat_prefix must be"),
            (&with(r#","max_body_bytes":99999999999"#), "max_body_bytes"),
            (&with(r#","labels":{"https://b.test":"b"}"#), "labels.\"https://b.test\": must name an agent"),
            (&with(r#","labels":{"https://a.test":"a b"}"#), "labels.\"https://a.test\""),
            (&with(r#","log":{"sample":0}"#), "log.sample must be"),
            (&with(r#","log":{"every":2}"#), "unknown field `every`"),
            (&with(r#","metrics":{"counters":false}"#), "unknown field `counters`"),
            (&with(r#","directory_cache":{"tick_ms":1}"#), "directory_cache.tick_ms"),
            (&with(r#","directory_cache":{"max_wait_ms":0}"#), "directory_cache.max_wait_ms"),
            (&with(r#","directory_cache":{"namespace":"A"}"#), "directory_cache.namespace must be"),
            (r#"{"directories":{"agents":[{"agent":"https://a.test"}]}}"#, "directories.agents[0] needs an upstream"),
            (r#"{"directories":{"agents":[{"agent":"http://a.test","upstream":"a"}]}}"#, "must be an https URI"),
            (
                r#"{"directories":{"agents":[{"agent":"https://a.test","upstream":"a","label":"a b"}]}}"#,
                "directories.agents[0].label must be",
            ),
            (r#"{"directories":{"agents":[{"agent":"https://a.test","upstrem":"a"}]}}"#, "unknown field `upstrem`"),
        ];
        for (json, want) in cases {
            let got = err(json);
            assert!(got.contains(want), "{json}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn skipped_keys_are_reported() {
        let json = r#"{"keys":{"*":{"keys":[{"kty":"RSA","kid":"r"},
            {"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"}]}}}"#;
        let c = parse(json.as_bytes()).unwrap();
        assert_eq!(c.skipped, [("*".to_string(), 0, "unsupported_key_type")]);
        assert_eq!(c.label("https://anyone.test"), None, "\"*\" has no label unless one is configured");
        let json = json.replacen("}}}", r#"}},"labels":{"*":"any"}}"#, 1);
        assert_eq!(parse(json.as_bytes()).unwrap().label("https://anyone.test"), Some("any"));
    }
}
