//! Live key directories end to end under Viceroy: the release build, a real HTTP/1.1
//! client, testkit's echo origin, and one testkit `DirectoryServer` on 127.0.0.1 per
//! allow-listed agent (a static backend each). Fetches are counted **at the directory
//! server** (requests for the well-known path; Viceroy's startup backend check asks for `/`).
//!
//! Clock: these scenarios run on the **real clock** (no `testing_now`: it is fixed for a
//! Viceroy run, so nothing would ever go stale) and sign with keys of their own, made
//! deterministically from fixed seeds (`TestKey::from_byte`), because the policy here is the
//! production one (`allow_test_keys` off, so the RFC 9421 key is refused). The directory
//! bounds are shrunk to seconds (`min_ttl`/`max_ttl`/`refetch_interval` 1–2 s, `max_stale`
//! 3 s) so staleness, early refetch and `max_stale` happen within a test; the Core Cache of
//! Viceroy is in memory and ages on the same real clock. An empty cache with an unreachable
//! directory is a Viceroy whose KV store `botauth_directories` is pre-populated (manifest
//! contents) with entries whose instants are set relative to the current time: one still
//! inside its stale window, one past it.
//!
//! Each scenario starts one Viceroy; run with `--test-threads 2`.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use botauth_core::components::Message;
use botauth_core::directory::Entry;
use botauth_core::sign::{sign, SignParams};
use botauth_core::{HttpRequest, PublicKey};
use botauth_testkit::directory::{Behaviour, DirectoryServer, MEDIA_TYPE};
use botauth_testkit::origin::Origin;
use common::live::*;
use common::*;

#[test]
fn first_request_fetches_the_next_hundred_do_not_and_only_listed_agents_are_fetched() {
    let (a, c) = (TestKey::from_byte(1), TestKey::from_byte(3));
    let agent = Agent::new(
        "https://agent-a.test",
        Behaviour::Respond {
            status: 200,
            headers: vec![
                ("Content-Type".into(), MEDIA_TYPE.into()),
                ("Cache-Control".into(), "max-age=300".into()),
                ("ETag".into(), "\"v1\"".into()),
            ],
            body: jwks_of(&[&a]).into_bytes(),
        },
    );
    let origin = Origin::start().expect("origin");
    let mut svc = Service::start(&setup(&[&agent], "", &c), origin.port());
    origin.clear();
    svc.new_log_events();

    let started = unix_now();
    let resp = send(&svc, &a, agent.uri);
    assert_verified(&resp, &origin, agent.uri, &a);
    assert_eq!(agent.fetches(), 1, "a cold agent is fetched inline, once");
    let hit = agent.server.hits().into_iter().find(|h| h.target == WELL_KNOWN).expect("the fetch");
    assert_eq!(hit.method, "GET");
    assert_eq!(hit.header("host"), Some(format!("127.0.0.1:{}", agent.server.port()).as_str()), "Host = authority");
    assert_eq!(hit.header("if-none-match"), None, "nothing to revalidate yet");
    assert!(hit.header("accept").is_some_and(|v| v.contains(MEDIA_TYPE)), "{hit:?}");
    let events = fetch_events(&mut svc);
    assert_eq!(events.len(), 1, "one log line per fetch: {events:?}");
    let e = &events[0];
    assert_eq!(
        (e["agent"].as_str(), e["result"].as_str(), e["reason"].as_str()),
        (Some(agent.label()), Some("ok"), Some("no_keys"))
    );
    assert_eq!(e["keys"], 1);
    let fresh_until = e["fresh_until"].as_u64().unwrap_or_default();
    assert!((started + 299..=unix_now() + 300).contains(&fresh_until), "max-age=300 → fresh_until {fresh_until}");

    for i in 0..100 {
        let resp = send(&svc, &a, agent.uri);
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
    }
    assert_eq!(agent.fetches(), 1, "the next 100 requests are served from the Core Cache");
    assert!(fetch_events(&mut svc).is_empty());

    // Other traffic: unsigned, a pinned agent with its own key.
    assert_eq!(unsigned(&svc).status, 200);
    assert_verified(&send(&svc, &c, PINNED), &origin, PINNED, &c);
    // The published RFC 9421 key is refused in production even though it is pinned.
    let resp = svc.send(
        "GET",
        "/",
        &signed_headers(&Sig { created: unix_now() - 5, expires: unix_now() + 60, ..Sig::default() }),
        None,
    );
    assert_eq!((resp.status, problem_code(&resp).as_str()), (403, "test_key_rejected"));

    // A Signature-Agent naming a host that is not on the list: no fetch at all, 403.
    let before = origin.seen().len();
    let resp = send(&svc, &a, "https://evil.test");
    assert_eq!((resp.status, problem_code(&resp).as_str()), (403, "agent_not_allowed"));
    let url = format!("{}/.well-known/x", agent.server.base_url());
    let resp = send(&svc, &a, &url.replacen("http://", "https://", 1));
    assert_eq!((resp.status, problem_code(&resp).as_str()), (403, "agent_not_allowed"), "a URL is never fetched");
    let resp = send(&svc, &a, &url);
    assert_eq!((resp.status, problem_code(&resp).as_str()), (400, "signature_agent_not_https"), "nor an http one");
    assert_eq!(origin.seen().len(), before, "rejections never reach the origin");
    assert_eq!(agent.fetches(), 1);
    assert!(fetch_events(&mut svc).is_empty(), "nothing was fetched for unlisted agents");
}

#[test]
fn failing_directories_fail_closed_for_their_agent_only_and_are_negatively_cached() {
    let (a, c) = (TestKey::from_byte(1), TestKey::from_byte(3));
    let many: Vec<TestKey> = (10..13).map(TestKey::from_byte).collect();
    let elsewhere = DirectoryServer::start(Behaviour::jwks(&jwks_of(&[&a]), 300)).expect("redirect target");
    let padded = format!("{}{}", " ".repeat(2100), jwks_of(&[&a]));
    let ok = Agent::new("https://agent-ok.test", Behaviour::jwks(&jwks_of(&[&a]), 300));
    let not_found = Agent::new("https://agent-404.test", Behaviour::status(404, &[], "not here"));
    let garbage = Agent::new(
        "https://agent-html.test",
        Behaviour::status(200, &[("Content-Type", "text/html")], "<html>secret-page-body</html>"),
    );
    let big = Agent::new("https://agent-big.test", Behaviour::jwks(&padded, 300));
    let too_many =
        Agent::new("https://agent-many.test", Behaviour::jwks(&jwks_of(&many.iter().collect::<Vec<_>>()), 300));
    let location = format!("{}{WELL_KNOWN}", elsewhere.base_url());
    let redirect = Agent::new("https://agent-moved.test", Behaviour::status(302, &[("Location", &location)], ""));
    let slow = Agent::new("https://agent-slow.test", Behaviour::jwks(&jwks_of(&[&a]), 300));
    let agents = [&ok, &not_found, &garbage, &big, &too_many, &redirect, &slow];
    let origin = Origin::start().expect("origin");
    let setup = setup(&agents, r#""max_body":2000,"max_keys":2,"fetch_timeout_ms":500"#, &c);
    let mut svc = Service::start(&setup, origin.port());
    // Slow only from now on (Viceroy's startup check waits up to 5 s per backend).
    slow.server.set(Behaviour::Slow(Duration::from_secs(3), Box::new(Behaviour::jwks(&jwks_of(&[&a]), 300))));
    origin.clear();
    svc.new_log_events();

    let cases = [
        (&not_found, "not_found"),
        (&garbage, "not_json"),
        (&big, "body_too_large"),
        (&too_many, "too_many_keys"),
        (&redirect, "redirect"),
        (&slow, "timeout"),
    ];
    for (agent, cause) in cases {
        let started = Instant::now();
        for i in 0..20 {
            let resp = send(&svc, &a, agent.uri);
            assert_eq!(resp.status, 503, "{} request {i}: {}", agent.uri, resp.text());
            assert_eq!(problem_code(&resp), "directory_unavailable", "{}", agent.uri);
            if i == 0 && agent.uri == slow.uri {
                assert!(
                    started.elapsed() < Duration::from_millis(2500),
                    "the fetch timeout bounds the wait: {:?}",
                    started.elapsed()
                );
            }
        }
        assert_eq!(agent.fetches(), 1, "{}: 20 requests, 1 fetch (negative caching)", agent.uri);
        let events: Vec<serde_json::Value> = svc.new_log_events();
        let fetches: Vec<&serde_json::Value> =
            events.iter().filter(|e| e["event"] == "directory_fetch" && e["agent"] != ok.label()).collect();
        assert_eq!(fetches.len(), 1, "{}: {events:?}", agent.uri);
        assert_eq!((fetches[0]["agent"].as_str(), fetches[0]["result"].as_str()), (Some(agent.label()), Some(cause)));
        let verdicts: Vec<&serde_json::Value> =
            events.iter().filter(|e| e["verdict"] == "rejected" && e["agent"] != PINNED).collect();
        assert_eq!(verdicts.len(), 20);
        assert!(
            verdicts.iter().all(|v| v["reason"] == "directory_unavailable" && v["agent"] == agent.uri),
            "{verdicts:?}"
        );
        let (_, stderr) = svc.output();
        let line = format!("directory of {} (", agent.label());
        assert!(
            stderr.lines().any(|l| l.contains(&line) && l.contains(&format!("failed: {cause}"))),
            "{cause}: {stderr}"
        );

        // Meanwhile, everything else is untouched.
        assert_verified(&send(&svc, &a, ok.uri), &origin, ok.uri, &a);
        assert_verified(&send(&svc, &c, PINNED), &origin, PINNED, &c);
        assert_eq!(unsigned(&svc).status, 200);
    }
    assert_eq!(ok.fetches(), 1);
    assert_eq!(elsewhere.hits().len(), 0, "a redirect is never followed");
    let (stdout, stderr) = svc.output();
    assert!(!stdout.contains("secret-page-body") && !stderr.contains("secret-page-body"), "no body value is logged");
}

#[test]
fn a_rotated_in_key_verifies_early_and_a_removed_key_is_refused_after_the_refresh() {
    let (a, b, c) = (TestKey::from_byte(1), TestKey::from_byte(2), TestKey::from_byte(3));
    let version = |keys: &[&TestKey], etag: &str| Behaviour::Respond {
        status: 200,
        headers: vec![
            ("Content-Type".into(), MEDIA_TYPE.into()),
            ("Cache-Control".into(), "max-age=2".into()),
            ("ETag".into(), format!("\"{etag}\"")),
        ],
        body: jwks_of(keys).into_bytes(),
    };
    let agent = Agent::new("https://agent-rot.test", version(&[&a], "v1"));
    let origin = Origin::start().expect("origin");
    let bounds = r#""min_ttl":1,"default_ttl":1,"max_ttl":2,"refetch_interval":1,"max_stale":60"#;
    let mut svc = Service::start(&setup(&[&agent], bounds, &c), origin.port());
    origin.clear();
    svc.new_log_events();

    assert_verified(&send(&svc, &a, agent.uri), &origin, agent.uri, &a);
    assert_eq!(agent.fetches(), 1);
    assert_eq!(fetch_events(&mut svc).len(), 1);

    // Key b is published; once the early-refetch interval (1 s) has passed, its first use
    // makes the service refetch at once instead of waiting for the TTL.
    agent.server.set(version(&[&a, &b], "v2"));
    std::thread::sleep(Duration::from_millis(1100));
    assert_verified(&send(&svc, &b, agent.uri), &origin, agent.uri, &b);
    assert_eq!(agent.fetches(), 2, "unknown keyid → one early refetch");
    let events = fetch_events(&mut svc);
    assert_eq!(events.iter().map(|e| e["reason"].as_str()).collect::<Vec<_>>(), [Some("unknown_keyid")]);
    let refetch = agent.server.hits().into_iter().filter(|h| h.target == WELL_KNOWN).nth(1).expect("refetch");
    assert_eq!(refetch.header("if-none-match"), Some("\"v1\""), "revalidates with the cached ETag");

    // Key a is withdrawn: it keeps verifying while the entry is fresh, and is refused once
    // a refresh (after a response) has loaded the new directory.
    agent.server.set(version(&[&b], "v3"));
    std::thread::sleep(Duration::from_millis(2100));
    assert_verified(&send(&svc, &b, agent.uri), &origin, agent.uri, &b);
    let events = wait_fetch_event(&mut svc, 5);
    assert_eq!(events.iter().map(|e| e["reason"].as_str()).collect::<Vec<_>>(), [Some("stale")], "{events:?}");
    assert_eq!(events[0]["keys"], 1);
    let resp = send(&svc, &a, agent.uri);
    assert_eq!((resp.status, problem_code(&resp).as_str()), (403, "unknown_key"), "a removed key is refused");
    assert_verified(&send(&svc, &b, agent.uri), &origin, agent.uri, &b);
    assert!((3..=4).contains(&agent.fetches()), "{} fetches", agent.fetches());
}

#[test]
fn a_down_directory_keeps_stale_keys_until_max_stale_then_its_agent_alone_gets_503() {
    let (a, c, d, e) = (TestKey::from_byte(1), TestKey::from_byte(3), TestKey::from_byte(4), TestKey::from_byte(5));
    let live = Agent::new("https://agent-live.test", Behaviour::jwks(&jwks_of(&[&a]), 1));
    // Directories that are down for the whole run (every connection is reset).
    let lkg = Agent::new("https://agent-lkg.test", Behaviour::Reset);
    let expired = Agent::new("https://agent-expired.test", Behaviour::Reset);
    let origin = Origin::start().expect("origin");
    let bounds = r#""min_ttl":1,"default_ttl":1,"max_ttl":1,"max_stale":3,"refetch_interval":1,"max_negative_ttl":1"#;
    let mut setup = setup(&[&live, &lkg, &expired], bounds, &c);
    // Last-known-good copies, as an earlier fetch at another POP left them: agent-lkg's
    // is past its freshness but inside its stale window; agent-expired's is past it.
    let now = unix_now();
    let entry = |key: &TestKey, stale_until: u64| {
        let mut public = PublicKey::from_bytes(botauth_core::sign::public_key(&key.seed).expect("public key"));
        public.kid = Some(key.keyid.clone());
        Entry {
            keys: vec![public],
            loaded: true,
            fetched_at: now - 4000,
            fresh_until: now - 3600,
            stale_until,
            retry_after: now - 3600,
            ..Entry::default()
        }
    };
    let kv = |agent: &Agent, entry: Entry| {
        (format!("directory/{}", jwks_item_key(agent.uri)), String::from_utf8(entry.to_json()).expect("JSON"))
    };
    setup.directory_kv = Some(vec![kv(&lkg, entry(&d, now + 3600)), kv(&expired, entry(&e, now - 10))]);
    let mut svc = Service::start(&setup, origin.port());
    origin.clear();
    svc.new_log_events();

    // Empty cache, unreachable directory, a good copy in the KV store: the keys verify, and
    // the refresh tried after the response fails (logged) without evicting them.
    assert_verified(&send(&svc, &d, lkg.uri), &origin, lkg.uri, &d);
    let events = wait_fetch_event(&mut svc, 5);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0]["agent"].as_str(), events[0]["reason"].as_str()), (Some(lkg.label()), Some("stale")));
    assert_ne!(events[0]["result"], "ok");
    assert_eq!(events[0]["keys"], 1, "the failed refresh keeps the key");
    assert_verified(&send(&svc, &d, lkg.uri), &origin, lkg.uri, &d);
    // A copy past its stale window is no key at all: fail closed for that agent.
    let resp = send(&svc, &e, expired.uri);
    assert_eq!((resp.status, problem_code(&resp).as_str()), (503, "directory_unavailable"));
    assert_eq!(expired.fetches(), 1);
    let (_, stderr) = svc.output();
    assert!(stderr.contains(&format!("directory of {} (", expired.label())), "{stderr}");

    // A directory that was fine goes down: stale keys verify until max_stale (3 s after
    // freshness ends), then 503 for this agent only.
    assert_verified(&send(&svc, &a, live.uri), &origin, live.uri, &a);
    let loaded = Instant::now();
    drop(live.server);
    let mut stale_verified = 0;
    let unavailable_after = loop {
        std::thread::sleep(Duration::from_millis(400));
        let resp = send(&svc, &a, live.uri);
        match resp.status {
            200 => {
                if loaded.elapsed() > Duration::from_millis(1100) {
                    stale_verified += 1;
                }
            }
            503 => {
                assert_eq!(problem_code(&resp), "directory_unavailable");
                break loaded.elapsed();
            }
            s => panic!("unexpected {s}: {}", resp.text()),
        }
        assert!(loaded.elapsed() < Duration::from_secs(10), "never failed closed");
        // Others are untouched meanwhile.
        assert_verified(&send(&svc, &c, PINNED), &origin, PINNED, &c);
        assert_verified(&send(&svc, &d, lkg.uri), &origin, lkg.uri, &d);
        assert_eq!(unsigned(&svc).status, 200);
    };
    assert!(stale_verified >= 2, "stale keys kept verifying while the directory was down ({stale_verified})");
    assert!(unavailable_after >= Duration::from_secs(3), "not before max_stale: {unavailable_after:?}");
    let (_, stderr) = svc.output();
    // Viceroy 0.22 reports no send-error detail (Fastly does: `connect_failed` for a refused
    // connection), so a transport failure is `transport_error` here.
    let named = stderr.lines().filter(|l| l.contains("directory of agent-live.test (")).collect::<Vec<_>>();
    assert!(
        !named.is_empty()
            && named.iter().all(|l| l.contains("failed: transport_error") || l.contains("failed: connect_failed")),
        "{stderr}"
    );
    assert_verified(&send(&svc, &c, PINNED), &origin, PINNED, &c);
    assert_eq!(unsigned(&svc).status, 200);
}

/// A signed directory response (directory draft §4, built as `botauth directory` does): one
/// signature per key over `("@authority";req "content-digest")`; key `bad`'s signature is
/// made with another key.
fn signed_directory(authority: &str, good: &TestKey, bad: &TestKey, forger: &TestKey) -> Behaviour {
    let body = format!("{}\n", jwks_of(&[good, bad])).into_bytes();
    let request = HttpRequest::new("GET", "http", authority, WELL_KNOWN).with_header("Host", authority);
    let mut fields: Vec<(String, Vec<u8>)> = vec![
        ("Content-Type".into(), MEDIA_TYPE.into()),
        ("Cache-Control".into(), b"max-age=300".to_vec()),
        ("Content-Digest".into(), botauth_core::content_digest::sha256_field(&body).into_bytes()),
    ];
    let response = HttpRequest { headers: fields.clone(), body: Some(body.clone()), ..request.clone() };
    let msg = Message { message: &response, status: Some(200), related: Some(&request) };
    let now = unix_now();
    let (mut inputs, mut signatures) = (Vec::new(), Vec::new());
    for (i, (key, seed)) in [(good, good.seed), (bad, forger.seed)].into_iter().enumerate() {
        let params = SignParams {
            label: format!("sig{}", i + 1),
            components: vec!["\"@authority\";req".into(), "\"content-digest\"".into()],
            created: Some(now - 60),
            keyid: Some(key.keyid.clone()),
            alg: Some("ed25519".into()),
            expires: Some(now + 3600),
            nonce: None,
            tag: Some(botauth_core::policy::DIRECTORY_TAG.into()),
        };
        let signed = sign(&msg, &seed, &params).expect("sign");
        inputs.push(signed.signature_input);
        signatures.push(signed.signature);
    }
    fields.push(("Signature-Input".into(), inputs.join(", ").into_bytes()));
    fields.push(("Signature".into(), signatures.join(", ").into_bytes()));
    Behaviour::Respond {
        status: 200,
        headers: fields.into_iter().map(|(n, v)| (n, String::from_utf8(v).expect("ASCII field"))).collect(),
        body,
    }
}

#[test]
fn a_signed_directory_drops_the_key_whose_signature_fails_and_keeps_the_other() {
    let (good, bad, forger, c) =
        (TestKey::from_byte(6), TestKey::from_byte(7), TestKey::from_byte(8), TestKey::from_byte(3));
    let agent = Agent::new("https://agent-signed.test", Behaviour::Reset);
    let authority = format!("127.0.0.1:{}", agent.server.port());
    agent.server.set(signed_directory(&authority, &good, &bad, &forger));
    let origin = Origin::start().expect("origin");
    let mut svc = Service::start(&setup(&[&agent], "", &c), origin.port());
    origin.clear();
    svc.new_log_events();

    assert_verified(&send(&svc, &good, agent.uri), &origin, agent.uri, &good);
    let events = fetch_events(&mut svc);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0]["result"].as_str(), events[0]["keys"].as_u64(), events[0]["skipped"].as_u64()),
        (Some("ok"), Some(1), Some(1))
    );
    assert!(!events[0]["findings"].as_array().is_some_and(|f| f.iter().any(|x| x == "unsigned")), "{}", events[0]);
    let resp = send(&svc, &bad, agent.uri);
    assert_eq!((resp.status, problem_code(&resp).as_str()), (403, "unknown_key"), "the badly signed key was dropped");
    assert_eq!(agent.fetches(), 1, "within the refetch interval no second fetch");
}

/// Send `headers` and read the response head and its Content-Length body, without waiting
/// for the connection to close: when the client has its response, and the response.
fn send_timed(port: u16, headers: &[(String, String)]) -> (Duration, u16, String) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut out = String::from("GET /timed HTTP/1.1\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).expect("write");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).expect("body");
    (started.elapsed(), status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_stale_directory_is_refreshed_after_the_response_and_concurrent_lookups_collapse() {
    let (r, k, c) = (TestKey::from_byte(1), TestKey::from_byte(2), TestKey::from_byte(3));
    let refreshed = Agent::new("https://agent-refresh.test", Behaviour::jwks(&jwks_of(&[&r]), 1));
    let cold = Agent::new("https://agent-cold.test", Behaviour::jwks(&jwks_of(&[&k]), 300));
    let origin = Origin::start().expect("origin");
    let bounds =
        r#""min_ttl":1,"default_ttl":1,"max_ttl":1,"refetch_interval":1,"max_stale":600,"fetch_timeout_ms":6000"#;
    let mut svc = Service::start(&setup(&[&refreshed, &cold], bounds, &c), origin.port());
    origin.clear();
    svc.new_log_events();

    // Cold lookups of one agent at the same moment wait for the one fetch (Core Cache
    // request collapsing): four concurrent requests, one fetch of a slow directory.
    cold.server.set(Behaviour::Slow(Duration::from_millis(1200), Box::new(Behaviour::jwks(&jwks_of(&[&k]), 300))));
    let port = svc.port;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| raw_send(port, &signed(&k, cold.uri)))).collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(statuses, [200, 200, 200, 200]);
    assert_eq!(cold.fetches(), 1, "concurrent cold lookups collapse into one fetch");
    fetch_events(&mut svc);

    // The refresh of a stale directory runs after the response went out: with a directory
    // that takes 3 s to answer, the client has its (verified, stale-key) response at once.
    assert_verified(&send(&svc, &r, refreshed.uri), &origin, refreshed.uri, &r);
    assert_eq!(refreshed.fetches(), 1);
    assert_eq!(fetch_events(&mut svc).len(), 1);
    std::thread::sleep(Duration::from_millis(1200));
    refreshed.server.set(Behaviour::Slow(Duration::from_secs(3), Box::new(Behaviour::jwks(&jwks_of(&[&r]), 1))));
    let sent = Instant::now();
    let (took, status, body) = send_timed(svc.port, &signed(&r, refreshed.uri));
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_millis(1500), "the client waited {took:?} for a refresh that takes 3 s");
    assert!(fetch_events(&mut svc).is_empty(), "the refresh has not finished when the client has its answer");
    // While that refresh is in flight, other requests use the stale keys and start none.
    for _ in 0..3 {
        assert_verified(&send(&svc, &r, refreshed.uri), &origin, refreshed.uri, &r);
    }
    let events = wait_fetch_event(&mut svc, 8);
    let done = sent.elapsed();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0]["reason"].as_str(), events[0]["result"].as_str()), (Some("stale"), Some("ok")));
    assert!(done >= Duration::from_secs(3), "the refresh finished after {done:?}, the response after {took:?}");
    assert_eq!(refreshed.fetches(), 2, "one refresh for all the stale-key requests");
}

fn raw_send(port: u16, headers: &[(String, String)]) -> u16 {
    botauth_testkit::raw_http::send(port, "GET", "/", headers, None).map(|r| r.status).unwrap_or(0)
}
