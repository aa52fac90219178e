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

/// A shard after recording a nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// The shard's new value.
    pub shard: String,
    /// Lines dropped to stay within the shard's capacity (not counting expired ones).
    pub evicted: usize,
    /// Lines in the new value minus lines in the old one.
    pub delta: i64,
}

/// The shard after recording `key` until `expires`, or `None` when `key` is already there
/// and unexpired (a replay). Expired lines are dropped; a full shard drops the line that
/// expires first, the oldest of those that expire in the same second (bounded memory beats
/// unbounded growth under attack, and the most recent nonces are the ones kept).
pub fn insert(shard: &str, key: &str, expires: u64, now: u64, per_shard: usize) -> Option<Inserted> {
    let mut live: Vec<(u64, &str)> = Vec::new();
    let mut before = 0usize;
    for line in shard.lines() {
        if line.is_empty() {
            continue;
        }
        before += 1;
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
    let mut evicted = 0;
    while live.len() >= per_shard.max(1) {
        // The first of the lines expiring first: lines are kept in insertion order.
        let Some(first) = live.iter().enumerate().min_by_key(|(_, (until, _))| *until).map(|(i, _)| i) else { break };
        live.remove(first);
        evicted += 1;
    }
    let mut out = String::with_capacity(shard.len() + key.len() + 24);
    for (until, k) in live.iter().copied().chain([(expires, key)]) {
        out.push_str(&until.to_string());
        out.push(' ');
        out.push_str(k);
        out.push('\n');
    }
    let after = live.len() + 1;
    let delta = i64::try_from(after).unwrap_or(i64::MAX).saturating_sub(i64::try_from(before).unwrap_or(i64::MAX));
    Some(Inserted { shard: out, evicted, delta })
}

/// Host shared data as the replay cache uses it (proxy-wasm `get_shared_data` /
/// `set_shared_data`): values with a compare-and-swap token.
pub trait SharedData {
    /// The value and its CAS (`(None, None)` when absent); `None` when the host refuses.
    fn get(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)>;
    /// Write `value` if `cas` still matches (`None`: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError>;
}

/// Why a shared-data write failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetError {
    /// Another writer changed the value since it was read: read again.
    CasMismatch,
    /// The host refused.
    Refused,
}

/// Create every shard of `namespace` that does not exist yet (see the module docs).
pub fn prepare(data: &impl SharedData, namespace: &str) {
    for i in 0..SHARDS {
        let key = shard_name(namespace, i);
        if matches!(data.get(&key), Some((None, None))) {
            let _ = data.set(&key, b"\n", None);
        }
    }
}

/// The proxy-wasm host's shared data.
#[cfg(target_arch = "wasm32")]
pub struct HostData;

#[cfg(target_arch = "wasm32")]
impl SharedData for HostData {
    fn get(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        proxy_wasm::hostcalls::get_shared_data(key).ok()
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        match proxy_wasm::hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(proxy_wasm::types::Status::CasMismatch) => Err(SetError::CasMismatch),
            Err(_) => Err(SetError::Refused),
        }
    }
}

/// A [`botauth_core::NonceStore`] over shared data, with what its writes did (for the
/// `replay.entries` gauge and the `replay.evicted` counter).
pub struct SharedStore<'a, D: SharedData> {
    /// Key prefix.
    pub namespace: &'a str,
    /// Lines per shard.
    pub per_shard: usize,
    /// The shared data.
    pub data: &'a D,
    /// Lines added (negative: removed) by this store's writes.
    pub entries_delta: i64,
    /// Lines evicted by this store's writes to stay within capacity.
    pub evicted: u64,
    /// A write failed (host refusal or lasting contention): the nonce was accepted unrecorded.
    pub unavailable: bool,
}

impl<'a, D: SharedData> SharedStore<'a, D> {
    /// A store of `capacity` nonces in `namespace`.
    pub fn new(data: &'a D, namespace: &'a str, capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(usize::try_from(SHARDS).unwrap_or(64));
        Self { namespace, per_shard, data, entries_delta: 0, evicted: 0, unavailable: false }
    }
}

impl<D: SharedData> botauth_core::NonceStore for SharedStore<'_, D> {
    fn insert_if_absent(&mut self, key: &str, expires_at: u64, now: u64) -> bool {
        let shard = shard_key(self.namespace, key);
        for _ in 0..16 {
            let Some((value, cas)) = self.data.get(&shard) else { break };
            let current = value.as_deref().and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("");
            let Some(next) = insert(current, key, expires_at, now, self.per_shard) else { return false };
            match self.data.set(&shard, next.shard.as_bytes(), cas) {
                Ok(()) => {
                    self.entries_delta = self.entries_delta.saturating_add(next.delta);
                    self.evicted = self.evicted.saturating_add(u64::try_from(next.evicted).unwrap_or(u64::MAX));
                    return true;
                }
                Err(SetError::CasMismatch) => continue,
                Err(SetError::Refused) => break,
            }
        }
        // The host refused or the shard stayed contended: accept (the signature itself
        // verified; an unavailable cache must not take all signed traffic down); the caller logs.
        self.unavailable = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botauth_core::NonceStore as _;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn put(shard: &str, key: &str, expires: u64, now: u64, per_shard: usize) -> Option<String> {
        insert(shard, key, expires, now, per_shard).map(|i| i.shard)
    }

    #[test]
    fn insert_detects_replay_and_expires() {
        let s = put("", "a k n1", 200, 100, 4).unwrap();
        assert_eq!(s, "200 a k n1\n");
        assert_eq!(insert(&s, "a k n1", 200, 150, 4), None);
        let s2 = put(&s, "a k n2", 300, 150, 4).unwrap();
        assert_eq!(s2, "200 a k n1\n300 a k n2\n");
        // After its expiry n1 may be used again, and its stale line is dropped.
        let again = insert(&s2, "a k n1", 400, 201, 4).unwrap();
        assert_eq!((again.shard.as_str(), again.evicted, again.delta), ("300 a k n2\n400 a k n1\n", 0, 0));
        // Garbage lines are ignored (and dropped).
        let cleaned = insert("junk\nx y\n", "k", 5, 1, 4).unwrap();
        assert_eq!((cleaned.shard.as_str(), cleaned.delta), ("5 k\n", -1));
        assert_eq!(insert("\n", "k", 5, 1, 4).map(|i| i.delta), Some(1), "a prepared shard is empty");
    }

    #[test]
    fn bounded_per_shard() {
        let mut s = String::new();
        for (i, until) in [50_u64, 10, 30].iter().enumerate() {
            s = put(&s, &format!("k{i}"), *until, 0, 2).unwrap();
        }
        assert_eq!(s.lines().count(), 2);
        assert!(!s.contains("k1"), "the entry expiring first is evicted: {s}");
    }

    #[test]
    fn a_full_shard_evicts_the_oldest_of_equal_expiry_first() {
        // A flood: every nonce expires in the same second. The oldest must go, never a
        // recent one (an order-changing removal once evicted the newest-but-one).
        let mut s = String::new();
        for i in 0..10 {
            let next = insert(&s, &format!("n{i}"), 500, 100, 4).unwrap();
            assert_eq!(next.evicted, usize::from(i >= 4));
            s = next.shard;
        }
        assert_eq!(s, "500 n6\n500 n7\n500 n8\n500 n9\n");
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_key("ns", "abc"), shard_key("ns", "abc"));
        let distinct: std::collections::BTreeSet<_> = (0..1000).map(|i| shard_key("ns", &format!("n{i}"))).collect();
        assert_eq!(distinct.len() as u64, SHARDS);
    }

    /// Shared data in memory, with the host's CAS semantics.
    #[derive(Default)]
    struct Memory {
        map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next_cas: std::cell::Cell<u32>,
    }

    impl SharedData for Memory {
        fn get(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
            Some(self.map.borrow().get(key).map_or((None, None), |(v, c)| (Some(v.clone()), Some(*c))))
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
            let mut map = self.map.borrow_mut();
            if let (Some(want), Some((_, have))) = (cas, map.get(key)) {
                if want != *have {
                    return Err(SetError::CasMismatch);
                }
            }
            self.next_cas.set(self.next_cas.get() + 1);
            map.insert(key.into(), (value.to_vec(), self.next_cas.get()));
            Ok(())
        }
    }

    impl Memory {
        fn lines(&self, shard: &str) -> Vec<String> {
            let map = self.map.borrow();
            let v = map.get(shard).map(|(v, _)| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            v.lines().filter(|l| !l.is_empty()).map(String::from).collect()
        }
    }

    /// One million distinct nonces through the filter's store (the flood `envoy_faults.rs`
    /// sends at a smaller scale through a real Envoy: signing and verifying a million
    /// requests there takes too long for a test run). A thousand nonces a second, all valid
    /// for two minutes: memory never exceeds the capacity, the oldest nonces are evicted,
    /// and the most recent ones of every shard are still caught as replays.
    #[test]
    fn a_million_distinct_nonces_stay_within_capacity_and_recent_replays_are_caught() {
        const CAPACITY: usize = 1024;
        const FLOOD: u64 = 1_000_000;
        let data = Memory::default();
        prepare(&data, "flood");
        let mut store = SharedStore::new(&data, "flood", CAPACITY);
        let per_shard = store.per_shard;
        assert_eq!(per_shard, 16);
        let key = |i: u64| botauth_core::replay::nonce_key("https://agent.test", "kid", &format!("nonce-{i}"));
        let mut recent: HashMap<String, Vec<u64>> = HashMap::new();
        let mut entries = 0i64;
        let mut largest = 0usize;
        for i in 0..FLOOD {
            let now = 1_000_000 + i / 1000;
            assert!(store.insert_if_absent(&key(i), now + 120, now), "nonce {i} is new");
            let shard = shard_key("flood", &key(i));
            let kept = recent.entry(shard).or_default();
            kept.push(i);
            if kept.len() > per_shard {
                kept.remove(0);
            }
            if i % 9973 == 0 {
                largest = largest.max(data.map.borrow().values().map(|(v, _)| v.len()).max().unwrap_or(0));
            }
            entries = store.entries_delta;
        }
        assert!(!store.unavailable);
        let now = 1_000_000 + FLOOD / 1000;
        let lines: usize = (0..SHARDS).map(|i| data.lines(&shard_name("flood", i)).len()).sum();
        assert_eq!(lines, CAPACITY, "every shard full, none over");
        assert_eq!(entries, i64::try_from(CAPACITY).unwrap(), "the entries gauge follows the writes");
        assert_eq!(store.evicted, FLOOD - CAPACITY as u64, "one eviction per nonce beyond capacity");
        assert!(largest < per_shard * 80, "a shard stays small: {largest} bytes");
        let bytes: usize = data.map.borrow().values().map(|(v, _)| v.len()).sum();
        assert!(bytes < CAPACITY * 80, "the whole cache: {bytes} bytes");
        // The most recent nonces of every shard are caught.
        assert_eq!(recent.len() as u64, SHARDS);
        for kept in recent.values() {
            assert_eq!(kept.len(), per_shard);
            for &i in kept {
                assert!(!store.insert_if_absent(&key(i), now + 120, now), "a recent nonce ({i}) is a replay");
            }
        }
        // The oldest were evicted: accepted again (and recorded again).
        for i in 0..100 {
            assert!(store.insert_if_absent(&key(i), now + 120, now), "nonce {i} was evicted long ago");
        }
    }
}
