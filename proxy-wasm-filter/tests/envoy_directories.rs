//! Live key directories in a real Envoy (1.40, V8, two workers): the filter fetches
//! allow-listed directories from real local directory servers
//! (`botauth_testkit::directory::DirectoryServer`, which counts every fetch it receives), and
//! requests signed at test time on the real clock verify against what was fetched.
//!
//! Each test starts its own Envoy from `examples/envoy/envoy.yaml` with a cluster per
//! directory server (`directories.agents[].upstream`).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::time::{Duration, Instant};

use botauth_testkit::directory::Behaviour;
use botauth_testkit::raw_http::Response;
use common::gateway::{assert_rejected, assert_verified, code, gateway, get, Agent};
use common::{jwks, seen_headers, signed, values, Key};
use serde_json::json;

/// Send each of `requests` on its own connection, all at once.
fn concurrently(port: u16, requests: Vec<Vec<(String, String)>>) -> Vec<Response> {
    let handles: Vec<_> = requests.into_iter().map(|h| std::thread::spawn(move || get(port, &h))).collect();
    handles.into_iter().map(|h| h.join().unwrap_or_else(|_| panic!("request thread"))).collect()
}

/// Warm-up: every directory is fetched at start-up, once for all workers, and requests
/// then verify without another fetch.
#[test]
fn warm_up_fetches_each_directory_once_across_workers() {
    let (ka, kb) = (Key::rfc(), Key::b());
    let a = Agent::new("https://agent-a.test", "agent-a", Behaviour::jwks(&jwks(&[&ka]), 3600));
    let b = Agent::new("https://agent-b.test", "agent-b", Behaviour::jwks(&jwks(&[&kb]), 3600));
    let gw = gateway(&[&a, &b], json!({}), json!({}));
    gw.envoy.wait_until(10, "warm-up fetches", || a.server.fetches() == 1 && b.server.fetches() == 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!((a.server.fetches(), b.server.fetches()), (1, 1), "one fetch per directory, whatever the workers");
    let hit = &a.server.hits()[0];
    assert_eq!(hit.target, "/.well-known/http-message-signatures-directory");
    assert_eq!(hit.header("host"), Some(format!("127.0.0.1:{}", a.server.port()).as_str()));

    let mut requests = Vec::new();
    for _ in 0..10 {
        requests.push(signed(a.uri, &ka));
        requests.push(signed(b.uri, &kb));
    }
    for res in concurrently(gw.port, requests) {
        let seen = seen_headers(&res);
        let label = values(&seen, "botauth-agent").first().map(|l| l.to_string()).unwrap_or_default();
        let uri = if label == "agent-a" { a.uri } else { b.uri };
        assert_verified(&res, uri, &label);
    }
    assert_eq!((a.server.fetches(), b.server.fetches()), (1, 1), "verified from the cache");
    let counters = gw.envoy.counters("botauth");
    assert_eq!(counters.get("botauth.directory.agent-a.fetch_ok"), Some(&1), "{counters:?}");
    assert_eq!(counters.get("botauth.verdict.verified"), Some(&20), "{counters:?}");
    assert_eq!(counters.get("botauth.agent.agent-a.verified"), Some(&10), "{counters:?}");
}

/// Cold: with no prefetch, concurrent requests for an agent whose directory was never
/// loaded pause, share one fetch (across both workers), and are resumed and verified.
#[test]
fn cold_requests_pause_share_one_fetch_and_verify() {
    let key = Key::rfc();
    let slow = Behaviour::Slow(Duration::from_millis(800), Box::new(Behaviour::jwks(&jwks(&[&key]), 3600)));
    let a = Agent::new("https://agent-a.test", "agent-a", slow);
    let gw = gateway(&[&a], json!({}), json!({ "prefetch": false }));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.server.fetches(), 0, "no prefetch: nothing fetched before a request");
    let started = Instant::now();
    let responses = concurrently(gw.port, (0..6).map(|_| signed(a.uri, &key)).collect());
    let elapsed = started.elapsed();
    for res in &responses {
        assert_verified(res, a.uri, "agent-a");
    }
    assert!(elapsed >= Duration::from_millis(750), "the requests waited for the fetch ({elapsed:?})");
    assert_eq!(a.server.fetches(), 1, "one fetch for all waiting requests");
    let started = Instant::now();
    assert_verified(&get(gw.port, &signed(a.uri, &key)), a.uri, "agent-a");
    assert!(started.elapsed() < Duration::from_millis(700), "warm now");
    assert_eq!(a.server.fetches(), 1);
}

/// A directory that does not answer within the fetch timeout: the waiting request fails
/// closed with the directory reason (503, Retry-After), long before the server would answer.
#[test]
fn fetch_timeout_answers_directory_unavailable() {
    let key = Key::rfc();
    let slow = Behaviour::Slow(Duration::from_secs(5), Box::new(Behaviour::jwks(&jwks(&[&key]), 3600)));
    let a = Agent::new("https://agent-a.test", "agent-a", slow);
    let gw = gateway(&[&a], json!({ "fetch_timeout_ms": 600 }), json!({ "prefetch": false }));
    let started = Instant::now();
    let res = get(gw.port, &signed(a.uri, &key));
    let elapsed = started.elapsed();
    assert_rejected(&res, 503, "directory_unavailable");
    assert!(res.header("retry-after").is_some(), "{:?}", res.headers);
    assert!(elapsed >= Duration::from_millis(550) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(a.server.fetches(), 1);
    // Negatively cached: the next request is answered at once, without a fetch.
    let started = Instant::now();
    assert_rejected(&get(gw.port, &signed(a.uri, &key)), 503, "directory_unavailable");
    assert!(started.elapsed() < Duration::from_millis(400));
    assert_eq!(a.server.fetches(), 1);
    let log = gw.envoy.log();
    assert!(log.contains(r#""event":"directory_fetch""#) && log.contains(r#""result":"timeout""#), "{log}");
}

/// Rotation without a configuration reload: the agent's directory moves from key A to key
/// B; a request signed with B triggers one early refetch (after `refetch_interval`) and
/// verifies; A, gone from the directory, no longer verifies.
#[test]
fn rotation_without_reload() {
    let (ka, kb) = (Key::rfc(), Key::b());
    let a = Agent::new("https://agent-a.test", "agent-a", Behaviour::jwks(&jwks(&[&ka]), 3600));
    let gw = gateway(&[&a], json!({ "refetch_interval": 1 }), json!({}));
    gw.envoy.wait_until(10, "warm-up fetch", || a.server.fetches() == 1);
    assert_verified(&get(gw.port, &signed(a.uri, &ka)), a.uri, "agent-a");
    a.server.set(Behaviour::jwks(&jwks(&[&kb]), 3600));
    std::thread::sleep(Duration::from_millis(1100));
    assert_verified(&get(gw.port, &signed(a.uri, &kb)), a.uri, "agent-a");
    assert_eq!(a.server.fetches(), 2, "one early refetch for the unknown keyid");
    // The directory loaded without key A: A is removed (and no refetch within the interval).
    assert_rejected(&get(gw.port, &signed(a.uri, &ka)), 403, "unknown_key");
    assert_eq!(a.server.fetches(), 2);
}

/// The directory server goes down: its keys stay usable while stale (`max_stale`), the
/// refreshes that fail are negatively cached, and then the agent fails closed (503).
#[test]
fn server_down_stale_keys_then_fail_closed() {
    let key = Key::rfc();
    let a = Agent::new("https://agent-a.test", "agent-a", Behaviour::jwks(&jwks(&[&key]), 1));
    let bounds = json!({ "min_ttl": 1, "max_ttl": 1, "default_ttl": 1, "max_stale": 4, "max_negative_ttl": 1, "refetch_interval": 1 });
    let gw = gateway(&[&a], bounds, json!({}));
    gw.envoy.wait_until(10, "warm-up fetch", || a.server.fetches() >= 1);
    // The keys are refreshed every second or two: take the server down right after a
    // refresh, so the stale window is measured from a known fetch.
    let n = a.server.fetches();
    gw.envoy.wait_until(10, "a refresh", || a.server.fetches() > n);
    let t0 = Instant::now();
    let Agent { uri, server, .. } = a;
    // Down: the kept-alive connection is reset, new connections are refused.
    server.set(Behaviour::Reset);
    drop(server);
    let mut seen = Vec::new();
    while t0.elapsed() < Duration::from_millis(7500) {
        let res = get(gw.port, &signed(uri, &key));
        seen.push((t0.elapsed(), res.status, code(&res)));
        std::thread::sleep(Duration::from_millis(250));
    }
    let stale_ok =
        seen.iter().any(|(t, s, _)| *t >= Duration::from_secs(2) && *t <= Duration::from_secs(3) && *s == 200);
    assert!(stale_ok, "stale keys must keep verifying after freshness ends: {seen:?}");
    let late: Vec<_> = seen.iter().filter(|(t, ..)| *t >= Duration::from_millis(5800)).collect();
    assert!(!late.is_empty() && late.iter().all(|(_, s, c)| *s == 503 && c == "directory_unavailable"), "{seen:?}");
    let counters = gw.envoy.counters("botauth");
    assert!(counters.get("botauth.directory.agent-a.fetch_failed").copied().unwrap_or(0) >= 1, "{counters:?}");
    let log = gw.envoy.log();
    assert!(log.contains(r#""state":"stale""#) && log.contains(r#""result":"http_status""#), "{log}");
    assert!(log.contains(r#""state":"unavailable""#), "after max_stale: {log}");
}

/// A 404 and a 200 with garbage are failures: the agents fail closed (503) and the failure
/// is negatively cached, so requests do not make the gateway fetch again.
#[test]
fn not_found_and_garbage_are_negatively_cached() {
    let key = Key::rfc();
    let missing = Agent::new("https://agent-a.test", "agent-a", Behaviour::status(404, &[], "not here"));
    let html = Behaviour::status(200, &[("Content-Type", "text/html")], "<html><body>Welcome</body></html>");
    let garbage = Agent::new("https://agent-b.test", "agent-b", html);
    let gw = gateway(&[&missing, &garbage], json!({}), json!({}));
    gw.envoy.wait_until(10, "warm-up fetches", || missing.server.fetches() == 1 && garbage.server.fetches() == 1);
    for _ in 0..4 {
        assert_rejected(&get(gw.port, &signed(missing.uri, &key)), 503, "directory_unavailable");
        assert_rejected(&get(gw.port, &signed(garbage.uri, &key)), 503, "directory_unavailable");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!((missing.server.fetches(), garbage.server.fetches()), (1, 1), "negatively cached");
    let log = gw.envoy.log();
    assert!(log.contains(r#""result":"not_found""#), "{log}");
    assert!(log.contains(r#""result":"not_json""#), "{log}");
}

/// An agent that is neither pinned nor allow-listed is refused (403 agent_not_allowed), and
/// its `Signature-Agent` never makes the gateway call anything.
#[test]
fn unlisted_agent_causes_no_fetch() {
    let key = Key::rfc();
    let a = Agent::new("https://agent-a.test", "agent-a", Behaviour::jwks(&jwks(&[&key]), 3600));
    let gw = gateway(&[&a], json!({}), json!({ "prefetch": false }));
    for agent in ["https://unlisted.test", &format!("https://127.0.0.1:{}", a.server.port())] {
        assert_rejected(&get(gw.port, &signed(agent, &key)), 403, "agent_not_allowed");
    }
    // An http agent is refused before any lookup (draft-ietf-webbotauth-httpsig-protocol §4.1).
    let plain = format!("http://127.0.0.1:{}", a.server.port());
    assert_rejected(&get(gw.port, &signed(&plain, &key)), 400, "signature_agent_not_https");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.server.fetches(), 0, "no call for an agent that is not allow-listed");
}
