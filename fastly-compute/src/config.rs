//! Every name the service uses (stores, backends, log endpoint, headers) and the settings it
//! reads from the `botauth_settings` Config Store.
//!
//! Settings are one Config Store item each, so an operator changes one value with one
//! `fastly config-store-entry update`; the verification policy is one JSON item in the
//! shape shared with the proxy-wasm filter (`botauth_core::config`). A missing item keeps
//! its default; an item that is
//! present but invalid is a configuration error: it is logged and signed requests fail
//! closed (503) until it is fixed, while unsigned traffic keeps flowing.

use botauth_core::config::PolicyConfig;
use botauth_core::directory::Directories;
use botauth_core::verdict_auth::VerdictKey;
use botauth_core::Policy;
use fastly::{ConfigStore, SecretStore};

use crate::cache::CacheClass;

/// Config Store with the trusted keys: item key = encoded Signature-Agent URI
/// ([`jwks_item_key`]), value = that agent's JWKS JSON.
pub const JWKS_STORE: &str = "botauth_jwks";
/// Config Store with the settings below.
pub const SETTINGS_STORE: &str = "botauth_settings";
/// The origin backend (declared in `fastly.toml` and on the service).
pub const ORIGIN_BACKEND: &str = "origin";
/// KV Store remembering nonces until their signature expires (optional: without it there
/// is no replay protection, and `require_nonce` policies fail closed).
pub const NONCE_STORE: &str = "botauth_nonces";
/// KV Store with the last-known-good directory entry of each allow-listed agent (optional:
/// without it, keys survive only in the POP's cache).
pub const DIRECTORY_STORE: &str = "botauth_directories";
/// Edge Rate Limiting rate counter (per verified agent and keyid).
pub const RATE_COUNTER: &str = "botauth_agents";
/// Edge Rate Limiting penalty box.
pub const PENALTY_BOX: &str = "botauth_penalty";
/// Edge Rate Limiting rate counter of rejections that cost a verify, by client address.
pub const SOURCE_RATE_COUNTER: &str = "botauth_sources";
/// Edge Rate Limiting penalty box of sources over `invalid_signature_limit`.
pub const SOURCE_PENALTY_BOX: &str = "botauth_source_penalty";
/// Log endpoint that receives one JSON line per signed request.
pub const LOG_ENDPOINT: &str = "botauth";
/// Header that carries the verdict to the origin; any incoming copy is removed first.
pub const VERDICT_HEADER: &str = botauth_core::outcome::VERDICT_HEADER;
/// Header that authenticates the verdict header (`core::verdict_auth`); any incoming copy is
/// removed first.
pub const VERDICT_AUTH_HEADER: &str = botauth_core::verdict_auth::HEADER;
/// Secret Store with the verdict-authentication secrets: item `verdict_auth_<kid>`, value the
/// secret in base64 (at least 32 bytes once decoded). Needed only with
/// [`item::VERDICT_AUTH_KID`].
pub const SECRET_STORE: &str = "botauth_secrets";
/// Response header with the cache decision (only when `debug` is on).
pub const CACHE_DEBUG_HEADER: &str = "botauth-cache";

/// Settings items (keys in [`SETTINGS_STORE`]).
pub mod item {
    /// The verification policy: JSON of `botauth_core::config::PolicyConfig`, the same shape
    /// as the proxy-wasm filter's configuration, e.g. `{"mode":"monitor","clock_skew":30}`.
    /// Absent = the Web Bot Auth defaults in enforce mode.
    pub const POLICY: &str = "policy";
    /// Agents that always sign: JSON of `botauth_core::claims::Claims`, e.g.
    /// `[{"agent": "https://chatgpt.com", "user_agent": ["ChatGPT-User", "ChatGPT Agent"]}]`.
    /// An unsigned request claiming one is `unverified_claim` (403 in enforce mode). Invalid:
    /// logged, and no claims are checked (unsigned traffic is never refused for it).
    pub const CLAIMS: &str = "claims";
    /// JSON array of cache classes (see `cache.rs`); absent = the built-in classes.
    pub const CACHE_CLASSES: &str = "cache_classes";
    /// Shield site code, e.g. `bfi-wa-us`; absent or empty = no shielding.
    pub const SHIELD_SITE: &str = "shield_site";
    /// `true` adds `Server-Timing` and the cache decision to responses.
    pub const DEBUG: &str = "debug";
    /// Longest wait for the origin's (or shield's) response head, milliseconds (1 to
    /// 600000); then 504 problem+json. Absent = the backend's own timeouts only.
    /// Invalid: logged, and the backend's timeouts apply.
    pub const ORIGIN_TIMEOUT_MS: &str = "origin_timeout_ms";
    /// Scheme for `@scheme`/`@target-uri` (default `https`: Compute serves TLS only).
    pub const SCHEME: &str = "scheme";
    /// Largest body buffered to check a covered `content-digest`, bytes (default 65536).
    pub const MAX_BODY: &str = "max_body";
    /// TESTING ONLY: unix seconds used instead of the clock. Logged as a warning.
    pub const TESTING_NOW: &str = "testing_now";
    /// Per-agent rate limit, JSON `{"limit":50,"window":10,"penalty":300}`; absent = none.
    pub const RATE_LIMIT: &str = "rate_limit";
    /// `{"limit", "window", "penalty"}` for rejections that cost a verify, per client address.
    pub const INVALID_SIGNATURE_LIMIT: &str = "invalid_signature_limit";
    /// Live key directories: JSON of `botauth_core::directory::DirectoriesConfig` (the
    /// allow-list, every agent with the `backend` that reaches its directory, and bounds);
    /// absent = pinned keys only.
    pub const DIRECTORIES: &str = "directories";
    /// Key id of the verdict authentication (`botauth-verdict-auth`); its secret is item
    /// `verdict_auth_<kid>` of the Secret Store `botauth_secrets`. Absent = off.
    pub const VERDICT_AUTH_KID: &str = "verdict_auth_kid";
}

/// The [`SECRET_STORE`] item holding the secret of verdict-auth key `kid`.
pub fn verdict_auth_secret_item(kid: &str) -> String {
    format!("verdict_auth_{kid}")
}

/// The JWKS item key of a Signature-Agent URI.
///
/// Config Store item keys are at most 256 characters and Fastly restricts their alphabet;
/// URIs contain `:` and `/`. Every byte outside `[A-Za-z0-9.-]` is written as `_XX`
/// (uppercase hex), so `https://chatgpt.com` is stored as `https_3A_2F_2Fchatgpt.com` and
/// the any-agent key `*` as `_2A`. The mapping is reversible and uses only letters, digits,
/// `.`, `-` and `_`.
pub fn jwks_item_key(agent: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut key = String::with_capacity(agent.len() + 8);
    for b in agent.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            key.push(char::from(b));
        } else {
            key.push('_');
            key.push(char::from(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0')));
            key.push(char::from(HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0')));
        }
    }
    key
}

/// Longest item key Fastly accepts.
pub const MAX_ITEM_KEY_LEN: usize = 256;

/// Item of [`JWKS_STORE`] listing (JSON array) the agents whose keys may sign requests that
/// carry no `Signature-Agent`. It cannot collide with an encoded URI (those contain `_3A`).
pub const AGENTS_ITEM: &str = "agents";

/// Settings needed for every request.
#[derive(Clone, Debug, Default)]
pub struct Common {
    /// Shield site code, if shielding is on.
    pub shield_site: Option<String>,
    /// Cache classes, first match wins; `None` when the item was invalid (no overrides).
    pub cache_classes: Option<Vec<CacheClass>>,
    /// Debug headers.
    pub debug: bool,
    /// Agents that always sign (empty: unsigned requests are not looked at).
    pub claims: botauth_core::claims::Claims,
    /// The service's own bound on the wait for a response head ([`item::ORIGIN_TIMEOUT_MS`]).
    pub origin_timeout: Option<std::time::Duration>,
}

/// Settings needed only for signed requests.
#[derive(Clone, Debug)]
pub struct Verification {
    /// The policy (mode included).
    pub policy: Policy,
    /// Scheme reported to core.
    pub scheme: String,
    /// Body buffering cap for `content-digest`.
    pub max_body: usize,
    /// TESTING ONLY clock override.
    pub testing_now: Option<u64>,
    /// Per-agent rate limit.
    pub rate_limit: Option<crate::rate::RateLimit>,
    /// Per-source limit of rejections that cost a verify (forged signatures, replays).
    pub invalid_signature_limit: Option<crate::rate::RateLimit>,
    /// Allow-listed key directories, if configured.
    pub directories: Option<Directories>,
    /// The key that authenticates the verdict header, when `verdict_auth_kid` is set.
    pub verdict_auth: Option<VerdictKey>,
}

/// The settings store, or nothing (all defaults) when it is not linked to the service.
pub struct Settings {
    store: Option<ConfigStore>,
}

impl Settings {
    /// Open [`SETTINGS_STORE`]; when it is missing, log once and use defaults.
    pub fn open() -> Self {
        match ConfigStore::try_open(SETTINGS_STORE) {
            Ok(store) => Self { store: Some(store) },
            Err(e) => {
                crate::log::config_problem(&format!(
                    "config store `{SETTINGS_STORE}` cannot be opened ({e:?}); using default settings"
                ));
                Self { store: None }
            }
        }
    }

    fn get(&self, key: &str) -> Result<Option<String>, String> {
        match &self.store {
            None => Ok(None),
            Some(store) => store.try_get(key).map_err(|e| format!("`{SETTINGS_STORE}.{key}` cannot be read: {e:?}")),
        }
    }

    /// The settings every request needs. Problems are logged; unsigned traffic keeps flowing.
    pub fn common(&self) -> Common {
        let shield_site = match self.get(item::SHIELD_SITE) {
            Ok(v) => v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
            Err(e) => {
                crate::log::config_problem(&e);
                None
            }
        };
        let cache_classes = match self.get(item::CACHE_CLASSES) {
            Ok(None) => Some(crate::cache::default_classes()),
            Ok(Some(json)) => match crate::cache::parse_classes(&json) {
                Ok(c) => Some(c),
                Err(e) => {
                    crate::log::config_problem(&format!(
                        "`{SETTINGS_STORE}.{}` is invalid ({e}); no cache overrides are applied",
                        item::CACHE_CLASSES
                    ));
                    None
                }
            },
            Err(e) => {
                crate::log::config_problem(&e);
                None
            }
        };
        let mut errors = Vec::new();
        let debug = self.read(&mut errors, item::DEBUG, parse_bool).unwrap_or(false);
        let claims = self.read(&mut errors, item::CLAIMS, parse_claims).unwrap_or_default();
        let origin_timeout = self.read(&mut errors, item::ORIGIN_TIMEOUT_MS, parse_timeout_ms);
        for e in errors {
            crate::log::config_problem(&e);
        }
        Common { shield_site, cache_classes, debug, claims, origin_timeout }
    }

    /// The settings for verification, or a description of every invalid item.
    pub fn verification(&self) -> Result<Verification, String> {
        let mut errors = Vec::new();
        let policy = self.read(&mut errors, item::POLICY, parse_policy);
        let scheme = self.read(&mut errors, item::SCHEME, parse_scheme);
        let max_body = self.read(&mut errors, item::MAX_BODY, parse_u64);
        let testing_now = self.read(&mut errors, item::TESTING_NOW, parse_u64);
        let rate_limit = self.read(&mut errors, item::RATE_LIMIT, crate::rate::parse);
        let invalid_signature_limit = self.read(&mut errors, item::INVALID_SIGNATURE_LIMIT, crate::rate::parse);
        let directories = self.read(&mut errors, item::DIRECTORIES, parse_directories);
        let verdict_auth = self.read(&mut errors, item::VERDICT_AUTH_KID, load_verdict_key);
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        Ok(Verification {
            policy: policy.unwrap_or_else(Policy::web_bot_auth),
            scheme: scheme.unwrap_or_else(|| "https".into()),
            max_body: max_body.and_then(|v| usize::try_from(v).ok()).unwrap_or(65_536),
            testing_now,
            rate_limit,
            invalid_signature_limit,
            directories,
            verdict_auth,
        })
    }

    /// Read and parse one item: `None` when absent; an invalid item is pushed to `errors`.
    fn read<T>(&self, errors: &mut Vec<String>, name: &str, parse: fn(&str) -> Result<T, String>) -> Option<T> {
        match self.get(name) {
            Ok(None) => None,
            Ok(Some(v)) => match parse(v.trim()) {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(format!("`{SETTINGS_STORE}.{name}`: {e}"));
                    None
                }
            },
            Err(e) => {
                errors.push(e);
                None
            }
        }
    }
}

/// `true`/`false` (also `1`/`0`, `on`/`off`).
pub fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// A non-negative integer.
pub fn parse_u64(v: &str) -> Result<u64, String> {
    v.parse().map_err(|_| "expected a non-negative integer".into())
}

/// A timeout in milliseconds, 1 to 600000 (ten minutes).
pub fn parse_timeout_ms(v: &str) -> Result<std::time::Duration, String> {
    match v.parse::<u64>() {
        Ok(ms @ 1..=600_000) => Ok(std::time::Duration::from_millis(ms)),
        _ => Err("expected milliseconds from 1 to 600000".into()),
    }
}

/// `https` or `http`.
pub fn parse_scheme(v: &str) -> Result<String, String> {
    match v {
        "https" | "http" => Ok(v.into()),
        _ => Err("expected https or http".into()),
    }
}

/// The `claims` item, validated by core (shared with the proxy-wasm filter).
pub fn parse_claims(v: &str) -> Result<botauth_core::claims::Claims, String> {
    botauth_core::claims::Claims::from_json(v.as_bytes()).map_err(|e| e.to_string())
}

/// The `policy` item, validated by core (shared with the proxy-wasm filter).
pub fn parse_policy(v: &str) -> Result<Policy, String> {
    PolicyConfig::from_json(v.as_bytes()).and_then(|c| c.to_policy()).map_err(|e| e.to_string())
}

/// The `directories` item, validated by core (shared with the proxy-wasm filter); every
/// agent must name a backend of this service.
pub fn parse_directories(v: &str) -> Result<Directories, String> {
    let directories = Directories::from_json(v.as_bytes()).map_err(|e| e.to_string())?;
    directories.require_upstreams().map_err(|e| e.to_string())?;
    for (i, agent) in directories.agents.iter().enumerate() {
        let name = agent.upstream.as_deref().unwrap_or_default();
        if !fastly::Backend::from_name(name).is_ok_and(|b| b.exists()) {
            return Err(format!("directories.agents[{i}].backend `{name}` is not a backend of this service"));
        }
    }
    Ok(directories)
}

/// The `verdict_auth_kid` item: the kid, checked by core, and its secret from
/// [`SECRET_STORE`] (base64, at least 32 bytes decoded). Messages never include the secret.
pub fn load_verdict_key(kid: &str) -> Result<VerdictKey, String> {
    use base64::Engine as _;
    botauth_core::verdict_auth::check_kid(kid).map_err(|e| e.to_string())?;
    let name = verdict_auth_secret_item(kid);
    let store = SecretStore::open(SECRET_STORE)
        .map_err(|e| format!("secret store `{SECRET_STORE}` cannot be opened ({e:?})"))?;
    let secret = store
        .try_get(&name)
        .map_err(|e| format!("secret `{SECRET_STORE}.{name}` cannot be read ({e:?})"))?
        .ok_or_else(|| format!("secret `{SECRET_STORE}.{name}` is missing"))?;
    let text =
        secret.try_plaintext().map_err(|e| format!("secret `{SECRET_STORE}.{name}` cannot be decrypted ({e:?})"))?;
    let text = std::str::from_utf8(&text).map(str::trim).unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| format!("secret `{SECRET_STORE}.{name}` is not base64"))?;
    VerdictKey::new(kid, &bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use botauth_core::Mode;

    #[test]
    fn item_keys_use_a_safe_alphabet_and_are_distinct() {
        assert_eq!(jwks_item_key("https://chatgpt.com"), "https_3A_2F_2Fchatgpt.com");
        assert_eq!(jwks_item_key("https://signature-agent.test"), "https_3A_2F_2Fsignature-agent.test");
        assert_eq!(jwks_item_key("*"), "_2A");
        assert_eq!(jwks_item_key("a_b"), "a_5Fb");
        assert_ne!(jwks_item_key("a_5Fb"), jwks_item_key("a_b"));
        let k = jwks_item_key("https://x.test:8443/p?q=1#f ü");
        assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "{k}");
    }

    #[test]
    fn settings_values_parse_strictly() {
        assert_eq!(parse_bool(" true".trim()), Ok(true));
        assert_eq!(parse_bool("off"), Ok(false));
        assert!(parse_bool("maybe").is_err());
        assert_eq!(parse_u64("1735689700"), Ok(1_735_689_700));
        assert!(parse_u64("-1").is_err());
        assert!(parse_scheme("ftp").is_err());
        assert_eq!(parse_timeout_ms("1500"), Ok(std::time::Duration::from_millis(1500)));
        assert!(
            parse_timeout_ms("0").is_err() && parse_timeout_ms("600001").is_err() && parse_timeout_ms("2s").is_err()
        );
        let p = parse_policy(r#"{"mode":"monitor","clock_skew":30,"limits":{"max_signature_len":100}}"#).unwrap();
        assert_eq!(p.mode, Mode::Monitor);
        assert_eq!(p.clock_skew, 30);
        assert_eq!(p.limits.max_signature_len, 100);
        assert!(parse_policy(r#"{"mode":"bogus"}"#).is_err());
        assert!(parse_policy(r#"{"clock_skw":30}"#).is_err(), "typos are errors");
        assert!(parse_policy("not json").is_err());
    }

    #[test]
    fn verdict_auth_secret_comes_from_the_secret_store() {
        // Runs under Viceroy with the repository's fastly.toml (TEST ONLY `verdict_auth_demo`).
        assert_eq!(verdict_auth_secret_item("k1"), "verdict_auth_k1");
        let key = load_verdict_key("demo").unwrap();
        assert_eq!(key, VerdictKey::new("demo", b"botauth-demo-secret-TEST-ONLY-00").unwrap());
        let e = load_verdict_key("k1").unwrap_err();
        assert!(e.contains("`botauth_secrets.verdict_auth_k1` is missing"), "{e}");
        let e = load_verdict_key("k 1").unwrap_err();
        assert!(e.contains("kid may only have"), "{e}");
        assert!(load_verdict_key("").is_err());
    }

    #[test]
    fn directories_need_an_existing_backend_per_agent() {
        // Runs under Viceroy with the repository's fastly.toml (backends `origin`, `demo_directory`).
        let d = parse_directories(r#"{"agents":[{"agent":"https://agent.test","backend":"origin"}],"max_ttl":3600}"#)
            .unwrap();
        assert_eq!(d.agents[0].upstream.as_deref(), Some("origin"));
        assert_eq!(d.settings.bounds.max_ttl, 3600);
        let e = parse_directories(r#"{"agents":[{"agent":"https://agent.test"}]}"#).unwrap_err();
        assert!(e.contains("needs an upstream (backend)"), "{e}");
        let e = parse_directories(r#"{"agents":[{"agent":"https://agent.test","backend":"nope"}]}"#).unwrap_err();
        assert!(e.contains("`nope` is not a backend"), "{e}");
        assert!(parse_directories(r#"{"agents":[{"agent":"http://agent.test","backend":"origin"}]}"#).is_err());
        assert!(parse_directories("[]").is_err());
    }
}
