//! The replay cache in host shared data (ARCHITECTURE §6), per node: core decides
//! ([`botauth_core::check_replay`]), this module remembers.
//!
//! Nonces are spread over [`SHARDS`] shared-data entries, each a bounded list of
//! `"<expires> <key>\n"` lines. Every update is a compare-and-swap on the shard's `cas`, so
//! two workers racing with the same nonce cannot both win. Shared data cannot atomically
//! create a missing key, so `on_configure` creates every shard first ([`prepare`]).

/// Number of shards per namespace.
pub const SHARDS: u64 = 64;

/// The shared-data key of the shard holding `key`.
pub fn shard_key(namespace: &str, key: &str) -> String {
    // FNV-1a: stable across VMs and workers, no dependency.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    shard_name(namespace, hash % SHARDS)
}

/// `<namespace>/replay.<i>`: on Kong (ngx_wasm_module) the part before `/` names the shared
/// memory zone (`nginx_wasm_shm_kv_<namespace>` in kong.conf); Envoy takes the key as is.
fn shard_name(namespace: &str, index: u64) -> String {
    format!("{namespace}/replay.{index}")
}

/// The shard after recording `key` until `expires`, or `None` when `key` is already there
/// and unexpired (a replay). Expired lines are dropped; a full shard drops the line that
/// expires first (bounded memory beats unbounded growth under attack).
pub fn insert(shard: &str, key: &str, expires: u64, now: u64, per_shard: usize) -> Option<String> {
    let mut live: Vec<(u64, &str)> = Vec::new();
    for line in shard.lines() {
        let Some((until, k)) = line.split_once(' ') else { continue };
        let Ok(until) = until.parse::<u64>() else { continue };
        if until < now {
            continue;
        }
        if k == key {
            return None;
        }
        live.push((until, k));
    }
    while live.len() >= per_shard.max(1) {
        let Some(first) = live.iter().enumerate().min_by_key(|(_, (until, _))| *until).map(|(i, _)| i) else { break };
        live.swap_remove(first);
    }
    let mut out = String::with_capacity(shard.len() + key.len() + 24);
    for (until, k) in live.iter().copied().chain([(expires, key)]) {
        out.push_str(&until.to_string());
        out.push(' ');
        out.push_str(k);
        out.push('\n');
    }
    Some(out)
}

/// Create every shard of `namespace` that does not exist yet (see the module docs).
#[cfg(target_arch = "wasm32")]
pub fn prepare(namespace: &str) {
    use proxy_wasm::hostcalls::{get_shared_data, set_shared_data};
    for i in 0..SHARDS {
        let key = shard_name(namespace, i);
        if matches!(get_shared_data(&key), Ok((None, None))) {
            let _ = set_shared_data(&key, Some(b"\n"), None);
        }
    }
}

/// A [`botauth_core::NonceStore`] over proxy-wasm shared data.
#[cfg(target_arch = "wasm32")]
pub struct SharedStore<'a> {
    /// Key prefix.
    pub namespace: &'a str,
    /// Lines per shard.
    pub per_shard: usize,
}

#[cfg(target_arch = "wasm32")]
impl botauth_core::NonceStore for SharedStore<'_> {
    fn insert_if_absent(&mut self, key: &str, expires_at: u64, now: u64) -> bool {
        use proxy_wasm::hostcalls::{get_shared_data, set_shared_data};
        use proxy_wasm::types::Status;
        let shard = shard_key(self.namespace, key);
        for _ in 0..16 {
            let Ok((value, cas)) = get_shared_data(&shard) else { break };
            let current = value.as_deref().and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("");
            let Some(next) = insert(current, key, expires_at, now, self.per_shard) else { return false };
            match set_shared_data(&shard, Some(next.as_bytes()), cas) {
                Ok(()) => return true,
                Err(Status::CasMismatch) => continue,
                Err(_) => break,
            }
        }
        // The host refused or the shard stayed contended: log and accept (the signature
        // itself verified; an unavailable cache must not take all signed traffic down).
        proxy_wasm::hostcalls::log(proxy_wasm::types::LogLevel::Warn, "botauth: replay cache unavailable").ok();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_detects_replay_and_expires() {
        let s = insert("", "a k n1", 200, 100, 4).unwrap();
        assert_eq!(s, "200 a k n1\n");
        assert_eq!(insert(&s, "a k n1", 200, 150, 4), None);
        let s2 = insert(&s, "a k n2", 300, 150, 4).unwrap();
        assert_eq!(s2, "200 a k n1\n300 a k n2\n");
        // After its expiry n1 may be used again, and its stale line is dropped.
        assert_eq!(insert(&s2, "a k n1", 400, 201, 4).unwrap(), "300 a k n2\n400 a k n1\n");
        // Garbage lines are ignored.
        assert_eq!(insert("junk\nx y\n", "k", 5, 1, 4).unwrap(), "5 k\n");
    }

    #[test]
    fn bounded_per_shard() {
        let mut s = String::new();
        for (i, until) in [50_u64, 10, 30].iter().enumerate() {
            s = insert(&s, &format!("k{i}"), *until, 0, 2).unwrap();
        }
        assert_eq!(s.lines().count(), 2);
        assert!(!s.contains("k1"), "the entry expiring first is evicted: {s}");
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_key("ns", "abc"), shard_key("ns", "abc"));
        let distinct: std::collections::BTreeSet<_> = (0..1000).map(|i| shard_key("ns", &format!("n{i}"))).collect();
        assert_eq!(distinct.len() as u64, SHARDS);
    }
}
