//! Forged-signature floods against Envoy's own limiter, in a real Envoy (1.40, V8, two
//! workers), from `examples/envoy/source-limits.yaml` as shipped (its bucket shrunk to 5 per
//! minute so the test does not race the refill): a source's signed requests beyond its
//! budget get Envoy's 429 before the filter runs; unsigned traffic and other sources are
//! never limited, so a legitimate agent elsewhere is untouched by an attacker's failures.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use botauth_testkit::origin::Origin;
use botauth_testkit::raw_http::{self, Response};
use common::{
    jwks, ports, render, replace_once, seen_headers, signed, values, Envoy, Key, Layout, Listener, SOURCE_LIMITS,
};
use serde_json::{json, Value};

const DEMO: &str = "https://signature-agent.test";
const ATTACKER: &str = "198.51.100.7";
const AGENT_ADDRESS: &str = "203.0.113.20";

fn get(port: u16, headers: &[(String, String)], source: &str) -> Response {
    let mut headers = headers.to_vec();
    headers.push(("X-Forwarded-For".into(), source.into()));
    raw_http::send(port, "GET", "/resource", &headers, None).unwrap_or_else(|e| panic!("request: {e}"))
}

fn config() -> Value {
    let keys: Value = serde_json::from_str(&jwks(&[&Key::rfc()])).unwrap_or_else(|e| panic!("{e}"));
    json!({
        "keys": { DEMO: keys },
        "labels": { DEMO: "demo" },
        "policy": { "allow_test_keys": true },
        "scheme": "https",
        "replay": { "enabled": false },
    })
}

#[test]
fn a_source_over_its_signed_budget_is_limited_before_the_filter_and_nobody_else_is() {
    let origin = Origin::start().unwrap_or_else(|e| panic!("origin: {e}"));
    let (admin, port) = match ports(2)[..] {
        [a, p] => (a, p),
        _ => unreachable!(),
    };
    let listeners = [Listener::new(port, config())];
    let layout =
        Layout { example: SOURCE_LIMITS, admin, origin: origin.port(), listeners: &listeners, clusters: String::new() };
    let yaml = replace_once(
        &render(&layout),
        "token_bucket: { max_tokens: 40, tokens_per_fill: 20, fill_interval: 1s }",
        "token_bucket: { max_tokens: 5, tokens_per_fill: 5, fill_interval: 60s }",
    );
    let envoy = Envoy::start_with(&yaml, admin, &[port], 2);
    let key = Key::rfc();
    let unsigned = vec![("Host".to_string(), "example.com".to_string())];
    let mut forged = signed(DEMO, &key);
    forged[0].1 = "forged.example.com".into();

    // The attacker's first five forged signatures each cost a verify and are refused by the filter.
    for i in 0..5 {
        let res = get(port, &forged, ATTACKER);
        assert_eq!(res.status, 403, "forged {i}: {}", res.text());
        assert_eq!(res.json().ok().map(|p| p["code"].clone()), Some("signature_invalid".into()));
    }
    // Then Envoy answers for the source: no wasm, no verify.
    for _ in 0..20 {
        let res = get(port, &forged, ATTACKER);
        assert_eq!((res.status, res.text().as_str()), (429, "local_rate_limited"), "Envoy's own answer");
        assert_eq!(res.header("retry-after"), Some("1"));
    }
    let rejected = envoy.counters("botauth").get("botauth.verdict.rejected").copied().unwrap_or(0);
    assert_eq!(rejected, 5, "the filter verified only the five within budget");

    // The attacker's unsigned requests are never counted or limited.
    for _ in 0..10 {
        assert_eq!(get(port, &unsigned, ATTACKER).status, 200);
    }
    // A legitimate agent from another address is untouched by the attacker's failures.
    for i in 0..5 {
        let res = get(port, &signed(DEMO, &key), AGENT_ADDRESS);
        assert_eq!(res.status, 200, "agent request {i}: {}", res.text());
        assert_eq!(values(&seen_headers(&res), "botauth-agent"), ["demo"]);
    }
    // The budget is per source, whatever the outcome: the same agent over it is limited too
    // (documented: size the bucket for the busiest agent per address).
    assert_eq!(get(port, &signed(DEMO, &key), AGENT_ADDRESS).status, 429);
    // And unsigned traffic from everyone else still flows.
    assert_eq!(get(port, &unsigned, "192.0.2.1").status, 200);

    let stat = |name: &str| envoy.stat(&format!("botauth_sources.http_local_rate_limit.{name}"));
    assert_eq!(stat("rate_limited"), 21, "the attacker's twenty and the agent's sixth");
    assert_eq!(stat("enabled"), 31, "the limiter saw the signed requests only");
    assert_eq!(origin.seen().len(), 10 + 5 + 1, "unsigned and verified requests only");
}
