//! Per-agent limits with Envoy's own engines, in a real Envoy (1.40, V8, two workers):
//! `examples/envoy/local-ratelimit.yaml` as shipped (the filter sets `botauth-agent` when a
//! signature verifies; `envoy.filters.http.local_ratelimit` counts it per agent), and the
//! replay cache shared by the workers of one node.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use botauth_testkit::origin::Origin;
use botauth_testkit::raw_http::{self, Response};
use common::{jwks, ports, render, seen_headers, signed, values, Envoy, Key, Layout, Listener, LOCAL_RATELIMIT};
use serde_json::{json, Value};

const DEMO: &str = "https://signature-agent.test";

fn get(port: u16, headers: &[(String, String)]) -> Response {
    raw_http::send(port, "GET", "/resource", headers, None).unwrap_or_else(|e| panic!("request: {e}"))
}

/// The demo agent pinned with the label the example's descriptor names (`demo`).
fn demo_config(replay: bool) -> Value {
    let key = Key::rfc();
    let keys: Value = serde_json::from_str(&jwks(&[&key])).unwrap_or_else(|e| panic!("{e}"));
    json!({
        "keys": { DEMO: keys },
        "labels": { DEMO: "demo" },
        "policy": { "allow_test_keys": true },
        "scheme": "https",
        "replay": { "enabled": replay, "namespace": "rl" },
    })
}

fn start(example: &str, config: Value) -> (Envoy, Origin, u16) {
    let origin = Origin::start().unwrap_or_else(|e| panic!("origin: {e}"));
    let (admin, port) = match ports(2)[..] {
        [a, p] => (a, p),
        _ => unreachable!(),
    };
    let listeners = [Listener::new(port, config)];
    let layout = Layout { example, admin, origin: origin.port(), listeners: &listeners, clusters: String::new() };
    let envoy = Envoy::start_with(&render(&layout), admin, &[port], 2);
    (envoy, origin, port)
}

/// The example's `demo` bucket holds 5: five verified requests pass, the sixth is 429 from
/// Envoy's local rate limiter; unsigned, rejected and forged-header requests are never
/// counted and never limited.
#[test]
fn local_ratelimit_per_verified_agent() {
    let key = Key::rfc();
    let (envoy, origin, port) = start(LOCAL_RATELIMIT, demo_config(true));
    let unsigned = vec![("Host".to_string(), "example.com".to_string())];
    for _ in 0..10 {
        assert_eq!(get(port, &unsigned).status, 200, "unsigned traffic is never limited");
    }
    for i in 0..5 {
        let res = get(port, &signed(DEMO, &key));
        assert_eq!(res.status, 200, "request {i}: {}", res.text());
        assert_eq!(values(&seen_headers(&res), "botauth-agent"), ["demo"]);
    }
    let res = get(port, &signed(DEMO, &key));
    assert_eq!(res.status, 429, "the sixth verified request is over the limit: {}", res.text());
    assert_eq!(res.text(), "local_rate_limited", "Envoy's own answer, not the filter's");
    assert_eq!(res.header("retry-after"), Some("60"), "{:?}", res.headers);
    assert_eq!(origin.seen().len(), 15, "the limited request never reached the origin");

    // After the bucket is empty: unsigned requests, a client claiming the agent header, and
    // a signature that fails still pass the limiter untouched (the filter answers the last).
    for _ in 0..5 {
        assert_eq!(get(port, &unsigned).status, 200);
    }
    let mut forged = unsigned.clone();
    forged.push(("botauth-agent".into(), "demo".into()));
    let res = get(port, &forged);
    assert_eq!(res.status, 200, "a forged agent header is stripped before the limiter: {}", res.text());
    assert!(values(&seen_headers(&res), "botauth-agent").is_empty());
    let mut tampered = signed(DEMO, &key);
    tampered[0].1 = "tampered.example.com".into();
    assert_eq!(get(port, &tampered).status, 403);

    let stat = |name: &str| envoy.stat(&format!("botauth_agents.http_local_rate_limit.{name}"));
    assert_eq!(stat("rate_limited"), 1, "only the sixth verified request");
    assert_eq!(stat("enabled"), 6, "the limiter saw the verified requests only");
}

/// Replay across the workers of one node: the nonce cache is in shared data, so a signed
/// request replayed on another connection (and likely another worker) is refused.
#[test]
fn replay_is_caught_across_workers_of_one_node() {
    let key = Key::rfc();
    let (_envoy, origin, port) = start(common::EXAMPLE, demo_config(true));
    let mut replays = 0;
    for _ in 0..8 {
        let request = signed(DEMO, &key);
        assert_eq!(get(port, &request).status, 200);
        let again = get(port, &request);
        assert_eq!(again.status, 429, "{}", again.text());
        assert_eq!(again.json().ok().map(|p| p["code"].clone()), Some("replay".into()));
        replays += 1;
    }
    assert_eq!(origin.seen().len(), 8);
    assert_eq!(replays, 8);
}
