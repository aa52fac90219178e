//! Round trip (feature `sign`): whatever `sign` signs under a Web Bot Auth profile, `verify`
//! accepts with the signer's key, and rejects once a covered part of the request changes.
#![no_main]

use arbitrary::Arbitrary;
use botauth_core::components::Message;
use botauth_core::keys::PublicKey;
use botauth_core::sign::{public_key, sign, SignParams};
use botauth_core::{verify, HttpRequest, Keyring, Limits, Policy, Verdict};
use libfuzzer_sys::fuzz_target;

const AGENT: &str = "https://signature-agent.test";
const OPTIONAL: [&str; 7] = [
    "\"@method\"",
    "\"@path\"",
    "\"@query\"",
    "\"@target-uri\"",
    "\"@scheme\"",
    "\"@request-target\"",
    "\"content-type\"",
];

#[derive(Arbitrary, Debug)]
struct Input {
    seed: [u8; 32],
    method: String,
    target: String,
    authority: String,
    content_type: Option<String>,
    other: Vec<(u8, String)>,
    /// Bit i set: cover OPTIONAL[i].
    optional: u8,
    /// 0: no Signature-Agent, 1: legacy form, 2: dictionary form.
    agent_form: u8,
    created: u32,
    validity: u16,
    nonce: Option<u64>,
}

fuzz_target!(|input: Input| {
    // Mostly well-formed request lines, so that most inputs reach signing and verification
    // (malformed ones are still possible: `sign` then refuses them).
    let keep = |s: &str, ok: fn(char) -> bool| s.chars().filter(|c| ok(*c)).collect::<String>();
    let method = keep(&input.method, |c| c.is_ascii_alphabetic());
    let method = if method.is_empty() { String::from("GET") } else { method };
    let authority = keep(&input.authority, |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '['));
    let authority = if authority.is_empty() { String::from("example.com") } else { authority };
    let target = format!("/{}", keep(&input.target, |c| c.is_ascii_graphic() && c != '#'));
    let mut req = HttpRequest::new(&method, "https", &authority, &target);
    if let Some(ct) = &input.content_type {
        req.push_header("Content-Type", ct.as_bytes());
    }
    for (n, v) in &input.other {
        req.push_header(["accept", "x-a", "x-b"][usize::from(*n) % 3], v.as_bytes());
    }
    let mut components = vec![String::from("\"@authority\"")];
    for (i, c) in OPTIONAL.iter().enumerate() {
        if input.optional & (1 << i) != 0 {
            components.push(String::from(*c));
        }
    }
    match input.agent_form % 3 {
        1 => {
            req.push_header("Signature-Agent", format!("\"{AGENT}\""));
            components.push("\"signature-agent\"".into());
        }
        2 => {
            req.push_header("Signature-Agent", format!("sig1=\"{AGENT}\""));
            components.push("\"signature-agent\";key=\"sig1\"".into());
        }
        _ => {}
    }
    // An unusable seed (all zeros) must be refused by both calls, never panic.
    let Ok(public) = public_key(&input.seed) else {
        assert!(sign(&Message::request(&req), &input.seed, &SignParams::default()).is_err());
        return;
    };
    let key = PublicKey::from_bytes(public);
    let keyid = key.thumbprint.clone();
    let created = u64::from(input.created);
    let params = SignParams {
        label: "sig1".into(),
        components,
        created: Some(created),
        keyid: Some(keyid.clone()),
        alg: Some("ed25519".into()),
        expires: Some(created + 1 + u64::from(input.validity)),
        nonce: input.nonce.map(|n| format!("n{n}")),
        tag: Some("web-bot-auth".into()),
    };
    let Ok(signed) = sign(&Message::request(&req), &input.seed, &params) else { return };
    req.push_header("Signature-Input", signed.signature_input.as_bytes());
    req.push_header("Signature", signed.signature.as_bytes());
    let mut keys = Keyring::new();
    keys.add_key(AGENT, key);
    // Limits are the sender's business here; the round trip is about agreement.
    let big = usize::MAX / 4;
    let limits = Limits {
        max_signature_input_len: big,
        max_signature_len: big,
        max_signature_agent_len: big,
        max_covered_field_len: big,
        max_signatures: 8,
        max_components: 64,
    };
    let policy = Policy { limits, ..Policy::web_bot_auth() };
    let verdict = verify(&req, &keys, &policy, created);
    match &verdict {
        Verdict::Verified(v) => {
            assert_eq!(v.keyid, keyid);
            assert_eq!(v.label, "sig1");
        }
        other => panic!("signed but not verified: {other:?}\nrequest: {req:?}\nbase: {:?}", signed.signature_base),
    }
    // Change the authority (always covered): must no longer verify.
    let mut tampered = req.clone();
    tampered.authority.push('x');
    assert!(!verify(&tampered, &keys, &policy, created).is_verified(), "tampered authority verified: {req:?}");
});
