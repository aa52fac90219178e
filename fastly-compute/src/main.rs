//! # botauth-fastly
//!
//! Web Bot Auth verification at the edge: a Fastly Compute service in front of an origin.
//! Thin adapter over `botauth-core` (ARCHITECTURE §1, §4, §5): guard, extract, call, map.
//!
//! 1. Strip any incoming verdict header (a client must never claim a verdict).
//! 2. Unsigned (no `Signature`, no `Signature-Input`): forward untouched.
//! 3. Signed: verify with core. Enforce: 400/403/429 problem+json, never forwarded.
//!    Monitor: forward and record. One JSON log line per signed request.
//! 4. Forward through the shield when one is configured (the shield verifies again), with
//!    the cache class of the path and a cache key that includes the verdict.
#![cfg_attr(target_arch = "wasm32", forbid(unsafe_code))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

#[cfg(target_arch = "wasm32")]
mod cache;
#[cfg(target_arch = "wasm32")]
mod config;
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
use {
    botauth_core::{outcome, Mode, Verdict},
    config::{Settings, CACHE_DEBUG_HEADER, ORIGIN_BACKEND, VERDICT_HEADER},
    fastly::{Request, Response},
    shield::Role,
    std::io::Read as _,
};

#[cfg(target_arch = "wasm32")]
#[fastly::main]
fn main(mut req: Request) -> Result<Response, fastly::Error> {
    if cfg!(feature = "bench-passthrough") {
        // The benchmark's baseline build (`cargo xtask bench`): a no-op passthrough.
        return Ok(req.send(ORIGIN_BACKEND)?);
    }
    // Guard: no client may claim a verdict, signed or not, whatever happens next.
    req.remove_header(VERDICT_HEADER);
    let settings = Settings::open();
    let common = settings.common();
    let role = shield::role(common.shield_site.as_deref());

    // Extract and call: only signed requests are parsed at all.
    let checked = if request::is_signed(&req) {
        match check(&mut req, &settings, &role) {
            Ok(checked) => Some(checked),
            Err(mut resp) => {
                if common.debug {
                    resp.append_header("server-timing", response::server_timing(None, "rejected"));
                }
                return Ok(*resp);
            }
        }
    } else {
        None
    };

    // Map: forward, with the verdict for the origin (when this hop talks to it) and the
    // cache policy of the path, keyed by verdict.
    let verdict_value = checked.as_ref().and_then(|c| c.header.clone());
    if let (Some(v), Role::Direct | Role::Shield) = (verdict_value.as_deref(), &role) {
        req.set_header(VERDICT_HEADER, v);
    }
    let decision = cache::decide(req.get_method(), req.get_path(), common.cache_classes.as_deref());
    cache::apply(&mut req, &decision, verdict_value.as_deref());
    let sent = match &role {
        Role::Edge(shield) => req.send(shield),
        Role::Direct | Role::Shield => req.send(ORIGIN_BACKEND),
    };
    let mut resp = match sent {
        Ok(resp) => resp,
        Err(e) => {
            log::warning(&format!("backend request failed: {e}"));
            response::bad_gateway()
        }
    };
    if common.debug {
        let (us, kind) = checked.as_ref().map_or((None, "unsigned"), |c| (Some(c.verify_us), c.kind));
        resp.append_header("server-timing", response::server_timing(us, kind));
        resp.append_header(CACHE_DEBUG_HEADER, cache::describe(&decision, verdict_value.is_some()));
    }
    Ok(resp)
}

/// A signed request that may go on.
#[cfg(target_arch = "wasm32")]
struct Checked {
    /// Verdict header value for the origin.
    header: Option<String>,
    /// Time spent in `verify`, µs.
    verify_us: u64,
    /// `verified` or `rejected` (monitor mode).
    kind: &'static str,
}

/// Verify a signed request; `Err` is the response that ends it (enforce mode rejection, or
/// fail-closed on a configuration error).
#[cfg(target_arch = "wasm32")]
fn check(req: &mut Request, settings: &Settings, role: &Role) -> Result<Checked, Box<Response>> {
    let v = settings.verification().map_err(|e| {
        log::config_problem(&format!("{e}; signed requests fail closed (503)"));
        Box::new(response::unavailable())
    })?;
    let keys = keys::load(req, &v.policy).map_err(|e| {
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
    let body = buffered_body(req, v.max_body);
    let started = std::time::Instant::now();
    let mut verdict = botauth_core::verify(
        &request::EdgeRequest::new(req, &v.scheme, body.as_ref().and_then(|b| b.complete.then_some(&b.bytes[..]))),
        &keys,
        &v.policy,
        now,
    );
    let verify_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    if let Some(b) = body {
        b.restore(req);
    }
    if !matches!(role, Role::Edge(_)) {
        verdict = check_replay(verdict, &v.policy, now)?;
    }
    // Rate limits count verified requests once, where they are first verified.
    let limited = match (&verdict, &v.rate_limit, role) {
        (Verdict::Verified(ok), Some(limit), Role::Direct | Role::Edge(_)) => rate::over_limit(limit, ok),
        _ => false,
    };
    log::verdict(&verdict, verify_us, role.name(), limited);
    match (&verdict, v.policy.mode) {
        (Verdict::Rejected(r), Mode::Enforce) => Err(Box::new(response::rejected(r.reason))),
        (Verdict::Verified(_), Mode::Enforce) if limited => {
            Err(Box::new(response::rate_limited(v.rate_limit.map_or(60, |l| l.penalty))))
        }
        _ => {
            Ok(Checked { header: outcome::verdict_header(&verdict), verify_us, kind: outcome::verdict_kind(&verdict) })
        }
    }
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
