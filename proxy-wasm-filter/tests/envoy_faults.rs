//! Faults in a real Envoy (1.40, V8) with the filter (issue 11): key directories that reset,
//! serve 10 MB, redirect, answer 500 with `Retry-After` or HTML with 200; an origin that is
//! down, slow or resets; hot reloads to a bad plugin configuration, one top-level member at
//! a time; a flood of distinct nonces through a small replay cache.
//!
//! Each check asserts a bounded wait, the precise answer (stale keys, or a fail-closed
//! problem for the agent concerned only), that another agent and unsigned traffic are
//! untouched, and that Envoy still answers afterwards.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::time::{Duration, Instant};

use botauth_testkit::directory::{Behaviour, DirectoryServer};
use common::gateway::{assert_rejected, assert_verified, gateway_with, get, Agent, Gateway};
use common::{jwks, signed, Envoy, Key, Listener};
use serde_json::{json, Value};

const WELL_KNOWN: &str = "/.well-known/http-message-signatures-directory";
/// An agent pinned in `keys` (key B): untouched by directory trouble.
const PINNED: &str = "https://pinned.test";

/// Fetches of the well-known path received by `agent`'s server.
fn fetches(agent: &Agent) -> usize {
    agent.server.hits().iter().filter(|h| h.target == WELL_KNOWN).count()
}

/// Key B pinned for [`PINNED`] (label `pinned`), on top of the directory agents.
fn pinned_keys() -> Value {
    json!({
        "keys": { PINNED: { "keys": [Key::b().jwk()] } },
        "labels": { PINNED: "pinned" },
    })
}

/// The pinned agent verifies and unsigned traffic passes.
fn others_untouched(gw: &Gateway) {
    assert_verified(&get(gw.port, &signed(PINNED, &Key::b())), PINNED, "pinned");
    let res = get(gw.port, &[("Host".into(), "example.com".into())]);
    assert_eq!(res.status, 200, "unsigned: {}", res.text());
}

/// The `directory_fetch` log lines of `label` (JSON objects).
fn fetch_lines(gw: &Gateway, label: &str) -> Vec<Value> {
    gw.envoy
        .log()
        .lines()
        .filter_map(|l| l.find("botauth: {").map(|i| &l[i + "botauth: ".len()..]))
        .filter_map(|j| serde_json::from_str::<Value>(j).ok())
        .filter(|e| e["event"] == "directory_fetch" && e["agent"] == label)
        .collect()
}

/// A 500 that asks for `Retry-After: 120`, or a plain one (the first backoff is 10 s).
fn server_error(retry_after: Option<&str>) -> Behaviour {
    match retry_after {
        Some(ra) => Behaviour::status(500, &[("Retry-After", ra)], "down for maintenance"),
        None => Behaviour::status(500, &[], "oops"),
    }
}

/// Cold agents whose directory resets, serves 10 MB (chunked, and by Content-Length),
/// redirects or serves HTML with 200: the first request waits for the one fetch, briefly,
/// and fails closed (503); the failure is negatively cached; the redirect target is never
/// asked; the other agents and unsigned traffic are untouched; an agent that had keys and
/// whose directory starts resetting keeps verifying with its stale keys.
#[test]
fn failing_directories_fail_closed_for_their_agent_only_within_a_bounded_wait() {
    let key = Key::rfc();
    let ten_mb = 10 * 1024 * 1024;
    let elsewhere = DirectoryServer::start(Behaviour::jwks(&jwks(&[&key]), 300)).expect("redirect target");
    let location = format!("{}{WELL_KNOWN}", elsewhere.base_url());
    let html = Behaviour::status(200, &[("Content-Type", "text/html")], "<html>secret-page-body</html>");
    let rst = Agent::new("https://agent-rst.test", "agent-rst", Behaviour::Abort);
    let huge = Agent::new("https://agent-10mb.test", "agent-10mb", Behaviour::huge(ten_mb));
    let declared = Agent::new("https://agent-10mb-cl.test", "agent-10mb-cl", Behaviour::jwks(&" ".repeat(ten_mb), 300));
    let moved =
        Agent::new("https://agent-moved.test", "agent-moved", Behaviour::status(302, &[("Location", &location)], ""));
    let garbage = Agent::new("https://agent-html.test", "agent-html", html);
    let ok = Agent::new("https://agent-ok.test", "agent-ok", Behaviour::jwks(&jwks(&[&key]), 300));
    let was_ok = Agent::new("https://agent-was-ok.test", "agent-was-ok", Behaviour::jwks(&jwks(&[&key]), 1));
    let agents = [&ok, &rst, &huge, &declared, &moved, &garbage, &was_ok];
    let bounds = json!({ "min_ttl": 1, "max_ttl": 1, "default_ttl": 1, "refetch_interval": 1, "max_stale": 600 });
    let gw = gateway_with(&agents, bounds, json!({ "prefetch": false }), pinned_keys(), |y| y);

    // Envoy answers a dispatched call that was reset with its own 503 (logged as
    // `http_status`): the filter cannot tell it from the directory's.
    let cases = [
        (&rst, "http_status"),
        (&huge, "body_too_large"),
        (&declared, "body_too_large"),
        (&moved, "redirect"),
        (&garbage, "not_json"),
    ];
    for (agent, result) in cases {
        let started = Instant::now();
        let res = get(gw.port, &signed(agent.uri, &key));
        let took = started.elapsed();
        assert_rejected(&res, 503, "directory_unavailable");
        assert!(
            took < Duration::from_secs(3),
            "{}: the wait is bounded (fetch timeout 2 s), took {took:?}",
            agent.label
        );
        for _ in 0..4 {
            assert_rejected(&get(gw.port, &signed(agent.uri, &key)), 503, "directory_unavailable");
        }
        assert_eq!(fetches(agent), 1, "{}: negatively cached", agent.label);
        let lines = fetch_lines(&gw, agent.label);
        assert_eq!(lines.len(), 1, "{}: {lines:?}", agent.label);
        assert_eq!(
            (lines[0]["result"].as_str(), lines[0]["keys"].as_u64()),
            (Some(result), Some(0)),
            "{}",
            agent.label
        );
        assert_verified(&get(gw.port, &signed(ok.uri, &key)), ok.uri, "agent-ok");
        others_untouched(&gw);
    }
    assert_eq!(elsewhere.hits().len(), 0, "a redirect is never followed");
    assert!(!gw.envoy.log().contains("secret-page-body"), "no directory body is logged");

    // Keys loaded, then the directory resets every connection: the tick's refreshes fail,
    // and the stale keys keep verifying.
    assert_verified(&get(gw.port, &signed(was_ok.uri, &key)), was_ok.uri, "agent-was-ok");
    was_ok.server.set(Behaviour::Abort);
    gw.envoy.wait_until(10, "a failed refresh", || fetch_lines(&gw, was_ok.label).iter().any(|l| l["result"] != "ok"));
    let failed = fetch_lines(&gw, was_ok.label);
    let last = failed.last().cloned().unwrap_or_default();
    assert_eq!((last["state"].as_str(), last["keys"].as_u64()), (Some("stale"), Some(1)), "{failed:?}");
    for _ in 0..3 {
        assert_verified(&get(gw.port, &signed(was_ok.uri, &key)), was_ok.uri, "agent-was-ok");
    }
    others_untouched(&gw);
    let counters = gw.envoy.counters("botauth");
    assert_eq!(counters.get("botauth.directory.agent-rst.fail_closed"), Some(&5), "{counters:?}");
    assert!(!gw.envoy.log().contains("panicked"), "{}", gw.envoy.log());
}

/// A directory answering 500 with `Retry-After: 120` is not fetched again before then, cold
/// (the agent fails closed meanwhile) or after its keys were loaded (they keep verifying);
/// a plain 500 is fetched again after the 10 s backoff, in the same run.
#[test]
fn a_500_with_retry_after_is_not_refetched_before_it() {
    let key = Key::rfc();
    let asked = Agent::new("https://agent-ra.test", "agent-ra", server_error(Some("120")));
    let plain = Agent::new("https://agent-500.test", "agent-500", server_error(None));
    let stale = Agent::new("https://agent-ra-stale.test", "agent-ra-stale", Behaviour::jwks(&jwks(&[&key]), 1));
    let bounds = json!({ "min_ttl": 1, "max_ttl": 1, "default_ttl": 1, "refetch_interval": 1, "max_stale": 600 });
    let gw = gateway_with(&[&asked, &plain, &stale], bounds, json!({}), pinned_keys(), |y| y);
    let t0 = common::unix_now();
    gw.envoy.wait_until(10, "warm-up fetches", || fetches(&asked) == 1 && fetches(&plain) == 1 && fetches(&stale) == 1);
    let first = |a: &Agent| fetch_lines(&gw, a.label).first().cloned().unwrap_or_default();
    let retry_at = first(&asked)["retry_after"].as_u64().unwrap_or_default();
    assert!((t0 + 119..=common::unix_now() + 120).contains(&retry_at), "Retry-After: 120 → {retry_at} (t0 {t0})");
    assert_eq!(first(&asked)["result"], "http_status");
    let backoff_at = first(&plain)["retry_after"].as_u64().unwrap_or_default();
    assert!((t0 + 9..=common::unix_now() + 10).contains(&backoff_at), "the first backoff is 10 s: {backoff_at}");

    assert_verified(&get(gw.port, &signed(stale.uri, &key)), stale.uri, "agent-ra-stale");
    stale.server.set(server_error(Some("120")));
    gw.envoy.wait_until(10, "the failed refresh", || fetch_lines(&gw, stale.label).iter().any(|l| l["result"] != "ok"));
    let failed_at = common::unix_now();
    let n = fetches(&stale);

    let until = Instant::now() + Duration::from_secs(11);
    while Instant::now() < until {
        assert_rejected(&get(gw.port, &signed(asked.uri, &key)), 503, "directory_unavailable");
        assert_rejected(&get(gw.port, &signed(plain.uri, &key)), 503, "directory_unavailable");
        assert_verified(&get(gw.port, &signed(stale.uri, &key)), stale.uri, "agent-ra-stale");
        others_untouched(&gw);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(fetches(&asked), 1, "no second fetch before Retry-After");
    assert_eq!(fetches(&stale), n, "the failed refresh is not retried before Retry-After");
    let last = fetch_lines(&gw, stale.label).last().cloned().unwrap_or_default();
    let stale_retry = last["retry_after"].as_u64().unwrap_or_default();
    assert!((failed_at + 118..=failed_at + 120).contains(&stale_retry), "{stale_retry} vs {failed_at}");
    assert!(fetches(&plain) >= 2, "without Retry-After the 10 s backoff allowed a refetch ({})", fetches(&plain));
}

/// The plugin configuration of the origin and reload tests: key B pinned for [`PINNED`].
fn pinned_config() -> Value {
    let mut config = pinned_keys();
    config["policy"] = json!({ "mode": "enforce" });
    config["replay"] = json!({ "namespace": "faults" });
    config
}

/// An origin that is down (nothing listens), slow (beyond a 1 s route timeout) or resets
/// every connection: Envoy answers 502/504 problem+json (the example's
/// `local_reply_config`), signed or not; the filter logged the verdict before; Envoy still
/// answers once the origin is back.
#[test]
fn origin_down_slow_or_resetting_answers_problem_json_and_the_verdict_is_still_logged() {
    let healthy = || Behaviour::status(200, &[], "ok");
    let closed = botauth_testkit::free_port().expect("free port");
    let slow = DirectoryServer::start(healthy()).expect("slow origin");
    let resets = DirectoryServer::start(healthy()).expect("resetting origin");
    let cases = [
        ("down", closed, 502, "origin_unreachable"),
        ("slow", slow.port(), 504, "origin_timeout"),
        ("reset", resets.port(), 502, "origin_unreachable"),
    ];
    for (name, origin, status, want) in cases {
        let (admin, port) = match common::ports(2)[..] {
            [a, p] => (a, p),
            _ => unreachable!(),
        };
        let yaml = common::render_main(admin, origin, &[Listener::new(port, pinned_config())]);
        let yaml = common::replace_once(&yaml, "timeout: 15s", "timeout: 1s");
        let envoy = Envoy::start(&yaml, admin, &[port]);
        slow.set(Behaviour::Slow(Duration::from_secs(20), Box::new(healthy())));
        resets.set(Behaviour::Abort);
        for request in [signed(PINNED, &Key::b()), vec![("Host".into(), "example.com".into())]] {
            let started = Instant::now();
            let res = get(port, &request);
            let took = started.elapsed();
            assert_eq!(res.status, status, "{name}: {}", res.text());
            assert_eq!(res.header("content-type"), Some("application/problem+json"), "{name}");
            assert_eq!(res.header("cache-control"), Some("no-store"), "{name}");
            let problem = res.json().unwrap_or_else(|e| panic!("{name}: {e}: {}", res.text()));
            assert_eq!(problem["type"], format!("urn:botauth:problem:{want}"), "{name}");
            assert_eq!((problem["code"].as_str(), problem["status"].as_u64()), (Some(want), Some(u64::from(status))));
            // Bounds with room for a loaded machine; the slow origin would take 20 s.
            let bound = if name == "slow" { 900..5000 } else { 0..2500 };
            assert!(bound.contains(&took.as_millis()), "{name}: answered after {took:?}");
        }
        let log = envoy.log();
        let verdicts: Vec<&str> =
            log.lines().filter(|l| l.contains("botauth: {") && l.contains("\"verdict\":")).collect();
        assert_eq!(verdicts.len(), 1, "{name}: one verdict line for the signed request\n{log}");
        assert!(verdicts[0].contains(r#""verdict":"verified""#) && verdicts[0].contains(PINNED), "{}", verdicts[0]);

        // Back: the same Envoy serves again.
        let _back = (name == "down").then(|| DirectoryServer::start_on(closed, healthy()).expect("origin back"));
        slow.set(healthy());
        resets.set(healthy());
        let res = get(port, &signed(PINNED, &Key::b()));
        assert_eq!((res.status, res.text().as_str()), (200, "ok"), "{name}: after the fault");
        // A rejection of the filter itself is untouched by the mappers.
        let res = get(port, &signed(PINNED, &Key::rfc()));
        assert_rejected(&res, 403, "unknown_key");
    }
}

/// Hot reloads (LDS) to a configuration with one bad top-level member, every member in turn
/// (and an unknown one): each is refused with a critical log line giving the exact reason,
/// and the last good configuration keeps serving; a good reload still takes effect after.
#[test]
fn a_hot_reload_to_a_bad_member_keeps_the_last_good_configuration_for_every_member() {
    let origin = botauth_testkit::origin::Origin::start().expect("origin");
    let good = pinned_config();
    let bad: Vec<(&str, Value)> = vec![
        ("keys", json!({ PINNED: [] })),
        ("directories", json!({ "agents": [{ "agent": "http://plain.test", "upstream": "origin" }] })),
        ("directory_cache", json!({ "namespace": "Not A Name" })),
        ("labels", json!({ "https://not-pinned.test": "x" })),
        ("policy", json!({ "mode": "block" })),
        ("verdict_header", json!("Not A Header")),
        ("agent_header", json!("signature")),
        ("scheme", json!("ftp")),
        ("authority", json!("origin")),
        ("max_body_bytes", json!(17 * 1024 * 1024)),
        ("replay", json!({ "capacity": 0 })),
        ("log", json!({ "sample": 0 })),
        ("metrics", json!({ "enabled": "yes" })),
        ("stat_prefix", json!("Bad Prefix")),
        ("retry_after", json!(-1)),
        ("verdict_auth", json!({ "kid": "k1", "secret_base64": "c2hvcnQ=" })),
        ("claims", json!([{ "agent": "http://plain.test", "user_agent": ["Bot"] }])),
        ("testing_fixed_now", json!("soon")),
        ("mdoe", json!("monitor")),
    ];
    let gw = common::LdsEnvoy::start(origin.port(), &good);
    let serves_good = |what: &str| {
        let res = get(gw.port, &signed(PINNED, &Key::b()));
        assert_verified(&res, PINNED, "pinned");
        let res = get(gw.port, &signed(PINNED, &Key::rfc()));
        assert_eq!(res.status, 403, "{what}: the good configuration (enforce) keeps serving: {}", res.text());
    };
    serves_good("start");
    let mut rejected = gw.lds_stat("update_rejected");
    for (member, value) in bad {
        let mut config = good.clone();
        config[member] = value;
        let error = botauth_proxy_wasm::config::parse(config.to_string().as_bytes())
            .err()
            .unwrap_or_else(|| panic!("{member}: the bad value must be refused"));
        gw.reload(&config);
        gw.envoy
            .wait_until(30, &format!("{member}: the reload is rejected"), || gw.lds_stat("update_rejected") > rejected);
        rejected = gw.lds_stat("update_rejected");
        let line = format!("botauth: invalid configuration: {error}");
        let log = gw.envoy.log();
        assert!(log.lines().any(|l| l.contains("[critical]") && l.contains(&line)), "{member}: no {line:?}\n{log}");
        serves_good(member);
    }
    // Reloading still works: monitor mode forwards the rejection.
    let mut monitor = good.clone();
    monitor["policy"] = json!({ "mode": "monitor" });
    gw.reload(&monitor);
    gw.envoy.wait_until(30, "the good reload", || get(gw.port, &signed(PINNED, &Key::rfc())).status == 200);
    assert!(!gw.envoy.log().contains("panicked"));
}

/// A nonce flood through one Envoy with a small replay cache (`replay.capacity` 256: four
/// nonces per shard): 2048 distinct signed nonces all verify; the cache then holds exactly
/// its capacity (the `replay.entries` gauge), the 1792 beyond it were evicted (the
/// `replay.evicted` counter), a replay of any shard's four most recent nonces is still
/// caught (429), and the oldest ones were evicted. (The million-nonce case runs natively:
/// `replay::tests::a_million_distinct_nonces_stay_within_capacity_and_recent_replays_are_caught`.)
#[test]
fn a_nonce_flood_stays_within_the_replay_capacity_and_recent_replays_are_caught() {
    use botauth_proxy_wasm::replay::{shard_key, SHARDS};
    const CAPACITY: usize = 256;
    const FLOOD: usize = 2048;
    let per_shard = CAPACITY / SHARDS as usize;
    let origin = botauth_testkit::origin::Origin::start().expect("origin");
    let mut config = pinned_config();
    config["replay"] = json!({ "namespace": "flood", "capacity": CAPACITY });
    let (admin, port) = match common::ports(2)[..] {
        [a, p] => (a, p),
        _ => unreachable!(),
    };
    let envoy =
        Envoy::start(&common::render_main(admin, origin.port(), &[Listener::new(port, config)]), admin, &[port]);
    let key = Key::b();
    let now = common::unix_now();
    let nonce = |i: usize| format!("flood-{i}");
    let shard = |i: usize| shard_key("flood", &botauth_core::replay::nonce_key(PINNED, &key.thumbprint, &nonce(i)));
    let requests: Vec<Vec<(String, String)>> =
        (0..FLOOD).map(|i| common::signed_with_nonce(PINNED, &key, now, &nonce(i))).collect();

    let mut recent: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    let mut first: std::collections::BTreeMap<String, usize> = Default::default();
    for (i, request) in requests.iter().enumerate() {
        let res = get(port, request);
        assert_eq!(res.status, 200, "nonce {i} is new: {}", res.text());
        first.entry(shard(i)).or_insert(i);
        let kept = recent.entry(shard(i)).or_default();
        kept.push(i);
        if kept.len() > per_shard {
            kept.remove(0);
        }
    }
    assert_eq!(recent.len(), SHARDS as usize);
    assert!(recent.values().all(|k| k.len() == per_shard), "every shard got at least {per_shard} nonces");
    assert_eq!(envoy.stat("wasmcustom.botauth.replay.entries"), CAPACITY as u64, "the cache holds its capacity");
    assert_eq!(envoy.stat("wasmcustom.botauth.replay.evicted"), (FLOOD - CAPACITY) as u64);

    for kept in recent.values() {
        for &i in kept {
            let res = get(port, &requests[i]);
            assert_rejected(&res, 429, "replay");
        }
    }
    assert_eq!(envoy.stat("wasmcustom.botauth.replay.entries"), CAPACITY as u64, "replays record nothing");
    for &i in first.values().take(8) {
        let res = get(port, &requests[i]);
        assert_eq!(res.status, 200, "the oldest nonce {i} was evicted: {}", res.text());
    }
    assert_eq!(get(port, &[("Host".into(), "example.com".into())]).status, 200);
}
