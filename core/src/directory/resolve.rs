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
use crate::components::Message;
use crate::keys::Keyring;
use crate::policy::Policy;
use crate::reason::Reason;
use crate::request::Request;
use crate::signature_agent;
use crate::verdict::{Rejected, Verdict};
use crate::verify::{each_signature, fold, Signatures};

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
    /// Act on the verdict. `refresh`: a directory the host fetches after the response went
    /// out (or inline when it cannot): a stale one, or the directory a signature wanted
    /// beside another that verified.
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
/// - each signature is judged on its own: when one verified, another's fetch is returned as
///   `refresh`, after the answer;
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
    // Each signature stands on its own (draft-ietf-webbotauth-httpsig-protocol §4.3): one
    // that wants a key of an allow-listed agent asks for that agent's fetch, first; beside a
    // signature that verified, the fetch waits until after the answer.
    let mut after = None;
    let verdict = match each_signature(&Message::request(request), &keys, policy, now, &mut None) {
        Signatures::Unsigned => Verdict::Unsigned,
        Signatures::Malformed(reason) => reason.into(),
        Signatures::Each(mut outcomes) => {
            let any_verified = outcomes.iter().any(Result::is_ok);
            for rejected in outcomes.iter_mut().filter_map(|o| o.as_mut().err()) {
                match directory_rule(rejected, pinned, directories, entries, now) {
                    Some(fetch) if !any_verified => return Step::Fetch(fetch),
                    Some(fetch) => after = after.or(Some(fetch)),
                    None => {}
                }
            }
            fold(outcomes)
        }
    };
    let refresh = after.or_else(|| {
        claimed
            .into_iter()
            .find(|a| entries.get(a.agent.as_str()).is_some_and(|e| e.usable_keys(now).is_some() && e.refresh_due(now)))
            .map(|agent| Fetch { agent, reason: FetchReason::Stale })
    });
    Step::Done { verdict, refresh }
}

/// A signature rejected for want of a key (`unknown_key`, `key_expired`,
/// `key_not_yet_valid`): fetch its agent's directory when allowed; else an allow-listed
/// agent with no usable keys is `directory_unavailable`, and an agent with neither pinned
/// keys nor an allow-list entry `agent_not_allowed`.
fn directory_rule<'d>(
    rejected: &mut Rejected,
    pinned: &Keyring,
    directories: &'d Directories,
    entries: &Entries,
    now: u64,
) -> Option<Fetch<'d>> {
    let wants_key = matches!(rejected.reason, Reason::UnknownKey | Reason::KeyExpired | Reason::KeyNotYetValid);
    let agent = rejected.agent.as_deref().filter(|_| wants_key)?;
    match directories.get(agent) {
        Some(a) => {
            let entry = entries.get(a.agent.as_str());
            let usable = entry.is_some_and(|e| e.usable_keys(now).is_some());
            if entry.is_none_or(|e| e.may_fetch(now)) {
                let reason = if usable { FetchReason::UnknownKeyid } else { FetchReason::NoKeys };
                return Some(Fetch { agent: a, reason });
            }
            if !usable && !pinned.has_agent(agent) {
                rejected.reason = Reason::DirectoryUnavailable;
            }
        }
        None if !pinned.has_agent(agent) && rejected.reason == Reason::UnknownKey => {
            rejected.reason = Reason::AgentNotAllowed;
        }
        None => {}
    }
    None
}
