//! Faults under Viceroy (issue 11): key directories that reset, serve 10 MB or answer 500
//! with `Retry-After`; an origin that is down, slow or resets; missing and garbled store
//! items. Each checks a bounded wait, the precise answer (stale keys, or a fail-closed
//! problem for the agent concerned only), that other agents and unsigned traffic are
//! untouched, and that the service still answers afterwards.
//!
//! (`directories.rs` covers the other directory faults: slow beyond the timeout, 404, HTML
//! with 200, too big by `Content-Length`, too many keys, redirects.)
//!
//! Each scenario starts its own Viceroy; run with `--test-threads 2`.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::time::{Duration, Instant};

use botauth_testkit::directory::{Behaviour, DirectoryServer};
use botauth_testkit::free_port;
use botauth_testkit::origin::Origin;
use common::live::*;
use common::*;

/// Signed traffic for the pinned agent and unsigned traffic still work, and the origin saw them.
fn others_untouched(svc: &Service, origin: &Origin, pinned: &TestKey) {
    assert_verified(&send(svc, pinned, PINNED), origin, PINNED, pinned);
    assert_eq!(unsigned(svc).status, 200);
}

/// The verdict events (not directory fetches) since the last call.
fn verdict_events(svc: &mut Service) -> Vec<serde_json::Value> {
    svc.new_log_events().into_iter().filter(|e| e.get("verdict").is_some()).collect()
}

/// A key directory that must not be refetched before `Retry-After`: 500 with
/// `Retry-After: 120`, versus a plain 500 whose backoff (10 s) allows a refetch in the test.
fn server_error(retry_after: Option<&str>) -> Behaviour {
    match retry_after {
        Some(ra) => Behaviour::status(500, &[("Retry-After", ra)], "down for maintenance"),
        None => Behaviour::status(500, &[], "oops"),
    }
}

/// The `directory_fetch` events of `agent` among `events`.
fn of<'e>(events: &'e [serde_json::Value], agent: &Agent) -> Vec<&'e serde_json::Value> {
    events.iter().filter(|e| e["event"] == "directory_fetch" && e["agent"] == agent.label()).collect()
}

#[test]
fn resetting_and_10_mb_directories_fail_closed_for_their_agent_only_within_a_bounded_wait() {
    let (a, c) = (TestKey::from_byte(1), TestKey::from_byte(3));
    let ten_mb = 10 * 1024 * 1024;
    let ok = Agent::new("https://agent-ok.test", Behaviour::jwks(&jwks_of(&[&a]), 300));
    let resets = Agent::new("https://agent-rst.test", Behaviour::status(200, &[], "probe"));
    let chunked = Agent::new("https://agent-10mb.test", Behaviour::status(200, &[], "probe"));
    let declared = Agent::new("https://agent-10mb-cl.test", Behaviour::status(200, &[], "probe"));
    let was_ok = Agent::new("https://agent-was-ok.test", Behaviour::jwks(&jwks_of(&[&a]), 1));
    let origin = Origin::start().expect("origin");
    let bounds = r#""min_ttl":1,"max_ttl":1,"default_ttl":1,"refetch_interval":1,"max_stale":600"#;
    let mut svc = Service::start(&setup(&[&ok, &resets, &chunked, &declared, &was_ok], bounds, &c), origin.port());
    // Faulty only from now on (Viceroy probes every backend at startup).
    resets.server.set(Behaviour::Abort);
    chunked.server.set(Behaviour::huge(ten_mb));
    declared.server.set(Behaviour::jwks(&" ".repeat(ten_mb), 300));
    origin.clear();
    svc.new_log_events();

    // Cold agents: the one fetch fails, the agent fails closed at once (503), the failure is
    // negatively cached; nobody else notices.
    for (agent, cause) in [(&resets, "transport_error"), (&chunked, "body_too_large"), (&declared, "body_too_large")] {
        let started = Instant::now();
        let resp = send(&svc, &a, agent.uri);
        let took = started.elapsed();
        assert_eq!((resp.status, problem_code(&resp).as_str()), (503, "directory_unavailable"), "{}", agent.uri);
        assert!(took < Duration::from_secs(3), "{}: the wait is bounded (fetch timeout 2 s), took {took:?}", agent.uri);
        for _ in 0..5 {
            let resp = send(&svc, &a, agent.uri);
            assert_eq!((resp.status, problem_code(&resp).as_str()), (503, "directory_unavailable"), "{}", agent.uri);
        }
        assert_eq!(agent.fetches(), 1, "{}: negatively cached", agent.uri);
        let events = svc.new_log_events();
        let fetched = of(&events, agent);
        assert_eq!(fetched.len(), 1, "{events:?}");
        // Viceroy 0.22 reports no send-error detail (Fastly says `connect_failed`).
        let result = fetched[0]["result"].as_str().unwrap_or_default();
        assert!(result == cause || (cause == "transport_error" && result == "connect_failed"), "{result}");
        assert_eq!(fetched[0]["keys"], 0);
        assert_verified(&send(&svc, &a, ok.uri), &origin, ok.uri, &a);
        others_untouched(&svc, &origin, &c);
    }

    // An agent whose directory worked starts resetting: its stale keys keep verifying, and
    // the failed refresh (after the response) keeps them.
    assert_verified(&send(&svc, &a, was_ok.uri), &origin, was_ok.uri, &a);
    was_ok.server.set(Behaviour::Abort);
    std::thread::sleep(Duration::from_millis(1100));
    svc.new_log_events();
    assert_verified(&send(&svc, &a, was_ok.uri), &origin, was_ok.uri, &a);
    let events = wait_fetch_event(&mut svc, 5);
    let refreshed = of(&events, &was_ok);
    assert_eq!(refreshed.len(), 1, "{events:?}");
    assert_eq!((refreshed[0]["reason"].as_str(), refreshed[0]["keys"].as_u64()), (Some("stale"), Some(1)));
    assert_ne!(refreshed[0]["result"], "ok");
    for _ in 0..3 {
        assert_verified(&send(&svc, &a, was_ok.uri), &origin, was_ok.uri, &a);
    }
    assert_eq!(was_ok.fetches(), 2, "the failed refresh is negatively cached");
    others_untouched(&svc, &origin, &c);
    let (stdout, stderr) = svc.output();
    assert!(!stderr.contains("panicked") && !stdout.contains("panicked"), "{stderr}");
}

#[test]
fn a_500_with_retry_after_is_not_refetched_before_it_and_stale_keys_keep_verifying() {
    let (a, c) = (TestKey::from_byte(1), TestKey::from_byte(3));
    let ok = Agent::new("https://agent-ok.test", Behaviour::jwks(&jwks_of(&[&a]), 300));
    let asked = Agent::new("https://agent-ra.test", Behaviour::status(200, &[], "probe"));
    let plain = Agent::new("https://agent-500.test", Behaviour::status(200, &[], "probe"));
    let stale = Agent::new("https://agent-ra-stale.test", Behaviour::jwks(&jwks_of(&[&a]), 1));
    let origin = Origin::start().expect("origin");
    let bounds = r#""min_ttl":1,"max_ttl":1,"default_ttl":1,"refetch_interval":1,"max_stale":600"#;
    let mut svc = Service::start(&setup(&[&ok, &asked, &plain, &stale], bounds, &c), origin.port());
    asked.server.set(server_error(Some("120")));
    plain.server.set(server_error(None));
    origin.clear();
    svc.new_log_events();

    let t0 = unix_now();
    for agent in [&asked, &plain] {
        let resp = send(&svc, &a, agent.uri);
        assert_eq!((resp.status, problem_code(&resp).as_str()), (503, "directory_unavailable"), "{}", agent.uri);
    }
    let events = svc.new_log_events();
    let (ra, base) = (of(&events, &asked), of(&events, &plain));
    assert_eq!((ra.len(), base.len()), (1, 1), "{events:?}");
    assert_eq!((ra[0]["result"].as_str(), base[0]["result"].as_str()), (Some("http_status"), Some("http_status")));
    let retry_at = ra[0]["retry_after"].as_u64().unwrap_or_default();
    assert!((t0 + 119..=unix_now() + 120).contains(&retry_at), "Retry-After: 120 → retry_after {retry_at} (t0 {t0})");
    let backoff_at = base[0]["retry_after"].as_u64().unwrap_or_default();
    assert!((t0 + 9..=unix_now() + 10).contains(&backoff_at), "the first backoff is 10 s: {backoff_at} (t0 {t0})");

    // Keys loaded, then the directory answers 500 + Retry-After: the refresh fails once.
    assert_verified(&send(&svc, &a, stale.uri), &origin, stale.uri, &a);
    svc.new_log_events();
    stale.server.set(server_error(Some("120")));
    std::thread::sleep(Duration::from_millis(1100));
    assert_verified(&send(&svc, &a, stale.uri), &origin, stale.uri, &a);
    let failed_at = unix_now();
    let events = wait_fetch_event(&mut svc, 5);
    let refreshed = of(&events, &stale);
    assert_eq!(refreshed.len(), 1, "{events:?}");
    assert_eq!((refreshed[0]["reason"].as_str(), refreshed[0]["keys"].as_u64()), (Some("stale"), Some(1)));
    let retry_at = refreshed[0]["retry_after"].as_u64().unwrap_or_default();
    assert!((failed_at + 119..=failed_at + 121).contains(&retry_at), "{retry_at} vs {failed_at}");

    // 11 s of traffic: the plain 500 is fetched again once its 10 s backoff is over; the
    // agents that asked for 120 s are not, and the stale keys keep verifying meanwhile.
    let until = Instant::now() + Duration::from_secs(11);
    while Instant::now() < until {
        for agent in [&asked, &plain] {
            let resp = send(&svc, &a, agent.uri);
            assert_eq!((resp.status, problem_code(&resp).as_str()), (503, "directory_unavailable"), "{}", agent.uri);
        }
        assert_verified(&send(&svc, &a, stale.uri), &origin, stale.uri, &a);
        assert_verified(&send(&svc, &a, ok.uri), &origin, ok.uri, &a);
        others_untouched(&svc, &origin, &c);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(asked.fetches(), 1, "no second fetch before Retry-After");
    assert_eq!(stale.fetches(), 2, "the failed refresh is not retried before Retry-After");
    assert!(plain.fetches() >= 2, "without Retry-After the 10 s backoff allowed a refetch ({})", plain.fetches());
}

#[test]
fn origin_down_slow_or_resetting_answers_problem_json_and_the_verdict_is_still_logged() {
    let key = TestKey::from_byte(3);
    let setup = || {
        let mut s = Setup::standard()
            .with_setting("policy", r#"{"mode":"enforce"}"#)
            .without_setting("testing_now")
            .with_setting("origin_timeout_ms", "1000");
        s.jwks = Some(vec![(jwks_item_key(PINNED), jwks_of(&[&key]))]);
        s
    };
    let healthy = || Behaviour::status(200, &[], "ok");
    let closed = free_port().expect("free port");
    let slow = DirectoryServer::start(healthy()).expect("slow origin");
    let resets = DirectoryServer::start(healthy()).expect("resetting origin");
    let cases = [
        ("down", closed, 502, "origin_unreachable"),
        ("slow", slow.port(), 504, "origin_timeout"),
        ("reset", resets.port(), 502, "origin_unreachable"),
    ];
    for (name, port, status, code) in cases {
        let mut svc = Service::start(&setup(), port);
        slow.set(Behaviour::Slow(Duration::from_secs(20), Box::new(healthy())));
        resets.set(Behaviour::Abort);
        svc.new_log_events();
        for signed_request in [true, false] {
            let started = Instant::now();
            let resp = if signed_request { send(&svc, &key, PINNED) } else { unsigned(&svc) };
            let took = started.elapsed();
            assert_eq!((resp.status, problem_code(&resp).as_str()), (status, code), "{name}: {}", resp.text());
            assert_eq!(resp.header("cache-control"), Some("no-store"), "{name}");
            // Bounds with room for a loaded machine; the slow origin would take 20 s.
            let bound = if name == "slow" { 900..5000 } else { 0..2500 };
            assert!(bound.contains(&took.as_millis()), "{name}: answered after {took:?}");
        }
        // The verdict was logged before the origin failed.
        let verdicts = verdict_events(&mut svc);
        assert_eq!(verdicts.len(), 1, "{name}: {verdicts:?}");
        assert_eq!((verdicts[0]["verdict"].as_str(), verdicts[0]["agent"].as_str()), (Some("verified"), Some(PINNED)));
        let (_, stderr) = svc.output();
        assert!(stderr.contains("botauth: warning: backend request failed"), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");

        // The service still answers once the origin is back.
        let _back = (name == "down").then(|| DirectoryServer::start_on(closed, healthy()).expect("origin back"));
        slow.set(healthy());
        resets.set(healthy());
        let resp = send(&svc, &key, PINNED);
        assert_eq!((resp.status, resp.text().as_str()), (200, "ok"), "{name}: after the fault");
        assert_eq!(unsigned(&svc).status, 200, "{name}");
    }
}

/// A request signed with the test key that names no agent (no `Signature-Agent`): its keys
/// come from the agents listed in `botauth_jwks.agents` and the any-agent item.
fn signed_without_agent() -> Vec<(String, String)> {
    use botauth_core::components::Message;
    use botauth_core::sign::{sign, SignParams};
    let req = botauth_core::HttpRequest::new("GET", "https", "example.com", "/");
    let params = SignParams {
        label: "sig1".into(),
        components: vec!["\"@authority\"".into()],
        created: Some(NOW - 10),
        keyid: Some(TEST_KEYID.into()),
        alg: Some("ed25519".into()),
        expires: Some(NOW + 300),
        nonce: None,
        tag: Some("web-bot-auth".into()),
    };
    let signed = sign(&Message::request(&req), &seed(), &params).expect("sign");
    headers(&[("Host", "example.com"), ("Signature-Input", &signed.signature_input), ("Signature", &signed.signature)])
}

#[test]
fn garbled_store_items_fail_closed_with_configuration_error_for_signed_traffic_only() {
    let origin = Origin::start().expect("origin");
    let plain = headers(&[("Host", "example.com")]);
    let with_agent = signed_headers(&Sig::default());
    let no_agent = signed_without_agent();
    let with_jwks = |item: &str, value: &str| {
        let mut s = Setup::standard();
        s.jwks.get_or_insert_with(Vec::new).push((item.into(), value.into()));
        s
    };
    let secret = |data: &str| Setup {
        secrets: Some(vec![("verdict_auth_k1".into(), data.into())]),
        ..Setup::standard().with_setting("verdict_auth_kid", "k1")
    };
    // (what, setup, the signed request, what the log line must name)
    type Case<'a> = (&'a str, Setup, &'a [(String, String)], &'a str);
    let fail_closed: Vec<Case<'_>> = vec![
        ("empty policy", Setup::standard().with_setting("policy", ""), &with_agent, "`botauth_settings.policy`"),
        ("scheme", Setup::standard().with_setting("scheme", "ftp"), &with_agent, "`botauth_settings.scheme`"),
        ("max_body", Setup::standard().with_setting("max_body", "lots"), &with_agent, "`botauth_settings.max_body`"),
        (
            "directories not JSON",
            Setup::standard().with_setting("directories", "{\"agents\":["),
            &with_agent,
            "`botauth_settings.directories`",
        ),
        (
            "verdict_auth_kid without the secret store",
            Setup::standard().with_setting("verdict_auth_kid", "k1"),
            &with_agent,
            "secret store `botauth_secrets` cannot be opened",
        ),
        (
            "verdict_auth secret missing",
            secret("").with_setting("verdict_auth_kid", "k2"),
            &with_agent,
            "verdict_auth_k2` is missing",
        ),
        ("verdict_auth secret not base64", secret("*not base64*"), &with_agent, "verdict_auth_k1` is not base64"),
        ("verdict_auth secret too short", secret("c2hvcnQ="), &with_agent, "`botauth_settings.verdict_auth_kid`"),
        ("agents item not an array", with_jwks("agents", "{\"a\":1}"), &no_agent, "`botauth_jwks.agents` must be"),
        ("any-agent item not a JWKS", with_jwks("_2A", "[]"), &with_agent, "`botauth_jwks._2A` (agent *) is invalid"),
    ];
    for (what, setup, signed, named) in fail_closed {
        let svc = Service::start(&setup, origin.port());
        let resp = svc.send("GET", "/s", signed, None);
        assert_eq!((resp.status, problem_code(&resp).as_str()), (503, "configuration_error"), "{what}");
        assert!(!resp.text().contains("botauth_"), "{what}: the answer names no store item: {}", resp.text());
        assert_eq!(svc.send("GET", "/u", &plain, None).status, 200, "{what}: unsigned traffic keeps flowing");
        let (_, stderr) = svc.output();
        let line = stderr.lines().find(|l| l.contains("botauth: configuration error") && l.contains(named));
        assert!(line.is_some(), "{what}: no configuration error naming {named:?}:\n{stderr}");
        assert!(!stderr.contains("*not base64*"), "{what}: a secret is never logged");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }

    // Items every request reads: garbled, they are logged and ignored (defaults apply);
    // verification is unaffected.
    for (item, value) in [("debug", "maybe"), ("claims", "[{"), ("origin_timeout_ms", "soon")] {
        let svc = Service::start(&Setup::standard().with_setting(item, value), origin.port());
        let resp = svc.send("GET", "/s", &with_agent, None);
        assert_eq!(resp.status, 200, "{item}: {}", resp.text());
        assert_eq!(svc.send("GET", "/u", &plain, None).status, 200, "{item}");
        let (_, stderr) = svc.output();
        let named = format!("`botauth_settings.{item}`");
        assert!(
            stderr.lines().any(|l| l.contains("botauth: configuration error") && l.contains(&named)),
            "{item}: {stderr}"
        );
    }
}
