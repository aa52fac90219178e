//! Operator configuration of the policy, shared by every adapter: one JSON shape
//! (the proxy-wasm plugin configuration, the Fastly `botauth_settings` item `policy`),
//! validated into a [`Policy`] with an error that names the exact problem.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::policy::{Limits, Mode, Policy};

/// The policy part of a host configuration. Every member is optional; unknown members
/// are errors (a typo must not silently weaken the policy).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `"web-bot-auth"` (default) or `"rfc9421"` (plain RFC 9421: no tag, window or
    /// coverage rules; `keyid` may be a JWK `kid`). Other members refine the profile.
    pub profile: Option<String>,
    /// `"enforce"` (default) or `"monitor"`.
    pub mode: Option<String>,
    /// The tag the verified signature must carry (default `web-bot-auth`).
    pub tag: Option<String>,
    /// The label to verify when the profile has no tag.
    pub label: Option<String>,
    /// Let `keyid` match a JWK `kid` as well as its thumbprint.
    pub allow_kid_keyid: Option<bool>,
    /// Maximum `expires - created`, seconds (default 86400; at most 7 days).
    pub max_validity: Option<u64>,
    /// Clock skew, seconds (default 60; at most 600).
    pub clock_skew: Option<u64>,
    /// Require a nonce (default false).
    pub require_nonce: Option<bool>,
    /// Require `Signature-Agent` (default false).
    pub require_signature_agent: Option<bool>,
    /// Require a present `Signature-Agent` to be covered (default true).
    pub require_agent_coverage: Option<bool>,
    /// Components every signature must cover, e.g. `["@method", "@path"]`.
    pub required_components: Option<Vec<String>>,
    /// Trust published test keys such as RFC 9421 B.1.4 (default false; local demos only).
    pub allow_test_keys: Option<bool>,
    /// Size caps.
    pub limits: Option<LimitsConfig>,
}

/// Size caps; each optional.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LimitsConfig {
    pub max_signature_input_len: Option<usize>,
    pub max_signature_len: Option<usize>,
    pub max_signature_agent_len: Option<usize>,
    pub max_covered_field_len: Option<usize>,
    pub max_signatures: Option<usize>,
    pub max_components: Option<usize>,
}

/// What is wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not valid JSON of the expected shape (serde's message, which names the member).
    Json(String),
    /// `profile` is neither `web-bot-auth` nor `rfc9421`.
    InvalidProfile,
    /// `mode` is neither `enforce` nor `monitor`.
    InvalidMode,
    /// `tag` or `label` is empty.
    EmptyTagOrLabel,
    /// `max_validity` is 0 or above 7 days.
    MaxValidityOutOfRange,
    /// `clock_skew` is above 600 s.
    ClockSkewOutOfRange,
    /// A limit is 0.
    ZeroLimit(&'static str),
    /// A required component is not a lowercase field name or a known `@` component.
    InvalidRequiredComponent,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "invalid policy JSON: {e}"),
            Self::InvalidProfile => f.write_str("profile must be \"web-bot-auth\", \"rfc9421\" or \"visa-tap\""),
            Self::InvalidMode => f.write_str("mode must be \"enforce\" or \"monitor\""),
            Self::EmptyTagOrLabel => f.write_str("tag and label must not be empty"),
            Self::MaxValidityOutOfRange => f.write_str("max_validity must be between 1 and 604800 seconds"),
            Self::ClockSkewOutOfRange => f.write_str("clock_skew must be at most 600 seconds"),
            Self::ZeroLimit(name) => write!(f, "limits.{name} must be greater than 0"),
            Self::InvalidRequiredComponent => {
                f.write_str("required_components must be lowercase field names or RFC 9421 derived components")
            }
        }
    }
}

/// Longest `max_validity` an operator may configure: 7 days.
pub const MAX_CONFIGURABLE_VALIDITY: u64 = 7 * 24 * 60 * 60;
/// Largest configurable clock skew: 10 minutes.
pub const MAX_CONFIGURABLE_SKEW: u64 = 600;

impl PolicyConfig {
    /// Parse the JSON form.
    pub fn from_json(json: &[u8]) -> Result<Self, ConfigError> {
        serde_json::from_slice(json).map_err(|e| ConfigError::Json(alloc::format!("{e}")))
    }

    /// Validate into a Web Bot Auth [`Policy`].
    pub fn to_policy(&self) -> Result<Policy, ConfigError> {
        let mut p = match self.profile.as_deref() {
            None | Some("web-bot-auth") => Policy::web_bot_auth(),
            Some("rfc9421") => Policy::rfc9421(),
            Some("visa-tap") => Policy::visa_tap(),
            Some(_) => return Err(ConfigError::InvalidProfile),
        };
        if let Some(tag) = &self.tag {
            if tag.is_empty() {
                return Err(ConfigError::EmptyTagOrLabel);
            }
            p.tag = Some(tag.clone());
            p.extra_tags.clear();
        }
        if let Some(label) = &self.label {
            if label.is_empty() {
                return Err(ConfigError::EmptyTagOrLabel);
            }
            p.label = Some(label.clone());
        }
        p.allow_kid_keyid = self.allow_kid_keyid.unwrap_or(p.allow_kid_keyid);
        p.mode = match self.mode.as_deref() {
            None | Some("enforce") => Mode::Enforce,
            Some("monitor") => Mode::Monitor,
            Some(_) => return Err(ConfigError::InvalidMode),
        };
        if let Some(v) = self.max_validity {
            if v == 0 || v > MAX_CONFIGURABLE_VALIDITY {
                return Err(ConfigError::MaxValidityOutOfRange);
            }
            p.max_validity = v;
        }
        if let Some(s) = self.clock_skew {
            if s > MAX_CONFIGURABLE_SKEW {
                return Err(ConfigError::ClockSkewOutOfRange);
            }
            p.clock_skew = s;
        }
        p.require_nonce = self.require_nonce.unwrap_or(p.require_nonce);
        p.require_signature_agent = self.require_signature_agent.unwrap_or(p.require_signature_agent);
        p.require_agent_coverage = self.require_agent_coverage.unwrap_or(p.require_agent_coverage);
        p.allow_test_keys = self.allow_test_keys.unwrap_or(p.allow_test_keys);
        if let Some(required) = &self.required_components {
            let valid = |c: &String| {
                crate::components::Derived::from_name(c).is_some()
                    || (!c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
            };
            if !required.iter().all(valid) {
                return Err(ConfigError::InvalidRequiredComponent);
            }
            p.required_components.clone_from(required);
        }
        if let Some(l) = &self.limits {
            p.limits = limits(l, p.limits)?;
        }
        Ok(p)
    }
}

fn limits(c: &LimitsConfig, d: Limits) -> Result<Limits, ConfigError> {
    let pick = |v: Option<usize>, default: usize, name: &'static str| match v {
        Some(0) => Err(ConfigError::ZeroLimit(name)),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    Ok(Limits {
        max_signature_input_len: pick(c.max_signature_input_len, d.max_signature_input_len, "max_signature_input_len")?,
        max_signature_len: pick(c.max_signature_len, d.max_signature_len, "max_signature_len")?,
        max_signature_agent_len: pick(c.max_signature_agent_len, d.max_signature_agent_len, "max_signature_agent_len")?,
        max_covered_field_len: pick(c.max_covered_field_len, d.max_covered_field_len, "max_covered_field_len")?,
        max_signatures: pick(c.max_signatures, d.max_signatures, "max_signatures")?,
        max_components: pick(c.max_components, d.max_components, "max_components")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid() {
        let p = PolicyConfig::from_json(br#"{"mode":"monitor","clock_skew":5,"limits":{"max_signatures":2}}"#)
            .unwrap()
            .to_policy()
            .unwrap();
        assert_eq!(p.mode, Mode::Monitor);
        assert_eq!(p.clock_skew, 5);
        assert_eq!(p.limits.max_signatures, 2);
        assert_eq!(PolicyConfig::default().to_policy().unwrap(), Policy::web_bot_auth());
        let err = |j: &str| PolicyConfig::from_json(j.as_bytes()).and_then(|c| c.to_policy()).unwrap_err();
        assert_eq!(err(r#"{"mode":"off"}"#), ConfigError::InvalidMode);
        assert_eq!(err(r#"{"profile":"loose"}"#), ConfigError::InvalidProfile);
        assert_eq!(err(r#"{"tag":""}"#), ConfigError::EmptyTagOrLabel);
        let rfc = PolicyConfig::from_json(br#"{"profile":"rfc9421","label":"sig-b26"}"#).unwrap().to_policy().unwrap();
        assert_eq!(rfc.tag, None);
        assert_eq!(rfc.label.as_deref(), Some("sig-b26"));
        assert!(rfc.allow_kid_keyid);
        let tap = PolicyConfig::from_json(br#"{"profile":"visa-tap"}"#).unwrap().to_policy().unwrap();
        assert_eq!(tap, Policy::visa_tap());
        assert_eq!(
            (tap.tag.as_deref(), tap.extra_tags.as_slice()),
            (Some("agent-browser-auth"), &["agent-payer-auth".into()][..])
        );
        assert_eq!((tap.max_validity, tap.require_nonce), (480, true));
        let one = PolicyConfig::from_json(br#"{"profile":"visa-tap","tag":"agent-payer-auth"}"#)
            .unwrap()
            .to_policy()
            .unwrap();
        assert!(one.extra_tags.is_empty(), "an explicit tag selects only that tag");
        assert_eq!(err(r#"{"max_validity":0}"#), ConfigError::MaxValidityOutOfRange);
        assert_eq!(err(r#"{"clock_skew":601}"#), ConfigError::ClockSkewOutOfRange);
        assert_eq!(err(r#"{"limits":{"max_signature_len":0}}"#), ConfigError::ZeroLimit("max_signature_len"));
        assert_eq!(err(r#"{"required_components":["Host"]}"#), ConfigError::InvalidRequiredComponent);
        assert!(matches!(err(r#"{"mdoe":"monitor"}"#), ConfigError::Json(m) if m.contains("mdoe")));
    }
}
