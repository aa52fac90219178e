//! The outcome of [`verify`](crate::verify): what the host acts on.

use alloc::string::String;
use alloc::vec::Vec;

use crate::reason::Reason;

/// A verified Web Bot Auth signature: the first that verified, in `Signature-Input` order,
/// with the request's other signatures (draft-ietf-webbotauth-httpsig-protocol §4.3: each is
/// verified on its own, against its own components and key).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// The agent the key belongs to, canonical (RFC 3986 §6.2.2–6.2.3): set only when the
    /// key came from that agent's keys (pinned for it, or from its directory). `None` for a
    /// key trusted for any agent (`*`).
    pub agent: Option<String>,
    /// The covered `Signature-Agent` of a signature verified with a key trusted for any
    /// agent: what the signer claims, not bound to the key. `None` whenever `agent` is set.
    pub claimed_agent: Option<String>,
    /// The `keyid` (JWK thumbprint, RFC 7638).
    pub keyid: String,
    /// The label of the verified signature.
    pub label: String,
    /// `created`, unix seconds.
    pub created: Option<u64>,
    /// `expires`, unix seconds.
    pub expires: Option<u64>,
    /// `nonce`, if sent.
    pub nonce: Option<String>,
    /// The request's other signatures that verified too, in `Signature-Input` order (their
    /// own `also` and `discarded` are empty).
    pub also: Vec<Verified>,
    /// The request's signatures under the policy (tag or label) that did not verify, with
    /// why: an intermediary's key the verifier does not know, an inner signature the
    /// intermediary's change invalidated.
    pub discarded: Vec<Rejected>,
}

impl Verified {
    /// This signature and the others that verified, in `Signature-Input` order.
    pub fn signatures(&self) -> impl Iterator<Item = &Verified> {
        core::iter::once(self).chain(self.also.iter())
    }
}

/// A rejected signed request, with what was known when it was rejected (for logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The exact violation.
    pub reason: Reason,
    /// The label of the signature being checked, once chosen.
    pub label: Option<String>,
    /// The agent, once known.
    pub agent: Option<String>,
    /// The keyid, once known.
    pub keyid: Option<String>,
}

impl Rejected {
    /// A rejection with nothing else known.
    pub fn new(reason: Reason) -> Self {
        Self { reason, label: None, agent: None, keyid: None }
    }
}

/// The verdict on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Neither `Signature` nor `Signature-Input`: ordinary traffic, untouched.
    Unsigned,
    /// A valid Web Bot Auth signature.
    Verified(Verified),
    /// A signed request that fails.
    Rejected(Rejected),
}

impl Verdict {
    /// `unsigned`, `verified`, or the rejection's reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::Verified(_) => "verified",
            Self::Rejected(r) => r.reason.code(),
        }
    }

    /// The reason, when rejected.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Self::Rejected(r) => Some(r.reason),
            _ => None,
        }
    }

    /// Whether the request carried a valid signature.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified(_))
    }
}

impl From<Reason> for Verdict {
    fn from(reason: Reason) -> Self {
        Self::Rejected(Rejected::new(reason))
    }
}
