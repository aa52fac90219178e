//! The authenticated verdict under Viceroy: with `verdict_auth_kid` set and its secret in the
//! Secret Store `botauth_secrets`, the origin receives a `botauth-verdict-auth` that
//! `botauth_core::verdict_auth::check` accepts for that very request; clients' copies never
//! reach it; a missing or short secret fails signed traffic closed.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use base64::Engine as _;
use botauth_core::verdict_auth::{self, AuthError, Binding, VerdictKey};
use botauth_testkit::origin::{Origin, Seen};
use common::*;

const SECRET: &[u8; 32] = b"viceroy-test-secret-32-bytes-abc";
const FORGED: &str = "t=1735689700, kid=\"k1\", mac=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn setup_with_secret(secret_b64: &str) -> Setup {
    Setup { secrets: Some(vec![("verdict_auth_k1".into(), secret_b64.into())]), ..Setup::standard() }
        .with_setting("verdict_auth_kid", "k1")
}

fn all<'a>(seen: &'a Seen, name: &str) -> Vec<&'a str> {
    seen.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

/// Check what reached the origin with core's checker, for the request as the origin saw it.
fn check_at_origin(seen: &Seen, keys: &[VerdictKey], now: u64) -> Result<verdict_auth::Checked, AuthError> {
    let verdicts = all(seen, "botauth-verdict");
    let auths = all(seen, "botauth-verdict-auth");
    assert_eq!((verdicts.len(), auths.len()), (1, 1), "one verdict and one authentication: {:?}", seen.headers);
    let binding = Binding {
        verdict: verdicts[0],
        method: &seen.method,
        authority: seen.header("host").unwrap_or_default(),
        path: &seen.target,
    };
    verdict_auth::check(auths[0], &binding, keys, now, 30)
}

#[test]
fn origin_receives_a_verdict_auth_that_checks_and_client_copies_are_stripped() {
    let origin = Origin::start().expect("echo origin");
    let svc = Service::start(&setup_with_secret(&b64(SECRET)), origin.port());
    origin.clear(); // Viceroy probes each backend once at startup
    let key = VerdictKey::new("k1", SECRET).unwrap();

    // A verified request with a forged client copy: replaced by the service's own.
    let sig = Sig { target: "/docs/page?x=1", ..Sig::default() };
    let mut sent = signed_headers(&sig);
    sent.push(("Botauth-Verdict-Auth".into(), FORGED.into()));
    let resp = svc.send("GET", "/docs/page?x=1", &sent, None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert!(!all(&seen[0], "botauth-verdict-auth").contains(&FORGED), "{:?}", seen[0].headers);
    let ok = check_at_origin(&seen[0], std::slice::from_ref(&key), NOW).expect("the origin's check accepts it");
    assert_eq!((ok.kid.as_str(), ok.t), ("k1", NOW), "t is the verification clock");
    assert_eq!(all(&seen[0], "botauth-verdict"), [verified_header(AGENT, TEST_KEYID, "sig1")]);
    // The same header is refused for another path, another key, or later than max_age.
    let moved = Seen { target: "/docs/other".into(), ..seen[0].clone() };
    assert_eq!(check_at_origin(&moved, std::slice::from_ref(&key), NOW), Err(AuthError::BadMac));
    let other = VerdictKey::new("k1", b"another-secret-of-32-bytes-xxxxx").unwrap();
    assert_eq!(check_at_origin(&seen[0], &[other], NOW), Err(AuthError::BadMac));
    assert_eq!(check_at_origin(&seen[0], &[key], NOW + 31), Err(AuthError::Stale { age: 31 }));

    // Unsigned traffic carries no verdict, and a client's verdict-auth is stripped from it too.
    origin.clear();
    let resp = svc.send(
        "GET",
        "/",
        &headers(&[("Host", "example.com"), ("botauth-verdict-auth", FORGED), ("botauth-verdict", "verified")]),
        None,
    );
    assert_eq!(resp.status, 200);
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        all(&seen[0], "botauth-verdict-auth").is_empty() && all(&seen[0], "botauth-verdict").is_empty(),
        "{:?}",
        seen[0].headers
    );
}

#[test]
fn monitor_mode_authenticates_rejected_verdicts_too() {
    let origin = Origin::start().expect("echo origin");
    let setup = setup_with_secret(&b64(SECRET)).with_setting("policy", r#"{"mode":"monitor","allow_test_keys":true}"#);
    let svc = Service::start(&setup, origin.port());
    origin.clear();
    // Signed for another authority: rejected, forwarded in monitor mode with its verdict.
    let mut sent = signed_headers(&Sig { authority: "other.example", ..Sig::default() });
    sent[0].1 = "Example.COM".into();
    let resp = svc.send("POST", "/submit", &sent, Some(b"a=1"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert!(all(&seen[0], "botauth-verdict")[0].starts_with("rejected"), "{:?}", seen[0].headers);
    let key = VerdictKey::new("k1", SECRET).unwrap();
    assert!(check_at_origin(&seen[0], std::slice::from_ref(&key), NOW).is_ok());
    // The authority is bound (compared lower-cased): another host is a moved verdict.
    let mut moved = seen[0].clone();
    for (n, v) in &mut moved.headers {
        if n.eq_ignore_ascii_case("host") {
            *v = "example.org".into();
        }
    }
    assert_eq!(check_at_origin(&moved, &[key], NOW), Err(AuthError::BadMac));
}

#[test]
fn missing_or_short_secret_fails_signed_traffic_closed() {
    let origin = Origin::start().expect("echo origin");
    let short = b64(&SECRET[..31]);
    for (what, setup, stderr_has) in [
        ("no secret store", Setup::standard().with_setting("verdict_auth_kid", "k1"), "botauth_secrets"),
        (
            "no item for the kid",
            Setup { secrets: Some(vec![("verdict_auth_k2".into(), b64(SECRET))]), ..Setup::standard() }
                .with_setting("verdict_auth_kid", "k1"),
            "botauth_secrets.verdict_auth_k1` is missing",
        ),
        ("short secret", setup_with_secret(&short), "31 bytes, at least 32"),
        ("not base64", setup_with_secret("not base64!"), "is not base64"),
        ("bad kid", setup_with_secret(&b64(SECRET)).with_setting("verdict_auth_kid", "k 1"), "verdict_auth_kid"),
    ] {
        let svc = Service::start(&setup, origin.port());
        origin.clear();
        let resp = svc.send("GET", "/", &signed_headers(&Sig::default()), None);
        assert_eq!(resp.status, 503, "{what}: {}", resp.text());
        let resp = svc.send("GET", "/", &headers(&[("Host", "example.com")]), None);
        assert_eq!(resp.status, 200, "{what}: unsigned traffic keeps flowing");
        assert_eq!(origin.seen().len(), 1, "{what}: only the unsigned request was forwarded");
        let (_, stderr) = svc.output();
        assert!(stderr.contains("botauth: configuration error") && stderr.contains(stderr_has), "{what}: {stderr}");
        assert!(!stderr.contains(&short), "{what}: the secret is never logged");
    }
}
