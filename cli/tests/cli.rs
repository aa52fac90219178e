//! The real `botauth` binary, end to end: keygen → sign → verify, tampering, `--json`,
//! `explain`, published known-answer vectors, directories (checked by core), `--curl`
//! against a local listener, and usage errors.

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::Duration;

use botauth_testkit::ChildGuard;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use botauth_core::directory::{verify_directory_response, DirectoryError, WELL_KNOWN_PATH};
use botauth_core::keys::thumbprint_okp;
use botauth_core::{HttpRequest, Keyring, Policy, PublicKey, Reason, Verdict};

const RFC_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
const RFC_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
const RFC_THUMBPRINT: &str = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";
const AGENT: &str = "https://agent.test";
const NOW: u64 = 1_735_689_600;

// ---- harness ------------------------------------------------------------------------

mod common;

use common::{expect, json, run, run_with, Scratch};

type Fields = Vec<(String, Vec<u8>)>;

/// A minimal HTTP/1.1 message split for the tests: start line, field lines, body.
fn split_message(bytes: &[u8]) -> (String, Fields, Vec<u8>) {
    let text = bytes;
    let (head, body) = match find(text, b"\r\n\r\n") {
        Some(i) => (&text[..i], text[i + 4..].to_vec()),
        None => {
            let i = find(text, b"\n\n").expect("no blank line");
            (&text[..i], text[i + 2..].to_vec())
        }
    };
    let head = String::from_utf8(head.to_vec()).unwrap();
    let mut lines = head.lines();
    let start = lines.next().unwrap().to_owned();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_owned(), v.trim().as_bytes().to_vec())
        })
        .collect();
    (start, headers, body)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| std::str::from_utf8(v).unwrap())
}

/// A request file as core sees it (origin-form target, Host = authority).
fn core_request(bytes: &[u8]) -> HttpRequest {
    let (start, headers, body) = split_message(bytes);
    let mut parts = start.split(' ');
    let method = parts.next().unwrap();
    let target = parts.next().unwrap();
    let authority = header(&headers, "host").unwrap().to_owned();
    HttpRequest {
        method: method.into(),
        scheme: "https".into(),
        authority,
        target: target.into(),
        headers,
        body: Some(body),
    }
}

fn rfc_key(s: &Scratch) -> String {
    s.write(
        "rfc.json",
        format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"test-key-ed25519","d":"{RFC_D}","x":"{RFC_X}"}}"#),
    )
}

fn rfc_public(s: &Scratch) -> String {
    s.write("rfc-pub.json", format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{RFC_X}"}}]}}"#))
}

/// keygen into `dir`: (private JWK path, public JWKS path, thumbprint).
fn keygen(s: &Scratch, name: &str) -> (String, String, String) {
    let private = s.path(&format!("{name}.json"));
    let public = s.path(&format!("{name}-pub.json"));
    expect(0, &["keygen", "--out", &private, "--jwks-out", &public]);
    let jwk = json(&std::fs::read_to_string(&private).unwrap());
    (private, public, jwk["kid"].as_str().unwrap().to_owned())
}

const GET: &str = "GET /articles/42?lang=en HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test-agent/1.0\r\n\r\n";

/// Sign `request` with `key`; the signed request file path.
fn sign(s: &Scratch, key: &str, request: &str, extra: &[&str]) -> String {
    let req = s.write("req.http", request);
    let created = NOW.to_string();
    let mut args = vec!["sign", "--key", key, "--request", &req, "--created", &created];
    args.extend_from_slice(extra);
    let r = expect(0, &args);
    s.write("signed.http", r.stdout)
}

fn verify_json(signed: &str, jwks: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let now = (NOW + 5).to_string();
    let mut args = vec!["verify", "--request", signed, "--jwks", jwks, "--now", &now, "--json"];
    args.extend_from_slice(extra);
    let r = run(&args);
    assert!(r.code == 0 || r.code == 1, "{args:?}: exit {}\n{}", r.code, r.stderr);
    (r.code, json(&r.stdout))
}

fn replace_in(path: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    let out = format!("{path}.tampered");
    std::fs::write(&out, text.replacen(from, to, 1)).unwrap();
    out
}

// ---- keygen / thumbprint ------------------------------------------------------------

#[test]
fn keygen_prints_a_private_jwk_with_thumbprint_kid() {
    let r = expect(0, &["keygen"]);
    let jwk = json(&r.stdout);
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    let x = jwk["x"].as_str().unwrap();
    assert_eq!(jwk["kid"].as_str().unwrap(), thumbprint_okp("Ed25519", x));
    let d = URL_SAFE_NO_PAD.decode(jwk["d"].as_str().unwrap()).unwrap();
    let seed: [u8; 32] = d.try_into().unwrap();
    assert_eq!(URL_SAFE_NO_PAD.encode(botauth_core::sign::public_key(&seed).unwrap()), x);
    // Two runs, two keys.
    assert_ne!(json(&expect(0, &["keygen"]).stdout)["d"], jwk["d"]);
}

#[test]
fn keygen_writes_files_and_refuses_to_overwrite() {
    let s = Scratch::new();
    let (private, public, kid) = keygen(&s, "k");
    let set = json(&std::fs::read_to_string(&public).unwrap());
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], kid.as_str());
    assert!(keys[0].get("d").is_none(), "public JWKS leaks d");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let r = expect(2, &["keygen", "--out", &private]);
    assert!(r.stderr.contains("exists"), "{}", r.stderr);
    expect(0, &["keygen", "--out", &private, "--force"]);
    assert_ne!(json(&std::fs::read_to_string(&private).unwrap())["kid"], kid.as_str());
}

#[test]
fn thumbprint_of_jwk_jwks_and_stdin() {
    let s = Scratch::new();
    assert_eq!(expect(0, &["thumbprint", &rfc_key(&s)]).stdout, format!("{RFC_THUMBPRINT}\n"));
    assert_eq!(expect(0, &["thumbprint", &rfc_public(&s)]).stdout, format!("{RFC_THUMBPRINT}\n"));
    // RFC 8037 A.3.
    let r = run_with(
        &["thumbprint", "-"],
        br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\n"));
    let r = run_with(&["thumbprint", "-"], br#"{"keys":[{"kty":"RSA","n":"x","e":"AQAB"}]}"#);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("key #1") && r.stderr.contains("RSA"), "{}", r.stderr);
}

#[test]
fn compact_keys_of_a_public_jwks_and_refusals() {
    let s = Scratch::new();
    let r = expect(0, &["compact-keys", &rfc_public(&s)]);
    assert!(r.stdout.starts_with(&format!("botauth-keys/1,{RFC_THUMBPRINT} ")), "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 1);
    // A private key does not belong in a verifier's store.
    let r = expect(2, &["compact-keys", &rfc_key(&s)]);
    assert!(r.stderr.contains("private_key_material"), "{}", r.stderr);
    let r = run_with(&["compact-keys", "-"], br#"{"keys":[{"kty":"RSA","n":"x","e":"AQAB","kid":"r"}]}"#);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("key #1 (kid r)") && r.stderr.contains("unsupported_key_type"), "{}", r.stderr);
    assert_eq!(run_with(&["compact-keys", "-"], br#"{"keys":[]}"#).code, 2);
}

// ---- sign → verify ------------------------------------------------------------------

#[test]
fn keygen_sign_verify_both_agent_forms() {
    let s = Scratch::new();
    let (key, public, kid) = keygen(&s, "k");
    for (form, agent_line) in [
        ("dictionary", format!("Signature-Agent: sig1=\"{AGENT}\"")),
        ("legacy", format!("Signature-Agent: \"{AGENT}\"")),
    ] {
        let signed = sign(&s, &key, GET, &["--agent", AGENT, "--agent-form", form]);
        let text = std::fs::read_to_string(&signed).unwrap();
        assert!(text.contains(&agent_line), "{form}: {text}");
        assert!(text.starts_with("GET /articles/42?lang=en HTTP/1.1\r\nHost: example.com\r\n"), "{text}");
        let trust = format!("{AGENT}={public}");
        let now = (NOW + 5).to_string();
        let r = expect(0, &["verify", "--request", &signed, "--jwks", &trust, "--now", &now]);
        assert_eq!(r.stdout, format!("verified agent={AGENT} keyid={kid} label=sig1\n"), "{form}");
        // Core agrees, from the bytes alone.
        let mut ring = Keyring::new();
        ring.add_jwks(AGENT, std::fs::read_to_string(&public).unwrap().as_bytes()).unwrap();
        let verdict = botauth_core::verify(&core_request(text.as_bytes()), &ring, &Policy::web_bot_auth(), NOW + 5);
        assert!(verdict.is_verified(), "{form}: {verdict:?}");
    }
}

#[test]
fn json_verdict_has_every_member() {
    let s = Scratch::new();
    let (key, public, kid) = keygen(&s, "k");
    let signed = sign(&s, &key, GET, &["--agent", AGENT, "--validity", "300", "--nonce", "n-1"]);
    // A key file without `AGENT=` is trusted for any agent: the covered agent is only a claim.
    let (code, v) = verify_json(&signed, &public, &[]);
    assert_eq!(code, 0);
    assert_eq!((v["agent"].is_null(), v["claimed_agent"].as_str()), (true, Some(AGENT)), "{v}");
    let bound = format!("{AGENT}={public}");
    let (code, v) = verify_json(&signed, &bound, &[]);
    assert_eq!(code, 0);
    assert_eq!(v["verdict"], "verified");
    assert_eq!(v["reason"], serde_json::Value::Null);
    assert_eq!(v["status"], serde_json::Value::Null);
    assert_eq!(v["agent"], AGENT);
    assert_eq!(v["claimed_agent"], serde_json::Value::Null);
    assert_eq!(v["keyid"], kid.as_str());
    assert_eq!(v["label"], "sig1");
    assert_eq!(v["created"], NOW);
    assert_eq!(v["expires"], NOW + 300);
    assert_eq!(v["nonce"], "n-1");

    // Past expiry (and skew): rejected with the code and status.
    let late = (NOW + 300 + 61).to_string();
    let r = run(&["verify", "--request", &signed, "--jwks", &public, "--now", &late, "--json"]);
    assert_eq!(r.code, 1);
    let v = json(&r.stdout);
    assert_eq!(
        (v["verdict"].as_str(), v["reason"].as_str(), v["status"].as_u64()),
        (Some("rejected"), Some("expired"), Some(403))
    );
    assert_eq!(v["keyid"], kid.as_str());
    assert_eq!(v["label"], "sig1");
    // Skew and window flags reach the policy.
    let r = run(&["verify", "--request", &signed, "--jwks", &public, "--now", &late, "--skew", "100"]);
    assert_eq!((r.code, r.stdout.starts_with("verified")), (0, true), "{}", r.stdout);
    let r = run(&["verify", "--request", &signed, "--jwks", &public, "--now", &late, "--max-validity", "200"]);
    assert_eq!(r.stdout, format!("rejected validity_too_long (403): {}\n", Reason::ValidityTooLong.title()));
}

#[test]
fn tampering_is_rejected_with_the_right_reason() {
    let s = Scratch::new();
    let (key, public, _) = keygen(&s, "k");
    let signed = sign(&s, &key, GET, &["--agent", AGENT, "--components", "@authority,@path,signature-agent;key=sig1"]);
    assert_eq!(verify_json(&signed, &public, &[]).0, 0);

    let cases = [
        ("authority", "Host: example.com", "Host: evil.example", "signature_invalid"),
        ("covered path", "GET /articles/42", "GET /articles/43", "signature_invalid"),
        ("signature-agent", "sig1=\"https://agent.test\"", "sig1=\"https://evil.test\"", "signature_invalid"),
        ("signature byte", "Signature: sig1=:", "Signature: sig1=:A", "signature_bad_base64"),
    ];
    for (what, from, to, reason) in cases {
        let (code, v) = verify_json(&replace_in(&signed, from, to), &public, &[]);
        assert_eq!((code, v["reason"].as_str()), (1, Some(reason)), "{what}: {v}");
    }
    // Keys trusted only for the real agent: another agent's claim finds no key.
    let trust = format!("{AGENT}={public}");
    let (code, v) = verify_json(&replace_in(&signed, "agent.test", "evil.test"), &trust, &[]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("unknown_key")), "{v}");
    // The query is not covered: changing it keeps the signature valid (coverage is exact).
    let (code, v) = verify_json(&replace_in(&signed, "lang=en", "lang=fr"), &public, &[]);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("verified")), "{v}");
}

#[test]
fn unsigned_and_missing_nonce() {
    let s = Scratch::new();
    let (key, public, _) = keygen(&s, "k");
    let plain = s.write("plain.http", GET);
    let r = expect(1, &["verify", "--request", &plain, "--jwks", &public]);
    assert_eq!(r.stdout, "unsigned\n");
    let signed = sign(&s, &key, GET, &["--agent", AGENT, "--no-nonce"]);
    assert!(!std::fs::read_to_string(&signed).unwrap().contains("nonce="));
    assert_eq!(verify_json(&signed, &public, &[]).0, 0);
    let (code, v) = verify_json(&signed, &public, &["--require-nonce"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("nonce_missing")), "{v}");
}

#[test]
fn default_nonce_is_64_random_bytes() {
    let s = Scratch::new();
    let (key, _, _) = keygen(&s, "k");
    let nonce_of = |path: &str| {
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("nonce=\"").unwrap() + 7;
        let len = text[start..].find('"').unwrap();
        text[start..start + len].to_owned()
    };
    let a = nonce_of(&sign(&s, &key, GET, &[]));
    let b = nonce_of(&sign(&s, &key, GET, &[]));
    assert_ne!(a, b);
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(&a).unwrap().len(), 64);
}

#[test]
fn content_digest_is_added_and_checked() {
    let s = Scratch::new();
    let (key, public, _) = keygen(&s, "k");
    let post = "POST /api HTTP/1.1\nHost: example.com\nContent-Type: application/json\n\n{\"hello\": \"world\"}";
    let signed = sign(
        &s,
        &key,
        post,
        &["--agent", AGENT, "--components", "@authority,@method,content-digest,signature-agent;key=sig1"],
    );
    let text = std::fs::read_to_string(&signed).unwrap();
    // RFC 9530 §2 example digest of this body; LF line endings are kept.
    assert!(text.contains("\nContent-Digest: sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:\n"), "{text}");
    assert!(text.ends_with("\n\n{\"hello\": \"world\"}"), "{text}");
    assert_eq!(verify_json(&signed, &public, &[]).0, 0);
    let (code, v) = verify_json(&replace_in(&signed, "\"world\"}", "\"there\"}"), &public, &[]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("content_digest_mismatch")), "{v}");
}

#[test]
fn request_from_stdin_absolute_form_and_flags() {
    let s = Scratch::new();
    let (key, public, _) = keygen(&s, "k");
    let created = NOW.to_string();
    // Absolute-form target: scheme and authority come from it; no Host header is added.
    let r = run_with(
        &["sign", "--key", &key, "--request", "-", "--created", &created, "--components", "@target-uri"],
        b"GET http://api.example:8080/v1?q=1 HTTP/1.1\n\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("GET http://api.example:8080/v1?q=1 HTTP/1.1\n"), "{}", r.stdout);
    let signed = s.write("abs.http", &r.stdout);
    let now = (NOW + 1).to_string();
    let r = run(&["explain", "--request", &signed, "--jwks", &public, "--now", &now]);
    assert!(r.stdout.contains("\"@target-uri\": http://api.example:8080/v1?q=1\n"), "{}", r.stdout);
    // web-bot-auth accepts @target-uri in place of @authority.
    assert_eq!(r.code, 0, "{}", r.stdout);

    // --authority supplies a missing Host, which the output then carries.
    let r = run_with(
        &["sign", "--key", &key, "--request", "-", "--authority", "b.example", "--created", &created],
        b"GET / HTTP/1.1\n\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("GET / HTTP/1.1\nHost: b.example\n"), "{}", r.stdout);
}

#[test]
fn existing_signature_agent_is_kept_and_covered_and_old_signatures_replaced() {
    let s = Scratch::new();
    let (key, public, _) = keygen(&s, "k");
    let legacy = "GET / HTTP/1.1\nHost: example.com\nSignature-Agent: \"https://agent.test\"\n\n";
    let signed = sign(&s, &key, legacy, &[]);
    let text = std::fs::read_to_string(&signed).unwrap();
    assert!(text.contains("sig1=(\"@authority\" \"signature-agent\");"), "{text}");
    let trust = format!("{AGENT}={public}");
    let (code, v) = verify_json(&signed, &trust, &[]);
    assert_eq!((code, v["agent"].as_str()), (0, Some(AGENT)), "{v}");

    // Signing a signed request again replaces Signature-Input and Signature.
    let again = sign(&s, &key, &text, &["--label", "sig1"]);
    let again = std::fs::read_to_string(again).unwrap();
    assert_eq!(again.matches("Signature-Input:").count(), 1, "{again}");
    assert_eq!(again.matches("Signature:").count(), 1, "{again}");
    assert_eq!(again.matches("Signature-Agent:").count(), 1, "{again}");

    // A dictionary without a member for the label cannot be covered by default.
    let dict = "GET / HTTP/1.1\nHost: example.com\nSignature-Agent: other=\"https://agent.test\"\n\n";
    let req = s.write("dict.http", dict);
    let r = expect(2, &["sign", "--key", &key, "--request", &req]);
    assert!(r.stderr.contains("no member \"sig1\""), "{}", r.stderr);
}

// ---- explain ------------------------------------------------------------------------

#[test]
fn explain_shows_checks_base_and_failure() {
    let s = Scratch::new();
    let key = rfc_key(&s);
    let public = rfc_public(&s);
    let signed = sign(&s, &key, GET, &["--agent", AGENT, "--nonce", "abc", "--validity", "60"]);
    let now = (NOW + 5).to_string();
    let base = format!(
        "\"@authority\": example.com\n\"signature-agent\";key=\"sig1\": \"{AGENT}\"\n\"@signature-params\": \
         (\"@authority\" \"signature-agent\";key=\"sig1\");created={NOW};keyid=\"{RFC_THUMBPRINT}\";alg=\"ed25519\";\
         expires={};nonce=\"abc\";tag=\"web-bot-auth\"",
        NOW + 60
    );
    // The RFC 9421 test key: trusted only with --allow-test-keys.
    let t = "--allow-test-keys";
    let ok = expect(0, &["explain", "--request", &signed, "--jwks", &public, "--now", &now, t]);
    assert!(ok.stdout.contains(&format!("signature base:\n{base}\nverdict:")), "{}", ok.stdout);
    assert!(ok.stdout.contains("  PASS ed25519\n"), "{}", ok.stdout);
    assert!(!ok.stdout.contains("FAIL"), "{}", ok.stdout);
    assert!(ok.stdout.contains("covered components:\n  \"@authority\"\n  \"signature-agent\";key=\"sig1\"\n"));

    let tampered = replace_in(&signed, "Host: example.com", "Host: evil.example");
    let bad = expect(1, &["explain", "--request", &tampered, "--jwks", &public, "--now", &now, t]);
    let out = &bad.stdout;
    assert!(out.contains("  FAIL ed25519: signature_invalid (403): "), "{out}");
    assert!(out.contains(&format!("signature base:\n{}\n", base.replace("example.com", "evil.example"))), "{out}");
    assert!(out.trim_end().ends_with("verdict:    rejected signature_invalid (403): the signature does not verify"));

    // A failure before the base: the base is said not to be built, the failing check named.
    let late = (NOW + 1000).to_string();
    let r = expect(1, &["explain", "--request", &signed, "--jwks", &public, "--now", &late, t]);
    assert!(r.stdout.contains("  FAIL validity: expired (403)"), "{}", r.stdout);
    assert!(r.stdout.contains("signature base: (not built"), "{}", r.stdout);

    // --json carries the same trace.
    let r = expect(1, &["explain", "--request", &tampered, "--jwks", &public, "--now", &now, "--json", t]);
    let v = json(&r.stdout);
    assert_eq!(v["checks"].as_array().unwrap().last().unwrap()["reason"], "signature_invalid");
    assert_eq!(v["result"]["reason"], "signature_invalid");
    assert!(v["signature_base"].as_str().unwrap().starts_with("\"@authority\": evil.example\n"));
}

// ---- published vectors, reproduced exactly ------------------------------------------

/// Sign with the RFC 9421 test key and fixed parameters; the `Signature` value.
fn signature_of(s: &Scratch, request: &str, args: &[&str]) -> String {
    let key = rfc_key(s);
    let req = s.write("vector.http", request);
    let mut all = vec!["sign", "--key", &key, "--request", &req];
    all.extend_from_slice(args);
    let r = expect(0, &all);
    let (_, headers, _) = split_message(r.stdout.as_bytes());
    header(&headers, "signature").unwrap().to_owned()
}

#[test]
fn rfc9421_b_2_6_reproduced() {
    let s = Scratch::new();
    let req = "POST /foo?param=Value&Pet=dog HTTP/1.1\r\nHost: example.com\r\nDate: Tue, 20 Apr 2021 02:07:55 GMT\r\n\
               Content-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"hello\": \"world\"}";
    let sig = signature_of(
        &s,
        req,
        &[
            "--label",
            "sig-b26",
            "--components",
            "date,@method,@path,@authority,content-type,content-length",
            "--created",
            "1618884473",
            "--keyid",
            "test-key-ed25519",
            "--no-alg",
            "--no-expires",
            "--no-nonce",
            "--tag",
            "",
        ],
    );
    assert_eq!(
        sig,
        "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
    );
}

#[test]
fn web_bot_auth_draft_vectors_reproduced() {
    let s = Scratch::new();
    let get = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    // draft-meunier-web-bot-auth-architecture-05 A.2.1: no Signature-Agent.
    let sig = signature_of(
        &s,
        get,
        &[
            "--created",
            "1735689600",
            "--expires",
            "4889289600",
            "--nonce",
            "g0iqFa9e1ffijlyOScDkXpfSmTbYpRNSGPJrQ1It20ahwgzB3jOUcdgLgFxUg7RMtW4V8IILaKKtA+YuSyIgJQ==",
        ],
    );
    assert_eq!(sig, "sig1=:FFASViSdcgsyaqqYiCnkHreeZzbNKcTzDvZC5uVlP/dn9IbWj8j0o4wKFTH3rBnUiSUBduwm1Gp5VlIPCp01Ag==:");
    // arch-05 A.2.3 / protocol-02: legacy sf-string Signature-Agent.
    let sig = signature_of(
        &s,
        get,
        &[
            "--agent",
            "https://signature-agent.test",
            "--agent-form",
            "legacy",
            "--label",
            "sig2",
            "--created",
            "1735689600",
            "--expires",
            "1735693200",
            "--nonce",
            "e8N7S2MFd/qrd6T2R3tdfAuuANngKI7LFtKYI/vowzk4lAZYadIX6wW25MwG7DCT9RUKAJ0qVkU0mEeLElW1qg==",
        ],
    );
    assert_eq!(sig, "sig2=:jdq0SqOwHdyHr9+r5jw3iYZH6aNGKijYp/EstF4RQTQdi5N5YYKrD+mCT1HA1nZDsi6nJKuHxUi/5Syp3rLWBA==:");
    // protocol-02: dictionary Signature-Agent whose member name differs from the label.
    let with_agent =
        "GET / HTTP/1.1\r\nHost: example.com\r\nSignature-Agent: agent2=\"https://signature-agent.test\"\r\n\r\n";
    let sig = signature_of(
        &s,
        with_agent,
        &[
            "--label",
            "sig2",
            "--components",
            "@authority,signature-agent;key=agent2",
            "--created",
            "1735689600",
            "--expires",
            "4889289600",
            "--nonce",
            "n9p433xm+NJ3ph3upfBIGmsuwHw387YV7Q/F+6BSpGCVjYCqQw6rznNA8PVVLySrAWsv0hQtFioQb6E1YsauiA==",
        ],
    );
    assert_eq!(sig, "sig2=:RdNFx5Bj6au3YgAMQL/RzmUlZE8QZLIaXGRpw985hWnwPfMxT228NMk6ehRS1PSl4e8PhbNZACSanGdhEwYCCg==:");
}

/// The published request vectors (fixtures/vectors/spec-ed25519-vectors.json) verify, and
/// `explain` prints exactly the published signature base. The clock is set inside each
/// vector's window (the legacy vector is expired at the fixture suite's `now`), and the
/// window cap is lifted for the vectors that expire in 2124.
#[test]
fn published_vectors_verify_and_explain_prints_their_base() {
    let s = Scratch::new();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/vectors/spec-ed25519-vectors.json");
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = Vec::new();
    for v in vectors.iter().filter(|v| v["headers"].get("request").is_none()) {
        let name = v["name"].as_str().unwrap();
        let h = v["headers"].as_object().unwrap();
        let mut file = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            h.get("method").and_then(|m| m.as_str()).unwrap_or("GET"),
            h.get("target").and_then(|m| m.as_str()).unwrap_or("/"),
            v["authority"].as_str().unwrap()
        );
        for (k, val) in h.iter().filter(|(k, _)| !matches!(k.as_str(), "method" | "target" | "Host")) {
            file.push_str(&format!("{k}: {}\r\n", val.as_str().unwrap()));
        }
        file.push_str("\r\n");
        let req = s.write(&format!("{name}.http"), &file);
        let mut jwk = v["key_jwk"].clone();
        jwk.as_object_mut().unwrap().remove("d");
        let jwks = s.write(&format!("{name}.jwks"), serde_json::json!({ "keys": [jwk] }).to_string());
        let input = h["Signature-Input"].as_str().unwrap();
        let created: u64 = input.split("created=").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();
        let now = (created + 10).to_string();
        let profile = if name.starts_with("rfc9421") { "rfc9421" } else { "web-bot-auth" };
        // The drafts' vectors expire in 2124: beyond Web Bot Auth's 24 h window.
        let window = ["--max-validity", "4000000000"];
        let mut args = vec!["explain", "--request", &req, "--jwks", &jwks, "--now", &now, "--profile", profile];
        args.extend(window);
        // The vectors are signed with the RFC 9421 test key.
        args.push("--allow-test-keys");
        let r = run(&args);
        assert_eq!(r.code, 0, "{name}:\n{}{}", r.stdout, r.stderr);
        let base = v["signature_base"].as_str().unwrap();
        assert!(r.stdout.contains(&format!("signature base:\n{base}\nverdict:    verified")), "{name}:\n{}", r.stdout);
        args[0] = "verify";
        let r = run(&args);
        assert_eq!(r.code, 0, "{name}: {}", r.stdout);
        assert!(r.stdout.starts_with("verified agent="), "{name}: {}", r.stdout);
        checked.push(name.to_owned());
    }
    assert_eq!(checked, ["rfc9421-B.2.6", "wba-dict-agent2", "wba-legacy-string", "wba-no-agent"]);
}

#[test]
fn rfc_key_signature_is_deterministic_and_core_verifies_it() {
    let s = Scratch::new();
    let key = rfc_key(&s);
    let args = [
        "--agent",
        AGENT,
        "--nonce",
        "fixed-nonce",
        "--components",
        "@authority,@method,@path,signature-agent;key=sig1",
    ];
    let a = std::fs::read_to_string(sign(&s, &key, GET, &args)).unwrap();
    let b = std::fs::read_to_string(sign(&s, &key, GET, &args)).unwrap();
    assert_eq!(a, b);
    let mut ring = Keyring::new();
    ring.add_key(AGENT, PublicKey::from_bytes(URL_SAFE_NO_PAD.decode(RFC_X).unwrap().try_into().unwrap()));
    let policy = Policy { allow_test_keys: true, ..Policy::web_bot_auth() };
    match botauth_core::verify(&core_request(a.as_bytes()), &ring, &policy, NOW + 1) {
        Verdict::Verified(v) => {
            assert_eq!(v.keyid, RFC_THUMBPRINT);
            assert_eq!(v.agent.as_deref(), Some(AGENT));
            assert_eq!(v.nonce.as_deref(), Some("fixed-nonce"));
        }
        other => panic!("{other:?}\n{a}"),
    }
}

// ---- directory ----------------------------------------------------------------------

fn directory(args: &[&str]) -> (HttpRequest, HttpRequest, String, Vec<u8>) {
    let r = expect(0, args);
    let (status_line, headers, body) = split_message(r.stdout.as_bytes());
    let request = HttpRequest::new("GET", "https", "example.com", WELL_KNOWN_PATH).with_header("Host", "example.com");
    let response = HttpRequest { headers, body: None, ..request.clone() };
    (request, response, status_line, body)
}

#[test]
fn directory_verifies_with_core() {
    let s = Scratch::new();
    let key = rfc_key(&s);
    let (request, response, status, body) =
        directory(&["directory", "--key", &key, "--authority", "example.com", "--created", "1735689600"]);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&response.headers, "content-type"), Some("application/http-message-signatures-directory+json"));
    let set = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(set["keys"][0]["kid"], RFC_THUMBPRINT);
    assert_eq!(set["keys"][0]["x"], RFC_X);
    assert!(set["keys"][0].get("d").is_none());
    let dir = verify_directory_response(&request, &response, 200, &body, 1735689600 + 10).unwrap();
    assert_eq!(dir.signature.keyid, RFC_THUMBPRINT);
    assert_eq!(dir.signature.expires, Some(1735689600 + 86400));
    assert_eq!(dir.keys.len(), 1);

    // Another body, another authority, or too late: not accepted.
    let mut other = body.clone();
    other.push(b' ');
    assert_eq!(
        verify_directory_response(&request, &response, 200, &other, 1735689610).err(),
        Some(DirectoryError::Rejected(Reason::ContentDigestMismatch))
    );
    let elsewhere = HttpRequest::new("GET", "https", "evil.example", WELL_KNOWN_PATH);
    assert_eq!(
        verify_directory_response(&elsewhere, &response, 200, &body, 1735689610).err(),
        Some(DirectoryError::Rejected(Reason::SignatureInvalid))
    );
    assert_eq!(
        verify_directory_response(&request, &response, 200, &body, 1735689600 + 86400 + 61).err(),
        Some(DirectoryError::Rejected(Reason::Expired))
    );
}

/// With several keys each key signs (labels sig1, sig2, …). Core accepts the directory
/// only when every signature with the directory tag verifies.
#[test]
fn directory_with_two_keys_needs_every_signature() {
    let s = Scratch::new();
    let (k1, _, t1) = keygen(&s, "a");
    let (k2, _, t2) = keygen(&s, "b");
    let (request, response, _, body) =
        directory(&["directory", "--key", &k1, "--key", &k2, "--authority", "example.com", "--created", "1735689600"]);
    let set = json(std::str::from_utf8(&body).unwrap());
    let kids: Vec<_> = set["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kids, [t1.clone(), t2]);
    let input = header(&response.headers, "signature-input").unwrap();
    assert!(input.starts_with("sig1=(") && input.contains(", sig2=("), "{input}");
    let dir = verify_directory_response(&request, &response, 200, &body, 1735689610).unwrap();
    assert_eq!(dir.signature.keyid, t1);
    // Corrupt the second signature only: the directory is refused.
    let sigs = header(&response.headers, "signature").unwrap().to_owned();
    let (first, second) = sigs.split_once(", ").unwrap();
    let mut bytes = second.as_bytes().to_vec();
    let at = bytes.len() - 10;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let mut bad = response.clone();
    bad.remove_header("signature");
    bad.push_header("signature", format!("{first}, {}", String::from_utf8(bytes).unwrap()));
    assert_eq!(
        verify_directory_response(&request, &bad, 200, &body, 1735689610).err(),
        Some(DirectoryError::Rejected(Reason::SignatureInvalid))
    );
}

// ---- --curl against a local listener ------------------------------------------------

#[test]
fn curl_command_sends_a_request_that_verifies() {
    let s = Scratch::new();
    let (key, public, _) = keygen(&s, "k");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = find(&got, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if got.len() >= end + 4 + len || n == 0 {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").unwrap();
        got
    });
    let post = "POST /submit?x=[1] HTTP/1.1\nHost: example.com\nContent-Type: text/plain\n\nit's a body";
    let req = s.write("req.http", post);
    let created = NOW.to_string();
    let components = "@authority,@method,@path,@query,content-digest,signature-agent;key=sig1";
    let r = expect(
        0,
        &[
            "sign",
            "--key",
            &key,
            "--request",
            &req,
            "--created",
            &created,
            "--agent",
            AGENT,
            "--components",
            components,
            "--curl",
            "--url-base",
            &base,
        ],
    );
    assert!(
        r.stdout.starts_with(&format!("curl --globoff --path-as-is -X 'POST' '{base}/submit?x=[1]'")),
        "{}",
        r.stdout
    );
    let mut curl = ChildGuard::spawn(
        "curl",
        Command::new("sh").arg("-c").arg(format!("{} -sS -o /dev/null", r.stdout.trim_end())),
    )
    .unwrap();
    let status = curl.wait_timeout(Duration::from_secs(30)).unwrap().expect("curl did not finish");
    assert!(status.success(), "curl failed: {status}");
    let received = server.join().unwrap();
    let path = s.write("received.http", &received);
    let now = (NOW + 1).to_string();
    let bound = format!("{AGENT}={public}");
    let r = expect(0, &["verify", "--request", &path, "--jwks", &bound, "--now", &now]);
    assert!(r.stdout.starts_with(&format!("verified agent={AGENT}")), "{}", r.stdout);
}

// ---- usage and input errors: exit 2 with the problem named --------------------------

#[test]
fn bad_usage_and_input_exit_2_naming_the_problem() {
    let s = Scratch::new();
    let key = rfc_key(&s);
    let public = rfc_public(&s);
    let good = s.write("good.http", GET);
    let missing = s.path("missing.http");
    let cases: Vec<(Vec<String>, &[u8], &str)> = vec![
        (vec!["verify".into(), "--bogus".into()], b"", "--bogus"),
        (vec!["frobnicate".into()], b"", "frobnicate"),
        (
            vec!["verify".into(), "--request".into(), good.clone(), "--jwks".into(), s.write("nk.json", "[1]")],
            b"",
            "not a JWK Set",
        ),
        (vec!["verify".into(), "--request".into(), good.clone()], b"", "--jwks"),
        (
            vec!["verify".into(), "--request".into(), missing.clone(), "--jwks".into(), public.clone()],
            b"",
            "missing.http",
        ),
        (
            vec!["verify".into(), "--request".into(), "-".into(), "--jwks".into(), public.clone()],
            b"GET /\r\nHost: a\r\n\r\n",
            "line 1: malformed request line",
        ),
        (
            vec!["sign".into(), "--key".into(), key.clone(), "--request".into(), "-".into()],
            b"GET / HTTP/1.1\nHost: a\nnot a header\n\n",
            "line 3: malformed header line",
        ),
        (vec!["sign".into(), "--key".into(), public.clone(), "--request".into(), good.clone()], b"", "no \"d\" member"),
        (
            vec![
                "sign".into(),
                "--key".into(),
                s.write(
                    "zero.jwk",
                    r#"{"kty":"OKP","crv":"Ed25519","d":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
                ),
                "--request".into(),
                good.clone(),
            ],
            b"",
            "not a usable Ed25519 private key",
        ),
        (
            vec![
                "sign".into(),
                "--key".into(),
                s.write("rsa.json", r#"{"kty":"RSA"}"#),
                "--request".into(),
                good.clone(),
            ],
            b"",
            "not an Ed25519 JWK",
        ),
        (
            vec!["verify".into(), "--request".into(), good.clone(), "--jwks".into(), s.write("nj.json", "{\n  nope")],
            b"",
            "not JSON: key must be a string at line 2 column 3",
        ),
        (
            vec!["sign".into(), "--key".into(), key.clone(), "--request".into(), "-".into()],
            b"GET / HTTP/1.1\n\n",
            "no authority",
        ),
        (
            vec![
                "sign".into(),
                "--key".into(),
                key.clone(),
                "--request".into(),
                good.clone(),
                "--components".into(),
                "@authority,x-missing".into(),
            ],
            b"",
            "\"x-missing\" is not in the request",
        ),
        (
            vec![
                "sign".into(),
                "--key".into(),
                key.clone(),
                "--request".into(),
                good.clone(),
                "--components".into(),
                "@nonsense".into(),
            ],
            b"",
            "unknown_derived_component",
        ),
        (
            vec![
                "sign".into(),
                "--key".into(),
                key.clone(),
                "--request".into(),
                good.clone(),
                "--label".into(),
                "Bad Label".into(),
            ],
            b"",
            "--label",
        ),
        (
            vec![
                "sign".into(),
                "--key".into(),
                key.clone(),
                "--request".into(),
                good.clone(),
                "--nonce".into(),
                "a".into(),
                "--no-nonce".into(),
            ],
            b"",
            "--no-nonce",
        ),
    ];
    for (args, stdin, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run_with(&args, stdin);
        assert_eq!(r.code, 2, "{args:?}\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: stderr lacks {needle:?}:\n{}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: stdout {}", r.stdout);
    }
}

#[test]
fn skipped_jwks_keys_are_warned_about() {
    let s = Scratch::new();
    let key = rfc_key(&s);
    let signed = sign(&s, &key, GET, &[]);
    let set = s.write(
        "mixed.json",
        format!(r#"{{"keys":[{{"kty":"RSA","kid":"r1","n":"x","e":"AQAB"}},{{"kty":"OKP","crv":"Ed25519","x":"{RFC_X}"}}]}}"#),
    );
    let now = (NOW + 1).to_string();
    let r = expect(0, &["verify", "--request", &signed, "--jwks", &set, "--now", &now, "--allow-test-keys"]);
    assert!(r.stderr.contains("key #1 (kid r1) skipped: unsupported_key_type"), "{}", r.stderr);
    // A private key given as trust material is skipped, and says so.
    let r = expect(1, &["verify", "--request", &signed, "--jwks", &key, "--now", &now, "--allow-test-keys"]);
    assert!(r.stderr.contains("skipped: private_key_material"), "{}", r.stderr);
    assert!(r.stdout.starts_with("rejected unknown_key (403)"), "{}", r.stdout);
}

/// RFC 9421 B.1.4's key is public: without --allow-test-keys core rejects a signature by it
/// (test_key_rejected), in verify and explain alike, with a hint.
#[test]
fn the_rfc_test_key_is_rejected_unless_allowed() {
    let s = Scratch::new();
    let signed = sign(&s, &rfc_key(&s), GET, &["--agent", AGENT]);
    let public = rfc_public(&s);
    let (code, v) = verify_json(&signed, &public, &[]);
    assert_eq!((code, v["reason"].as_str(), v["status"].as_u64()), (1, Some("test_key_rejected"), Some(403)), "{v}");
    assert_eq!(v["keyid"], RFC_THUMBPRINT);
    let now = (NOW + 5).to_string();
    let r = expect(1, &["explain", "--request", &signed, "--jwks", &public, "--now", &now]);
    assert!(r.stdout.contains("FAIL") && r.stdout.contains("test_key_rejected (403)"), "{}", r.stdout);
    assert!(r.stdout.contains("--allow-test-keys"), "{}", r.stdout);
    let (code, v) = verify_json(&signed, &public, &["--allow-test-keys"]);
    assert_eq!((code, v["verdict"].as_str()), (0, Some("verified")), "{v}");
}

/// `--claims`: an unsigned request claiming an agent that always signs is rejected
/// `unverified_claim` (exit 1); an ordinary one stays unsigned; a bad file is a usage error.
#[test]
fn claims_turn_unsigned_claims_into_rejections() {
    let s = Scratch::new();
    let (_, public, _) = keygen(&s, "k");
    let claims = s.write("claims.json", r#"[{"agent": "https://chatgpt.com", "user_agent": ["ChatGPT-User"]}]"#);
    let claiming =
        s.write("claim.http", "GET / HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: x ChatGPT-User/1.0\r\n\r\n");
    let plain = s.write("plain.http", "GET / HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: Firefox/140.0\r\n\r\n");
    let (code, v) = verify_json(&claiming, &public, &["--claims", &claims]);
    assert_eq!(
        (code, v["reason"].as_str(), v["agent"].as_str()),
        (1, Some("unverified_claim"), Some("https://chatgpt.com")),
        "{v}"
    );
    assert_eq!(v["status"], 403);
    let (code, v) = verify_json(&plain, &public, &["--claims", &claims]);
    assert_eq!((code, v["verdict"].as_str()), (1, Some("unsigned")), "{v}");
    let (code, v) = verify_json(&claiming, &public, &[]);
    assert_eq!((code, v["verdict"].as_str()), (1, Some("unsigned")), "no claims, no claim: {v}");
    let bad = s.write("bad.json", r#"[{"agent": "http://chatgpt.com"}]"#);
    let r = run(&["verify", "--request", &claiming, "--jwks", &public, "--claims", &bad]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("claims[0].agent"), "{}", r.stderr);
}

/// A fixture case as an HTTP/1.1 request file and `--jwks AGENT=FILE` arguments.
fn fixture_request(s: &Scratch, name: &str) -> (String, Vec<String>, u64) {
    let file: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/cases/agent.json")).expect("agent.json");
    let case = file["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).expect(name);
    let r = &case["request"];
    let mut text = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        r["method"].as_str().unwrap(),
        r["target"].as_str().unwrap(),
        r["authority"].as_str().unwrap()
    );
    for h in r["headers"].as_array().unwrap() {
        text.push_str(&format!("{}: {}\r\n", h[0].as_str().unwrap(), h[1].as_str().unwrap()));
    }
    text.push_str("\r\n");
    let req = s.write("multi.http", text);
    let mut jwks = Vec::new();
    for (i, (agent, set)) in case["keys"].as_object().unwrap().iter().enumerate() {
        let path = s.write(&format!("keys{i}.json"), set.to_string());
        jwks.push(format!("{agent}={path}"));
    }
    (req, jwks, case["now"].as_u64().unwrap())
}

#[test]
fn every_verified_signature_is_shown_and_the_discarded_with_why() {
    let s = Scratch::new();
    for (case, json_check, text_line) in [
        ("agent/multi-remote-browser-both-verify", "also", "  also verified agent=https://browser.test keyid="),
        ("agent/multi-intermediary-key-unknown", "discarded", "  discarded label=browser unknown_key ("),
    ] {
        let (req, jwks, now) = fixture_request(&s, case);
        let now = now.to_string();
        let mut args = vec!["verify", "--request", &req, "--now", &now, "--allow-test-keys"];
        for j in &jwks {
            args.extend(["--jwks", j.as_str()]);
        }
        let text = expect(0, &args);
        assert!(text.stdout.starts_with("verified agent=https://signature-agent.test "), "{case}: {}", text.stdout);
        assert!(text.stdout.lines().any(|l| l.starts_with(text_line)), "{case}: {}", text.stdout);
        args.push("--json");
        let v = json(&expect(0, &args).stdout);
        assert_eq!(
            (v["label"].as_str(), v[json_check][0]["label"].as_str()),
            (Some("agent"), Some("browser")),
            "{case}: {v}"
        );
        match json_check {
            "also" => assert_eq!(
                (v["also"][0]["agent"].as_str(), v["discarded"].as_array().map(Vec::len)),
                (Some("https://browser.test"), Some(0))
            ),
            _ => assert_eq!(
                (v["discarded"][0]["reason"].as_str(), v["also"].as_array().map(Vec::len)),
                (Some("unknown_key"), Some(0))
            ),
        }
    }
}
