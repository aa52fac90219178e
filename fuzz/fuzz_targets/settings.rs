//! The Fastly service's settings items and every other configuration text core validates
//! (`policy`, `claims`, `directories`, a JWK Set item, the verdict-auth key): any bytes.
//! Never a panic; an accepted policy is one core can verify with; a key error never depends
//! on the secret's bytes (so it cannot echo them).
#![no_main]

use botauth_core::claims::Claims;
use botauth_core::config::PolicyConfig;
use botauth_core::directory::Directories;
use botauth_core::keys::parse_jwks;
use botauth_core::verdict_auth::VerdictKey;
use botauth_core::{HttpRequest, Keyring};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (item, text) = input;
    match item % 5 {
        0 => {
            if let Ok(policy) = PolicyConfig::from_json(text).and_then(|c| c.to_policy()) {
                // Whatever was accepted, verification runs under it.
                let req = HttpRequest::new("GET", "https", "example.com", "/")
                    .with_header(
                        "Signature-Input",
                        &br#"sig1=("@authority");created=1;keyid="k";tag="web-bot-auth""#[..],
                    )
                    .with_header("Signature", &b"sig1=:AAAA:"[..]);
                let _ = botauth_core::verify(&req, &Keyring::new(), &policy, 100);
            }
        }
        1 => {
            if let Ok(claims) = Claims::from_json(text) {
                let _ = claims.claimed_by(&[&b"ChatGPT-User/1.0"[..]], &[&br#""https://chatgpt.com""#[..]]);
            }
        }
        2 => {
            if let Ok(dirs) = Directories::from_json(text) {
                let _ = dirs.require_upstreams();
                for agent in &dirs.agents {
                    assert!(agent.agent.as_str().starts_with("https://"), "an allow-listed agent is https");
                }
            }
        }
        3 => {
            let _ = parse_jwks(text);
        }
        _ => {
            // A kid line, then the secret.
            let split = text.iter().position(|b| *b == b'\n').unwrap_or(text.len());
            let (kid, secret) = (&text[..split], text.get(split + 1..).unwrap_or_default());
            let Ok(kid) = std::str::from_utf8(kid) else { return };
            if let Err(e) = VerdictKey::new(kid, secret) {
                // The message depends on the secret's length at most, never on its bytes.
                let blank = VerdictKey::new(kid, &vec![0; secret.len()]).err().map(|b| b.to_string());
                assert_eq!(Some(e.to_string()), blank, "an error depends on the secret's content");
            }
        }
    }
});
