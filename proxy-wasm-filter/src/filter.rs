//! The host glue: root context (configuration) and HTTP context (one request).
//!
//! Every host call goes through `proxy_wasm::hostcalls` and its `Result` is handled: the
//! SDK's trait helpers `unwrap` host errors, and a panic in wasm is a dead VM.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use botauth_core::outcome::{log_event, verdict_header};
use botauth_core::{check_replay, verify, Mode, Reason, Rejected, Verdict};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::replay::{self, SharedStore};
use crate::request::{self, HostRequest};
use crate::response;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
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

/// What every request of one plugin configuration shares.
struct Shared {
    config: Config,
    metrics: Metrics,
}

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

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
            replay::prepare(&r.namespace);
        }
        log(
            LogLevel::Info,
            &format!(
                "botauth: configured: mode={:?} agents={} keys={} verdict_header={}",
                config.policy.mode,
                config.agents.len(),
                config.keyring.len(),
                config.verdict_header
            ),
        );
        self.shared = Some(Rc::new(Shared { config, metrics: Metrics::default() }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { shared: self.shared.clone(), awaiting_body: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    /// `None` only if the host created a stream without a configuration: fail closed.
    shared: Option<Rc<Shared>>,
    /// Verification waits for the body (a covered `content-digest`): the request as read in
    /// the headers phase (the headers are gone upstream, and out of reach, by then).
    awaiting_body: Option<HostRequest>,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            let _ = hostcalls::send_http_response(503, vec![("cache-control", "no-store")], None);
            return Action::Pause;
        };
        let cfg = &shared.config;
        // A client must never be able to claim a verdict: strip first, on every request.
        let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, &cfg.verdict_header);
        let signature = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "signature").ok().flatten();
        let input = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "signature-input").ok().flatten();
        if signature.is_none() && input.is_none() {
            return Action::Continue;
        }
        let host = read_request();
        if end_of_stream || !input.as_deref().is_some_and(request::mentions_content_digest) {
            let (verdict, us) = evaluate(cfg, host);
            return decide(&shared, replay_check(cfg, verdict), us, Phase::Headers);
        }
        // The signature may cover `content-digest`, which needs the body. Envoy cannot show a
        // filter the body before it lets the headers go (proxy-wasm turns a pause here into
        // StopAllIterationAndWatermark). Without a body core skips only the digest check, so:
        // a rejection now is final; a signature that verifies has its nonce recorded now and
        // its digest checked when the whole body is in, which is held back until then. In
        // enforce mode the verdict header goes with the headers (a digest failure resets the
        // upstream request before any of its body arrives, so the claim never covers a body
        // the origin receives); in monitor mode, which forwards failures, it is not sent.
        let (verdict, us) = evaluate(cfg, host.clone());
        let verdict = replay_check(cfg, verdict);
        match verdict {
            Verdict::Verified(_) => {
                if cfg.policy.mode == Mode::Enforce {
                    set_verdict_header(cfg, &verdict);
                }
                self.awaiting_body = Some(host);
                Action::Continue
            }
            _ => decide(&shared, verdict, us, Phase::Headers),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else { return Action::Pause };
        if self.awaiting_body.is_none() {
            return Action::Continue;
        }
        let too_large = body_size > shared.config.max_body_bytes;
        if !end_of_stream && !too_large {
            return Action::Pause; // buffer: nothing of the body goes upstream yet
        }
        let Some(mut host) = self.awaiting_body.take() else { return Action::Continue };
        if !too_large {
            host.body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size).ok().flatten();
            host.body.get_or_insert_with(Vec::new);
        }
        let (verdict, us) = evaluate(&shared.config, host);
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
        decide(&shared, verdict, us, Phase::Body)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // Trailers end a body that never reported its end: fail closed rather than let a body
        // with an unchecked digest through.
        let (Some(shared), Some(_)) = (self.shared.clone(), self.awaiting_body.take()) else {
            return Action::Continue;
        };
        decide(&shared, Reason::ContentDigestUnsupported.into(), 0, Phase::Body)
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

/// The verifier's clock: the testing override, else the host's (unix seconds).
fn now(cfg: &Config) -> u64 {
    cfg.testing_fixed_now.unwrap_or_else(|| now_us() / 1_000_000)
}

/// Verify the request; returns the verdict and the time it took in microseconds.
fn evaluate(cfg: &Config, host: HostRequest) -> (Verdict, u64) {
    let start = now_us();
    let req = request::build(host, cfg.scheme.as_deref(), cfg.authority);
    let verdict = verify(&req, &cfg.keyring, &cfg.policy, now(cfg));
    (verdict, now_us().saturating_sub(start))
}

/// Turn a verified verdict into a replay when its nonce was seen (records the nonce).
fn replay_check(cfg: &Config, verdict: Verdict) -> Verdict {
    match &cfg.replay {
        Some(r) => {
            let per_shard = r.capacity.div_ceil(replay::SHARDS as usize);
            let mut store = SharedStore { namespace: &r.namespace, per_shard };
            check_replay(verdict, &mut store, &cfg.policy, now(cfg))
        }
        None => verdict,
    }
}

fn set_verdict_header(cfg: &Config, verdict: &Verdict) {
    if let Some(value) = verdict_header(verdict) {
        let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, &cfg.verdict_header, Some(&value));
    }
}

/// Record (metrics, one log line) and act on the verdict. The nonce has been checked in the
/// headers phase already ([`replay_check`]).
fn decide(shared: &Shared, verdict: Verdict, verify_us: u64, phase: Phase) -> Action {
    let cfg = &shared.config;
    shared.metrics.record(&cfg.stat_prefix, &verdict, &cfg.agents, verify_us);
    let mode = match cfg.policy.mode {
        Mode::Enforce => "enforce",
        Mode::Monitor => "monitor",
    };
    let extra = [("mode", mode), ("phase", if phase == Phase::Headers { "headers" } else { "body" })];
    log(LogLevel::Info, &format!("botauth: {}", log_event(&verdict, verify_us, &extra)));
    match (&verdict, cfg.policy.mode) {
        (Verdict::Rejected(r), Mode::Enforce) => {
            let reply = response::reject(r.reason, cfg.retry_after);
            let headers = reply.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let _ = hostcalls::send_http_response(reply.status, headers, Some(reply.body.as_bytes()));
            Action::Pause
        }
        _ => {
            if phase == Phase::Headers {
                set_verdict_header(cfg, &verdict);
            }
            Action::Continue
        }
    }
}
