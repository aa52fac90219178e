//! The host glue: root context (configuration, directory refreshes on `on_tick`) and HTTP
//! context (one request).
//!
//! Every host call goes through `proxy_wasm::hostcalls` and its `Result` is handled: the
//! SDK's trait helpers `unwrap` host errors, and a panic in wasm is a dead VM.
//!
//! Directories (ARCHITECTURE §1: the rules are core's, the filter holds state and makes
//! calls). Each worker VM keeps the entries it has read from shared data ([`DirState`]);
//! whichever worker fetches publishes core's new [`Entry`] there, and the others re-parse
//! it when its CAS changes. A fetch is started by the root tick (start-up, refreshes) or by
//! a request whose agent core says must be fetched first; one fetch per directory is in
//! flight per node (the CAS lease of [`crate::directory`]). Such a request pauses as a
//! [`Waiter`] and is resumed (or answered) by whichever context receives the fetch's answer,
//! or by the tick when another worker's fetch published, or when it has waited
//! `directory_cache.max_wait_ms`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use botauth_core::directory::{
    record, verify_with_directories, AgentDirectory, Entries, Entry, FetchReason, State, Step, TransportError,
};
use botauth_core::outcome::{request_event, verdict_header, EventContext};
use botauth_core::verdict_auth;
use botauth_core::{check_replay, verify, HttpRequest, Mode, Reason, Rejected, Verdict};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, Status};

use crate::bench;
use crate::config::{self, Config};
use crate::directory::{self as dir, Answer};
use crate::metrics::{self, Metrics};
use crate::replay::{self, HostData, SharedStore};
use crate::request::{self, HostRequest};
use crate::response;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> {
        Box::new(Root { id, shared: None, retired: Vec::new() })
    });
}}

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

/// Unix time in microseconds from the host clock (0 if unavailable).
fn now_us() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Unix time in milliseconds (leases, waits).
fn now_ms() -> u64 {
    now_us() / 1000
}

/// What every request of one plugin configuration shares, per worker VM.
struct Shared {
    config: Config,
    metrics: Metrics,
    /// The root context's id: the effective context to return to after acting for a waiter.
    root_id: u32,
    /// This worker's lease holder id and jitter seed.
    seed: u64,
    /// Signed requests seen, for log sampling.
    signed: Cell<u64>,
    /// Directory state (empty without `directories`).
    dir: RefCell<DirState>,
}

/// A fetch this worker has in flight.
struct InFlight {
    token: u32,
    /// The context that dispatched it (and receives the answer).
    owner: u32,
    started_ms: u64,
    /// This worker holds the lease (a host that refused shared data gives none).
    leased: bool,
    /// Why it was fetched (for the log line).
    reason: FetchReason,
}

/// A request paused until its agent's directory is known.
struct Waiter {
    context: u32,
    /// Canonical agent URI.
    agent: String,
    /// Why core asked for the fetch.
    reason: FetchReason,
    req: HttpRequest,
    /// The signature may cover `content-digest` and a body follows: verify again with it.
    digest_pending: bool,
    deadline_ms: u64,
}

/// One agent's shared entry, as this worker last saw it.
#[derive(Clone, Copy, Default)]
struct Synced {
    /// Its CAS when this worker last parsed it (or wrote it).
    cas: Option<u32>,
    /// When the tick refreshes it (freshness end plus jitter; 0: at the next tick).
    refresh_at: u64,
}

#[derive(Default)]
struct DirState {
    /// What this worker knows, by canonical agent URI.
    entries: Entries,
    /// What this worker did with each agent's shared entry.
    synced: BTreeMap<String, Synced>,
    /// By canonical agent (a handful: the allow-listed agents being fetched; an answer's call
    /// token is found among them).
    in_flight: BTreeMap<String, InFlight>,
    waiters: Vec<Waiter>,
    /// Requests resumed by another context that must verify again once their body is in.
    awaiting_body: Vec<(u32, HttpRequest)>,
}

impl DirState {
    /// What this worker did with `agent`'s shared entry, made on first use.
    fn synced_mut(&mut self, agent: &str) -> &mut Synced {
        self.synced.entry(agent.to_string()).or_default()
    }

    /// Keep `req` for context `id` until its body is in (replacing one kept before).
    fn keep_awaiting(&mut self, id: u32, req: HttpRequest) {
        self.take_awaiting(id);
        self.awaiting_body.push((id, req));
    }

    /// The request kept for context `id` until its body is in, taken out.
    fn take_awaiting(&mut self, id: u32) -> Option<HttpRequest> {
        let at = self.awaiting_body.iter().position(|(context, _)| *context == id)?;
        Some(self.awaiting_body.swap_remove(at).1)
    }
}

impl Shared {
    fn dirs(&self) -> Option<&botauth_core::directory::Directories> {
        self.config.directories.as_ref()
    }

    fn agent(&self, canonical: &str) -> Option<&AgentDirectory> {
        self.dirs()?.agents.iter().find(|a| a.agent.as_str() == canonical)
    }

    fn pending(&self) -> bool {
        let st = self.dir.borrow();
        !st.waiters.is_empty() || !st.in_flight.is_empty()
    }
}

struct Root {
    id: u32,
    shared: Option<Rc<Shared>>,
    /// Earlier configurations of this root whose requests or fetches are still pending.
    retired: Vec<Rc<Shared>>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _num_trailers: usize) {
        let states = self.shared.iter().chain(self.retired.iter());
        for shared in states {
            if shared.dir.borrow().in_flight.values().any(|f| f.token == token) {
                complete(shared, token, num_headers, body_size, self.id);
                return;
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            _ => {
                log(LogLevel::Critical, "botauth: invalid configuration: no plugin configuration was given");
                return false;
            }
        };
        let config = match config::parse(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log(LogLevel::Critical, &format!("botauth: invalid configuration: {e}"));
                return false;
            }
        };
        for (agent, index, reason) in &config.skipped {
            log(LogLevel::Warn, &format!("botauth: keys.{agent:?}[{index}] skipped: {reason}"));
        }
        if let Some(now) = config.testing_fixed_now {
            log(LogLevel::Warn, &format!("botauth: testing_fixed_now={now}: the clock is FIXED (testing only)"));
        }
        if let Some(r) = &config.replay {
            replay::prepare(&HostData, &r.namespace);
        }
        let directories = config.directories.as_ref().map_or(0, |d| d.agents.len());
        if let Some(d) = &config.directories {
            for a in &d.agents {
                prepare_key(&dir::entry_key(&config.cache.namespace, a));
                prepare_key(&dir::lease_key(&config.cache.namespace, a));
            }
            if let Err(e) = hostcalls::set_tick_period(Duration::from_millis(config.cache.tick_ms)) {
                log(
                    LogLevel::Critical,
                    &format!("botauth: invalid configuration: the host refused a tick period ({e:?})"),
                );
                return false;
            }
        }
        log(
            LogLevel::Info,
            &format!(
                "botauth: configured: mode={:?} agents={} keys={} directories={directories} verdict_header={}",
                config.policy.mode,
                config.keyring.agents().count(),
                config.keyring.len(),
                config.verdict_header
            ),
        );
        let seed = dir::worker_seed(now_us(), self.id);
        let shared = Shared {
            config,
            metrics: Metrics::default(),
            root_id: self.id,
            seed,
            signed: Cell::new(0),
            dir: RefCell::new(DirState::default()),
        };
        if let Some(old) = self.shared.replace(Rc::new(shared)) {
            if old.pending() {
                self.retired.push(old);
            }
        }
        true
    }

    fn on_tick(&mut self) {
        if let Some(shared) = self.shared.clone() {
            tick(&shared);
        }
        for old in &self.retired {
            expire_waiters(old, now_ms(), true);
        }
        self.retired.retain(|s| s.pending());
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { id: context_id, shared: self.shared.clone(), awaiting_body: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Create `key` in shared data when missing: compare-and-swap needs a CAS to compare with,
/// and shared data cannot create a key atomically.
fn prepare_key(key: &str) {
    if matches!(hostcalls::get_shared_data(key), Ok((None, None))) {
        let _ = hostcalls::set_shared_data(key, Some(b"\n"), None);
    }
}

struct Http {
    id: u32,
    /// `None` only if the host created a stream without a configuration: fail closed.
    shared: Option<Rc<Shared>>,
    /// Verification waits for the body (a covered `content-digest`): the request as read in
    /// the headers phase (the headers are gone upstream, and out of reach, by then).
    awaiting_body: Option<HttpRequest>,
}

impl Context for Http {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _num_trailers: usize) {
        if let Some(shared) = self.shared.clone() {
            complete(&shared, token, num_headers, body_size, self.id);
        }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            abandon(shared, self.id);
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            let _ = hostcalls::send_http_response(503, vec![("cache-control", "no-store")], None);
            return Action::Pause;
        };
        let cfg = &shared.config;
        // A client must never be able to claim a verdict (or an agent): no client copy of the
        // headers the filter sends upstream goes upstream or reaches core.
        let sent = [Some(cfg.verdict_header.as_str()), Some(verdict_auth::HEADER), cfg.agent_header.as_deref()];
        let strip = || {
            for name in sent.iter().flatten() {
                let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
            }
        };
        let signature = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "signature").ok().flatten();
        let input = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "signature-input").ok().flatten();
        if signature.is_none() && input.is_none() {
            strip();
            // Unsigned: untouched, unless it claims an agent listed as always signing.
            if cfg.claims.is_empty() {
                return Action::Continue;
            }
            // Two more field lookups; nothing else is read.
            let field = |name| hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name).ok().flatten();
            let (ua, sa) = (field("user-agent"), field("signature-agent"));
            let (ua, sa): (Vec<&[u8]>, Vec<&[u8]>) =
                (ua.iter().map(Vec::as_slice).collect(), sa.iter().map(Vec::as_slice).collect());
            return match cfg.claims.claimed_by(&ua, &sa) {
                None => Action::Continue,
                Some(claim) => decide(&shared, claim.verdict(), 0, Phase::Headers, None),
            };
        }
        let stop = bench::stop();
        if stop == Some(bench::Phase::Enter) {
            return Action::Continue;
        }
        // Signed: the whole map is read anyway, so the host is asked to strip only when a
        // client sent one of those headers (never, behind the shipped early header
        // mutation) or the map could not be read; core's request never holds them either.
        let mut host = read_request();
        if stop == Some(bench::Phase::Read) {
            return Action::Continue;
        }
        let is_sent = |name: &str| sent.iter().flatten().any(|s| name.eq_ignore_ascii_case(s));
        if host.headers.is_empty() || host.headers.iter().any(|(name, _)| is_sent(name)) {
            strip();
            host.headers.retain(|(name, _)| !is_sent(name));
        }
        // Core's request, built once from the header map: verified now, or kept (without a
        // copy) while it waits for a directory or for its body.
        let req = request::build(host, cfg.scheme.as_deref(), cfg.authority);
        if stop == Some(bench::Phase::Request) {
            return Action::Continue;
        }
        // The signature may cover `content-digest`, which needs the body. Envoy cannot show a
        // filter the body before it lets the headers go (proxy-wasm turns a pause here into
        // StopAllIterationAndWatermark). Without a body core skips only the digest check, so:
        // a rejection now is final; a signature that verifies has its nonce recorded now and
        // its digest checked when the whole body is in, which is held back until then. In
        // enforce mode the verdict header goes with the headers (a digest failure resets the
        // upstream request before any of its body arrives, so the claim never covers a body
        // the origin receives); in monitor mode, which forwards failures, it is not sent.
        let digest_pending = !end_of_stream && input.as_deref().is_some_and(request::mentions_content_digest);
        match evaluate(&shared, &req, true) {
            Eval::Done(_, _) if stop == Some(bench::Phase::Verify) => Action::Continue,
            Eval::Done(verdict, us) => {
                let verdict = replay_check(&shared, verdict);
                headers_verdict(&shared, verdict, us, req, digest_pending, &mut self.awaiting_body)
            }
            Eval::Fetch(agent, reason) => match wait(&shared, self.id, agent, reason, req, digest_pending) {
                Waited::Paused => Action::Pause,
                // No fetch to wait for (refused by the host, or another worker's result just
                // arrived): core decides now.
                Waited::Decide(req) => {
                    let (verdict, us) = evaluate_final(&shared, &req);
                    let verdict = replay_check(&shared, verdict);
                    headers_verdict(&shared, verdict, us, req, digest_pending, &mut self.awaiting_body)
                }
            },
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else { return Action::Pause };
        if self.awaiting_body.is_none() {
            self.awaiting_body = shared.dir.borrow_mut().take_awaiting(self.id);
        }
        if self.awaiting_body.is_none() {
            return Action::Continue;
        }
        let too_large = body_size > shared.config.max_body_bytes;
        if !end_of_stream && !too_large {
            return Action::Pause; // buffer: nothing of the body goes upstream yet
        }
        let Some(mut req) = self.awaiting_body.take() else { return Action::Continue };
        if !too_large {
            req.body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size).ok().flatten();
            req.body.get_or_insert_with(Vec::new);
        }
        let (verdict, us) = evaluate_final(&shared, &req);
        // Without the body core skips the digest check: a body too large to hold can never
        // pass as verified.
        let verdict = match verdict {
            Verdict::Verified(v) if too_large => Verdict::Rejected(Rejected {
                reason: Reason::ContentDigestUnsupported,
                label: Some(v.label),
                agent: v.agent,
                keyid: Some(v.keyid),
            }),
            other => other,
        };
        decide(&shared, verdict, us, Phase::Body, Some(&req))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let Some(shared) = self.shared.clone() else { return Action::Continue };
        if self.awaiting_body.is_none() {
            self.awaiting_body = shared.dir.borrow_mut().take_awaiting(self.id);
        }
        // Trailers end a body that never reported its end: fail closed rather than let a body
        // with an unchecked digest through.
        let Some(req) = self.awaiting_body.take() else { return Action::Continue };
        decide(&shared, Reason::ContentDigestUnsupported.into(), 0, Phase::Body, Some(&req))
    }
}

/// Where a decision is taken: the headers can still be changed, or they have gone upstream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Headers,
    Body,
}

/// The full header map (every line of repeated fields) and the raw path.
fn read_request() -> HostRequest {
    HostRequest {
        headers: hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default(),
        path_property: hostcalls::get_property(vec!["request", "path"]).ok().flatten(),
        body: None,
    }
}

/// Core's request, read from the host as it is now (where none was kept).
fn request_from_host(cfg: &Config) -> HttpRequest {
    request::build(read_request(), cfg.scheme.as_deref(), cfg.authority)
}

/// The verifier's clock: the testing override, else the host's (unix seconds).
fn now(cfg: &Config) -> u64 {
    cfg.testing_fixed_now.unwrap_or_else(|| now_us() / 1_000_000)
}

/// A verification's outcome: a verdict (and its time, microseconds), or a directory that
/// core says must be fetched first (canonical agent URI, and why).
enum Eval {
    Done(Verdict, u64),
    Fetch(String, FetchReason),
}

/// Verify the request with the pinned keys and, for the agents it names, the directory
/// entries (read again from shared data when another worker published). `may_fetch`:
/// whether the caller can wait for a fetch; if not, a needed fetch is
/// `directory_unavailable` (core's reason for an agent without usable keys). The time is
/// core's alone (parse, base, Ed25519, policy), not the host's.
fn evaluate(shared: &Shared, req: &HttpRequest, may_fetch: bool) -> Eval {
    let cfg = &shared.config;
    let now = now(cfg);
    let Some(dirs) = cfg.directories.as_ref() else {
        let start = now_us();
        let verdict = verify(req, &cfg.keyring, &cfg.policy, now);
        return Eval::Done(verdict, now_us().saturating_sub(start));
    };
    for a in botauth_core::directory::claimed_agents(req, dirs, &cfg.policy) {
        sync(shared, a);
    }
    let st = shared.dir.borrow();
    let start = now_us();
    let step = verify_with_directories(req, &cfg.keyring, dirs, &st.entries, &cfg.policy, now);
    let us = now_us().saturating_sub(start);
    match step {
        Step::Done { verdict, refresh } => {
            drop(st);
            if let Some(f) = refresh {
                // A stale directory: the next tick refreshes it, without jitter.
                shared.dir.borrow_mut().synced_mut(f.agent.agent.as_str()).refresh_at = 0;
            }
            Eval::Done(verdict, us)
        }
        Step::Fetch(f) if may_fetch => Eval::Fetch(f.agent.agent.as_str().to_string(), f.reason),
        Step::Fetch(f) => {
            let rejected =
                Rejected { agent: Some(f.agent.agent.as_str().into()), ..Rejected::new(Reason::DirectoryUnavailable) };
            Eval::Done(Verdict::Rejected(rejected), us)
        }
    }
}

/// [`evaluate`] when no fetch can be waited for.
fn evaluate_final(shared: &Shared, req: &HttpRequest) -> (Verdict, u64) {
    match evaluate(shared, req, false) {
        Eval::Done(v, us) => (v, us),
        Eval::Fetch(agent, _) => {
            (Verdict::Rejected(Rejected { agent: Some(agent), ..Rejected::new(Reason::DirectoryUnavailable) }), 0)
        }
    }
}

/// Act on a headers-phase verdict (replay already checked): answer, forward, or hold the
/// body for its digest (`awaiting`: where the request is kept meanwhile).
fn headers_verdict(
    shared: &Shared,
    verdict: Verdict,
    us: u64,
    req: HttpRequest,
    digest_pending: bool,
    awaiting: &mut Option<HttpRequest>,
) -> Action {
    match verdict {
        Verdict::Verified(_) if digest_pending => {
            if shared.config.policy.mode == Mode::Enforce {
                set_upstream_headers(&shared.config, &verdict, Some(&req));
            }
            *awaiting = Some(req);
            Action::Continue
        }
        _ => decide(shared, verdict, us, Phase::Headers, Some(&req)),
    }
}

/// Turn a verified verdict into a replay when its nonce was seen (records the nonce), and
/// count what recording it did to the cache (entries, evictions).
fn replay_check(shared: &Shared, verdict: Verdict) -> Verdict {
    let cfg = &shared.config;
    let Some(r) = &cfg.replay else { return verdict };
    let mut store = SharedStore::new(&HostData, &r.namespace, r.capacity);
    let verdict = check_replay(verdict, &mut store, &cfg.policy, now(cfg));
    if store.unavailable {
        log(LogLevel::Warn, "botauth: replay cache unavailable");
    }
    if cfg.metrics.enabled {
        if store.entries_delta != 0 {
            shared.metrics.add_gauge(&metrics::replay_entries(&cfg.stat_prefix), store.entries_delta);
        }
        if store.evicted > 0 {
            shared.metrics.add(&metrics::replay_evicted(&cfg.stat_prefix), store.evicted);
        }
    }
    verdict
}

/// The verdict header (with its authentication when configured), and for a verified agent
/// with a label the agent header. `req`: core's request when it was built (else it is read
/// from the host for the authentication).
fn set_upstream_headers(cfg: &Config, verdict: &Verdict, req: Option<&HttpRequest>) {
    if let Some(value) = verdict_header(verdict) {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, &cfg.verdict_header, Some(&value));
        if let Some(key) = &cfg.verdict_auth {
            match req {
                Some(req) => authenticate_verdict(cfg, key, &value, req),
                None => authenticate_verdict(cfg, key, &value, &request_from_host(cfg)),
            }
        }
    }
    if let (Verdict::Verified(v), Some(name)) = (verdict, &cfg.agent_header) {
        if let Some(label) = v.agent.as_deref().and_then(|a| cfg.label(a)) {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(label));
        }
    }
}

/// Add `botauth-verdict-auth`: core's MAC over the verdict and the method, authority and
/// target that core verified.
fn authenticate_verdict(cfg: &Config, key: &verdict_auth::VerdictKey, verdict: &str, req: &HttpRequest) {
    let binding = verdict_auth::Binding { verdict, method: &req.method, authority: &req.authority, path: &req.target };
    match verdict_auth::sign(key, &binding, now(cfg)) {
        Ok(auth) => {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, verdict_auth::HEADER, Some(&auth));
        }
        // No HTTP request carries control characters; if one did, the upstream sees no
        // authentication, which it refuses.
        Err(e) => log(LogLevel::Warn, &format!("botauth: verdict not authenticated: {e}")),
    }
}

/// Record (metrics, the log line) and act on the verdict. The nonce has been checked in the
/// headers phase already ([`replay_check`]). `req`: core's request, when one was built.
fn decide(shared: &Shared, verdict: Verdict, verify_us: u64, phase: Phase, req: Option<&HttpRequest>) -> Action {
    let cfg = &shared.config;
    let agent = match &verdict {
        Verdict::Verified(v) => v.agent.as_deref(),
        Verdict::Rejected(r) => r.agent.as_deref(),
        Verdict::Unsigned => None,
    };
    let label = agent.and_then(|a| cfg.label(a));
    shared.metrics.record(&cfg.stat_prefix, &verdict, label, &cfg.metrics, verify_us);
    let n = shared.signed.get();
    shared.signed.set(n.wrapping_add(1));
    let rejected = matches!(verdict, Verdict::Rejected(_));
    let log_it = cfg.log.enabled && (n.is_multiple_of(cfg.log.sample) || (rejected && cfg.log.always_rejected));
    if log_it {
        // The raw target (the query is cut by core): core's, else read only when a line is
        // written.
        let read = || hostcalls::get_property(vec!["request", "path"]).ok().flatten().unwrap_or_default();
        let target = match req {
            Some(req) => std::borrow::Cow::Borrowed(req.target.as_str()),
            None => std::borrow::Cow::Owned(String::from_utf8_lossy(&read()).into_owned()),
        };
        let ctx = EventContext { time: now(cfg), mode: cfg.policy.mode, target: &target };
        let extra = [("phase", if phase == Phase::Headers { "headers" } else { "body" })];
        log(LogLevel::Info, &format!("botauth: {}", request_event(&verdict, verify_us, &ctx, &extra)));
    }
    match (&verdict, cfg.policy.mode) {
        (Verdict::Rejected(r), Mode::Enforce) => {
            let reply = response::reject(r.reason, cfg.retry_after);
            let headers = reply.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let _ = hostcalls::send_http_response(reply.status, headers, Some(reply.body.as_bytes()));
            Action::Pause
        }
        _ => {
            if phase == Phase::Headers {
                set_upstream_headers(cfg, &verdict, req);
            }
            Action::Continue
        }
    }
}

// ---- directories --------------------------------------------------------------------------

/// Read `agent`'s shared entry; re-parse it only when its CAS changed. Returns whether it did.
fn sync(shared: &Shared, agent: &AgentDirectory) -> bool {
    let key = dir::entry_key(&shared.config.cache.namespace, agent);
    let Ok((value, Some(cas))) = hostcalls::get_shared_data(&key) else { return false };
    let canonical = agent.agent.as_str();
    let mut st = shared.dir.borrow_mut();
    if st.synced.get(canonical).and_then(|s| s.cas) == Some(cas) {
        return false;
    }
    st.synced_mut(canonical).cas = Some(cas);
    let value = value.unwrap_or_default();
    if value.iter().all(u8::is_ascii_whitespace) {
        return false; // the placeholder written at configuration: nothing published yet
    }
    match Entry::from_json(&value) {
        Some(entry) => {
            let at = entry.fresh_until.saturating_add(dir::jitter(shared.seed, &entry));
            st.synced_mut(canonical).refresh_at = at;
            st.entries.insert(canonical.to_string(), entry);
            true
        }
        None => false,
    }
}

/// How a request's wait began.
enum Waited {
    /// It waits (its own fetch, one in flight here, or another worker's).
    Paused,
    /// Nothing to wait for: the host refused the fetch (the entry records the failure),
    /// or another worker published just now. Verify again at once (the request is handed
    /// back).
    Decide(HttpRequest),
}

/// Pause the request `context` until `agent`'s directory is fetched: join a fetch in flight
/// here, else take the lease and fetch (this context receives the answer), else wait for the
/// worker that holds the lease.
fn wait(
    shared: &Shared,
    context: u32,
    agent: String,
    reason: FetchReason,
    req: HttpRequest,
    digest_pending: bool,
) -> Waited {
    let deadline_ms = now_ms().saturating_add(shared.config.cache.max_wait_ms);
    let joined = shared.dir.borrow().in_flight.contains_key(&agent);
    let waiter = Waiter { context, agent: agent.clone(), reason, req, digest_pending, deadline_ms };
    shared.dir.borrow_mut().waiters.push(waiter);
    if joined {
        return Waited::Paused;
    }
    match start_fetch(shared, &agent, context, reason) {
        Started::Dispatched | Started::HeldElsewhere => Waited::Paused,
        Started::Changed => {
            // Another worker published meanwhile: every waiter of the agent (this one too)
            // verifies again, now.
            let req = take_own_waiter(shared, context);
            resolve_waiters(shared, &agent, context);
            Waited::Decide(req)
        }
        Started::Failed => {
            let req = take_own_waiter(shared, context);
            resolve_waiters(shared, &agent, context);
            Waited::Decide(req)
        }
    }
}

/// Take back the request of `context` (the current one) from the waiters; if it is not
/// there (it always is), read it from the host again.
fn take_own_waiter(shared: &Shared, context: u32) -> HttpRequest {
    let mut st = shared.dir.borrow_mut();
    match st.waiters.iter().position(|w| w.context == context) {
        Some(i) => st.waiters.remove(i).req,
        None => {
            drop(st);
            request_from_host(&shared.config)
        }
    }
}

/// What [`start_fetch`] did.
enum Started {
    Dispatched,
    /// Another worker holds the lease.
    HeldElsewhere,
    /// The shared entry changed before the fetch was sent: none is needed now.
    Changed,
    /// The host refused the call; the failure is recorded and published.
    Failed,
}

/// Take the lease of `agent`'s directory and dispatch the fetch from the current context
/// (`owner`, which receives the answer).
fn start_fetch(shared: &Shared, agent: &str, owner: u32, reason: FetchReason) -> Started {
    let Some(a) = shared.agent(agent) else { return Started::Failed };
    let cfg = &shared.config;
    let timeout_ms = shared.dirs().map_or(2000, |d| d.settings.fetch_timeout_ms);
    let lease = dir::lease_key(&cfg.cache.namespace, a);
    let now_ms = now_ms();
    let leased = match hostcalls::get_shared_data(&lease) {
        Ok((value, cas)) => {
            if !dir::lease_free(value.as_deref().unwrap_or_default(), now_ms) {
                return Started::HeldElsewhere;
            }
            let value = dir::lease_value(now_ms.saturating_add(timeout_ms).saturating_add(1000), shared.seed);
            match hostcalls::set_shared_data(&lease, Some(value.as_bytes()), cas) {
                Ok(()) => true,
                Err(Status::CasMismatch) => return Started::HeldElsewhere,
                Err(_) => false,
            }
        }
        // A host that refuses shared data: fetch anyway (once per worker) rather than never.
        Err(_) => false,
    };
    // The lease is ours: if another worker published since this worker last looked, its
    // result is what was wanted.
    if sync(shared, a) {
        if leased {
            release(shared, a);
        }
        return Started::Changed;
    }
    let entry = shared.dir.borrow().entries.get(agent).cloned();
    let headers = dir::fetch_headers(a, entry.as_ref());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let upstream = a.upstream.as_deref().unwrap_or_default();
    match hostcalls::dispatch_http_call(upstream, headers, None, Vec::new(), Duration::from_millis(timeout_ms)) {
        Ok(token) => {
            let mut st = shared.dir.borrow_mut();
            st.in_flight.insert(agent.to_string(), InFlight { token, owner, started_ms: now_ms, leased, reason });
            Started::Dispatched
        }
        Err(e) => {
            log(
                LogLevel::Warn,
                &format!("botauth: directory {agent}: the host refused the fetch via {upstream:?} ({e:?})"),
            );
            store(shared, a, Answer::Failed(TransportError::Connect), reason);
            if leased {
                release(shared, a);
            }
            Started::Failed
        }
    }
}

/// Give up this worker's lease of `agent`'s directory (only if it still holds it).
fn release(shared: &Shared, agent: &AgentDirectory) {
    let lease = dir::lease_key(&shared.config.cache.namespace, agent);
    if let Ok((Some(value), cas)) = hostcalls::get_shared_data(&lease) {
        let holder =
            std::str::from_utf8(&value).ok().and_then(|v| v.split(' ').nth(1)).and_then(|h| h.parse::<u64>().ok());
        if holder == Some(shared.seed) {
            let _ = hostcalls::set_shared_data(&lease, Some(b"\n"), cas);
        }
    }
}

/// Fold a fetch's answer into `agent`'s entry (core's `record`), publish it for every
/// worker, and count and log it (core's one log line per fetch).
fn store(shared: &Shared, agent: &AgentDirectory, answer: Answer, reason: FetchReason) {
    let cfg = &shared.config;
    let Some(dirs) = shared.dirs() else { return };
    sync(shared, agent);
    let canonical = agent.agent.as_str();
    let now = now(cfg);
    let previous = shared.dir.borrow().entries.get(canonical).cloned();
    let recorded = record(previous.as_ref(), dirs, agent, cfg.policy.allow_test_keys, answer.fetched(), now);
    let key = dir::entry_key(&cfg.cache.namespace, agent);
    let json = recorded.entry.to_json();
    let published = hostcalls::set_shared_data(&key, Some(&json), None).is_ok();
    {
        let mut st = shared.dir.borrow_mut();
        if published {
            // Learn the CAS of what was just written, so this worker does not parse it again.
            if let Ok((_, Some(cas))) = hostcalls::get_shared_data(&key) {
                st.synced_mut(canonical).cas = Some(cas);
            }
        }
        let at = recorded.entry.fresh_until.saturating_add(dir::jitter(shared.seed, &recorded.entry));
        st.synced_mut(canonical).refresh_at = at;
        st.entries.insert(canonical.to_string(), recorded.entry.clone());
    }
    let ok = recorded.result.is_ok();
    if cfg.metrics.enabled {
        let event = if ok { "fetch_ok" } else { "fetch_failed" };
        shared.metrics.increment(&metrics::directory_counter(&cfg.stat_prefix, &agent.label, event));
    }
    // What the agent's signed requests get now: fresh or stale keys, or 503.
    let state = match recorded.entry.state(now) {
        State::Fresh => "fresh",
        State::Stale => "stale",
        State::Cold => "cold",
        State::Unavailable => "unavailable",
    };
    let published = if published { "true" } else { "false" };
    let line = recorded.log_event(agent, reason, &[("state", state), ("published", published)]);
    log(if ok { LogLevel::Info } else { LogLevel::Warn }, &format!("botauth: {line}"));
}

/// A fetch answered (`token`), in whichever context dispatched it (`current`).
fn complete(shared: &Shared, token: u32, num_headers: usize, body_size: usize, current: u32) {
    let (agent, flight) = {
        let mut st = shared.dir.borrow_mut();
        let Some(agent) = st.in_flight.iter().find(|(_, f)| f.token == token).map(|(a, _)| a.clone()) else {
            return;
        };
        let flight = st.in_flight.remove(&agent);
        (agent, flight)
    };
    let Some(a) = shared.agent(&agent) else { return };
    let max_body = shared.dirs().map_or(0, |d| d.settings.limits.max_body);
    let timeout_ms = shared.dirs().map_or(2000, |d| d.settings.fetch_timeout_ms);
    let headers = if num_headers > 0 {
        hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders).unwrap_or_default()
    } else {
        Vec::new()
    };
    let body = (body_size <= max_body).then(|| {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten().unwrap_or_default()
    });
    let elapsed = flight.as_ref().map_or(0, |f| now_ms().saturating_sub(f.started_ms));
    let reason = flight.as_ref().map_or(FetchReason::NoKeys, |f| f.reason);
    store(shared, a, dir::answer(headers, body, elapsed, timeout_ms), reason);
    if flight.is_none_or(|f| f.leased) {
        release(shared, a);
    }
    resolve_waiters(shared, &agent, current);
}

/// Verify again, and answer or resume, every request waiting for `agent`.
fn resolve_waiters(shared: &Shared, agent: &str, current: u32) {
    let waiting: Vec<Waiter> = {
        let mut st = shared.dir.borrow_mut();
        let (mine, rest) = std::mem::take(&mut st.waiters).into_iter().partition(|w| w.agent == agent);
        st.waiters = rest;
        mine
    };
    for w in waiting {
        resume(shared, w, current, false);
    }
}

/// Act for the paused request of `w` (from another context: `current` is restored after).
/// `timed_out`: it waited `max_wait_ms` without an answer: `directory_unavailable`.
fn resume(shared: &Shared, w: Waiter, current: u32, timed_out: bool) {
    if hostcalls::set_effective_context(w.context).is_err() {
        return; // the request is gone
    }
    let (verdict, us) = if timed_out {
        let r = Rejected { agent: Some(w.agent.clone()), ..Rejected::new(Reason::DirectoryUnavailable) };
        (Verdict::Rejected(r), 0)
    } else {
        evaluate_final(shared, &w.req)
    };
    let verdict = replay_check(shared, verdict);
    let mut awaiting = None;
    let action = headers_verdict(shared, verdict, us, w.req, w.digest_pending, &mut awaiting);
    if let Some(req) = awaiting {
        shared.dir.borrow_mut().keep_awaiting(w.context, req);
    }
    if action == Action::Continue {
        let _ = hostcalls::resume_http_request();
    }
    let _ = hostcalls::set_effective_context(current);
}

/// Answer waiters past their deadline (`all`: every waiter, as a retired configuration
/// will never fetch again once its own fetches are done).
fn expire_waiters(shared: &Shared, now_ms: u64, all: bool) {
    let expired: Vec<Waiter> = {
        let mut st = shared.dir.borrow_mut();
        let in_flight: Vec<String> = st.in_flight.keys().cloned().collect();
        let (gone, keep) = std::mem::take(&mut st.waiters)
            .into_iter()
            .partition(|w| w.deadline_ms <= now_ms || (all && !in_flight.contains(&w.agent)));
        st.waiters = keep;
        gone
    };
    for w in expired {
        resume(shared, w, shared.root_id, true);
    }
}

/// The root tick: answer requests that waited too long, pick up what other workers
/// published for waiting requests, and start the fetches that are due (start-up, refresh,
/// a waiting request whose fetcher went away).
fn tick(shared: &Shared) {
    let Some(dirs) = shared.dirs() else { return };
    let cfg = &shared.config;
    let now_ms = now_ms();
    let now = now(cfg);
    expire_waiters(shared, now_ms, false);
    let timeout_ms = dirs.settings.fetch_timeout_ms;
    for a in &dirs.agents {
        let canonical = a.agent.as_str();
        // A fetch in flight past its timeout whose answer never came: forget it.
        let stuck = shared
            .dir
            .borrow()
            .in_flight
            .get(canonical)
            .is_some_and(|f| now_ms > f.started_ms.saturating_add(timeout_ms).saturating_add(2000));
        if stuck {
            let flight = shared.dir.borrow_mut().in_flight.remove(canonical);
            if flight.is_some_and(|f| f.leased) {
                release(shared, a);
            }
        }
        if shared.dir.borrow().in_flight.contains_key(canonical) {
            continue;
        }
        let waiting = shared.dir.borrow().waiters.iter().any(|w| w.agent == canonical);
        if waiting {
            if sync(shared, a) {
                resolve_waiters(shared, canonical, shared.root_id);
                continue;
            }
            let reason = shared.dir.borrow().waiters.iter().find(|w| w.agent == canonical).map(|w| w.reason);
            match start_fetch(shared, canonical, shared.root_id, reason.unwrap_or(FetchReason::NoKeys)) {
                Started::Changed | Started::Failed => resolve_waiters(shared, canonical, shared.root_id),
                Started::Dispatched | Started::HeldElsewhere => {}
            }
            continue;
        }
        let due = |shared: &Shared| {
            let st = shared.dir.borrow();
            let at = st.synced.get(canonical).map_or(0, |s| s.refresh_at);
            dir::tick_fetch(st.entries.get(canonical), at, cfg.cache.prefetch, now)
        };
        if due(shared) {
            // Another worker may have fetched already: look before fetching.
            sync(shared, a);
            if due(shared) {
                let loaded = shared.dir.borrow().entries.get(canonical).is_some_and(|e| e.loaded);
                let reason = if loaded { FetchReason::Stale } else { FetchReason::NoKeys };
                let _ = start_fetch(shared, canonical, shared.root_id, reason);
            }
        }
    }
}

/// A request context went away (answered, reset by the client): forget its wait, and give
/// up the fetch it owned (the host cancels it); the tick fetches again for any other
/// request still waiting.
fn abandon(shared: &Shared, context: u32) {
    let owned: Vec<(String, InFlight)> = {
        let Ok(mut st) = shared.dir.try_borrow_mut() else { return };
        st.waiters.retain(|w| w.context != context);
        st.take_awaiting(context);
        let agents: Vec<String> =
            st.in_flight.iter().filter(|(_, f)| f.owner == context).map(|(a, _)| a.clone()).collect();
        let mut owned = Vec::new();
        for agent in agents {
            if let Some(f) = st.in_flight.remove(&agent) {
                owned.push((agent, f));
            }
        }
        owned
    };
    for (agent, f) in owned {
        if let (Some(a), true) = (shared.agent(&agent), f.leased) {
            release(shared, a);
        }
    }
}
