//! Live key directories at the edge. Every rule is core's (`botauth_core::directory`): when
//! to fetch, what a response means, how long keys stay usable, when an agent fails closed.
//! This module only holds the state and makes the calls:
//!
//! - each allow-listed agent's [`Entry`] lives in the **Core Cache**, looked up with a
//!   [`Transaction`] so that concurrent cold lookups of one agent wait for the one fetch, and
//!   a stale entry is refreshed by the one caller the cache obliges;
//! - a **last-known-good** copy of each successfully loaded entry lives in the KV Store
//!   [`DIRECTORY_STORE`], so a POP whose cache is empty still has keys (until `max_stale`)
//!   while the directory is unreachable;
//! - fetches go to the agent's static backend, never follow redirects (Fastly backends do
//!   not), send `Host` = the directory's authority and `If-None-Match`, are bounded by
//!   `fetch_timeout_ms` (polled) and read at most `max_body + 1` bytes;
//! - one log line per fetch (core's [`Recorded::log_event`]).
//!
//! The cache item of an entry is fresh until core's [`Entry::refresh_at`], then stays
//! usable (stale-while-revalidate) until its keys stop being usable plus the longest
//! negative-caching delay, so backoff state survives; the item's lifetime is storage
//! only, never a decision.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use botauth_core::directory::{
    record, AgentDirectory, Directories, Entries, Entry, Fetch, FetchReason, Fetched, Recorded, TransportError,
    MEDIA_TYPE,
};
use botauth_core::HttpRequest;
use fastly::cache::core::{CacheKey, Transaction};
use fastly::http::header;
use fastly::http::request::{PollResult, SendErrorCause};
use fastly::kv_store::{KVStore, KVStoreError};
use fastly::{Request, Response};

use crate::config::{jwks_item_key, DIRECTORY_STORE};

/// Longest KV Store key.
const MAX_KV_KEY_LEN: usize = 1024;
/// How often a pending fetch is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// `User-Agent` of directory fetches.
const USER_AGENT: &str = concat!("botauth-fastly/", env!("CARGO_PKG_VERSION"), " (key directory fetch)");

/// Where an agent's entry came from in this request.
enum Slot {
    /// The cache obliged this request to insert or refresh the entry (others wait or use
    /// the stale copy meanwhile).
    Obliged(Transaction),
    /// Another request holds that obligation, or the entry is fresh in the cache.
    Cached,
    /// The cache could not be used (error or wait timeout): no collapsing.
    Uncached,
}

/// The directory state of one request: the entries of the agents it names.
pub struct Store<'d> {
    directories: &'d Directories,
    allow_test_keys: bool,
    entries: Entries,
    slots: BTreeMap<String, Slot>,
    kv: Option<KVStore>,
}

/// A refresh to run after the response went to the client.
pub struct Refresh<'d> {
    store: Store<'d>,
    fetch: Fetch<'d>,
    now: u64,
}

impl<'d> Store<'d> {
    /// Load the entries of `agents` (core's `claimed_agents`): from the Core Cache, else
    /// from the last-known-good copy in the KV Store.
    pub fn load(directories: &'d Directories, allow_test_keys: bool, agents: &[&'d AgentDirectory]) -> Self {
        // Requests naming no allow-listed agent never touch the store.
        let kv = if agents.is_empty() { None } else { open_kv() };
        let mut store = Self { directories, allow_test_keys, entries: Entries::new(), slots: BTreeMap::new(), kv };
        // One order for every request, so two requests naming the same agents never wait on
        // each other's obligations crosswise.
        let mut agents = agents.to_vec();
        agents.sort_by(|a, b| a.agent.cmp(&b.agent));
        for agent in agents {
            store.load_one(agent);
        }
        store
    }

    fn load_one(&mut self, agent: &AgentDirectory) {
        let name = agent.agent.as_str().to_owned();
        let wait = Duration::from_millis(self.directories.settings.fetch_timeout_ms.saturating_add(500));
        let (slot, cached) = match Transaction::lookup(cache_key(agent)).timeout(wait).execute() {
            Ok(tx) => {
                let cached =
                    tx.found().and_then(|found| found.to_stream().ok()).and_then(|b| Entry::from_json(&b.into_bytes()));
                if tx.must_insert_or_update() {
                    (Slot::Obliged(tx), cached)
                } else {
                    (Slot::Cached, cached)
                }
            }
            Err(e) => {
                crate::log::warning(&format!("directory cache lookup for {} failed: {e}", agent.label));
                (Slot::Uncached, None)
            }
        };
        if let Some(entry) = cached.or_else(|| self.last_known_good(agent)) {
            self.entries.insert(name.clone(), entry);
        }
        self.slots.insert(name, slot);
    }

    /// The entries loaded so far, for `verify_with_directories`.
    pub fn entries(&self) -> &Entries {
        &self.entries
    }

    /// Fetch `fetch.agent`'s directory now, record the result, store and log it.
    pub fn fetch(&mut self, fetch: &Fetch<'d>, now: u64) {
        let agent = fetch.agent;
        let name = agent.agent.as_str();
        let started = Instant::now();
        let previous = self.entries.get(name);
        let settings = &self.directories.settings;
        let recorded = match get(agent, previous.and_then(Entry::if_none_match), settings.fetch_timeout_ms) {
            Ok(mut resp) => match read_body(&mut resp, settings.limits.max_body, started, settings.fetch_timeout_ms) {
                Ok(body) => {
                    let fields = response_fields(&resp, agent);
                    let status = resp.get_status().as_u16();
                    let fetched = Fetched::Response { status, fields: &fields, body: &body };
                    record(previous, self.directories, agent, self.allow_test_keys, fetched, now)
                }
                Err(e) => record(previous, self.directories, agent, self.allow_test_keys, Fetched::Failed(e), now),
            },
            Err(e) => record(previous, self.directories, agent, self.allow_test_keys, Fetched::Failed(e), now),
        };
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX).to_string();
        self.save(agent, &recorded, now);
        log(agent, fetch.reason, &recorded, &ms);
        self.entries.insert(name.to_owned(), recorded.entry);
    }

    /// Settle the cache obligations this request holds, keeping the one `refresh` needs:
    /// an entry loaded from the KV Store is put back into the cache; an obligation with
    /// nothing to store is released for the next request. The refresh runs only where
    /// this request is the one the cache obliged (or the cache is unusable), so one
    /// caller refreshes a stale directory.
    pub fn finish(mut self, refresh: Option<Fetch<'d>>, now: u64) -> Option<Refresh<'d>> {
        let keep = refresh.as_ref().map(|f| f.agent.agent.as_str().to_owned());
        let slots = std::mem::take(&mut self.slots);
        let mut runs = false;
        for (name, slot) in slots {
            let kept = keep.as_deref() == Some(name.as_str());
            match slot {
                Slot::Obliged(tx) if kept => {
                    runs = true;
                    self.slots.insert(name, Slot::Obliged(tx));
                }
                Slot::Uncached if kept => {
                    runs = true;
                    self.slots.insert(name, Slot::Uncached);
                }
                Slot::Obliged(tx) => match (self.entries.get(&name), self.directories.get(&name)) {
                    (Some(entry), Some(agent)) if tx.found().is_none() => {
                        insert(Some(tx), agent, entry, self.directories, now)
                    }
                    _ => {
                        let _ = tx.cancel_insert_or_update();
                    }
                },
                Slot::Cached | Slot::Uncached => {}
            }
        }
        match refresh {
            Some(fetch) if runs => Some(Refresh { store: self, fetch, now }),
            _ => None,
        }
    }

    /// Store a recorded fetch: the cache (through the obligation when this request holds
    /// one), and the KV Store when keys were loaded.
    fn save(&mut self, agent: &AgentDirectory, recorded: &Recorded, now: u64) {
        let name = agent.agent.as_str();
        let tx = match self.slots.remove(name) {
            Some(Slot::Obliged(tx)) => Some(tx),
            _ => None,
        };
        insert(tx, agent, &recorded.entry, self.directories, now);
        self.slots.insert(name.to_owned(), Slot::Cached);
        if recorded.result.is_err() {
            // The last-known-good copy stays as it was: a failure never evicts good keys.
            return;
        }
        let Some(kv) = &self.kv else { return };
        let Some(key) = kv_key(agent) else { return };
        if let Err(e) = kv.insert(&key, recorded.entry.to_json()) {
            crate::log::warning(&format!(
                "directory of {}: last-known-good copy not written to `{DIRECTORY_STORE}`: {e}",
                agent.label
            ));
        }
    }

    fn last_known_good(&self, agent: &AgentDirectory) -> Option<Entry> {
        let kv = self.kv.as_ref()?;
        let key = kv_key(agent)?;
        match kv.lookup(&key) {
            Ok(mut found) => {
                let entry = Entry::from_json(&found.take_body_bytes());
                if entry.is_none() {
                    crate::log::warning(&format!(
                        "`{DIRECTORY_STORE}` holds no valid entry for {}: ignored",
                        agent.label
                    ));
                }
                entry
            }
            Err(KVStoreError::ItemNotFound) => None,
            Err(e) => {
                crate::log::warning(&format!("`{DIRECTORY_STORE}` lookup for {} failed: {e}", agent.label));
                None
            }
        }
    }
}

impl Refresh<'_> {
    /// Refresh the stale directory (after the response went out).
    pub fn run(mut self) {
        self.store.fetch(&self.fetch, self.now);
    }
}

/// The last-known-good store, if linked (a missing store is logged).
fn open_kv() -> Option<KVStore> {
    match KVStore::open(DIRECTORY_STORE) {
        Ok(Some(kv)) => Some(kv),
        Ok(None) => {
            crate::log::warning(&format!(
                "KV store `{DIRECTORY_STORE}` is not linked: no last-known-good directory keys beyond the cache"
            ));
            None
        }
        Err(e) => {
            crate::log::warning(&format!("KV store `{DIRECTORY_STORE}` cannot be opened: {e}"));
            None
        }
    }
}

/// The Core Cache key of an agent's entry: the agent and its directory URL, so a changed
/// directory URL starts from a fresh entry.
fn cache_key(agent: &AgentDirectory) -> CacheKey {
    CacheKey::from(format!("botauth/directory/v1 {} {}", agent.agent, agent.directory).into_bytes())
}

/// The KV Store key of an agent's last-known-good entry (`directory/` + the agent URI in
/// the Config Store item encoding, which avoids the characters KV keys forbid), when it fits.
fn kv_key(agent: &AgentDirectory) -> Option<String> {
    let key = format!("directory/{}", jwks_item_key(agent.agent.as_str()));
    (key.len() <= MAX_KV_KEY_LEN).then_some(key)
}

/// Write `entry` to the cache: fresh until core's `refresh_at`, then usable-stale until
/// its keys expire plus the longest negative-caching delay.
fn insert(tx: Option<Transaction>, agent: &AgentDirectory, entry: &Entry, directories: &Directories, now: u64) {
    let (max_age, swr) = lifetimes(entry, directories.settings.bounds.max_negative_ttl, now);
    let json = entry.to_json();
    let length = u64::try_from(json.len()).unwrap_or(u64::MAX);
    let writer = match tx {
        Some(tx) => tx.insert(max_age).stale_while_revalidate(swr).known_length(length).execute(),
        None => fastly::cache::core::insert(cache_key(agent), max_age)
            .stale_while_revalidate(swr)
            .known_length(length)
            .execute(),
    };
    let written = writer.map_err(|e| e.to_string()).and_then(|mut w| {
        w.write_all(&json).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())
    });
    if let Err(e) = written {
        crate::log::warning(&format!("directory of {}: entry not cached: {e}", agent.label));
    }
}

/// The cache item's freshness (until core's `refresh_at`, at least 1 s) and its
/// stale-while-revalidate window (until the keys stop being usable, or the refresh time,
/// plus the longest negative-caching delay, so the failure count survives for backoff).
fn lifetimes(entry: &Entry, max_negative_ttl: u64, now: u64) -> (Duration, Duration) {
    let refresh_at = entry.refresh_at();
    let max_age = refresh_at.saturating_sub(now).max(1);
    let keep_until = entry.stale_until.max(refresh_at).saturating_add(max_negative_ttl);
    let swr = keep_until.saturating_sub(now).saturating_sub(max_age);
    (Duration::from_secs(max_age), Duration::from_secs(swr))
}

/// Send the directory request and wait at most `timeout_ms` for the response head.
fn get(agent: &AgentDirectory, etag: Option<&str>, timeout_ms: u64) -> Result<Response, TransportError> {
    let backend = agent.upstream.as_deref().ok_or(TransportError::Other)?;
    let mut req = Request::get(format!("{}{}", agent.directory.origin(), agent.path()));
    req.set_header(header::HOST, agent.authority());
    req.set_header(header::ACCEPT, format!("{MEDIA_TYPE}, application/jwk-set+json;q=0.9, application/json;q=0.8"));
    req.set_header(header::USER_AGENT, USER_AGENT);
    if let Some(etag) = etag {
        req.set_header(header::IF_NONE_MATCH, etag);
    }
    // Core keeps the entry and decides freshness: Fastly's HTTP cache stays out of it.
    req.set_pass(true);
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let mut pending = req.send_async(backend).map_err(|e| transport_error(e.root_cause()))?;
    loop {
        match pending.poll() {
            PollResult::Done(result) => return result.map_err(|e| transport_error(e.root_cause())),
            PollResult::Pending(p) if Instant::now() < deadline => {
                pending = p;
                std::thread::sleep(POLL_INTERVAL);
            }
            // Dropping the pending request abandons it.
            PollResult::Pending(_) => return Err(TransportError::Timeout),
        }
    }
}

/// Read at most `max + 1` bytes of the body, within the fetch deadline (checked between
/// chunks; a single stalled read is bounded by the backend's between-bytes timeout).
fn read_body(resp: &mut Response, max: usize, started: Instant, timeout_ms: u64) -> Result<Vec<u8>, TransportError> {
    if resp.get_content_length().is_some_and(|n| n > max) {
        return Err(TransportError::BodyTooLarge);
    }
    let deadline = started + Duration::from_millis(timeout_ms);
    let mut body = resp.take_body();
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = body.read(&mut chunk).map_err(|_| TransportError::Other)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if out.len() > max {
            return Err(TransportError::BodyTooLarge);
        }
        if Instant::now() >= deadline {
            return Err(TransportError::Timeout);
        }
    }
}

/// The response's fields as core reads them (a message of the directory request's
/// coordinates, so `"@authority";req` resolves).
fn response_fields(resp: &Response, agent: &AgentDirectory) -> HttpRequest {
    let mut fields = HttpRequest::new("GET", agent.directory.scheme(), agent.authority(), agent.path());
    for (name, value) in resp.get_headers() {
        fields.push_header(name.as_str(), value.as_bytes());
    }
    fields
}

fn transport_error(cause: &SendErrorCause) -> TransportError {
    match cause {
        SendErrorCause::DnsTimeout | SendErrorCause::ConnectionTimeout | SendErrorCause::HttpResponseTimeout => {
            TransportError::Timeout
        }
        SendErrorCause::DnsError { .. }
        | SendErrorCause::DestinationNotFound
        | SendErrorCause::DestinationUnavailable
        | SendErrorCause::DestinationIpUnroutable
        | SendErrorCause::ConnectionRefused
        | SendErrorCause::ConnectionTerminated
        | SendErrorCause::ConnectionLimitReached
        | SendErrorCause::TlsProtocolError
        | SendErrorCause::TlsCertificateError
        | SendErrorCause::TlsAlertReceived { .. }
        | SendErrorCause::TlsConfigurationError => TransportError::Connect,
        SendErrorCause::HttpResponseBodyTooLarge => TransportError::BodyTooLarge,
        _ => TransportError::Other,
    }
}

/// One log line per fetch (to the `botauth` endpoint), plus a warning on stderr when it
/// failed, naming the agent and the cause.
fn log(agent: &AgentDirectory, reason: FetchReason, recorded: &Recorded, ms: &str) {
    let pop = std::env::var("FASTLY_POP").unwrap_or_default();
    crate::log::line(&recorded.log_event(agent, reason, &[("fetch_ms", ms), ("pop", &pop)]));
    if let Err(e) = &recorded.result {
        let usable = if recorded.entry.loaded { "earlier keys stay usable until their stale limit" } else { "no keys" };
        crate::log::warning(&format!(
            "directory of {} ({}) failed: {} ({e}); {usable}",
            agent.label,
            agent.directory,
            e.code()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directories() -> Directories {
        crate::config::parse_directories(r#"{"agents":[{"agent":"https://ChatGPT.com/","backend":"origin"}]}"#).unwrap()
    }

    #[test]
    fn cache_lifetimes_follow_core_instants() {
        let fresh =
            Entry { loaded: true, fresh_until: 1300, stale_until: 87_700, retry_after: 1060, ..Entry::default() };
        assert_eq!(lifetimes(&fresh, 300, 1000), (Duration::from_secs(300), Duration::from_secs(86_700)));
        // Failing, never loaded: fresh until the next attempt, kept for the backoff state.
        let failing = Entry { failures: 2, retry_after: 1020, ..Entry::default() };
        assert_eq!(lifetimes(&failing, 300, 1000), (Duration::from_secs(20), Duration::from_secs(300)));
        // A refresh already due (the entry was read from the KV store): at least 1 s.
        let due = Entry { loaded: true, fresh_until: 900, stale_until: 5000, retry_after: 900, ..Entry::default() };
        assert_eq!(lifetimes(&due, 300, 1000), (Duration::from_secs(1), Duration::from_secs(4299)));
    }

    #[test]
    fn store_keys_name_the_normalised_agent() {
        let d = directories();
        let agent = &d.agents[0];
        assert_eq!(kv_key(agent).as_deref(), Some("directory/https_3A_2F_2Fchatgpt.com"));
        assert_eq!(
            cache_key(agent).as_ref(),
            b"botauth/directory/v1 https://chatgpt.com https://chatgpt.com/.well-known/http-message-signatures-directory"
        );
    }

    #[test]
    fn transport_errors_map_to_core_codes() {
        assert_eq!(transport_error(&SendErrorCause::HttpResponseTimeout), TransportError::Timeout);
        assert_eq!(transport_error(&SendErrorCause::ConnectionRefused), TransportError::Connect);
        assert_eq!(transport_error(&SendErrorCause::TlsCertificateError), TransportError::Connect);
        assert_eq!(transport_error(&SendErrorCause::HttpResponseBodyTooLarge), TransportError::BodyTooLarge);
        assert_eq!(transport_error(&SendErrorCause::HttpProtocolError), TransportError::Other);
    }

    #[test]
    fn an_entry_round_trips_through_the_core_cache() {
        // Runs under Viceroy (in-memory Core Cache).
        let d = directories();
        let agent = &d.agents[0];
        let entry = Entry { loaded: true, fresh_until: 2000, stale_until: 9000, retry_after: 1060, ..Entry::default() };
        insert(None, agent, &entry, &d, 1000);
        let tx = Transaction::lookup(cache_key(agent)).execute().unwrap();
        assert!(!tx.must_insert_or_update(), "fresh: nobody is obliged to refresh");
        let found = tx.found().unwrap();
        assert_eq!(Entry::from_json(&found.to_stream().unwrap().into_bytes()), Some(entry));
    }
}
