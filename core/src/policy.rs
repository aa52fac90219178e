//! What the verifier demands beyond RFC 9421: the Web Bot Auth profile and local limits.

use alloc::string::String;
use alloc::vec::Vec;

/// What the host does with a rejection (ARCHITECTURE §4). Core only carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Reject with 400/403/429; never forward.
    #[default]
    Enforce,
    /// Forward everything; record the verdict.
    Monitor,
}

/// Size caps checked before any parsing (ARCHITECTURE §2, step 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum bytes of all `Signature-Input` lines together.
    pub max_signature_input_len: usize,
    /// Maximum bytes of all `Signature` lines together.
    pub max_signature_len: usize,
    /// Maximum bytes of all `Signature-Agent` lines together.
    pub max_signature_agent_len: usize,
    /// Maximum bytes of any one covered field (all lines together).
    pub max_covered_field_len: usize,
    /// Maximum number of signatures (labels) in one request.
    pub max_signatures: usize,
    /// Maximum number of covered components in one signature.
    pub max_components: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_signature_input_len: 4096,
            max_signature_len: 2048,
            max_signature_agent_len: 1024,
            max_covered_field_len: 8192,
            max_signatures: 8,
            max_components: 32,
        }
    }
}

/// The rules a signature must satisfy besides verifying cryptographically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Enforce or monitor (used by hosts).
    pub mode: Mode,
    /// The `tag` a signature must carry to be chosen; `None` selects by [`Policy::label`]
    /// or, failing that, requires exactly one signature.
    pub tag: Option<String>,
    /// Further tags that select a signature as `tag` does (visa-tap: `agent-payer-auth`
    /// beside `agent-browser-auth`); two signatures with any of them are ambiguous.
    pub extra_tags: Vec<String>,
    /// Label to verify when `tag` is `None`.
    pub label: Option<String>,
    /// `created` must be present (Web Bot Auth: yes).
    pub require_created: bool,
    /// `expires` must be present (Web Bot Auth: yes).
    pub require_expires: bool,
    /// Longest allowed `expires - created`, seconds (Web Bot Auth: 24 h).
    pub max_validity: u64,
    /// Tolerated clock difference for `created`/`expires`, seconds.
    pub clock_skew: u64,
    /// `@authority` or `@target-uri` must be covered (Web Bot Auth: yes).
    pub require_authority: bool,
    /// A present `Signature-Agent` must be covered by the chosen signature.
    pub require_agent_coverage: bool,
    /// A `Signature-Agent` must be present.
    pub require_signature_agent: bool,
    /// A `nonce` must be present.
    pub require_nonce: bool,
    /// Let `keyid` match a JWK's `kid` as well as its RFC 7638 thumbprint.
    pub allow_kid_keyid: bool,
    /// Components every chosen signature must cover, e.g. `@method`.
    pub required_components: Vec<String>,
    /// Trust published test keys (RFC 9421 B.1.4). Off in every profile: the Web Bot Auth
    /// drafts say verifiers SHOULD reject them; local demos and tests turn it on.
    pub allow_test_keys: bool,
    /// Size and count caps.
    pub limits: Limits,
}

/// The Web Bot Auth signature tag.
pub const WEB_BOT_AUTH_TAG: &str = "web-bot-auth";
/// The tag of a signed key-directory response.
pub const DIRECTORY_TAG: &str = "http-message-signatures-directory";
/// Visa TAP: the browsing agent's tag.
pub const VISA_TAP_BROWSER_TAG: &str = "agent-browser-auth";
/// Visa TAP: the paying agent's tag.
pub const VISA_TAP_PAYER_TAG: &str = "agent-payer-auth";
/// Visa TAP's validity window: 8 minutes.
pub const MAX_VALIDITY_VISA_TAP: u64 = 8 * 60;
/// Web Bot Auth's maximum validity window: 24 hours.
pub const MAX_VALIDITY_WEB_BOT_AUTH: u64 = 24 * 60 * 60;

impl Default for Policy {
    fn default() -> Self {
        Self::web_bot_auth()
    }
}

impl Policy {
    /// The Web Bot Auth profile (draft-meunier-web-bot-auth-architecture §4).
    pub fn web_bot_auth() -> Self {
        Self {
            mode: Mode::Enforce,
            tag: Some(WEB_BOT_AUTH_TAG.into()),
            extra_tags: Vec::new(),
            label: None,
            require_created: true,
            require_expires: true,
            max_validity: MAX_VALIDITY_WEB_BOT_AUTH,
            clock_skew: 60,
            require_authority: true,
            require_agent_coverage: true,
            require_signature_agent: false,
            require_nonce: false,
            allow_kid_keyid: false,
            required_components: Vec::new(),
            allow_test_keys: false,
            limits: Limits::default(),
        }
    }

    /// Visa's Trusted Agent Protocol (repo `visa/trusted-agent-protocol`): a signature tagged
    /// `agent-browser-auth` or `agent-payer-auth`, covering `@authority` and `@path`, with a
    /// `nonce`, valid for at most 8 minutes; keys are found by `keyid` (no `Signature-Agent`
    /// needed). Parsing stays RFC 8941-strict: the sample's hand-built `keyId=` parameter is
    /// refused here as `keyid_missing` (fixture `policy/visa-tap-sample-keyId-deviation`).
    pub fn visa_tap() -> Self {
        Self {
            tag: Some(VISA_TAP_BROWSER_TAG.into()),
            extra_tags: alloc::vec![VISA_TAP_PAYER_TAG.into()],
            max_validity: MAX_VALIDITY_VISA_TAP,
            require_nonce: true,
            required_components: alloc::vec!["@authority".into(), "@path".into()],
            ..Self::web_bot_auth()
        }
    }

    /// Plain RFC 9421: no tag, no window, no coverage rules; `keyid` may be a `kid`.
    pub fn rfc9421() -> Self {
        Self {
            tag: None,
            require_created: false,
            require_expires: false,
            max_validity: u64::MAX,
            require_authority: false,
            require_agent_coverage: false,
            allow_kid_keyid: true,
            ..Self::web_bot_auth()
        }
    }
}
