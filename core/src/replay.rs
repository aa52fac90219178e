//! Replay protection (ARCHITECTURE §2, step 6): the host keeps the nonce store, core
//! decides.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::policy::Policy;
use crate::reason::Reason;
use crate::verdict::{Rejected, Verdict, Verified};

/// Where a host remembers nonces until their signature expires.
pub trait NonceStore {
    /// Record `key` until `expires_at`; `false` if it was already present and unexpired.
    fn insert_if_absent(&mut self, key: &str, expires_at: u64, now: u64) -> bool;
}

/// Turn a verified verdict into [`Reason::Replay`] when the nonces of all its verified
/// signatures were already seen.
///
/// Each verified signature's nonce is remembered per (agent, keyid) until `expires +
/// clock_skew`, after which the signature itself is no longer accepted. A signature whose
/// nonce was seen is discarded with [`Reason::Replay`] (each signature stands on its own,
/// draft-ietf-webbotauth-httpsig-protocol §4.3); the verdict stays verified while another
/// remains. Signatures without a nonce pass unchanged (a policy that needs nonces sets
/// [`Policy::require_nonce`]).
pub fn check_replay(verdict: Verdict, store: &mut dyn NonceStore, policy: &Policy, now: u64) -> Verdict {
    let Verdict::Verified(mut first) = verdict else {
        return verdict;
    };
    let also = core::mem::take(&mut first.also);
    let mut discarded = core::mem::take(&mut first.discarded);
    // One signer's nonce on two signatures of this request is not a replay of another request.
    let mut seen: Vec<String> = Vec::new();
    let outcomes = core::iter::once(first)
        .chain(also)
        .map(|v| {
            if fresh(&v, store, &mut seen, policy, now) {
                Ok(v)
            } else {
                Err(Rejected { reason: Reason::Replay, label: Some(v.label), agent: v.agent, keyid: Some(v.keyid) })
            }
        })
        .collect();
    // The same folding as verification's; nothing fresh left: the first replay is the verdict.
    match crate::verify::fold(outcomes) {
        Verdict::Verified(mut v) => {
            discarded.append(&mut v.discarded);
            v.discarded = discarded;
            Verdict::Verified(v)
        }
        replayed => replayed,
    }
}

/// Record `v`'s nonce; `false` when it was already there before this request.
fn fresh(v: &Verified, store: &mut dyn NonceStore, seen: &mut Vec<String>, policy: &Policy, now: u64) -> bool {
    let Some(nonce) = v.nonce.as_deref() else {
        return true;
    };
    let until = v
        .expires
        .or_else(|| v.created.map(|c| c.saturating_add(policy.max_validity)))
        .unwrap_or(now.saturating_add(policy.max_validity.min(86_400)))
        .saturating_add(policy.clock_skew);
    let key = nonce_key(v.agent.as_deref().unwrap_or(""), &v.keyid, nonce);
    if seen.contains(&key) {
        return true;
    }
    let fresh = store.insert_if_absent(&key, until, now);
    seen.push(key);
    fresh
}

/// The store key of a nonce: agent, keyid and nonce separated by spaces (none can contain
/// a space: all are sf-strings or URIs from checked fields).
pub fn nonce_key(agent: &str, keyid: &str, nonce: &str) -> String {
    let mut k = String::with_capacity(agent.len() + keyid.len() + nonce.len() + 2);
    k.push_str(agent);
    k.push(' ');
    k.push_str(keyid);
    k.push(' ');
    k.push_str(nonce);
    k
}

/// A bounded in-memory store: expired entries are dropped first; when full, the entry
/// closest to expiry is evicted (bounded memory beats unbounded growth under attack).
#[derive(Clone, Debug)]
pub struct MemoryNonceStore {
    entries: BTreeMap<String, u64>,
    capacity: usize,
}

impl MemoryNonceStore {
    /// A store that holds at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        Self { entries: BTreeMap::new(), capacity: capacity.max(1) }
    }

    /// Number of remembered nonces.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl NonceStore for MemoryNonceStore {
    fn insert_if_absent(&mut self, key: &str, expires_at: u64, now: u64) -> bool {
        if let Some(&until) = self.entries.get(key) {
            if until >= now {
                return false;
            }
        }
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, until| *until >= now);
        }
        if self.entries.len() >= self.capacity {
            let oldest = self.entries.iter().min_by_key(|(_, until)| **until).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(key.into(), expires_at);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verified;

    fn verified(nonce: Option<&str>) -> Verdict {
        Verdict::Verified(Verified {
            agent: Some("https://a.test".into()),
            claimed_agent: None,
            keyid: "k".into(),
            label: "sig1".into(),
            created: Some(100),
            expires: Some(200),
            nonce: nonce.map(String::from),
            ..Verified::default()
        })
    }

    fn two(first: &str, second: &str) -> Verdict {
        let mut v = match verified(Some(first)) {
            Verdict::Verified(v) => v,
            _ => unreachable!(),
        };
        let mut other = v.clone();
        other.label = "sig2".into();
        other.keyid = "k2".into();
        other.nonce = Some(second.into());
        v.also.push(other);
        Verdict::Verified(v)
    }

    #[test]
    fn second_use_is_replay_until_expiry() {
        let policy = Policy::web_bot_auth();
        let mut store = MemoryNonceStore::new(16);
        assert!(check_replay(verified(Some("n1")), &mut store, &policy, 150).is_verified());
        assert_eq!(check_replay(verified(Some("n1")), &mut store, &policy, 151).reason(), Some(Reason::Replay));
        assert!(check_replay(verified(Some("n2")), &mut store, &policy, 151).is_verified());
        assert!(check_replay(verified(None), &mut store, &policy, 151).is_verified());
        assert!(check_replay(verified(None), &mut store, &policy, 151).is_verified());
        // After expires + skew the entry is stale (the signature itself would be expired).
        assert!(check_replay(verified(Some("n1")), &mut store, &policy, 261).is_verified());
    }

    #[test]
    fn each_signature_is_checked_and_the_request_is_a_replay_only_when_none_is_fresh() {
        let policy = Policy::web_bot_auth();
        let mut store = MemoryNonceStore::new(16);
        assert!(check_replay(two("a1", "b1"), &mut store, &policy, 150).is_verified());
        // The first signature is replayed under a fresh second one: the second is reported.
        let Verdict::Verified(v) = check_replay(two("a1", "b2"), &mut store, &policy, 151) else {
            panic!("b2 is fresh")
        };
        assert_eq!((v.label.as_str(), v.also.len()), ("sig2", 0));
        assert_eq!(
            v.discarded.iter().map(|r| (r.label.as_deref(), r.reason)).collect::<Vec<_>>(),
            [(Some("sig1"), Reason::Replay)]
        );
        // Both seen: a replay, reported for the first signature.
        let replayed = check_replay(two("a1", "b2"), &mut store, &policy, 152);
        match replayed {
            Verdict::Rejected(r) => assert_eq!((r.reason, r.label.as_deref()), (Reason::Replay, Some("sig1"))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bounded() {
        let mut store = MemoryNonceStore::new(2);
        assert!(store.insert_if_absent("a", 10, 0));
        assert!(store.insert_if_absent("b", 20, 0));
        assert!(store.insert_if_absent("c", 30, 0));
        assert_eq!(store.len(), 2);
        assert!(store.insert_if_absent("a", 10, 0), "evicted entry is forgotten");
        assert!(!store.insert_if_absent("c", 30, 0));
    }
}
