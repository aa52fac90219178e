//! Agents that claim without proof: an unsigned request whose `User-Agent`, or a
//! `Signature-Agent` sent without any signature, names an agent the operator lists as one that
//! always signs. Such a request gets `unverified_claim` (403 in enforce mode, with an
//! `Accept-Signature` field asking for a Web Bot Auth signature, RFC 9421 §5.1).
//!
//! Ordinary unsigned traffic pays nothing when no claims are configured; otherwise one
//! `User-Agent` lookup and a case-insensitive substring search per listed pattern.

use alloc::string::String;
use alloc::vec::Vec;

use serde::Deserialize;

use crate::agent_uri::AgentUri;
use crate::reason::Reason;
use crate::request::Request;
use crate::signature_agent;
use crate::verdict::{Rejected, Verdict};

/// Most claims one configuration may list.
pub const MAX_CLAIMS: usize = 32;
/// Most `User-Agent` patterns per claim.
pub const MAX_PATTERNS: usize = 16;
/// Longest pattern, bytes.
pub const MAX_PATTERN_LEN: usize = 128;
/// Longest `User-Agent` searched, bytes (longer ones are searched in their first part).
pub const MAX_USER_AGENT_LEN: usize = 1024;

/// One agent that always signs, as the operator writes it:
/// `{"agent": "https://chatgpt.com", "user_agent": ["ChatGPT-User", "ChatGPT Agent"]}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClaimConfig {
    /// The agent's `Signature-Agent` URI (https).
    pub agent: String,
    /// Substrings (ASCII case-insensitive) of a `User-Agent` that claim this agent.
    #[serde(default)]
    pub user_agent: Vec<String>,
}

/// A validated claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The agent, normalised.
    pub agent: AgentUri,
    /// Patterns, lowercase.
    patterns: Vec<String>,
}

/// The validated list; empty means "no claims": unsigned requests are not looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    claims: Vec<Claim>,
}

/// Why a claims configuration is refused; names the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimsError {
    /// Not a JSON array of `{agent, user_agent}` objects.
    Json(String),
    /// More than [`MAX_CLAIMS`] entries.
    TooMany,
    /// Entry `i`'s agent is not an https URI.
    Agent(usize),
    /// Entry `i` has an empty, too long or non-visible-ASCII pattern, or too many.
    Pattern(usize),
}

impl core::fmt::Display for ClaimsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Json(e) => write!(f, "claims: not a JSON array of {{\"agent\", \"user_agent\"}} objects: {e}"),
            Self::TooMany => write!(f, "claims: at most {MAX_CLAIMS} entries"),
            Self::Agent(i) => write!(f, "claims[{i}].agent: not an https URI"),
            Self::Pattern(i) => write!(
                f,
                "claims[{i}].user_agent: 1 to {MAX_PATTERNS} patterns of 1 to {MAX_PATTERN_LEN} visible ASCII characters (spaces allowed)"
            ),
        }
    }
}

impl Claims {
    /// Parse the JSON array form.
    pub fn from_json(json: &[u8]) -> Result<Self, ClaimsError> {
        let configs: Vec<ClaimConfig> =
            serde_json::from_slice(json).map_err(|e| ClaimsError::Json(alloc::format!("{e}")))?;
        Self::from_configs(&configs)
    }

    /// Validate parsed entries.
    pub fn from_configs(configs: &[ClaimConfig]) -> Result<Self, ClaimsError> {
        if configs.len() > MAX_CLAIMS {
            return Err(ClaimsError::TooMany);
        }
        let mut claims = Vec::with_capacity(configs.len());
        for (i, c) in configs.iter().enumerate() {
            let agent = AgentUri::parse(&c.agent).map_err(|_| ClaimsError::Agent(i))?;
            if agent.scheme() != "https" {
                return Err(ClaimsError::Agent(i));
            }
            let ok = |p: &String| {
                !p.trim().is_empty()
                    && p.len() <= MAX_PATTERN_LEN
                    && p.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
            };
            if c.user_agent.len() > MAX_PATTERNS || !c.user_agent.iter().all(ok) {
                return Err(ClaimsError::Pattern(i));
            }
            claims.push(Claim { agent, patterns: c.user_agent.iter().map(|p| p.to_ascii_lowercase()).collect() });
        }
        Ok(Self { claims })
    }

    /// Whether no claim is configured.
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }

    /// The claimed agent of an unsigned `request`, if it claims a listed one: by its
    /// `User-Agent`, or by a `Signature-Agent` sent without a signature. The caller has
    /// established that the request carries neither `Signature` nor `Signature-Input`.
    pub fn claimed<R: Request>(&self, request: &R) -> Option<&Claim> {
        if self.claims.is_empty() {
            return None;
        }
        let (mut user_agent, mut signature_agent) = (Vec::new(), Vec::new());
        request.field_lines("user-agent", &mut user_agent);
        request.field_lines("signature-agent", &mut signature_agent);
        self.claimed_by(&user_agent, &signature_agent)
    }

    /// [`Self::claimed`] from the field lines themselves, for a host that looks up just these
    /// two fields rather than building a whole request.
    pub fn claimed_by(&self, user_agent: &[&[u8]], signature_agent: &[&[u8]]) -> Option<&Claim> {
        if let Some(claim) = user_agent.iter().find_map(|ua| self.by_user_agent(ua)) {
            return Some(claim);
        }
        if signature_agent.is_empty() {
            return None;
        }
        let joined = signature_agent.join(&b", "[..]);
        let named = signature_agent::parse(&joined).map(|sa| sa.agents()).unwrap_or_default();
        self.claims.iter().find(|c| named.contains(&c.agent))
    }

    fn by_user_agent(&self, ua: &[u8]) -> Option<&Claim> {
        let ua = ua.get(..ua.len().min(MAX_USER_AGENT_LEN)).unwrap_or_default();
        self.claims.iter().find(|c| c.patterns.iter().any(|p| contains_ignore_case(ua, p.as_bytes())))
    }

    /// [`Self::claimed`] as a verdict: [`Claim::verdict`], or `Unsigned`.
    pub fn verdict<R: Request>(&self, request: &R) -> Verdict {
        self.claimed(request).map_or(Verdict::Unsigned, Claim::verdict)
    }
}

impl Claim {
    /// `unverified_claim`, naming the claimed agent.
    pub fn verdict(&self) -> Verdict {
        Verdict::Rejected(Rejected {
            reason: Reason::UnverifiedClaim,
            label: None,
            agent: Some(String::from(self.agent.as_str())),
            keyid: None,
        })
    }
}

/// `haystack` contains `needle` (lowercase), ASCII case-insensitively.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return false;
    };
    let Some(last) = haystack.len().checked_sub(needle.len()) else {
        return false;
    };
    // Compare whole windows only where the first byte matches (most positions do not).
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    haystack.iter().take(last + 1).enumerate().any(|(i, &b)| {
        (b == lower || b == upper)
            && haystack.get(i + 1..i + needle.len()).is_some_and(|w| w.eq_ignore_ascii_case(rest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpRequest;
    use alloc::string::ToString;

    #[test]
    fn substring_match_is_ascii_case_insensitive_at_every_position() {
        for (hay, needle, want) in [
            (&b"ChatGPT-User/1.0"[..], &b"chatgpt-user"[..], true),
            (b"x ChatGPT-USER", b"chatgpt-user", true),
            (b"xx CHATGPT-USE", b"chatgpt-user", false),
            (b"chatgpt-user", b"chatgpt-user", true),
            (b"short", b"longer-than-it", false),
            (b"anything", b"", false),
            (b"", b"a", false),
            (b"cchatgpt", b"chatgpt", true),
        ] {
            assert_eq!(contains_ignore_case(hay, needle), want, "{:?} in {:?}", needle, hay);
        }
    }

    fn claims() -> Claims {
        Claims::from_json(
            br#"[{"agent": "https://ChatGPT.com/", "user_agent": ["ChatGPT-User", "ChatGPT Agent"]},
                 {"agent": "https://agent.bot.goog"}]"#,
        )
        .unwrap()
    }

    fn req(headers: &[(&str, &str)]) -> HttpRequest {
        let mut r = HttpRequest::new("GET", "https", "shop.example", "/");
        for (n, v) in headers {
            r.push_header(n, v.as_bytes());
        }
        r
    }

    fn claimed(headers: &[(&str, &str)]) -> Option<String> {
        claims().claimed(&req(headers)).map(|c| String::from(c.agent.as_str()))
    }

    #[test]
    fn user_agent_and_bare_signature_agent_claims() {
        let ua =
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot";
        assert_eq!(claimed(&[("User-Agent", ua)]).as_deref(), Some("https://chatgpt.com"));
        assert_eq!(claimed(&[("User-Agent", "x chatgpt agent y")]).as_deref(), Some("https://chatgpt.com"));
        assert_eq!(
            claimed(&[("Signature-Agent", "g=\"https://agent.bot.goog\"")]).as_deref(),
            Some("https://agent.bot.goog")
        );
        assert_eq!(
            claimed(&[("Signature-Agent", "\"HTTPS://chatgpt.com:443\"")]).as_deref(),
            Some("https://chatgpt.com")
        );
    }

    #[test]
    fn ordinary_visitors_claim_nothing() {
        assert_eq!(claimed(&[]), None);
        assert_eq!(claimed(&[("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")]), None);
        assert_eq!(claimed(&[("User-Agent", "ChatGPT")]), None, "a pattern matches whole, not a prefix of it");
        assert_eq!(claimed(&[("Signature-Agent", "\"https://other.test\"")]), None);
        assert_eq!(claimed(&[("Signature-Agent", "not a field")]), None);
        assert!(Claims::default().is_empty());
        assert_eq!(Claims::default().verdict(&req(&[("User-Agent", "ChatGPT-User")])), Verdict::Unsigned);
        let c = claims();
        let by = |ua: &[&[u8]], sa: &[&[u8]]| c.claimed_by(ua, sa).map(|c| String::from(c.agent.as_str()));
        assert_eq!(by(&[b"Firefox", b"x ChatGPT Agent"], &[]).as_deref(), Some("https://chatgpt.com"), "every line");
        assert_eq!(
            by(&[], &[b"a=\"https://other.test\"", b"g=\"https://agent.bot.goog\""]).as_deref(),
            Some("https://agent.bot.goog")
        );
        assert_eq!(by(&[b"Firefox"], &[]), None);
    }

    #[test]
    fn the_verdict_names_the_claimed_agent() {
        let v = claims().verdict(&req(&[("User-Agent", "ChatGPT-User/1.0")]));
        let Verdict::Rejected(r) = v else { panic!("{v:?}") };
        assert_eq!((r.reason, r.agent.as_deref()), (Reason::UnverifiedClaim, Some("https://chatgpt.com")));
        assert_eq!(r.reason.status().code(), 403);
    }

    #[test]
    fn bad_configurations_name_the_entry() {
        assert!(matches!(Claims::from_json(b"{}"), Err(ClaimsError::Json(_))));
        assert!(matches!(Claims::from_json(br#"[{"agent": "https://a.test", "ua": []}]"#), Err(ClaimsError::Json(_))));
        assert_eq!(Claims::from_json(br#"[{"agent": "http://a.test"}]"#), Err(ClaimsError::Agent(0)));
        assert_eq!(
            Claims::from_json(br#"[{"agent": "https://a.test", "user_agent": [""]}]"#),
            Err(ClaimsError::Pattern(0))
        );
        assert_eq!(
            Claims::from_json(br#"[{"agent": "https://a.test"}, {"agent": "https://b.test", "user_agent": ["a\tb"]}]"#),
            Err(ClaimsError::Pattern(1))
        );
        let many = alloc::format!("[{}]", alloc::vec!["{\"agent\": \"https://a.test\"}"; MAX_CLAIMS + 1].join(","));
        assert_eq!(Claims::from_json(many.as_bytes()), Err(ClaimsError::TooMany));
        assert!(ClaimsError::Pattern(3).to_string().contains("claims[3]"));
    }
}
