//! # botauth-fastly
//!
//! Web Bot Auth verification at the edge: a Fastly Compute service in front of an origin.
//! Thin adapter over `botauth-core` (ARCHITECTURE §1, §4, §5): guard, extract, call, map.
//!
//! 1. Strip any incoming verdict header and its authentication (a client must never claim a
//!    verdict).
//! 2. Unsigned (no `Signature`, no `Signature-Input`): forward untouched.
//! 3. Signed: verify with core. Enforce: 400/403/429 problem+json, never forwarded.
//!    Monitor: forward and record. One JSON log line per signed request.
//! 4. Forward through the shield when one is configured (the shield verifies again), with
//!    the cache class of the path and a cache key that includes the verdict. An origin that
//!    fails or times out is answered 502/504 problem+json (`upstream.rs`).
//! 5. With a `directories` allow-list, agents' keys come from their live key directories
//!    too (`directory.rs`): cold and unknown-keyid fetches happen inline, a stale directory
//!    is refreshed after the response has gone to the client.
#![cfg_attr(target_arch = "wasm32", forbid(unsafe_code))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

#[cfg(target_arch = "wasm32")]
mod cache;
#[cfg(target_arch = "wasm32")]
mod config;
#[cfg(target_arch = "wasm32")]
mod directory;
#[cfg(target_arch = "wasm32")]
mod keys;
#[cfg(target_arch = "wasm32")]
mod log;
#[cfg(target_arch = "wasm32")]
mod rate;
#[cfg(target_arch = "wasm32")]
mod replay;
#[cfg(target_arch = "wasm32")]
mod request;
#[cfg(target_arch = "wasm32")]
mod response;
#[cfg(target_arch = "wasm32")]
mod shield;
#[cfg(target_arch = "wasm32")]
mod upstream;

#[cfg(target_arch = "wasm32")]
use {
    botauth_core::{directory::Directories, outcome, verdict_auth, Keyring, Mode, Policy, Reason, Rejected, Verdict},
    config::{Common, Settings, Verification, CACHE_DEBUG_HEADER, ORIGIN_BACKEND, VERDICT_AUTH_HEADER, VERDICT_HEADER},
    fastly::{Request, Response},
    shield::Role,
    std::io::Read as _,
    std::time::Instant,
};

/// An explicit main (not `#[fastly::main]`) so that work can follow the response: the
/// client gets its answer first, then a stale key directory is refreshed.
#[cfg(target_arch = "wasm32")]
fn main() -> Result<(), fastly::Error> {
    let mut req = Request::from_client();
    if cfg!(feature = "bench-passthrough") {
        // The benchmark's baseline build (`cargo xtask bench`): a no-op passthrough.
        req.send(ORIGIN_BACKEND)?.send_to_client();
        return Ok(());
    }
    // Guard: no client may claim a verdict (or its authentication), signed or not, whatever
    // happens next.
    req.remove_header(VERDICT_HEADER);
    req.remove_header(VERDICT_AUTH_HEADER);
    let settings = Settings::open();
    let common = settings.common();
    let role = shield::role(common.shield_site.as_deref());
    // Only signed requests, and unsigned ones that claim an agent listed as always signing,
    // read the verification settings (and are parsed at all).
    let signed = request::is_signed(&req);
    let claim = if signed || common.claims.is_empty() { None } else { claimed(&req, &common.claims) };
    // Timed only for debug mode's Server-Timing.
    let started = common.debug.then(Instant::now);
    let verification = (signed || claim.is_some()).then(|| settings.verification());
    let settings_us = started.map(elapsed_us);
    let mut refresh = None;
    let mut resp = handle(req, &common, &role, verification.as_ref(), claim, &mut refresh);
    if let (Some(us), true) = (settings_us, verification.is_some()) {
        resp.append_header("server-timing", response::phase_timing("settings", us));
    }
    resp.send_to_client();
    if let Some(refresh) = refresh {
        refresh.run();
    }
    Ok(())
}

/// The listed agent an unsigned request claims: two field lookups, nothing parsed otherwise.
#[cfg(target_arch = "wasm32")]
fn claimed<'c>(req: &Request, claims: &'c botauth_core::claims::Claims) -> Option<&'c botauth_core::claims::Claim> {
    let lines = |name: &str| -> Vec<&[u8]> { req.get_header_all(name).map(|v| v.as_bytes()).collect() };
    claims.claimed_by(&lines("user-agent"), &lines("signature-agent"))
}

/// Verify (signed requests) or record a `claim` (unsigned ones), then forward or answer.
/// `refresh` receives a due directory refresh, run once the response has gone out.
#[cfg(target_arch = "wasm32")]
fn handle<'v>(
    mut req: Request,
    common: &Common,
    role: &Role,
    verification: Option<&'v Result<Verification, String>>,
    claim: Option<&botauth_core::claims::Claim>,
    refresh: &mut Option<directory::Refresh<'v>>,
) -> Response {
    let checked = match verification {
        Some(v) => match check(&mut req, v, claim, role, refresh) {
            Ok(checked) => Some(checked),
            Err(mut resp) => {
                if common.debug {
                    resp.append_header("server-timing", response::server_timing(None, "rejected"));
                }
                return *resp;
            }
        },
        None => None,
    };

    // Map: forward, with the verdict for the origin (when this hop talks to it) and the
    // cache policy of the path, keyed by verdict.
    let verdict_value = checked.as_ref().and_then(|c| c.header.clone());
    if let (Some(v), Role::Direct | Role::Shield) = (verdict_value.as_deref(), role) {
        req.set_header(VERDICT_HEADER, v);
        let key = verification.and_then(|v| v.as_ref().ok()).and_then(|v| v.verdict_auth.as_ref());
        if let (Some(key), Some(c)) = (key, checked.as_ref()) {
            authenticate_verdict(&mut req, key, v, c.now);
        }
    }
    let decision = cache::decide(req.get_method(), req.get_path(), common.cache_classes.as_deref());
    cache::apply(&mut req, &decision, verdict_value.as_deref());
    let backend = match role {
        Role::Edge(shield) => shield.name(),
        Role::Direct | Role::Shield => ORIGIN_BACKEND,
    };
    // The verdict is logged already: a failing origin changes the answer, not the record.
    let mut resp = match upstream::send(req, backend, common.origin_timeout) {
        Ok(resp) => resp,
        Err((failure, e)) => {
            log::warning(&format!("backend request failed: {e}"));
            response::upstream_failed(failure)
        }
    };
    if common.debug {
        let (us, kind) = checked.as_ref().map_or((None, "unsigned"), |c| (Some(c.timing.verify_us), c.kind));
        resp.append_header("server-timing", response::server_timing(us, kind));
        if let Some(t) = checked.as_ref().map(|c| &c.timing) {
            resp.append_header("server-timing", response::phase_timing("keys", t.keys_us));
            if let Some(warm) = &t.warm {
                resp.append_header("server-timing", response::phase_timing("verify-warm", warm.verify_us));
                resp.append_header("server-timing", response::phase_timing("ed25519-warm", warm.ed25519_us));
            }
        }
        resp.append_header(CACHE_DEBUG_HEADER, cache::describe(&decision, verdict_value.is_some()));
    }
    resp
}

/// A signed request that may go on.
#[cfg(target_arch = "wasm32")]
struct Checked {
    /// Verdict header value for the origin.
    header: Option<String>,
    /// Where the time went.
    timing: Timing,
    /// `verified` or `rejected` (monitor mode).
    kind: &'static str,
    /// The clock the request was verified at, unix seconds.
    now: u64,
}

/// Where a signed request's time went, µs: shown in debug mode's `Server-Timing`.
#[cfg(target_arch = "wasm32")]
#[derive(Clone, Copy, Default)]
struct Timing {
    /// In core's verification (directory fetches excluded).
    verify_us: u64,
    /// Reading and parsing the request's keys from the Config Store.
    keys_us: u64,
    /// `bench-phases` builds only: the same work again in the same instance.
    warm: Option<Warm>,
}

/// What a `bench-phases` build measures once the instance is warm, µs.
#[cfg(target_arch = "wasm32")]
#[derive(Clone, Copy)]
struct Warm {
    /// The same verification again.
    verify_us: u64,
    /// One raw Ed25519 verify after that: the floor the rest is measured against.
    ed25519_us: u64,
}

/// Add `botauth-verdict-auth` (core's MAC over the verdict and the request as forwarded).
#[cfg(target_arch = "wasm32")]
fn authenticate_verdict(req: &mut Request, key: &verdict_auth::VerdictKey, verdict: &str, now: u64) {
    let edge = request::EdgeRequest::new(req, "", None);
    use botauth_core::Request as _;
    let binding =
        verdict_auth::Binding { verdict, method: edge.method(), authority: edge.authority(), path: edge.target() };
    match verdict_auth::sign(key, &binding, now) {
        Ok(value) => req.set_header(VERDICT_AUTH_HEADER, value),
        // No HTTP request carries control characters; if one did, the origin sees no
        // authentication, which it refuses.
        Err(e) => log::warning(&format!("verdict not authenticated: {e}")),
    }
}

/// Verify a signed request; `Err` is the response that ends it (enforce mode rejection, or
/// fail-closed on a configuration error).
#[cfg(target_arch = "wasm32")]
fn check<'v>(
    req: &mut Request,
    v: &'v Result<Verification, String>,
    claim: Option<&botauth_core::claims::Claim>,
    role: &Role,
    refresh: &mut Option<directory::Refresh<'v>>,
) -> Result<Checked, Box<Response>> {
    let v = v.as_ref().map_err(|e| {
        log::config_problem(&format!("{e}; signed requests fail closed (503)"));
        Box::new(response::unavailable())
    })?;
    let now = match v.testing_now {
        Some(t) => {
            log::warning(&format!("TESTING ONLY clock override `testing_now` = {t} is set; remove it in production"));
            t
        }
        None => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
        }
    };
    if let Some(claim) = claim {
        // An unsigned claim of an agent that always signs: no keys, no parsing.
        return decide(req, claim.verdict(), Timing::default(), v, role, now, false);
    }
    // A source that keeps sending signatures that cost a verify and fail waits in the ERL
    // penalty box: refused before any parsing or crypto (where it first arrives only).
    let first_hop = matches!(role, Role::Direct | Role::Edge(_));
    // Only where the limit is configured: no per-request work otherwise.
    let source = v.invalid_signature_limit.is_some().then(|| rate::source_entry(req.get_client_ip_addr()));
    if let (Some(limit), Some(source), true) = (&v.invalid_signature_limit, &source, first_hop) {
        if rate::source_penalized(source) {
            log::warning("signed request from a penalized source refused before verification (source_penalized)");
            return Err(Box::new(response::source_penalized(limit.penalty)));
        }
    }
    let started = Instant::now();
    let keys = keys::load(req, &v.policy).map_err(|e| {
        log::config_problem(&format!("{e}; signed requests fail closed (503)"));
        Box::new(response::unavailable())
    })?;
    let keys_us = elapsed_us(started);
    let body = buffered_body(req, v.max_body);
    let (mut verdict, verify_us, warm) = {
        let edge =
            request::EdgeRequest::new(req, &v.scheme, body.as_ref().and_then(|b| b.complete.then_some(&b.bytes[..])));
        match &v.directories {
            // Without an allow-list: the pinned keys only, exactly core's `verify`.
            None => {
                let started = Instant::now();
                let verdict = botauth_core::verify(&edge, &keys, &v.policy, now);
                let cold = elapsed_us(started);
                let warm = cfg!(feature = "bench-phases").then(|| {
                    let started = Instant::now();
                    let _ = botauth_core::verify(&edge, &keys, &v.policy, now);
                    let warm = elapsed_us(started);
                    let started = Instant::now();
                    let (pk, sig) = RFC8032_TEST_2;
                    let _ = std::hint::black_box(botauth_core::crypto::verify(&pk, &[0x72], &sig));
                    Warm { verify_us: warm, ed25519_us: elapsed_us(started) }
                });
                (verdict, cold, warm)
            }
            Some(dirs) => {
                let (verdict, us) = with_directories(&edge, &keys, dirs, &v.policy, now, refresh);
                (verdict, us, None)
            }
        }
    };
    if let Some(b) = body {
        b.restore(req);
    }
    if !matches!(role, Role::Edge(_)) {
        verdict = check_replay(verdict, &v.policy, now)?;
    }
    if let (Some(limit), Some(source), true) =
        (&v.invalid_signature_limit, &source, first_hop && rate::counts_against_source(&verdict))
    {
        if rate::count_source(limit, source) {
            log::warning("a source went over invalid_signature_limit: penalized");
        }
    }
    // Rate limits count verified requests once, where they are first verified.
    let limited = match (&verdict, &v.rate_limit, role) {
        (Verdict::Verified(ok), Some(limit), Role::Direct | Role::Edge(_)) => rate::over_limit(limit, ok),
        _ => false,
    };
    decide(req, verdict, Timing { verify_us, keys_us, warm }, v, role, now, limited)
}

/// Log the verdict, then answer (enforce-mode rejection, rate limit) or go on with the
/// verdict header.
#[cfg(target_arch = "wasm32")]
fn decide(
    req: &Request,
    verdict: Verdict,
    timing: Timing,
    v: &Verification,
    role: &Role,
    now: u64,
    limited: bool,
) -> Result<Checked, Box<Response>> {
    let ctx = outcome::EventContext { time: now, mode: v.policy.mode, target: req.get_path() };
    log::verdict(&verdict, timing.verify_us, &ctx, role.name(), limited);
    match (&verdict, v.policy.mode) {
        (Verdict::Rejected(r), Mode::Enforce) => Err(Box::new(response::rejected(r.reason))),
        (Verdict::Verified(_), Mode::Enforce) if limited => {
            Err(Box::new(response::rate_limited(v.rate_limit.map_or(60, |l| l.penalty))))
        }
        _ => Ok(Checked {
            header: outcome::verdict_header(&verdict),
            timing,
            kind: outcome::verdict_kind(&verdict),
            now,
        }),
    }
}

/// Core's directory loop: verify with the pinned keys plus the named agents' directory
/// keys; when core asks for a fetch (cold agent, unknown keyid), fetch inline, record, and
/// verify again; a due refresh of a stale directory is handed back for after the response.
/// Returns the verdict and the time spent in core (fetches excluded), µs.
#[cfg(target_arch = "wasm32")]
fn with_directories<'v>(
    req: &request::EdgeRequest<'_>,
    pinned: &Keyring,
    dirs: &'v Directories,
    policy: &Policy,
    now: u64,
    refresh: &mut Option<directory::Refresh<'v>>,
) -> (Verdict, u64) {
    use botauth_core::directory::{claimed_agents, verify_with_directories, Step};
    let claimed = claimed_agents(req, dirs, policy);
    let mut store = directory::Store::load(dirs, policy.allow_test_keys, &claimed);
    let mut verify_us = 0u64;
    // Core asks at most one fetch per named agent per request; the bound only guards the loop.
    for _ in 0..=claimed.len() {
        let started = Instant::now();
        let step = verify_with_directories(req, pinned, dirs, store.entries(), policy, now);
        verify_us = verify_us.saturating_add(elapsed_us(started));
        match step {
            Step::Fetch(fetch) => store.fetch(&fetch, now),
            Step::Done { verdict, refresh: due } => {
                *refresh = store.finish(due, now);
                return (verdict, verify_us);
            }
        }
    }
    log::warning("core asked for more directory fetches than the request names agents; failing closed");
    let _ = store.finish(None, now);
    (Verdict::Rejected(Rejected::new(Reason::DirectoryUnavailable)), verify_us)
}

/// RFC 8032 §7.1 TEST 2 (message `0x72`): the `bench-phases` build's raw Ed25519 verify.
#[cfg(target_arch = "wasm32")]
const RFC8032_TEST_2: ([u8; 32], [u8; 64]) = (
    [
        0x3d, 0x40, 0x17, 0xc3, 0xe8, 0x43, 0x89, 0x5a, 0x92, 0xb7, 0x0a, 0xa7, 0x4d, 0x1b, 0x7e, 0xbc, 0x9c, 0x98,
        0x2c, 0xcf, 0x2e, 0xc4, 0x96, 0x8c, 0xc0, 0xcd, 0x55, 0xf1, 0x2a, 0xf4, 0x66, 0x0c,
    ],
    [
        0x92, 0xa0, 0x09, 0xa9, 0xf0, 0xd4, 0xca, 0xb8, 0x72, 0x0e, 0x82, 0x0b, 0x5f, 0x64, 0x25, 0x40, 0xa2, 0xb2,
        0x7b, 0x54, 0x16, 0x50, 0x3f, 0x8f, 0xb3, 0x76, 0x22, 0x23, 0xeb, 0xdb, 0x69, 0xda, 0x08, 0x5a, 0xc1, 0xe4,
        0x3e, 0x15, 0x99, 0x6e, 0x45, 0x8f, 0x36, 0x13, 0xd0, 0xf1, 0x1d, 0x8c, 0x38, 0x7b, 0x2e, 0xae, 0xb4, 0x30,
        0x2a, 0xee, 0xb0, 0x0d, 0x29, 0x16, 0x12, 0xbb, 0x0c, 0x00,
    ],
);

#[cfg(target_arch = "wasm32")]
fn elapsed_us(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The replay check where origin-bound requests meet. Without the nonce store there is no
/// replay protection (logged); a policy that requires nonces then fails closed.
#[cfg(target_arch = "wasm32")]
fn check_replay(verdict: Verdict, policy: &botauth_core::Policy, now: u64) -> Result<Verdict, Box<Response>> {
    let has_nonce = matches!(&verdict, Verdict::Verified(v) if v.nonce.is_some());
    if !has_nonce {
        return Ok(verdict);
    }
    match replay::KvNonces::open() {
        Ok(Some(mut store)) => Ok(botauth_core::check_replay(verdict, &mut store, policy, now)),
        Ok(None) | Err(_) if !policy.require_nonce => {
            log::warning(&format!("KV store `{}` is not linked: no replay protection", config::NONCE_STORE));
            Ok(verdict)
        }
        Ok(None) | Err(_) => {
            log::config_problem(&format!(
                "policy requires nonces but KV store `{}` is not linked; signed requests fail closed (503)",
                config::NONCE_STORE
            ));
            Err(Box::new(response::unavailable()))
        }
    }
}

/// A body read for `content-digest`, and whatever was not read.
#[cfg(target_arch = "wasm32")]
struct Buffered {
    bytes: Vec<u8>,
    complete: bool,
    rest: fastly::Body,
}

#[cfg(target_arch = "wasm32")]
impl Buffered {
    /// Put the body back on the request, unchanged.
    fn restore(self, req: &mut Request) {
        let mut body = fastly::Body::from(self.bytes);
        body.append(self.rest);
        req.set_body(body);
    }
}

/// Read up to `max` bytes of the body when a `content-digest` may need checking.
#[cfg(target_arch = "wasm32")]
fn buffered_body(req: &mut Request, max: usize) -> Option<Buffered> {
    if !req.contains_header("content-digest") || !req.has_body() {
        return None;
    }
    let mut rest = req.take_body();
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let read = (&mut rest).take(limit).read_to_end(&mut bytes);
    let complete = read.is_ok() && bytes.len() <= max;
    Some(Buffered { bytes, complete, rest })
}

/// On the host there is no service: build with `--target wasm32-wasip1`. (The host build
/// exists so `tests/` can drive Viceroy.)
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("botauth-fastly runs on Fastly Compute: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
