//! Replay protection (ARCHITECTURE §2 step 6): core decides, the nonces live in the KV Store
//! `botauth_nonces`. Only the POP that talks to the origin checks (the shield, or the only
//! POP without shielding): that is where all origin-bound requests meet.
//!
//! A nonce is inserted with `InsertMode::Add`, which fails when the key exists; the item's
//! TTL is the remaining validity of the signature. KV Store writes are eventually
//! consistent across POPs, so this stops replays within a POP at once and across POPs
//! within the store's propagation time.

use std::time::Duration;

use botauth_core::NonceStore;
use fastly::kv_store::{InsertMode, KVStore, KVStoreError};
use sha2::{Digest as _, Sha256};

use crate::config::NONCE_STORE;

/// The nonce store, if the KV Store is linked to the service.
pub struct KvNonces {
    store: KVStore,
}

impl KvNonces {
    /// Open [`NONCE_STORE`]; `None` (logged by the caller) when it is not linked.
    pub fn open() -> Result<Option<Self>, String> {
        KVStore::open(NONCE_STORE)
            .map(|s| s.map(|store| Self { store }))
            .map_err(|e| format!("KV store `{NONCE_STORE}` cannot be opened: {e}"))
    }
}

impl NonceStore for KvNonces {
    fn insert_if_absent(&mut self, key: &str, expires_at: u64, now: u64) -> bool {
        let ttl = Duration::from_secs(expires_at.saturating_sub(now).max(60));
        let result = self.store.build_insert().mode(InsertMode::Add).time_to_live(ttl).execute(&item_key(key), "");
        match result {
            Ok(()) => true,
            Err(KVStoreError::ItemPreconditionFailed) => false,
            Err(e) => {
                // Availability over a secondary defence: the signature itself was valid.
                crate::log::warning(&format!("nonce not recorded in `{NONCE_STORE}`: {e}"));
                true
            }
        }
    }
}

/// KV keys have a restricted alphabet and length: store the SHA-256 of the nonce key.
fn item_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut s = String::from("nonce/");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_keys_are_fixed_length_hex() {
        let k = item_key("https://a.test keyid nonce-1");
        assert_eq!(k.len(), "nonce/".len() + 64);
        assert!(k.starts_with("nonce/"));
        assert_ne!(k, item_key("https://a.test keyid nonce-2"));
    }

    #[test]
    fn second_insert_of_a_nonce_is_refused() {
        // Runs under Viceroy with the KV store declared in fastly.toml.
        let Ok(Some(mut store)) = KvNonces::open() else { panic!("`{NONCE_STORE}` missing from fastly.toml") };
        assert!(store.insert_if_absent("agent key unit-test-nonce", 200, 100));
        assert!(!store.insert_if_absent("agent key unit-test-nonce", 200, 101));
        assert!(store.insert_if_absent("agent key other-nonce", 200, 101));
    }
}
