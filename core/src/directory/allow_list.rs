//! Where directories are fetched from: only the operator's allow-list. A `Signature-Agent`
//! value selects among allow-listed agents (after RFC 3986 normalisation) and is never
//! turned into a URL or host (the drafts' SSRF advice).
//!
//! JSON shape (the Fastly `directories` setting, the proxy-wasm `directories` member):
//!
//! ```json
//! {"agents": [{"agent": "https://chatgpt.com", "backend": "chatgpt_directory"}],
//!  "max_ttl": 86400, "max_stale": 86400}
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::Deserialize;

use super::document::{DocumentLimits, ParseOptions};
use super::freshness::Bounds;
use super::WELL_KNOWN_PATH;
use crate::agent_uri::{AgentUri, UriError};

/// Most agents one configuration may list.
pub const MAX_AGENTS: usize = 64;

/// One allow-listed agent, as configured. Unknown members are errors.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent URI requests name in `Signature-Agent`, e.g. `https://chatgpt.com`.
    pub agent: String,
    /// Full directory URL [default: `<agent origin>/.well-known/http-message-signatures-directory`
    /// for an origin, the agent URI itself when it has a path (a JWK Set URL)].
    pub directory: Option<String>,
    /// How the host reaches the directory: a Fastly backend, an Envoy cluster, a Kong
    /// `host:port`. Hosts that need one refuse a configuration without it.
    #[serde(alias = "backend")]
    pub upstream: Option<String>,
    /// Low-cardinality label for metrics and logs [default: the agent's host].
    pub label: Option<String>,
    /// Refuse unsigned directory responses (default false: chatgpt.com serves its
    /// directory unsigned over TLS).
    pub require_signed_directory: Option<bool>,
    /// Keep keys whose `kid` is not their thumbprint (default false).
    pub accept_kid_mismatch: Option<bool>,
}

/// The `directories` configuration. Every member but `agents` is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct DirectoriesConfig {
    pub agents: Vec<AgentConfig>,
    pub max_body: Option<usize>,
    pub max_keys: Option<usize>,
    pub min_ttl: Option<u64>,
    pub max_ttl: Option<u64>,
    pub default_ttl: Option<u64>,
    pub max_stale: Option<u64>,
    pub max_negative_ttl: Option<u64>,
    pub refetch_interval: Option<u64>,
    /// Fetch timeout for hosts that set one, milliseconds (default 2000).
    pub fetch_timeout_ms: Option<u64>,
}

/// One validated allow-list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentDirectory {
    /// The agent, normalised.
    pub agent: AgentUri,
    /// The directory URL, normalised; `https` (plain `http` only for loopback hosts).
    pub directory: AgentUri,
    /// The host's route to the directory, if configured.
    pub upstream: Option<String>,
    /// Label for metrics and logs.
    pub label: String,
    /// Refuse unsigned responses.
    pub require_signed_directory: bool,
    /// Keep keys whose `kid` is not their thumbprint.
    pub accept_kid_mismatch: bool,
}

impl AgentDirectory {
    /// The path (no query) a host requests from the directory.
    pub fn path(&self) -> &str {
        self.directory.path()
    }

    /// The `Host` / `:authority` a host sends, and a signed response covers (`"@authority";req`).
    pub fn authority(&self) -> &str {
        self.directory.authority()
    }
}

/// Limits and bounds that apply to every directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectorySettings {
    /// Document caps.
    pub limits: DocumentLimits,
    /// Freshness bounds.
    pub bounds: Bounds,
    /// Fetch timeout, milliseconds.
    pub fetch_timeout_ms: u64,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        Self { limits: DocumentLimits::default(), bounds: Bounds::default(), fetch_timeout_ms: 2000 }
    }
}

/// The validated allow-list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directories {
    /// Allow-listed agents.
    pub agents: Vec<AgentDirectory>,
    /// Shared limits.
    pub settings: DirectorySettings,
}

/// What is wrong with a `directories` configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectoriesError {
    /// Not JSON of the expected shape (serde's message names the member).
    Json(String),
    /// More than [`MAX_AGENTS`] agents.
    TooManyAgents,
    /// `agents[index].agent` is not a URI.
    Agent(usize, UriError),
    /// `agents[index].agent` is not `https`.
    AgentNotHttps(usize),
    /// `agents[index].directory` is not a URI.
    Directory(usize, UriError),
    /// `agents[index].directory` is not `https` (or `http` to a loopback host).
    DirectoryNotHttps(usize),
    /// `agents[index]` repeats an earlier agent.
    DuplicateAgent(usize),
    /// `agents[index]` lacks the `upstream`/`backend` this host needs.
    UpstreamMissing(usize),
    /// A member is out of range (its name).
    OutOfRange(&'static str),
}

impl fmt::Display for DirectoriesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "invalid directories JSON: {e}"),
            Self::TooManyAgents => write!(f, "directories.agents lists more than {MAX_AGENTS} agents"),
            Self::Agent(i, e) => write!(f, "directories.agents[{i}].agent: {e}"),
            Self::AgentNotHttps(i) => write!(f, "directories.agents[{i}].agent must be an https URI"),
            Self::Directory(i, e) => write!(f, "directories.agents[{i}].directory: {e}"),
            Self::DirectoryNotHttps(i) => {
                write!(f, "directories.agents[{i}].directory must be https (http only for loopback hosts)")
            }
            Self::DuplicateAgent(i) => write!(f, "directories.agents[{i}] repeats an agent listed before"),
            Self::UpstreamMissing(i) => write!(f, "directories.agents[{i}] needs an upstream (backend) on this host"),
            Self::OutOfRange(name) => write!(f, "directories.{name} is out of range"),
        }
    }
}

impl Directories {
    /// Parse and validate the JSON form.
    pub fn from_json(json: &[u8]) -> Result<Self, DirectoriesError> {
        let config: DirectoriesConfig =
            serde_json::from_slice(json).map_err(|e| DirectoriesError::Json(alloc::format!("{e}")))?;
        Self::from_config(&config)
    }

    /// Validate a parsed configuration.
    pub fn from_config(c: &DirectoriesConfig) -> Result<Self, DirectoriesError> {
        if c.agents.len() > MAX_AGENTS {
            return Err(DirectoriesError::TooManyAgents);
        }
        let settings = settings(c)?;
        let mut agents: Vec<AgentDirectory> = Vec::with_capacity(c.agents.len());
        for (i, a) in c.agents.iter().enumerate() {
            let agent = AgentUri::parse(&a.agent).map_err(|e| DirectoriesError::Agent(i, e))?;
            if agent.scheme() != "https" {
                return Err(DirectoriesError::AgentNotHttps(i));
            }
            // An origin publishes at the well-known path; an agent URI with a path is itself a
            // JWK Set URL (draft-ietf-webbotauth-httpsig-protocol: the member value is
            // resolved directly).
            let directory = match &a.directory {
                Some(d) => AgentUri::parse(d).map_err(|e| DirectoriesError::Directory(i, e))?,
                None if !agent.is_origin() => agent.clone(),
                None => AgentUri::parse(&alloc::format!("{}{WELL_KNOWN_PATH}", agent.origin()))
                    .map_err(|e| DirectoriesError::Directory(i, e))?,
            };
            if !(directory.scheme() == "https" || (directory.scheme() == "http" && directory.is_loopback())) {
                return Err(DirectoriesError::DirectoryNotHttps(i));
            }
            if agents.iter().any(|b| b.agent == agent) {
                return Err(DirectoriesError::DuplicateAgent(i));
            }
            let label = a.label.clone().unwrap_or_else(|| host_label(&agent));
            if label.is_empty() || label.len() > 64 {
                return Err(DirectoriesError::OutOfRange("agents[].label"));
            }
            agents.push(AgentDirectory {
                agent,
                directory,
                upstream: a.upstream.clone().filter(|u| !u.is_empty()),
                label,
                require_signed_directory: a.require_signed_directory.unwrap_or(false),
                accept_kid_mismatch: a.accept_kid_mismatch.unwrap_or(false),
            });
        }
        Ok(Self { agents, settings })
    }

    /// Refuse entries without an upstream (for hosts that route by it).
    pub fn require_upstreams(&self) -> Result<(), DirectoriesError> {
        match self.agents.iter().position(|a| a.upstream.is_none()) {
            Some(i) => Err(DirectoriesError::UpstreamMissing(i)),
            None => Ok(()),
        }
    }

    /// The allow-list entry of `agent` (compared after RFC 3986 normalisation).
    pub fn get(&self, agent: &str) -> Option<&AgentDirectory> {
        self.find(&AgentUri::parse(agent).ok()?)
    }

    /// The allow-listed agent `agent` (already normalised), if any.
    pub fn find(&self, agent: &AgentUri) -> Option<&AgentDirectory> {
        self.agents.iter().find(|a| a.agent == *agent)
    }

    /// How documents of `agent` are parsed.
    pub fn parse_options(&self, agent: &AgentDirectory, allow_test_keys: bool) -> ParseOptions {
        ParseOptions { limits: self.settings.limits, accept_kid_mismatch: agent.accept_kid_mismatch, allow_test_keys }
    }
}

/// The agent's host without a leading `www.`, as a default label.
fn host_label(agent: &AgentUri) -> String {
    let authority = agent.authority();
    let host = authority.rsplit_once(':').filter(|(h, _)| !h.ends_with(']')).map_or(authority, |(h, _)| h);
    String::from(host.strip_prefix("www.").unwrap_or(host))
}

fn settings(c: &DirectoriesConfig) -> Result<DirectorySettings, DirectoriesError> {
    let d = DirectorySettings::default();
    let pick = |v: Option<u64>, default: u64, max: u64, name: &'static str| match v {
        Some(v) if v == 0 || v > max => Err(DirectoriesError::OutOfRange(name)),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    let week = 7 * 86_400;
    let b = Bounds {
        min_ttl: pick(c.min_ttl, d.bounds.min_ttl, week, "min_ttl")?,
        max_ttl: pick(c.max_ttl, d.bounds.max_ttl, week, "max_ttl")?,
        default_ttl: pick(c.default_ttl, d.bounds.default_ttl, week, "default_ttl")?,
        max_stale: pick(c.max_stale, d.bounds.max_stale, week, "max_stale")?,
        // The drafts: cache failures for at most 5 minutes.
        max_negative_ttl: pick(c.max_negative_ttl, d.bounds.max_negative_ttl, 300, "max_negative_ttl")?,
        negative_base: d.bounds.negative_base,
        refetch_interval: pick(c.refetch_interval, d.bounds.refetch_interval, 86_400, "refetch_interval")?,
    };
    if b.min_ttl > b.max_ttl {
        return Err(DirectoriesError::OutOfRange("min_ttl"));
    }
    if !(b.min_ttl..=b.max_ttl).contains(&b.default_ttl) {
        return Err(DirectoriesError::OutOfRange("default_ttl"));
    }
    let limits = DocumentLimits {
        max_body: usize::try_from(pick(
            c.max_body.map(|v| v as u64),
            d.limits.max_body as u64,
            1024 * 1024,
            "max_body",
        )?)
        .unwrap_or(d.limits.max_body),
        max_keys: usize::try_from(pick(c.max_keys.map(|v| v as u64), d.limits.max_keys as u64, 256, "max_keys")?)
            .unwrap_or(d.limits.max_keys),
    };
    let fetch_timeout_ms = pick(c.fetch_timeout_ms, d.fetch_timeout_ms, 30_000, "fetch_timeout_ms")?;
    Ok(DirectorySettings { limits, bounds: b, fetch_timeout_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(json: &str) -> Result<Directories, DirectoriesError> {
        Directories::from_json(json.as_bytes())
    }

    #[test]
    fn defaults_and_lookup_by_normalised_agent() {
        let d = dirs(r#"{"agents":[{"agent":"https://ChatGPT.com/","backend":"chatgpt_directory"}]}"#).unwrap();
        let a = d.get("https://chatgpt.com:443").unwrap();
        assert_eq!(a.agent.as_str(), "https://chatgpt.com");
        assert_eq!(a.directory.as_str(), "https://chatgpt.com/.well-known/http-message-signatures-directory");
        assert_eq!((a.authority(), a.path()), ("chatgpt.com", "/.well-known/http-message-signatures-directory"));
        assert_eq!(a.upstream.as_deref(), Some("chatgpt_directory"));
        assert_eq!(a.label, "chatgpt.com");
        assert!(!a.require_signed_directory);
        assert_eq!(d.settings, DirectorySettings::default());
        assert!(d.get("https://evil.test").is_none());
        assert!(d.get("not a uri").is_none());
        assert!(d.require_upstreams().is_ok());
    }

    #[test]
    fn full_url_and_bounds() {
        let d = dirs(
            r#"{"agents":[{"agent":"https://www.agent.test","directory":"https://keys.agent.test/jwks.json?v=1","label":"agent","require_signed_directory":true}],
                "max_ttl":3600,"min_ttl":30,"default_ttl":120,"max_stale":600,"max_keys":4,"max_body":1000,"refetch_interval":5}"#,
        )
        .unwrap();
        let a = &d.agents[0];
        assert_eq!(a.directory.as_str(), "https://keys.agent.test/jwks.json");
        assert!(a.require_signed_directory);
        assert_eq!(d.settings.bounds.max_ttl, 3600);
        assert_eq!(d.settings.limits, DocumentLimits { max_body: 1000, max_keys: 4 });
        assert_eq!(d.require_upstreams(), Err(DirectoriesError::UpstreamMissing(0)));
        let d = dirs(r#"{"agents":[{"agent":"https://www.agent.test"}]}"#).unwrap();
        assert_eq!(d.agents[0].label, "agent.test");
        let d = dirs(r#"{"agents":[{"agent":"https://agent.test/keys/jwks.json"}]}"#).unwrap();
        assert_eq!(
            d.agents[0].directory.as_str(),
            "https://agent.test/keys/jwks.json",
            "a JWK Set URL is fetched as is"
        );
    }

    #[test]
    fn invalid_configurations_name_the_member() {
        assert_eq!(
            dirs(r#"{"agents":[{"agent":"chatgpt.com"}]}"#),
            Err(DirectoriesError::Agent(0, UriError::NoAuthority))
        );
        assert_eq!(dirs(r#"{"agents":[{"agent":"http://a.test"}]}"#), Err(DirectoriesError::AgentNotHttps(0)));
        assert_eq!(
            dirs(r#"{"agents":[{"agent":"https://a.test","directory":"http://a.test/keys"}]}"#),
            Err(DirectoriesError::DirectoryNotHttps(0))
        );
        assert!(dirs(r#"{"agents":[{"agent":"https://a.test","directory":"http://127.0.0.1:9/keys"}]}"#).is_ok());
        assert_eq!(
            dirs(r#"{"agents":[{"agent":"https://a.test"},{"agent":"https://A.test/"}]}"#),
            Err(DirectoriesError::DuplicateAgent(1))
        );
        assert_eq!(
            dirs(r#"{"agents":[],"max_negative_ttl":301}"#),
            Err(DirectoriesError::OutOfRange("max_negative_ttl"))
        );
        assert_eq!(dirs(r#"{"agents":[],"min_ttl":600,"max_ttl":60}"#), Err(DirectoriesError::OutOfRange("min_ttl")));
        assert_eq!(dirs(r#"{"agents":[],"max_keys":0}"#), Err(DirectoriesError::OutOfRange("max_keys")));
        assert!(
            matches!(dirs(r#"{"agents":[{"agent":"https://a.test","bakend":"x"}]}"#), Err(DirectoriesError::Json(m)) if m.contains("bakend"))
        );
        let many = alloc::format!(
            r#"{{"agents":[{}]}}"#,
            (0..=MAX_AGENTS)
                .map(|i| alloc::format!(r#"{{"agent":"https://a{i}.test"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(dirs(&many), Err(DirectoriesError::TooManyAgents));
    }
}
