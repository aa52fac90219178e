//! Verification with live directories, sans I/O: core says when to fetch, the host fetches
//! and calls again. Every rule (when a cold agent fetches, when an unknown keyid may refetch
//! early, when an agent fails closed, which agents may be fetched at all) is here.
//!
//! ```text
//! loop {
//!     match verify_with_directories(&req, &pinned, &dirs, &entries, &policy, now) {
//!         Step::Fetch(f) => { /* fetch f.agent's directory, record(), store the entry */ }
//!         Step::Done { verdict, refresh } => { /* act; refresh stale agents after answering */ break }
//!     }
//! }
//! ```

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::allow_list::{AgentDirectory, Directories};
use super::entry::Entry;
use crate::keys::Keyring;
use crate::policy::Policy;
use crate::reason::Reason;
use crate::request::Request;
use crate::signature_agent;
use crate::verdict::Verdict;
use crate::verify::verify;

/// Entries the host has loaded, by canonical agent URI ([`AgentDirectory::agent`]).
pub type Entries = BTreeMap<String, Entry>;

/// Why a fetch is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchReason {
    /// The agent has no usable keys (never loaded, or past `stale_until`).
    NoKeys,
    /// The keyid is unknown among usable keys: an early refetch (at most one per
    /// `refetch_interval`), so a rotated-in key verifies before the TTL ends.
    UnknownKeyid,
    /// The keys are stale: refresh (after answering, where the host can).
    Stale,
}

impl FetchReason {
    /// Stable snake_case code, for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoKeys => "no_keys",
            Self::UnknownKeyid => "unknown_keyid",
            Self::Stale => "stale",
        }
    }
}

/// A directory fetch core asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch<'d> {
    /// The allow-list entry: URL, upstream, authority.
    pub agent: &'d AgentDirectory,
    /// Why.
    pub reason: FetchReason,
}

/// What the host does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<'d> {
    /// Fetch, [`record`](super::record) the result into the agent's entry, call again.
    Fetch(Fetch<'d>),
    /// Act on the verdict. `refresh`: a stale directory the host refreshes after the
    /// response went out (or inline when it cannot).
    Done {
        /// The verdict.
        verdict: Verdict,
        /// A refresh that is due.
        refresh: Option<Fetch<'d>>,
    },
}

/// The allow-listed agents a request names in `Signature-Agent` (both forms), so the host
/// loads only their entries. The field is only read here, never trusted, never a URL.
pub fn claimed_agents<'d, R: Request>(
    request: &R,
    directories: &'d Directories,
    policy: &Policy,
) -> Vec<&'d AgentDirectory> {
    let mut lines = Vec::new();
    request.field_lines("signature-agent", &mut lines);
    let joined = lines.join(&b", "[..]);
    if joined.is_empty() || joined.len() > policy.limits.max_signature_agent_len {
        return Vec::new();
    }
    let uris = signature_agent::parse(&joined).map(|sa| sa.agents()).unwrap_or_default();
    let mut found: Vec<&AgentDirectory> = Vec::new();
    for uri in uris.iter().take(policy.limits.max_signatures) {
        if let Some(a) = directories.find(uri) {
            if !found.iter().any(|f| f.agent == a.agent) {
                found.push(a);
            }
        }
    }
    found
}

/// Verify `request` with the `pinned` keys plus the usable directory keys of the agents it
/// names, and say whether a directory must be fetched first.
///
/// - a rejection for want of a key (`unknown_key`, `key_expired`, `key_not_yet_valid`) of
///   an allow-listed agent asks for a fetch when the agent has no usable keys (cold) or an
///   early refetch is allowed; if the agent still has no usable keys and may not fetch, the
///   verdict is `directory_unavailable` (503, this agent only);
/// - an agent with neither pinned keys nor an allow-list entry is `agent_not_allowed`, and
///   nothing is fetched for it;
/// - whatever the verdict, a stale directory of a named agent is returned for refresh.
pub fn verify_with_directories<'d, R: Request>(
    request: &R,
    pinned: &Keyring,
    directories: &'d Directories,
    entries: &Entries,
    policy: &Policy,
    now: u64,
) -> Step<'d> {
    let claimed = claimed_agents(request, directories, policy);
    let mut keys = pinned.clone();
    for a in &claimed {
        if let Some(usable) = entries.get(a.agent.as_str()).and_then(|e| e.usable_keys(now)) {
            for key in usable {
                keys.add_key(a.agent.as_str(), key.clone());
            }
        }
    }
    let mut verdict = verify(request, &keys, policy, now);
    if let Verdict::Rejected(r) = &mut verdict {
        let wants_key = matches!(r.reason, Reason::UnknownKey | Reason::KeyExpired | Reason::KeyNotYetValid);
        if let (true, Some(agent)) = (wants_key, r.agent.as_deref()) {
            match directories.get(agent) {
                Some(a) => {
                    let entry = entries.get(a.agent.as_str());
                    let usable = entry.is_some_and(|e| e.usable_keys(now).is_some());
                    let may_fetch = entry.is_none_or(|e| e.may_fetch(now));
                    if may_fetch {
                        let reason = if usable { FetchReason::UnknownKeyid } else { FetchReason::NoKeys };
                        return Step::Fetch(Fetch { agent: a, reason });
                    }
                    if !usable && !pinned.has_agent(agent) {
                        r.reason = Reason::DirectoryUnavailable;
                    }
                }
                None if !pinned.has_agent(agent) && r.reason == Reason::UnknownKey => {
                    r.reason = Reason::AgentNotAllowed;
                }
                None => {}
            }
        }
    }
    let refresh = claimed
        .into_iter()
        .find(|a| entries.get(a.agent.as_str()).is_some_and(|e| e.usable_keys(now).is_some() && e.refresh_due(now)))
        .map(|agent| Fetch { agent, reason: FetchReason::Stale });
    Step::Done { verdict, refresh }
}
