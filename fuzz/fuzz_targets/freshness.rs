//! The freshness decision (`directory::freshness`): any `Cache-Control`, `Expires`, `Date`,
//! `Age` and `Retry-After` lines, any bounds, any clock. Never a panic, and the operator's
//! bounds always hold: a success is fresh for `[min_ttl, max_ttl]`, usable at most
//! `max_stale` longer, a failure waits at most `max_negative_ttl` (RFC 9111 §4.2, §5.2;
//! RFC 9110 §10.2.3).
#![no_main]

use botauth_core::directory::freshness::{cache_control, on_failure, on_success, retry_after, Bounds};
use botauth_core::HttpRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, [u16; 4], u8, &str)| {
    let (now, [min, span, stale, negative], failures, fields_text) = input;
    // Clocks and bounds as a configuration can give them (ttl ≥ 1 s, max ≥ min).
    let now = now % 8_000_000_000;
    let min_ttl = u64::from(min) + 1;
    let bounds = Bounds {
        min_ttl,
        max_ttl: min_ttl + u64::from(span),
        default_ttl: min_ttl + u64::from(span) / 2,
        max_stale: u64::from(stale),
        max_negative_ttl: u64::from(negative) + 1,
        negative_base: 10,
        refetch_interval: 60,
    };
    let mut fields = HttpRequest::new("GET", "https", "agent.test", "/.well-known/http-message-signatures-directory");
    for line in fields_text.lines().take(16) {
        if let Some((n, v)) = line.split_once(':') {
            fields.push_header(n.trim(), v.trim().as_bytes());
        }
    }
    let _ = cache_control(&fields);
    let f = on_success(&fields, now, &bounds);
    assert!(f.fresh_until >= now + bounds.min_ttl, "{f:?} {bounds:?}");
    assert!(f.fresh_until <= now + bounds.max_ttl, "{f:?} {bounds:?}");
    assert!(f.stale_until >= f.fresh_until && f.stale_until <= f.fresh_until + bounds.max_stale, "{f:?} {bounds:?}");
    let failures = u32::from(failures);
    for given in [Some(&fields), None] {
        let next = on_failure(given.map(|f| f as &dyn botauth_core::Request), failures, now, &bounds);
        assert!(next > now, "a failure is negatively cached: {next} at {now}");
        assert!(next <= now + bounds.max_negative_ttl.max(1), "{next} at {now}, {bounds:?}");
    }
    // Retry-After (a delay from now) is honoured up to the negative-caching bound.
    if let Some(delay) = retry_after(&fields, now) {
        let next = on_failure(Some(&fields), 1, now, &bounds);
        assert!(next >= now + delay.min(bounds.max_negative_ttl).max(1), "Retry-After {delay} at {now}: {next}");
    }
});
