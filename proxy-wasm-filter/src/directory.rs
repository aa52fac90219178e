//! What the filter adds to core's directory rules (core/src/directory/): where an agent's
//! entry lives in host shared data, the fetch lease that lets one worker fetch for all,
//! the request a fetch sends, the host's answer as core's [`Fetched`], and when the root
//! context's tick starts a fetch. Every freshness, stale, negative-cache and SSRF rule is
//! core's; this module only schedules and stores.
//!
//! Shared data, per `directory_cache.namespace` and allow-listed agent (`<h>` hashes the
//! agent and its directory URL, so two plugin configurations that list the same directory
//! share its entry, and different ones never collide):
//!
//! - `<ns>/dir.<h>`: core's [`Entry::to_json`], published by whichever worker fetched;
//!   every worker re-parses it only when its CAS changes;
//! - `<ns>/dir.<h>.lease`: `"<until_ms> <holder>"` while a fetch is in flight, empty
//!   otherwise, taken with compare-and-swap so only one worker fetches a directory at a
//!   time. A lease expires by itself (`until_ms`) if its holder never answers.

use botauth_core::directory::{AgentDirectory, Entry, Fetched, TransportError, MEDIA_TYPE};
use botauth_core::HttpRequest;

/// `User-Agent` of directory fetches.
pub const USER_AGENT: &str = concat!("botauth-proxy-wasm/", env!("CARGO_PKG_VERSION"));

/// FNV-1a over `parts`, separated: stable across VMs, workers and builds.
fn fnv(parts: &[&str]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h = (h ^ 0x0a).wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The shared-data key of `agent`'s published entry.
pub fn entry_key(namespace: &str, agent: &AgentDirectory) -> String {
    format!("{namespace}/dir.{:016x}", fnv(&[agent.agent.as_str(), agent.directory.as_str()]))
}

/// The shared-data key of `agent`'s fetch lease.
pub fn lease_key(namespace: &str, agent: &AgentDirectory) -> String {
    format!("{}.lease", entry_key(namespace, agent))
}

/// Whether a lease value leaves the directory free to fetch at `now_ms` (empty, garbage,
/// or expired).
pub fn lease_free(value: &[u8], now_ms: u64) -> bool {
    let until = std::str::from_utf8(value).ok().and_then(|v| v.split(' ').next()).and_then(|u| u.parse::<u64>().ok());
    until.is_none_or(|until| until <= now_ms)
}

/// The lease value a holder writes.
pub fn lease_value(until_ms: u64, holder: u64) -> String {
    format!("{until_ms} {holder}")
}

/// A per-worker number for leases and jitter, from the clock at configuration and the
/// root context id.
pub fn worker_seed(now_ns: u64, root_context_id: u32) -> u64 {
    fnv(&[&now_ns.to_string(), &root_context_id.to_string()])
}

/// How long after freshness ends this worker waits before refreshing: up to a tenth of the
/// lifetime, at most 60 s and at most half the stale window, so that the gateways of a
/// fleet do not all fetch in the same second (the drafts: refresh with jitter).
pub fn jitter(seed: u64, entry: &Entry) -> u64 {
    let ttl = entry.fresh_until.saturating_sub(entry.fetched_at);
    let stale = entry.stale_until.saturating_sub(entry.fresh_until);
    let bound = (ttl / 10).min(60).min(stale / 2);
    if bound == 0 {
        return 0;
    }
    fnv(&[&seed.to_string(), &entry.fetched_at.to_string()]) % (bound + 1)
}

/// Whether the tick starts a fetch of an agent now. `entry`: what this worker knows (from
/// shared data); `refresh_at`: freshness end plus [`jitter`]; `prefetch`: fetch cold
/// directories without waiting for a request.
pub fn tick_fetch(entry: Option<&Entry>, refresh_at: u64, prefetch: bool, now: u64) -> bool {
    match entry {
        None => prefetch,
        // Cold (never loaded): fetched at start-up when prefetching, retried as core's
        // negative caching allows.
        Some(e) if !e.loaded => prefetch && e.may_fetch(now),
        // Loaded: refreshed once core says a refresh is due, after this worker's jitter.
        Some(e) => e.refresh_due(now) && now >= refresh_at,
    }
}

/// The request headers of a fetch of `agent`'s directory (`If-None-Match` when the entry
/// has keys to revalidate). `:scheme` makes Kong use TLS for `https` directories; Envoy
/// takes TLS from the cluster.
pub fn fetch_headers(agent: &AgentDirectory, entry: Option<&Entry>) -> Vec<(String, String)> {
    let mut h = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), agent.path().to_string()),
        (":authority".to_string(), agent.authority().to_string()),
        (":scheme".to_string(), agent.directory.scheme().to_string()),
        ("accept".to_string(), format!("{MEDIA_TYPE}, application/jwk-set+json;q=0.9, application/json;q=0.8")),
        ("user-agent".to_string(), USER_AGENT.to_string()),
    ];
    if let Some(etag) = entry.and_then(Entry::if_none_match) {
        h.push(("if-none-match".to_string(), etag.to_string()));
    }
    h
}

/// What the host handed back for a fetch, before core reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A whole response.
    Response {
        /// Status code.
        status: u16,
        /// Its header fields (method and target are placeholders).
        fields: HttpRequest,
        /// The body.
        body: Vec<u8>,
    },
    /// No whole response.
    Failed(TransportError),
}

impl Answer {
    /// Core's view of it.
    pub fn fetched(&self) -> Fetched<'_> {
        match self {
            Self::Response { status, fields, body } => Fetched::Response { status: *status, fields, body },
            Self::Failed(e) => Fetched::Failed(*e),
        }
    }
}

/// Build the [`Answer`] from the host's response headers (pseudo-headers included) and
/// body. `body`: `None` when its size was over `max_body` (then not read at all).
/// `elapsed_ms` against `timeout_ms` tells a timeout from other failures: Envoy answers a
/// timed-out call itself with a 504, and a reset with no headers at all.
pub fn answer(headers: Vec<(String, Vec<u8>)>, body: Option<Vec<u8>>, elapsed_ms: u64, timeout_ms: u64) -> Answer {
    let timed_out = elapsed_ms.saturating_add(50) >= timeout_ms;
    let mut status = None;
    let mut fields = HttpRequest::new("GET", "https", "", "/");
    for (name, value) in headers {
        if name == ":status" {
            status = std::str::from_utf8(&value).ok().and_then(|s| s.trim().parse::<u16>().ok());
        } else if !name.starts_with(':') {
            fields.push_header(&name.to_ascii_lowercase(), value);
        }
    }
    match (status, body) {
        (None, _) if timed_out => Answer::Failed(TransportError::Timeout),
        (None, _) => Answer::Failed(TransportError::Connect),
        (Some(504), _) if timed_out => Answer::Failed(TransportError::Timeout),
        (Some(_), None) => Answer::Failed(TransportError::BodyTooLarge),
        (Some(status), Some(body)) => Answer::Response { status, fields, body },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botauth_core::directory::{Directories, State};
    use botauth_core::Request as _;

    fn dirs() -> Directories {
        Directories::from_json(
            br#"{"agents":[{"agent":"https://a.test","upstream":"dir_a"},
                {"agent":"https://b.test","directory":"http://127.0.0.1:9/keys.json","upstream":"dir_b"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn keys_are_per_agent_and_directory() {
        let d = dirs();
        let (a, b) = (&d.agents[0], &d.agents[1]);
        assert_eq!(entry_key("ns", a), entry_key("ns", a));
        assert_ne!(entry_key("ns", a), entry_key("ns", b));
        assert_ne!(entry_key("ns", a), entry_key("other", a));
        assert!(entry_key("ns", a).starts_with("ns/dir."), "Kong: the zone is named before the slash");
        assert_eq!(lease_key("ns", a), format!("{}.lease", entry_key("ns", a)));
    }

    #[test]
    fn leases() {
        assert!(lease_free(b"", 10));
        assert!(lease_free(b"\n", 10));
        assert!(lease_free(b"junk", 10));
        assert!(lease_free(lease_value(10, 7).as_bytes(), 10), "expired at its instant");
        assert!(!lease_free(lease_value(11, 7).as_bytes(), 10));
    }

    #[test]
    fn fetch_request() {
        let d = dirs();
        let h = fetch_headers(&d.agents[1], None);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get(":path"), Some("/keys.json"));
        assert_eq!(get(":authority"), Some("127.0.0.1:9"));
        assert_eq!(get(":scheme"), Some("http"));
        assert_eq!(get(":method"), Some("GET"));
        assert!(get("accept").is_some_and(|a| a.starts_with(MEDIA_TYPE)));
        assert_eq!(get("if-none-match"), None);
        let e = Entry { loaded: true, etag: Some("\"v1\"".into()), ..Entry::default() };
        let h = fetch_headers(&d.agents[0], Some(&e));
        assert!(h.contains(&(":path".into(), "/.well-known/http-message-signatures-directory".into())));
        assert!(h.contains(&(":authority".into(), "a.test".into())));
        assert!(h.contains(&("if-none-match".into(), "\"v1\"".into())));
    }

    #[test]
    fn answers() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, Vec<u8>)> {
            pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
        };
        let ok = answer(h(&[(":status", "200"), ("Cache-Control", "max-age=60")]), Some(b"{}".to_vec()), 5, 2000);
        let Answer::Response { status, fields, body } = &ok else { panic!("{ok:?}") };
        assert_eq!((*status, body.as_slice()), (200, b"{}".as_slice()));
        let mut lines = Vec::new();
        fields.field_lines("cache-control", &mut lines);
        assert_eq!(lines, [b"max-age=60"]);
        assert!(!fields.has_field(":status"));
        assert_eq!(answer(Vec::new(), None, 5, 2000), Answer::Failed(TransportError::Connect));
        assert_eq!(answer(Vec::new(), None, 1990, 2000), Answer::Failed(TransportError::Timeout));
        assert_eq!(
            answer(h(&[(":status", "504")]), Some(Vec::new()), 2001, 2000),
            Answer::Failed(TransportError::Timeout)
        );
        assert!(matches!(
            answer(h(&[(":status", "504")]), Some(Vec::new()), 10, 2000),
            Answer::Response { status: 504, .. }
        ));
        assert_eq!(answer(h(&[(":status", "200")]), None, 10, 2000), Answer::Failed(TransportError::BodyTooLarge));
    }

    #[test]
    fn tick_schedule() {
        let now = 1_000;
        assert!(tick_fetch(None, 0, true, now), "prefetch a directory never seen");
        assert!(!tick_fetch(None, 0, false, now), "lazy: wait for a request");
        let failed = Entry { failures: 1, retry_after: now + 10, ..Entry::default() };
        assert!(!tick_fetch(Some(&failed), 0, true, now), "negatively cached");
        assert!(tick_fetch(Some(&failed), 0, true, now + 10));
        let fresh = Entry {
            loaded: true,
            fetched_at: now - 100,
            fresh_until: now + 200,
            stale_until: now + 1200,
            retry_after: now - 40,
            ..Entry::default()
        };
        assert_eq!(fresh.state(now), State::Fresh);
        let at = fresh.fresh_until + jitter(42, &fresh);
        assert!(jitter(42, &fresh) <= 30, "a tenth of the 300 s lifetime");
        assert!(!tick_fetch(Some(&fresh), at, true, now));
        assert!(!tick_fetch(Some(&fresh), at, true, fresh.fresh_until.max(at) - 1));
        assert!(tick_fetch(Some(&fresh), at, false, at.max(fresh.fresh_until)), "loaded agents refresh even when lazy");
        let spread: std::collections::BTreeSet<u64> = (0..50).map(|s| jitter(s, &fresh)).collect();
        assert!(spread.len() > 5, "workers and nodes spread out: {spread:?}");
        let short = Entry { fresh_until: fresh.fetched_at + 5, stale_until: fresh.fetched_at + 6, ..fresh };
        assert_eq!(jitter(1, &short), 0);
    }
}
