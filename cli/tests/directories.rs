//! Live key directories through the real binary: `directory fetch` against testkit's
//! directory server on 127.0.0.1 (plain http: loopback only), `directory check` on saved
//! responses, and `verify --fetch` resolving keys through core's directory loop. Every
//! server counts the requests it receives and stops when dropped.
//!
//! HTTPS is not tested here: the machine reaches no directory on the internet, and the
//! local server speaks plain http.

mod common;

use std::time::Duration;

use botauth_core::keys::parse_jwks;
use botauth_testkit::directory::{Behaviour, DirectoryServer, MEDIA_TYPE};
use common::{expect, json, run, Scratch};
use serde_json::Value;

const WELL_KNOWN: &str = "/.well-known/http-message-signatures-directory";
/// chatgpt.com's directory as recorded (DIRECTORIES.md): one real key, extra members.
const CHATGPT: &str = r#"{"keys":[{"crv":"Ed25519","kty":"OKP","x":"7F_3jDlxaquwh291MiACkcS3Opq88NksyHiakzS-Y1g","kid":"otMqcjr17mGyruktGvJU8oojQTSMHlVm7uO-lrcqbdg","use":"sig","nbf":1735689600,"exp":1786913274}],"signature_agent":"https://chatgpt.com","purpose":"ai"}"#;
const CHATGPT_KID: &str = "otMqcjr17mGyruktGvJU8oojQTSMHlVm7uO-lrcqbdg";
const CHATGPT_X: &str = "7F_3jDlxaquwh291MiACkcS3Opq88NksyHiakzS-Y1g";
/// RFC 8037 A.3's public key (any 32 bytes are a key to the parser).
const OTHER_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const OTHER_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
/// Inside the recorded key's nbf..exp.
const NOW: u64 = 1_760_000_000;
const AGENT: &str = "https://agent.test";

fn server(behaviour: Behaviour) -> DirectoryServer {
    DirectoryServer::start(behaviour).unwrap()
}

/// `directory fetch URL --json --now NOW` plus `extra`: (exit code, report).
fn fetch_json(url: &str, extra: &[&str]) -> (i32, Value) {
    let now = NOW.to_string();
    let mut args = vec!["directory", "fetch", url, "--json"];
    if !extra.contains(&"--now") {
        args.extend(["--now", &now]);
    }
    args.extend_from_slice(extra);
    let r = run(&args);
    assert!(r.code == 0 || r.code == 1, "{args:?}: exit {}\n{}{}", r.code, r.stdout, r.stderr);
    (r.code, json(&r.stdout))
}

/// `directory check` of a saved body and headers file: (exit code, report).
fn check_json(s: &Scratch, body: &str, headers: &str, extra: &[&str]) -> (i32, Value) {
    let body = s.write("body.json", body);
    let headers = s.write("headers.txt", headers);
    let now = NOW.to_string();
    let mut args = vec!["directory", "check", "--body", &body, "--headers", &headers, "--json", "--now", &now];
    args.extend_from_slice(extra);
    let r = run(&args);
    assert!(r.code == 0 || r.code == 1, "{args:?}: exit {}\n{}{}", r.code, r.stdout, r.stderr);
    (r.code, json(&r.stdout))
}

fn codes(report: &Value) -> Vec<(String, Option<u64>)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["code"].as_str().unwrap().to_owned(), f["key"].as_u64()))
        .collect()
}

fn finding(code: &str, key: Option<u64>) -> (String, Option<u64>) {
    (code.to_owned(), key)
}

const DIRECTORY_HEADERS: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/http-message-signatures-directory+json\r\nCache-Control: max-age=600\r\n";

// ---- directory fetch ----------------------------------------------------------------

#[test]
fn fetch_of_the_chatgpt_shape_reports_keys_cache_and_findings() {
    let s = Scratch::new();
    let dir = server(Behaviour::jwks(CHATGPT, 600));
    let out = s.path("warm.jwks");
    let (code, v) = fetch_json(&dir.base_url(), &["--out", &out]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["url"], format!("{}{WELL_KNOWN}", dir.base_url()));
    assert_eq!(v["agent"], dir.base_url());
    assert_eq!((v["status"].as_u64(), v["content_type"].as_str()), (Some(200), Some(MEDIA_TYPE)));
    assert_eq!(
        (v["result"].as_str(), v["reason"].as_str(), v["usable_keys"].as_u64()),
        (Some("usable"), None, Some(1))
    );
    let key = &v["keys"][0];
    assert_eq!(key["kid"], CHATGPT_KID);
    assert_eq!(key["thumbprint"], CHATGPT_KID);
    assert_eq!(key["kid_is_thumbprint"], true);
    assert_eq!(key["alg"], Value::Null);
    assert_eq!((key["nbf"].as_u64(), key["nbf_utc"].as_str()), (Some(1_735_689_600), Some("2025-01-01T00:00:00Z")));
    assert_eq!((key["exp"].as_u64(), key["exp_utc"].as_str()), (Some(1_786_913_274), Some("2026-08-16T20:47:54Z")));
    assert_eq!(
        (key["expired"].as_bool(), key["used"].as_bool(), key["usable"].as_bool()),
        (Some(false), Some(true), Some(true))
    );
    assert_eq!(v["signature"]["present"], false);
    // Core's freshness: max-age=600 (within [60, 86400]), stale for max_stale, early refetch after 60 s.
    assert_eq!(v["cache"]["fresh_until"]["unix"], NOW + 600);
    assert_eq!(v["cache"]["fresh_until"]["from_now"], 600);
    assert_eq!(v["cache"]["stale_until"]["unix"], NOW + 600 + 86_400);
    assert_eq!(v["cache"]["retry_after"]["from_now"], 60);
    assert_eq!(codes(&v), [finding("unsigned", None)]);
    // One GET of the well-known path, Host = the directory's authority.
    let hits = dir.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].method.as_str(), hits[0].target.as_str()), ("GET", WELL_KNOWN));
    assert_eq!(hits[0].header("host"), Some(format!("127.0.0.1:{}", dir.port()).as_str()));

    // --out: the verified keys as a JWK Set (public only, kid = thumbprint), readable by core.
    let written = json(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(
        written,
        serde_json::json!({"keys":[{"kty":"OKP","crv":"Ed25519","kid":CHATGPT_KID,"x":CHATGPT_X,"nbf":1_735_689_600u64,"exp":1_786_913_274u64}]})
    );
    let (keys, skipped) = parse_jwks(std::fs::read_to_string(&out).unwrap().as_bytes()).unwrap();
    assert_eq!((keys.len(), skipped.len()), (1, 0));

    // The text form says the same.
    let now = NOW.to_string();
    let r = expect(0, &["directory", "fetch", &dir.base_url(), "--now", &now]);
    for needle in [
        &format!("  #0 {CHATGPT_KID} (kid = thumbprint) alg=-: usable"),
        "nbf 1735689600 (2025-01-01T00:00:00Z",
        "exp 1786913274 (2026-08-16T20:47:54Z",
        "signature:  unsigned",
        &format!("cache:      fresh until {} (", NOW + 600),
        "  unsigned: ",
        "result:     usable: 1 key",
    ] {
        assert!(r.stdout.contains(needle), "{needle:?} not in\n{}", r.stdout);
    }

    // The directory URL itself (a path) works too; past exp the key is not usable: exit 1,
    // finding key_expired, and --out is not written.
    let late = (1_786_913_274u64 + 1).to_string();
    let gone = s.path("gone.jwks");
    let url = format!("{}{WELL_KNOWN}", dir.base_url());
    let (code, v) = fetch_json(&url, &["--now", &late, "--out", &gone]);
    assert_eq!((code, v["reason"].as_str(), v["usable_keys"].as_u64()), (1, Some("no_usable_keys"), Some(0)), "{v}");
    assert_eq!(v["keys"][0]["expired"], true);
    assert!(codes(&v).contains(&finding("key_expired", Some(0))), "{v}");
    assert!(!std::path::Path::new(&gone).exists());
    assert_eq!(dir.fetches(), 3);
}

#[test]
fn redirects_are_not_followed() {
    let target = server(Behaviour::jwks(CHATGPT, 600));
    let location = format!("{}{WELL_KNOWN}", target.base_url());
    let dir = server(Behaviour::status(302, &[("Location", &location)], ""));
    let (code, v) = fetch_json(&dir.base_url(), &[]);
    assert_eq!((code, v["reason"].as_str(), v["status"].as_u64()), (1, Some("redirect"), Some(302)), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("redirects are not followed"), "{v}");
    assert_eq!(v["cache"]["fresh_until"], Value::Null);
    assert_eq!(v["cache"]["retry_after"]["from_now"], 10, "core's first negative-cache delay");
    assert_eq!((dir.fetches(), target.fetches()), (1, 0));
}

#[test]
fn failures_and_caps_exit_1_with_core_codes() {
    let dir = server(Behaviour::status(404, &[], "no"));
    let url = dir.base_url();
    let cases: Vec<(Behaviour, &str)> = vec![
        (Behaviour::status(404, &[], "no"), "not_found"),
        (Behaviour::status(503, &[("Retry-After", "120")], ""), "http_status"),
        (Behaviour::jwks("<html>hello</html>", 60), "not_json"),
        // Over core's 64 KiB body cap: reading stops at the cap.
        (Behaviour::jwks(&format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(70_000)), 60), "body_too_large"),
        // Over core's 32-key cap.
        (
            Behaviour::jwks(
                &format!(
                    "{{\"keys\":[{}]}}",
                    vec![format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{OTHER_X}"}}"#); 33].join(",")
                ),
                60,
            ),
            "too_many_keys",
        ),
        // browserless.io: an empty set (valid: no keys now) served without `+json`.
        (
            Behaviour::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), "application/http-message-signatures-directory".into())],
                body: br#"{"keys": []}"#.to_vec(),
            },
            "no_usable_keys",
        ),
        (Behaviour::Reset, "connect_failed"),
    ];
    for (i, (behaviour, want)) in cases.into_iter().enumerate() {
        dir.set(behaviour);
        let (code, v) = fetch_json(&url, &[]);
        assert_eq!((code, v["reason"].as_str()), (1, Some(want)), "case {i}: {v}");
        assert_eq!(v["result"], "not_usable");
        assert_eq!(dir.fetches(), i + 1, "case {i}: one request each");
        if want == "no_usable_keys" {
            assert_eq!(v["error"], Value::Null);
            assert_eq!(codes(&v), [finding("media_type", None), finding("unsigned", None)]);
        }
        if want == "http_status" {
            assert_eq!(v["cache"]["retry_after"]["from_now"], 120, "Retry-After honoured");
        }
    }
    // A directory slower than the timeout.
    dir.set(Behaviour::Slow(Duration::from_secs(5), Box::new(Behaviour::jwks(CHATGPT, 60))));
    let (code, v) = fetch_json(&url, &["--timeout-ms", "300"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("timeout")), "{v}");
    // The text form of a failure.
    dir.set(Behaviour::status(404, &[], "no"));
    let now = NOW.to_string();
    let r = expect(1, &["directory", "fetch", &url, "--now", &now]);
    assert!(r.stdout.contains("result:     not usable: not_found: HTTP 404 (expected 200)"), "{}", r.stdout);
}

#[test]
fn usage_errors_exit_2_without_fetching() {
    let s = Scratch::new();
    let req = s.write("r.http", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["directory", "fetch", "http://agent.example"], "plain http is allowed only to loopback"),
        (vec!["directory", "fetch", "http://10.0.0.1:8080/keys.json"], "plain http is allowed only to loopback"),
        (vec!["directory", "fetch", "ftp://agent.example"], "not supported"),
        (vec!["directory", "fetch", "agent.example"], "not an absolute URI"),
        (vec!["directory", "fetch"], "AGENT-URL|DIRECTORY-URL"),
        (vec!["directory", "fetch", "https://a.example", "--timeout-ms", "999999"], "fetch_timeout_ms"),
        (vec!["directory", "check", "--body", "x"], "--headers"),
        (vec!["directory", "--authority", "a.example"], "give a subcommand"),
        (vec!["directory", "--key", "k.json"], "--authority"),
        (vec!["directory", "--key", "k.json", "--authority", "a", "fetch", "https://a.example"], "fetch"),
        (vec!["verify", "--request", &req, "--fetch"], "--allow"),
        (vec!["verify", "--request", &req, "--allow", AGENT], "--fetch"),
        (vec!["verify", "--request", &req, "--fetch", "--allow", "http://agent.test"], "must be an https URI"),
    ];
    for (args, needle) in cases {
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: stderr lacks {needle:?}:\n{}", r.stderr);
    }
    for (base, needle) in [
        ("http://10.0.0.1", "plain http is allowed only to loopback"),
        ("http://127.0.0.1:9/keys", "must be an origin"),
    ] {
        let directory = format!("{AGENT}={base}");
        let r = run(&["verify", "--request", &req, "--fetch", "--allow", AGENT, "--directory", &directory]);
        assert_eq!(r.code, 2, "{base}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{base}: {}", r.stderr);
    }
    let r = run(&[
        "verify",
        "--request",
        &req,
        "--fetch",
        "--allow",
        AGENT,
        "--directory",
        "https://other.test=https://x.test",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not an --allow agent"), "{}", r.stderr);
}

// ---- findings, offline --------------------------------------------------------------

#[test]
fn check_reports_real_world_quirks() {
    let s = Scratch::new();
    // shopify.com: a bare JWK (and without kid).
    let bare = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{OTHER_X}","alg":"EdDSA"}}"#);
    let (code, v) = check_json(&s, &bare, DIRECTORY_HEADERS, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(codes(&v), [finding("bare_jwk", None), finding("unsigned", None), finding("no_kid", Some(0))]);
    assert_eq!((v["keys"][0]["kid_is_thumbprint"].clone(), v["keys"][0]["alg"].as_str()), (Value::Null, Some("EdDSA")));
    assert_eq!(v["keys"][0]["thumbprint"], OTHER_THUMBPRINT);

    // meta.com: keys without kid; a media type without +json; alg ed25519.
    let set = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{OTHER_X}"}},{{"kty":"OKP","crv":"Ed25519","x":"{CHATGPT_X}","alg":"ed25519"}}]}}"#
    );
    let (code, v) = check_json(&s, &set, "Content-Type: application/json\n", &[]);
    assert_eq!((code, v["usable_keys"].as_u64()), (0, Some(2)), "{v}");
    assert_eq!(
        codes(&v),
        [
            finding("media_type", None),
            finding("unsigned", None),
            finding("no_kid", Some(0)),
            finding("no_kid", Some(1))
        ]
    );
    assert_eq!(v["cache"]["fresh_until"]["from_now"], 300, "no Cache-Control: core's default TTL");

    // A kid that is not the thumbprint: skipped (exit 1), or kept with --accept-kid-mismatch.
    let mismatch = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{OTHER_X}","kid":"key-2025"}}]}}"#);
    let (code, v) = check_json(&s, &mismatch, DIRECTORY_HEADERS, &[]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("no_usable_keys")), "{v}");
    assert_eq!(v["skipped"], serde_json::json!([{"index":0,"kid":"key-2025","reason":"kid_not_thumbprint"}]));
    assert!(codes(&v).contains(&finding("kid_not_thumbprint", Some(0))), "{v}");
    let (code, v) = check_json(&s, &mismatch, DIRECTORY_HEADERS, &["--accept-kid-mismatch"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["keys"][0]["kid_is_thumbprint"], false);
    assert!(codes(&v).contains(&finding("kid_not_thumbprint_accepted", Some(0))), "{v}");

    // The RFC 9421 test key: skipped unless --allow-test-keys.
    let test_key = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"}]}"#;
    let (code, v) = check_json(&s, test_key, DIRECTORY_HEADERS, &[]);
    assert_eq!((code, v["skipped"][0]["reason"].as_str()), (1, Some("test_key")), "{v}");
    assert_eq!(check_json(&s, test_key, DIRECTORY_HEADERS, &["--allow-test-keys"]).0, 0);

    // An expired key, and one not valid yet.
    let dated = format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{OTHER_X}","exp":{}}},{{"kty":"OKP","crv":"Ed25519","x":"{CHATGPT_X}","nbf":{}}}]}}"#,
        NOW - 1,
        NOW + 100
    );
    let (code, v) = check_json(&s, &dated, DIRECTORY_HEADERS, &[]);
    assert_eq!((code, v["usable_keys"].as_u64()), (1, Some(0)), "{v}");
    assert!(codes(&v).contains(&finding("key_expired", Some(0))), "{v}");
    assert!(codes(&v).contains(&finding("key_not_yet_valid", Some(1))), "{v}");

    // The status line of the headers file sets the status; --status wins over it.
    let (code, v) = check_json(&s, CHATGPT, "HTTP/2 404\r\n", &[]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("not_found")), "{v}");
    let (code, v) = check_json(&s, CHATGPT, "HTTP/2 404\r\n", &["--status", "200"]);
    assert_eq!(code, 0, "{v}");

    // --require-signed refuses an unsigned directory.
    let (code, v) = check_json(&s, CHATGPT, DIRECTORY_HEADERS, &["--require-signed"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("unsigned")), "{v}");

    // A malformed headers file is a usage error naming the line.
    let body = s.write("b.json", CHATGPT);
    let headers = s.write("h.txt", "Content-Type: x\nno colon here\n");
    let r = run(&["directory", "check", "--body", &body, "--headers", &headers]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("line 2: malformed header line"), "{}", r.stderr);
}

// ---- signed directories -------------------------------------------------------------

/// Split `botauth directory sign` output into (fields without Content-Length, body).
fn split_response(text: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let fields = head
        .lines()
        .skip(1)
        .map(|l| l.split_once(": ").unwrap())
        .filter(|(n, _)| !n.eq_ignore_ascii_case("content-length"))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    (fields, body.to_owned())
}

fn keygen(s: &Scratch, name: &str) -> (String, String, String) {
    let private = s.path(&format!("{name}.json"));
    let public = s.path(&format!("{name}-pub.json"));
    expect(0, &["keygen", "--out", &private, "--jwks-out", &public]);
    let kid = json(&std::fs::read_to_string(&private).unwrap())["kid"].as_str().unwrap().to_owned();
    (private, public, kid)
}

#[test]
fn signed_directory_is_verified_and_tampering_reported() {
    let s = Scratch::new();
    let (k1, _, t1) = keygen(&s, "a");
    let (k2, _, t2) = keygen(&s, "b");
    let dir = server(Behaviour::Reset);
    let authority = format!("127.0.0.1:{}", dir.port());
    let created = (NOW - 10).to_string();
    let signed =
        expect(0, &["directory", "sign", "--key", &k1, "--key", &k2, "--authority", &authority, "--created", &created])
            .stdout;
    // The flag form prints the same response.
    let legacy =
        expect(0, &["directory", "--key", &k1, "--key", &k2, "--authority", &authority, "--created", &created]);
    assert_eq!(legacy.stdout, signed);
    let (fields, body) = split_response(&signed);
    let respond =
        |body: &str| Behaviour::Respond { status: 200, headers: fields.clone(), body: body.as_bytes().to_vec() };

    dir.set(respond(&body));
    let (code, v) = fetch_json(&dir.base_url(), &["--require-signed"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["signature"], serde_json::json!({"present": true, "signed_by": [t1, t2], "failures": []}));
    assert_eq!(v["usable_keys"], 2);
    assert_eq!(codes(&v), Vec::<(String, Option<u64>)>::new(), "no findings");
    assert_eq!(v["cache"]["fresh_until"]["from_now"], 86_400, "max-age=86400");
    let now = NOW.to_string();
    let r = expect(0, &["directory", "fetch", &dir.base_url(), "--now", &now]);
    assert!(r.stdout.contains(&format!("signature:  signed by {t1}, {t2}")), "{}", r.stdout);

    // Tampered body (its Content-Digest no longer matches): every signature fails, refused.
    let tampered = body.replacen("\"keys\"", "\"keys\" ", 1);
    dir.set(respond(&tampered));
    let (code, v) = fetch_json(&dir.base_url(), &[]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("signature_invalid")), "{v}");
    assert_eq!(v["signature"]["signed_by"], serde_json::json!([]));
    assert_eq!(v["signature"]["failures"][0]["reason"], "content_digest_mismatch", "{v}");
    assert_eq!(v["keys"][0]["used"], false);
    let r = expect(1, &["directory", "fetch", &dir.base_url(), "--now", &now]);
    assert!(r.stdout.contains("  FAIL sig1: content_digest_mismatch"), "{}", r.stdout);

    // One signature corrupted: core keeps only the key whose signature verifies.
    let mut bad = fields.clone();
    for f in bad.iter_mut().filter(|(n, _)| n == "Signature") {
        let (first, second) = f.1.split_once(", ").unwrap();
        let mut bytes = second.as_bytes().to_vec();
        let at = bytes.len() - 10;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        f.1 = format!("{first}, {}", String::from_utf8(bytes).unwrap());
    }
    dir.set(Behaviour::Respond { status: 200, headers: bad, body: body.as_bytes().to_vec() });
    let (code, v) = fetch_json(&dir.base_url(), &[]);
    assert_eq!((code, v["usable_keys"].as_u64()), (0, Some(1)), "{v}");
    assert_eq!(v["signature"]["signed_by"], serde_json::json!([t1]));
    assert_eq!(v["signature"]["failures"][0]["label"], "sig2");
    assert_eq!(v["skipped"], serde_json::json!([{"index":1,"kid":t2,"reason":"no_valid_signature"}]));

    // Offline: the saved response checks the same, against the authority of --url.
    let saved = s.write("directory.http", &signed);
    let url = dir.base_url();
    let args = ["directory", "check", "--response", &saved, "--url", &url, "--now", &now, "--json"];
    let v = json(&expect(0, &args).stdout);
    assert_eq!(v["signature"]["signed_by"], serde_json::json!([t1, t2]));
    let args = ["directory", "check", "--response", &saved, "--url", "http://127.0.0.1:1", "--now", &now, "--json"];
    let v = json(&expect(1, &args).stdout);
    assert_eq!(v["reason"], "signature_invalid");
    assert_eq!(v["signature"]["failures"][0]["reason"], "signature_invalid");
}

// ---- verify --fetch -----------------------------------------------------------------

const GET: &str = "GET /articles/42 HTTP/1.1\r\nHost: example.com\r\n\r\n";

fn signed_request(s: &Scratch, name: &str, key: &str, agent: &str) -> String {
    let req = s.write("req.http", GET);
    let created = NOW.to_string();
    let r = expect(0, &["sign", "--key", key, "--request", &req, "--created", &created, "--agent", agent]);
    s.write(name, r.stdout)
}

fn verify_fetch(signed: &str, dir: &DirectoryServer, extra: &[&str]) -> (i32, Value, String) {
    let now = (NOW + 5).to_string();
    let directory = format!("{AGENT}={}", dir.base_url());
    let mut args = vec![
        "verify",
        "--request",
        signed,
        "--now",
        &now,
        "--json",
        "--fetch",
        "--allow",
        AGENT,
        "--directory",
        &directory,
    ];
    args.extend_from_slice(extra);
    let r = run(&args);
    assert!(r.code == 0 || r.code == 1, "{args:?}: exit {}\n{}{}", r.code, r.stdout, r.stderr);
    (r.code, json(&r.stdout), r.stderr)
}

#[test]
fn verify_fetch_resolves_the_agents_keys_from_its_directory() {
    let s = Scratch::new();
    let (key, public, kid) = keygen(&s, "agent");
    let dir = server(Behaviour::jwks(&std::fs::read_to_string(&public).unwrap(), 300));
    let signed = signed_request(&s, "signed.http", &key, AGENT);

    let (code, v, stderr) = verify_fetch(&signed, &dir, &[]);
    assert_eq!((code, v["verdict"].as_str(), v["keyid"].as_str()), (0, Some("verified"), Some(kid.as_str())), "{v}");
    assert_eq!(v["agent"], AGENT);
    assert!(stderr.contains("1 key(s), 0 skipped"), "{stderr}");
    // One fetch, of the directory path, with Host = the agent's authority (like --resolve).
    let hits = dir.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].target.as_str(), hits[0].header("host")), (WELL_KNOWN, Some("agent.test")));

    // Pinned keys first: a key given with --jwks verifies without any fetch.
    let pinned = format!("{AGENT}={public}");
    let (code, v, _) = verify_fetch(&signed, &dir, &["--jwks", &pinned]);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("verified")), "{v}");
    assert_eq!(dir.fetches(), 1, "no fetch when the pinned key verifies");

    // A key the directory does not list: core fetches once, then rejects (no refetch loop).
    let (other, other_public, other_kid) = keygen(&s, "other");
    let rotated = signed_request(&s, "rotated.http", &other, AGENT);
    let (code, v, _) = verify_fetch(&rotated, &dir, &[]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("unknown_key")), "{v}");
    assert_eq!(dir.fetches(), 2);
    // Rotated in: once the directory lists the new key, the next run verifies with it
    // (each run starts cold: no cache to wait out).
    let both = {
        let keys = |p: &str| json(&std::fs::read_to_string(p).unwrap())["keys"].as_array().unwrap().clone();
        let mut all = keys(&public);
        all.extend(keys(&other_public));
        serde_json::json!({ "keys": all }).to_string()
    };
    dir.set(Behaviour::jwks(&both, 300));
    let (code, v, _) = verify_fetch(&rotated, &dir, &[]);
    assert_eq!(
        (code, v["verdict"].as_str(), v["keyid"].as_str()),
        (0, Some("verified"), Some(other_kid.as_str())),
        "{v}"
    );
    assert_eq!(dir.fetches(), 3);

    // explain --fetch shows the fetch and the directory key among the trusted keys.
    let now = (NOW + 5).to_string();
    let directory = format!("{AGENT}={}", dir.base_url());
    let r = expect(
        0,
        &["explain", "--request", &signed, "--now", &now, "--fetch", "--allow", AGENT, "--directory", &directory],
    );
    assert!(r.stdout.contains("directory fetches:\n  http://127.0.0.1:"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("agent={AGENT} keyid={kid}")), "{}", r.stdout);
    assert!(r.stdout.contains("verdict:    verified"), "{}", r.stdout);
    assert_eq!(dir.fetches(), 4);

    // The directory is down: this agent's verdict is directory_unavailable (503).
    dir.set(Behaviour::status(500, &[], ""));
    let (code, v, stderr) = verify_fetch(&signed, &dir, &[]);
    assert_eq!(
        (code, v["reason"].as_str(), v["status"].as_u64()),
        (1, Some("directory_unavailable"), Some(503)),
        "{v}"
    );
    assert!(stderr.contains("http_status"), "{stderr}");
    assert_eq!(dir.fetches(), 5);
}

#[test]
fn verify_fetch_never_fetches_for_an_agent_not_allowed() {
    let s = Scratch::new();
    let (key, public, _) = keygen(&s, "agent");
    let dir = server(Behaviour::jwks(&std::fs::read_to_string(&public).unwrap(), 300));
    let signed = signed_request(&s, "evil.http", &key, "https://evil.test");
    let (code, v, _) = verify_fetch(&signed, &dir, &[]);
    assert_eq!(
        (code, v["reason"].as_str(), v["agent"].as_str()),
        (1, Some("agent_not_allowed"), Some("https://evil.test"))
    );
    // An unsigned request: nothing to resolve either.
    let plain = s.write("plain.http", GET);
    let (code, v, _) = verify_fetch(&plain, &dir, &[]);
    assert_eq!((code, v["verdict"].as_str()), (1, Some("unsigned")));
    assert_eq!(dir.fetches(), 0);
}
