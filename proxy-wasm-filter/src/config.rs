//! The plugin configuration: one JSON document (Envoy `configuration`, Kong filter `config`),
//! validated once in `on_configure` (ARCHITECTURE §6). Every member except `keys` is
//! optional; unknown members are errors, so a typo cannot silently weaken the policy.
//!
//! ```json
//! {
//!   "keys": { "https://chatgpt.com": { "keys": [ { "kty": "OKP", "crv": "Ed25519", "x": "…" } ] } },
//!   "policy": { "mode": "enforce", "clock_skew": 60, "max_validity": 86400 },
//!   "verdict_header": "botauth-verdict",
//!   "scheme": "https",
//!   "authority": "auto",
//!   "max_body_bytes": 65536,
//!   "replay": { "enabled": true, "namespace": "botauth", "capacity": 16384 },
//!   "stat_prefix": "botauth",
//!   "retry_after": 60
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;

use botauth_core::config::{ConfigError as PolicyError, PolicyConfig};
use botauth_core::outcome::{RETRY_AFTER_SECS, VERDICT_HEADER};
use botauth_core::{Keyring, KeysError, Policy};
use serde::Deserialize;

use crate::request::AuthoritySource;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    keys: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    policy: PolicyConfig,
    verdict_header: Option<String>,
    scheme: Option<String>,
    authority: Option<String>,
    max_body_bytes: Option<usize>,
    replay: Option<RawReplay>,
    stat_prefix: Option<String>,
    retry_after: Option<u64>,
    /// Testing only: verify as if the clock read this unix time.
    testing_fixed_now: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplay {
    enabled: Option<bool>,
    namespace: Option<String>,
    capacity: Option<usize>,
}

/// The replay cache settings (nonces kept in host shared data, per node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// Shared-data key prefix: plugins that share a VM id share a cache unless this differs.
    pub namespace: String,
    /// Most nonces remembered at once (spread over [`crate::replay::SHARDS`] shards).
    pub capacity: usize,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The verification policy (mode included).
    pub policy: Policy,
    /// Trusted keys per agent.
    pub keyring: Keyring,
    /// Lowercase name of the verdict header sent upstream (and stripped from clients).
    pub verdict_header: String,
    /// Fixed scheme, or `None` for the host's `:scheme`.
    pub scheme: Option<String>,
    /// Where `@authority` comes from.
    pub authority: AuthoritySource,
    /// Largest body buffered to check a covered `content-digest`.
    pub max_body_bytes: usize,
    /// Replay cache, or `None` when disabled.
    pub replay: Option<Replay>,
    /// Prefix of every metric name.
    pub stat_prefix: String,
    /// `Retry-After` seconds on 429.
    pub retry_after: u64,
    /// Testing only: a fixed clock.
    pub testing_fixed_now: Option<u64>,
    /// Agents with keys (the only agent names metrics are labelled with).
    pub agents: Vec<String>,
    /// Keys that were skipped, for warnings: `(agent, index, reason code)`.
    pub skipped: Vec<(String, usize, &'static str)>,
}

/// What is wrong with a configuration; the message names the member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Not JSON of the expected shape (serde's message names the member).
    Json(String),
    /// `policy` is invalid.
    Policy(PolicyError),
    /// `keys` is empty.
    NoKeys,
    /// `keys.<agent>` is not a JWK Set.
    NotAJwks(String),
    /// `keys.<agent>` has no usable Ed25519 key.
    NoUsableKey(String),
    /// `keys` has an empty agent name.
    EmptyAgent,
    /// `verdict_header` is not a lowercase token, or names a signature field.
    VerdictHeader,
    /// `scheme` is not `http` or `https`.
    Scheme,
    /// `authority` is not `auto`, `authority` or `host`.
    Authority,
    /// `replay.namespace` or `stat_prefix` has characters outside `[a-z0-9_-]` or is empty.
    Name(&'static str),
    /// `replay.capacity` is 0 or above 1 000 000.
    ReplayCapacity,
    /// `max_body_bytes` above 16 MiB.
    MaxBodyBytes,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "not a valid configuration: {e}"),
            Self::Policy(e) => write!(f, "policy: {e}"),
            Self::NoKeys => f.write_str("keys: at least one agent with a JWK Set is required"),
            Self::NotAJwks(agent) => write!(f, "keys.{agent:?}: {}", KeysError::NotAJwks),
            Self::NoUsableKey(agent) => write!(f, "keys.{agent:?}: no usable Ed25519 key (kty OKP, crv Ed25519, no d)"),
            Self::EmptyAgent => f.write_str("keys: agent names must not be empty (use \"*\" for any agent)"),
            Self::VerdictHeader => f.write_str(
                "verdict_header must be a lowercase field name (a-z, 0-9, -) other than signature, signature-input, signature-agent",
            ),
            Self::Scheme => f.write_str("scheme must be \"http\" or \"https\""),
            Self::Authority => f.write_str("authority must be \"auto\", \"authority\" or \"host\""),
            Self::Name(member) => write!(f, "{member} must be 1 to 64 characters of a-z, 0-9, _ and -"),
            Self::ReplayCapacity => f.write_str("replay.capacity must be between 1 and 1000000"),
            Self::MaxBodyBytes => f.write_str("max_body_bytes must be at most 16777216"),
        }
    }
}

/// Default `max_body_bytes`: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Default replay capacity.
pub const DEFAULT_REPLAY_CAPACITY: usize = 16 * 1024;

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Parse and validate the plugin configuration.
pub fn parse(json: &[u8]) -> Result<Config, ConfigError> {
    let raw: Raw = serde_json::from_slice(json).map_err(|e| ConfigError::Json(e.to_string()))?;
    let policy = raw.policy.to_policy().map_err(ConfigError::Policy)?;
    if raw.keys.is_empty() {
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
    let verdict_header = raw.verdict_header.unwrap_or_else(|| VERDICT_HEADER.into());
    let valid_header = !verdict_header.is_empty()
        && verdict_header.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !matches!(verdict_header.as_str(), "signature" | "signature-input" | "signature-agent" | "host");
    if !valid_header {
        return Err(ConfigError::VerdictHeader);
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
    let stat_prefix = raw.stat_prefix.unwrap_or_else(|| "botauth".into());
    if !is_name(&stat_prefix) {
        return Err(ConfigError::Name("stat_prefix"));
    }
    Ok(Config {
        policy,
        agents: keyring.agents().map(String::from).collect(),
        keyring,
        verdict_header,
        scheme: raw.scheme,
        authority,
        max_body_bytes,
        replay,
        stat_prefix,
        retry_after: raw.retry_after.unwrap_or(RETRY_AFTER_SECS),
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
    fn minimal_config_takes_defaults() {
        let c = parse(with("").as_bytes()).unwrap();
        assert_eq!(c.policy, Policy::web_bot_auth());
        assert_eq!(c.verdict_header, "botauth-verdict");
        assert_eq!(c.authority, AuthoritySource::Auto);
        assert_eq!(c.replay, Some(Replay { namespace: "botauth".into(), capacity: DEFAULT_REPLAY_CAPACITY }));
        assert_eq!(c.agents, ["https://a.test"]);
        assert_eq!(c.testing_fixed_now, None);
    }

    #[test]
    fn full_config() {
        let c = parse(
            with(
                r#","policy":{"mode":"monitor","clock_skew":5},"verdict_header":"x-bot","scheme":"https",
                "authority":"host","max_body_bytes":10,"replay":{"enabled":false},"stat_prefix":"edge_1",
                "retry_after":7,"testing_fixed_now":1700000000"#,
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(c.policy.mode, Mode::Monitor);
        assert_eq!(c.policy.clock_skew, 5);
        assert_eq!((c.verdict_header.as_str(), c.scheme.as_deref()), ("x-bot", Some("https")));
        assert_eq!((c.authority, c.max_body_bytes, c.replay), (AuthoritySource::Host, 10, None));
        assert_eq!((c.stat_prefix.as_str(), c.retry_after, c.testing_fixed_now), ("edge_1", 7, Some(1_700_000_000)));
    }

    /// Each bad configuration is refused with a message naming the member.
    #[test]
    fn bad_configs_name_the_problem() {
        let cases = [
            ("not json", "not a valid configuration"),
            ("{}", "missing field `keys`"),
            (r#"{"keys":{}}"#, "keys: at least one agent"),
            (r#"{"keys":{"https://a.test":[1]}}"#, "keys.\"https://a.test\": not a JWK Set"),
            (r#"{"keys":{"https://a.test":{"keys":[{"kty":"RSA"}]}}}"#, "no usable Ed25519 key"),
            (&with(r#","mdoe":"monitor""#), "unknown field `mdoe`"),
            (&with(r#","policy":{"mode":"block"}"#), "policy: mode must be"),
            (&with(r#","policy":{"clock_skew":9999}"#), "policy: clock_skew"),
            (&with(r#","verdict_header":"Bad Header""#), "verdict_header must be"),
            (&with(r#","verdict_header":"signature""#), "verdict_header must be"),
            (&with(r#","scheme":"ftp""#), "scheme must be"),
            (&with(r#","authority":"client""#), "authority must be"),
            (&with(r#","replay":{"capacity":0}"#), "replay.capacity"),
            (&with(r#","replay":{"namespace":"a b"}"#), "replay.namespace must be"),
            (&with(r#","stat_prefix":"""#), "stat_prefix must be"),
            (&with(r#","max_body_bytes":99999999999"#), "max_body_bytes"),
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
    }
}
