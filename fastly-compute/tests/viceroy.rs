//! The service end to end under Viceroy: a real HTTP/1.1 client, Viceroy running the
//! release build, and an echo origin that records what reached it.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use botauth_testkit::origin::Origin;
use common::*;

fn origin() -> Origin {
    Origin::start().expect("echo origin")
}

fn problem(resp: &botauth_testkit::raw_http::Response) -> serde_json::Value {
    assert_eq!(resp.header("content-type"), Some("application/problem+json"), "{resp:?}");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    resp.json().expect("problem+json body")
}

#[test]
fn unsigned_passes_untouched_and_a_spoofed_verdict_is_stripped() {
    let origin = origin();
    let mut svc = Service::start(&Setup::standard(), origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    let sent = headers(&[
        ("Host", "example.com"),
        ("Accept", "text/html"),
        ("X-Rep", "a"),
        ("X-Rep", "b"),
        ("botauth-verdict", r#"verified;agent="https://evil.test";keyid="x";label="sig1""#),
        ("Botauth-Verdict", "verified"),
    ]);
    let resp = svc.send("GET", "/page?x=1&y=%20", &sent, None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = origin.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let at_origin = &seen[0];
    assert_eq!(at_origin.method, "GET");
    assert_eq!(at_origin.target, "/page?x=1&y=%20");
    assert_eq!(at_origin.header("host"), Some("example.com"));
    assert_eq!(at_origin.header("accept"), Some("text/html"));
    let reps: Vec<_> = at_origin.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("x-rep")).collect();
    assert_eq!(reps.len(), 2, "repeated field lines arrive as sent: {:?}", at_origin.headers);
    assert!(
        at_origin.headers.iter().all(|(n, _)| !n.eq_ignore_ascii_case("botauth-verdict")),
        "a client-supplied verdict must never reach the origin: {:?}",
        at_origin.headers
    );
    assert!(svc.new_log_events().is_empty(), "unsigned traffic is not logged");
    assert_eq!(resp.header("server-timing"), Some("botauth;desc=\"unsigned\""));

    // POST with a body passes through unchanged too.
    let resp = svc.send("POST", "/form", &headers(&[("Host", "example.com")]), Some(b"a=1&b=2"));
    assert_eq!(resp.status, 200);
    let seen = origin.seen();
    assert_eq!(seen.last().map(|s| s.body.as_str()), Some("a=1&b=2"));
}

#[test]
fn verified_request_reaches_the_origin_with_one_verdict_header_and_one_log_line() {
    let origin = origin();
    let mut svc = Service::start(&Setup::standard(), origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    let mut sent = signed_headers(&Sig::default());
    // A spoofed copy sent along with a valid signature is replaced, not kept.
    sent.push(("Botauth-Verdict".into(), r#"verified;agent="https://evil.test";keyid="x";label="x""#.into()));
    sent.push(("X-Extra".into(), "kept".into()));
    let resp = svc.send("GET", "/", &sent, None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    let verdicts: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("botauth-verdict"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(verdicts, [verified_header(AGENT, TEST_KEYID, "sig1")]);
    for name in ["signature", "signature-input", "signature-agent", "x-extra"] {
        let want = sent.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        assert_eq!(seen[0].header(name), want, "{name} is forwarded unchanged");
    }
    let events = svc.new_log_events();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["verdict"], "verified");
    assert_eq!(e["reason"], serde_json::Value::Null);
    assert_eq!(e["agent"], AGENT);
    assert_eq!(e["keyid"], TEST_KEYID);
    assert_eq!(e["label"], "sig1");
    assert_eq!(e["pop"], "XXX", "Viceroy's FASTLY_POP");
    assert_eq!(e["role"], "direct");
    assert_eq!(e["rate_limited"], "false");
    assert!(e["verify_us"].as_u64().is_some_and(|us| us > 0), "{e}");
    // core's request event, for `botauth report`: time, mode, path and enforce's answer.
    assert!(e["time"].as_u64().is_some_and(|t| t > 1_600_000_000), "{e}");
    assert_eq!((e["mode"].as_str(), e["status"].as_u64()), (Some("enforce"), Some(200)), "{e}");
    assert!(e["path"].as_str().is_some_and(|p| p.starts_with('/') && !p.contains('?')), "{e}");
    let timing = resp.header("server-timing").unwrap_or_default();
    assert!(timing.starts_with("botauth;dur=") && timing.ends_with("desc=\"verified\""), "{timing}");
    let (_, stderr) = svc.output();
    assert!(stderr.contains("TESTING ONLY clock override"), "the testing clock is announced: {stderr}");
}

#[test]
fn enforce_mode_answers_problem_json_and_never_forwards() {
    let origin = origin();
    let mut svc = Service::start(&Setup::standard(), origin.port());
    origin.clear(); // Viceroy probes each backend once at startup

    // 403: the signature was made for another authority.
    let mut sent = signed_headers(&Sig { authority: "other.example", ..Sig::default() });
    sent[0].1 = "example.com".into();
    let resp = svc.send("GET", "/", &sent, None);
    assert_eq!(resp.status, 403);
    let p = problem(&resp);
    assert_eq!(p["type"], "urn:botauth:problem:signature_invalid");
    assert_eq!(p["status"], 403);
    let signature = sent.iter().find(|(n, _)| n == "Signature").map(|(_, v)| v.clone()).unwrap_or_default();
    assert!(!resp.text().contains(&signature[6..20]), "no header value is echoed");
    assert!(!resp.text().contains(AGENT));
    let e = svc.new_log_events();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0]["verdict"].as_str(), e[0]["reason"].as_str()), (Some("rejected"), Some("signature_invalid")));
    assert_eq!(e[0]["keyid"], TEST_KEYID);

    // 400: malformed signature material.
    let mut sent = signed_headers(&Sig::default());
    sent[3].1 = "sig1=:not*base64:".into();
    let resp = svc.send("GET", "/", &sent, None);
    assert_eq!(resp.status, 400);
    assert_eq!(problem(&resp)["type"], "urn:botauth:problem:signature_bad_base64");

    // 403: expired (the clock is `testing_now`).
    let sent = signed_headers(&Sig { created: NOW - 1000, expires: NOW - 500, ..Sig::default() });
    let resp = svc.send("GET", "/", &sent, None);
    assert_eq!((resp.status, problem(&resp)["code"].as_str().map(String::from)), (403, Some("expired".into())));

    // 403: a key nobody trusts for that agent.
    let sent = signed_headers(&Sig { agent: "https://unknown-agent.test", ..Sig::default() });
    let resp = svc.send("GET", "/", &sent, None);
    assert_eq!((resp.status, problem(&resp)["code"].as_str().map(String::from)), (403, Some("unknown_key".into())));

    // 429: the same nonce twice (KV store `botauth_nonces`), with Retry-After.
    let sent = signed_headers(&Sig { nonce: Some("nonce-429-test"), ..Sig::default() });
    assert_eq!(svc.send("GET", "/", &sent, None).status, 200);
    let resp = svc.send("GET", "/", &sent, None);
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("60"));
    assert_eq!(problem(&resp)["type"], "urn:botauth:problem:replay");

    let seen = origin.seen();
    assert_eq!(seen.len(), 1, "only the first use of the nonce reached the origin: {seen:?}");
    svc.new_log_events();
}

#[test]
fn monitor_mode_forwards_rejections_and_records_them() {
    let origin = origin();
    let setup = Setup::standard().with_setting("policy", r#"{"mode":"monitor","allow_test_keys":true}"#);
    let mut svc = Service::start(&setup, origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    let mut sent = signed_headers(&Sig::default());
    sent[0].1 = "tampered.example".into();
    sent.push(("botauth-verdict".into(), "verified".into()));
    let resp = svc.send("GET", "/monitored", &sent, None);
    assert_eq!(resp.status, 200, "monitor mode never blocks");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    let verdicts: Vec<_> =
        seen[0].headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("botauth-verdict")).map(|(_, v)| v).collect();
    assert_eq!(verdicts, ["rejected;reason=signature_invalid"]);
    let e = svc.new_log_events();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["reason"], "signature_invalid");

    // A valid signature in monitor mode is verified as usual.
    let resp = svc.send("GET", "/ok", &signed_headers(&Sig::default()), None);
    assert_eq!(resp.status, 200);
    assert_eq!(origin.seen()[1].header("botauth-verdict"), Some(verified_header(AGENT, TEST_KEYID, "sig1").as_str()));
}

#[test]
fn cache_policy_per_class_and_never_across_verdicts() {
    let origin = origin();
    let svc = Service::start(&Setup::standard(), origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    let host = headers(&[("Host", "example.com")]);
    let class = |method: &str, target: &str, h: &[(String, String)]| {
        let resp = svc.send(method, target, h, if method == "POST" { Some(b"x") } else { None });
        assert_eq!(resp.status, 200, "{target}");
        resp.header("botauth-cache").map(String::from)
    };
    assert_eq!(class("GET", "/static/app.css", &host).as_deref(), Some("static; ttl=31536000"));
    assert_eq!(class("GET", "/img/logo.png", &host).as_deref(), Some("static; ttl=31536000"));
    assert_eq!(class("GET", "/blog/post", &host).as_deref(), Some("dynamic; ttl=60; swr=300"));
    assert_eq!(
        class("GET", "/api/v1/users/42", &host).as_deref(),
        Some("api; ttl=60; keys=\"api /api/v1/users/42 /api/v1/users\"")
    );
    assert_eq!(class("POST", "/api/v1/users", &host).as_deref(), Some("pass"));

    // Signed requests get a cache key that includes the verdict: unsigned traffic can never
    // be served a bot's response and vice versa. (Viceroy passes Fastly's internal cache-key
    // header through to the origin, which makes the key observable here.)
    let signed = signed_headers(&Sig::default());
    assert_eq!(class("GET", "/blog/post", &signed).as_deref(), Some("dynamic; ttl=60; swr=300; by-verdict"));
    let seen = origin.seen();
    let key = |i: usize| seen[i].header("fastly-xqd-cache-key").map(String::from);
    assert_eq!(key(2), None, "unsigned requests keep Fastly's default cache key");
    let signed_key = key(5).expect("a verified request carries a verdict-specific cache key");
    assert_eq!(signed_key.len(), 64, "SHA-256 hex");

    // The key differs per verdict: another valid signature of the same agent/keyid shares
    // it, while a monitor-mode rejection would not (covered by the unit tests of cache.rs).
    assert_eq!(
        class("GET", "/blog/post", &signed_headers(&Sig { created: NOW - 20, ..Sig::default() })).as_deref(),
        Some("dynamic; ttl=60; swr=300; by-verdict")
    );
    assert_eq!(origin.seen()[6].header("fastly-xqd-cache-key").map(String::from), Some(signed_key));
}

#[test]
fn debug_off_adds_no_headers_and_a_rate_limit_lets_traffic_through_under_viceroy() {
    let origin = origin();
    // Viceroy stubs Edge Rate Limiting: even 1 request/s never trips (see README).
    let setup =
        Setup::standard().without_setting("debug").with_setting("rate_limit", r#"{"limit":1,"window":1,"penalty":60}"#);
    let svc = Service::start(&setup, origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    let resp = svc.send("GET", "/", &signed_headers(&Sig::default()), None);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("server-timing"), None);
    assert_eq!(resp.header("botauth-cache"), None);
    assert!(resp.header("botauth-verdict").is_none(), "the verdict is for the origin only");
    for _ in 0..3 {
        assert_eq!(svc.send("GET", "/", &signed_headers(&Sig::default()), None).status, 200);
    }
}

#[test]
fn an_invalid_signature_limit_counts_forged_signatures_and_lets_everything_else_through_under_viceroy() {
    let origin = origin();
    // The limit (1 failure per second) would box the source at once on Fastly; Viceroy stubs
    // ERL, so this proves the path runs, answers each forged request on its own merits, and
    // never touches verified or unsigned traffic (see README).
    let setup = Setup::standard().with_setting("invalid_signature_limit", r#"{"limit":1,"window":1,"penalty":60}"#);
    let mut svc = Service::start(&setup, origin.port());
    origin.clear();
    svc.new_log_events();
    let mut forged = signed_headers(&Sig { authority: "other.example", ..Sig::default() });
    forged[0].1 = "example.com".into();
    for i in 0..5 {
        let resp = svc.send("GET", "/f", &forged, None);
        assert_eq!((resp.status, problem(&resp)["code"].as_str()), (403, Some("signature_invalid")), "forged {i}");
    }
    assert_eq!(svc.send("GET", "/v", &signed_headers(&Sig::default()), None).status, 200);
    assert_eq!(svc.send("GET", "/u", &headers(&[("Host", "example.com")]), None).status, 200);
    assert_eq!(origin.seen().len(), 2, "only the verified and the unsigned request reached the origin");
    let events = svc.new_log_events();
    assert_eq!(events.iter().filter(|e| e["reason"] == "signature_invalid").count(), 5);
    let (_, stderr) = svc.output();
    assert!(!stderr.contains("source_penalized"), "Viceroy's stubbed penalty box never holds a source: {stderr}");
}

#[test]
fn store_misconfiguration_fails_closed_for_signed_requests_only() {
    let origin = origin();
    let unsigned = headers(&[("Host", "example.com")]);
    let expect_503 = |svc: &Service, what: &str, stderr_has: &str| {
        let resp = svc.send("GET", "/u", &unsigned, None);
        assert_eq!(resp.status, 200, "{what}: unsigned traffic keeps flowing");
        let resp = svc.send("GET", "/s", &signed_headers(&Sig::default()), None);
        assert_eq!(resp.status, 503, "{what}: signed requests fail closed");
        assert_eq!(problem(&resp)["type"], "urn:botauth:problem:configuration_error", "{what}");
        let (_, stderr) = svc.output();
        assert!(stderr.contains("botauth: configuration error") && stderr.contains(stderr_has), "{what}: {stderr}");
    };

    // No key store at all.
    let setup = Setup { jwks: None, ..Setup::standard() };
    expect_503(&Service::start(&setup, origin.port()), "no botauth_jwks", "botauth_jwks");

    // The agent's item is not a JWKS.
    let setup = Setup { jwks: Some(vec![(jwks_item_key(AGENT), "{not json".into())]), ..Setup::standard() };
    expect_503(&Service::start(&setup, origin.port()), "invalid JWKS", "https_3A_2F_2Fsignature-agent.test");

    // An invalid policy item (a typo must not silently weaken the policy).
    let setup = Setup::standard().with_setting("policy", r#"{"mode":"enforce","clock_skw":5}"#);
    expect_503(&Service::start(&setup, origin.port()), "invalid policy", "botauth_settings.policy");

    // An invalid rate limit (window must be 1, 10 or 60 s).
    let setup = Setup::standard().with_setting("rate_limit", r#"{"limit":5,"window":7,"penalty":60}"#);
    expect_503(&Service::start(&setup, origin.port()), "invalid rate_limit", "botauth_settings.rate_limit");

    // The same for the per-source limit of failed signatures.
    let setup = Setup::standard().with_setting("invalid_signature_limit", r#"{"limit":0,"window":60,"penalty":300}"#);
    expect_503(
        &Service::start(&setup, origin.port()),
        "invalid invalid_signature_limit",
        "botauth_settings.invalid_signature_limit",
    );

    // An invalid key-directory allow-list: an agent whose backend the service lacks.
    let setup = Setup::standard()
        .with_setting("directories", r#"{"agents":[{"agent":"https://agent.test","backend":"no_such_backend"}]}"#);
    expect_503(&Service::start(&setup, origin.port()), "invalid directories", "botauth_settings.directories");

    // An invalid testing clock.
    let setup = Setup::standard().with_setting("testing_now", "yesterday");
    expect_503(&Service::start(&setup, origin.port()), "invalid testing_now", "testing_now");

    // No settings store: defaults (enforce, real clock, published test keys refused), so a
    // fresh signature by a key of our own verifies and the RFC 9421 test key does not.
    let own = TestKey::from_byte(7);
    let setup =
        Setup { settings: None, jwks: Some(vec![(jwks_item_key(AGENT), jwks_of(&[&own]))]), ..Setup::standard() };
    let svc = Service::start(&setup, origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    let now = unix_now();
    let fresh = Sig { created: now - 5, expires: now + 60, ..Sig::default() };
    let resp = svc.send("GET", "/", &signed_headers_with(&own, &fresh), None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = svc.send("GET", "/", &signed_headers_with(&own, &Sig::default()), None);
    assert_eq!(resp.status, 403, "the old fixed-time signature is expired on the real clock");
    let setup = Setup { settings: None, jwks: Some(vec![(jwks_item_key(AGENT), test_jwks())]), ..Setup::standard() };
    let svc_test_key = Service::start(&setup, origin.port());
    let resp = svc_test_key.send("GET", "/", &signed_headers(&fresh), None);
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(problem(&resp)["type"], "urn:botauth:problem:test_key_rejected", "production refuses the RFC 9421 key");
    drop(svc_test_key);
    let (_, stderr) = svc.output();
    assert!(stderr.contains("botauth_settings` cannot be opened"), "{stderr}");

    // Invalid cache classes: logged, traffic flows, no overrides.
    let setup = Setup::standard().with_setting("cache_classes", r#"[{"kind":"static","match":["*"],"ttl":1,"swr":9}]"#);
    let svc = Service::start(&setup, origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    let resp = svc.send("GET", "/static/a.css", &unsigned, None);
    assert_eq!((resp.status, resp.header("botauth-cache")), (200, Some("origin")));
    assert!(svc.output().1.contains("cache_classes"));

    // A policy that requires nonces without the nonce store fails closed.
    let setup = Setup { nonces: false, ..Setup::standard() }
        .with_setting("policy", r#"{"require_nonce":true,"allow_test_keys":true}"#);
    let svc = Service::start(&setup, origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    let resp = svc.send("GET", "/", &signed_headers(&Sig { nonce: Some("n-1"), ..Sig::default() }), None);
    assert_eq!(resp.status, 503);
    assert!(svc.output().1.contains("botauth_nonces"));
}

#[test]
fn shield_hop_reverifies_and_never_trusts_a_bare_verdict() {
    let origin = origin();
    let site = "bfi-wa-us";
    let shield_setup =
        Setup { shield: Some(ShieldSites::Local(site.into())), ..Setup::standard() }.with_setting("shield_site", site);
    let mut shield = Service::start(&shield_setup, origin.port());
    // The edge's own origin backend points at a closed port: all origin-bound traffic must
    // go through the shield.
    let dead_port = botauth_testkit::free_port().expect("port");
    let edge_setup = Setup { shield: Some(ShieldSites::Remote(site.into(), shield.port)), ..Setup::standard() }
        .with_setting("shield_site", site);
    let mut edge = Service::start(&edge_setup, dead_port);
    origin.clear(); // Viceroy probes each backend once at startup

    // A verified request: edge verifies, shield verifies again, origin gets one verdict.
    let mut sent = signed_headers(&Sig::default());
    sent.push(("botauth-verdict".into(), "verified;agent=\"https://evil.test\"".into()));
    let resp = edge.send("GET", "/blog/x", &sent, None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    let verdicts: Vec<_> =
        seen[0].headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("botauth-verdict")).map(|(_, v)| v).collect();
    assert_eq!(verdicts, [&verified_header(AGENT, TEST_KEYID, "sig1")]);
    assert_eq!(seen[0].header("host"), Some("example.com"), "the Host (and so @authority) survives the hop");
    let (e, s) = (edge.new_log_events(), shield.new_log_events());
    assert_eq!((e.len(), s.len()), (1, 1), "edge {e:?} shield {s:?}");
    assert_eq!((e[0]["role"].as_str(), s[0]["role"].as_str()), (Some("edge"), Some("shield")));
    assert_eq!(s[0]["verdict"], "verified");
    let timing = resp.headers_named("server-timing");
    let verifications = timing.iter().filter(|t| t.starts_with("botauth;")).count();
    assert_eq!(verifications, 2, "one verification Server-Timing entry per hop: {timing:?}");
    assert_eq!(timing.len(), 6, "and its keys and settings phases: {timing:?}");

    // A bad signature dies at the edge: neither the shield nor the origin sees it.
    let mut bad = signed_headers(&Sig::default());
    bad[0].1 = "tampered.example".into();
    assert_eq!(edge.send("GET", "/blog/x", &bad, None).status, 403);
    assert_eq!(origin.seen().len(), 1);
    assert_eq!((edge.new_log_events().len(), shield.new_log_events().len()), (1, 0));

    // Unsigned traffic flows through the shield, and a verdict header sent straight to
    // the shield (as if from the edge) is stripped: the shield only trusts its own check.
    let spoof = headers(&[("Host", "example.com"), ("botauth-verdict", &verified_header(AGENT, TEST_KEYID, "sig1"))]);
    assert_eq!(edge.send("GET", "/u", &spoof, None).status, 200);
    assert_eq!(shield.send("GET", "/u2", &spoof, None).status, 200);
    let seen = origin.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen[1..].iter().all(|s| s.header("botauth-verdict").is_none()), "{seen:?}");

    // A replayed nonce is caught at the shield, where origin-bound traffic meets.
    let once = signed_headers(&Sig { nonce: Some("shield-nonce"), ..Sig::default() });
    assert_eq!(edge.send("GET", "/n", &once, None).status, 200);
    let replay = edge.send("GET", "/n", &once, None);
    assert_eq!(replay.status, 429, "{}", replay.text());
    assert_eq!(replay.header("retry-after"), Some("60"));
    let s = shield.new_log_events();
    assert_eq!(s.last().and_then(|e| e["reason"].as_str()), Some("replay"));
}

/// Agents listed as always signing: an unsigned request claiming one (by `User-Agent`, or a
/// bare `Signature-Agent`) is `unverified_claim`: 403 with `Accept-Signature` in enforce mode,
/// forwarded with `unverified-claim;agent=…` in monitor mode. Other unsigned traffic is
/// untouched, and an invalid claims item never blocks it.
#[test]
fn unsigned_claims_of_agents_that_always_sign() {
    const CLAIMS: &str = r#"[{"agent": "https://chatgpt.com", "user_agent": ["ChatGPT-User", "ChatGPT Agent"]}]"#;
    const UA: &str = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0";
    let origin = origin();
    let mut svc = Service::start(&Setup::standard().with_setting("claims", CLAIMS), origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    for claim in [("User-Agent", UA), ("Signature-Agent", "\"https://chatgpt.com\"")] {
        let resp = svc.send("GET", "/tickets", &headers(&[("Host", "example.com"), claim]), None);
        assert_eq!(resp.status, 403, "{claim:?}: {}", resp.text());
        assert_eq!(problem(&resp)["code"], "unverified_claim");
        let accept = resp.header("accept-signature").unwrap_or_default();
        assert!(accept.contains("tag=\"web-bot-auth\"") && accept.contains("\"signature-agent\""), "{accept}");
        let e = svc.new_log_events();
        assert_eq!(
            (e.len(), e[0]["reason"].as_str(), e[0]["agent"].as_str()),
            (1, Some("unverified_claim"), Some("https://chatgpt.com"))
        );
    }
    assert!(origin.seen().is_empty(), "an enforced claim never reaches the origin");
    let firefox = headers(&[("Host", "example.com"), ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")]);
    assert_eq!(svc.send("GET", "/", &firefox, None).status, 200);
    assert!(svc.new_log_events().is_empty(), "ordinary visitors are not logged");
    assert!(origin.seen()[0].header("botauth-verdict").is_none());
    // A signed request with the same User-Agent is verified as usual.
    let mut signed = signed_headers(&Sig::default());
    signed.push(("User-Agent".into(), UA.into()));
    assert_eq!(svc.send("GET", "/ok", &signed, None).status, 200);
    drop(svc);

    let setup = Setup::standard()
        .with_setting("claims", CLAIMS)
        .with_setting("policy", r#"{"mode":"monitor","allow_test_keys":true}"#);
    let mut svc = Service::start(&setup, origin.port());
    origin.clear();
    let resp = svc.send("GET", "/m", &headers(&[("Host", "example.com"), ("User-Agent", UA)]), None);
    assert_eq!(resp.status, 200, "monitor mode forwards");
    assert_eq!(origin.seen()[0].header("botauth-verdict"), Some(r#"unverified-claim;agent="https://chatgpt.com""#));
    assert_eq!(svc.new_log_events().len(), 1);
    drop(svc);

    // An invalid claims item is logged and checks nothing: unsigned traffic still flows.
    let svc = Service::start(&Setup::standard().with_setting("claims", "[{\"agent\": \"http://x\"}]"), origin.port());
    origin.clear();
    let resp = svc.send("GET", "/", &headers(&[("Host", "example.com"), ("User-Agent", UA)]), None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    std::thread::sleep(std::time::Duration::from_millis(30));
    let (_, stderr) = svc.output();
    assert!(stderr.contains("claims[0].agent"), "{stderr}");
}

#[test]
fn a_compact_key_list_item_verifies_like_its_jwks_and_a_garbled_one_fails_closed() {
    use botauth_core::keys::{compact_keys, parse_jwks};
    let origin = origin();
    let (keys, _) = parse_jwks(test_jwks().as_bytes()).expect("the test JWKS");
    let compact = compact_keys(&keys);
    let setup = Setup { jwks: Some(vec![(jwks_item_key(AGENT), compact)]), ..Setup::standard() };
    let svc = Service::start(&setup, origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    let resp = svc.send("GET", "/", &signed_headers(&Sig::default()), None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("botauth-verdict"), Some(verified_header(AGENT, TEST_KEYID, "sig1").as_str()));
    // Debug mode shows where the time went: verification, the keys, the settings.
    let timings: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("server-timing"))
        .map(|(_, v)| v.split(';').next().unwrap_or(""))
        .collect();
    assert_eq!(timings, ["botauth", "keys", "settings"], "{:?}", resp.headers);

    let setup = Setup {
        jwks: Some(vec![(jwks_item_key(AGENT), format!("botauth-keys/1,{TEST_KEYID} not-a-key - - -"))]),
        ..Setup::standard()
    };
    let svc = Service::start(&setup, origin.port());
    assert_eq!(svc.send("GET", "/u", &headers(&[("Host", "example.com")]), None).status, 200, "unsigned flows");
    let resp = svc.send("GET", "/", &signed_headers(&Sig::default()), None);
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(problem(&resp)["type"], "urn:botauth:problem:configuration_error");
    let (_, stderr) = svc.output();
    assert!(stderr.contains("https_3A_2F_2Fsignature-agent.test") && stderr.contains("entry 1"), "{stderr}");
}
