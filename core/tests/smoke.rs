//! End-to-end checks against the published vectors in `fixtures/vectors/` (copied from
//! the Web Bot Auth drafts and RFC 9421; see `fixtures/vectors/README.md`).

use botauth_core::{verify, verify_with_trace, HttpRequest, Keyring, Policy, Reason, Verdict, ANY_AGENT};

const RFC_KEY: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"test-key-ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"}]}"#;

fn vectors() -> Vec<serde_json::Value> {
    serde_json::from_str(include_str!("../../fixtures/vectors/spec-ed25519-vectors.json")).unwrap()
}

fn request(v: &serde_json::Value) -> HttpRequest {
    let h = v["headers"].as_object().unwrap();
    let method = h.get("method").and_then(|m| m.as_str()).unwrap_or("GET");
    let target = h.get("target").and_then(|m| m.as_str()).unwrap_or("/path/to/resource");
    let mut req = HttpRequest::new(method, "https", v["authority"].as_str().unwrap(), target);
    for (name, value) in h {
        if name != "method" && name != "target" {
            req.push_header(name, value.as_str().unwrap());
        }
    }
    req
}

#[test]
fn published_vectors() {
    let mut keys = Keyring::new();
    keys.add_jwks("https://signature-agent.test", RFC_KEY.as_bytes()).unwrap();
    let mut any = Keyring::new();
    any.add_jwks(ANY_AGENT, RFC_KEY.as_bytes()).unwrap();
    let long = Policy { max_validity: u64::MAX, ..Policy::web_bot_auth() };
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        if name == "directory-response-binding" {
            continue;
        }
        let req = request(&v);
        let (policy, now) = match name {
            "rfc9421-B.2.6" => (Policy::rfc9421(), 1618884475),
            "wba-legacy-string" => (Policy::web_bot_auth(), 1735690000),
            _ => (long.clone(), 1735690000),
        };
        let ring = if name == "wba-no-agent" || name == "rfc9421-B.2.6" { &any } else { &keys };
        let (verdict, trace) = verify_with_trace(&req, ring, &policy, now);
        assert_eq!(trace.signature_base.as_deref(), v["signature_base"].as_str(), "{name}");
        assert!(verdict.is_verified(), "{name}: {verdict:?} {trace:?}");
        if name == "wba-dict-agent2" {
            // Web Bot Auth caps the window at 24 h; the draft's vector spans a century.
            assert_eq!(verify(&req, &keys, &Policy::web_bot_auth(), now).reason(), Some(Reason::ValidityTooLong));
        }
    }
}

#[test]
fn unsigned_passes() {
    let req = HttpRequest::new("GET", "https", "example.com", "/").with_header("accept", "*/*");
    assert_eq!(verify(&req, &Keyring::new(), &Policy::default(), 0), Verdict::Unsigned);
}

#[test]
fn published_directory_response() {
    let v = vectors().into_iter().find(|v| v["name"] == "directory-response-binding").unwrap();
    let h = &v["headers"];
    let request = HttpRequest::new("GET", "https", "signature-agent.test", botauth_core::directory::WELL_KNOWN_PATH);
    let response = HttpRequest::new("", "https", "signature-agent.test", "/")
        .with_header("Content-Digest", h["Content-Digest"].as_str().unwrap())
        .with_header("Signature-Input", h["Signature-Input"].as_str().unwrap())
        .with_header("Signature", h["Signature"].as_str().unwrap());
    let body = h["body"].as_str().unwrap().as_bytes();
    let dir = botauth_core::directory::verify_directory_response(&request, &response, 200, body, 1735690000).unwrap();
    assert_eq!(dir.keys.len(), 1);
    assert_eq!(dir.signature.keyid, "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U");
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert!(
        botauth_core::directory::verify_directory_response(&request, &response, 200, &tampered, 1735690000).is_err()
    );
    let other_host = HttpRequest::new("GET", "https", "evil.test", botauth_core::directory::WELL_KNOWN_PATH);
    assert_eq!(
        botauth_core::directory::verify_directory_response(&other_host, &response, 200, body, 1735690000).err(),
        Some(botauth_core::directory::DirectoryError::Rejected(Reason::SignatureInvalid))
    );
}
