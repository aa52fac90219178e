//! Shared by the fuzz targets: the text form of a request that the seed corpus uses, and the
//! trusted keys.
//!
//! A request is written as
//! ```text
//! METHOD TARGET AUTHORITY NOW
//! Name: value
//! Name: value
//! ```
//! (`\n`-separated; a missing part takes a default). `cargo xtask fuzz` writes every fixture
//! case in this form into `fuzz/corpus/<target>/` before a run, so the fuzzer starts from
//! requests that reach every check, including valid signatures.

use botauth_core::{HttpRequest, Keyring, ANY_AGENT};

/// The fixtures' test keys (`fixtures/keys/`), trusted for any agent and for the agent of
/// the fixtures.
pub fn keyring() -> Keyring {
    let mut keys = Keyring::new();
    for x in ["JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs", "ks-WrI1SE-dmr78J2woQjDix8gwuKU1DlgEWzwxdy7Y"] {
        let jwks = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}]}}"#);
        for agent in [ANY_AGENT, "https://signature-agent.test"] {
            let _ = keys.add_jwks(agent, jwks.as_bytes());
        }
    }
    keys
}

/// Parse the text form; `None` when the first line is not UTF-8.
pub fn request(data: &[u8]) -> Option<(HttpRequest, u64)> {
    let mut lines = data.split(|b| *b == b'\n');
    let first = std::str::from_utf8(lines.next()?).ok()?;
    let mut parts = first.split(' ');
    let method = parts.next().filter(|s| !s.is_empty()).unwrap_or("GET");
    let target = parts.next().unwrap_or("/");
    let authority = parts.next().unwrap_or("example.com");
    let now = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1_735_689_700);
    let mut req = HttpRequest::new(method, "https", authority, target);
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let Ok(name) = std::str::from_utf8(&line[..colon]) else { continue };
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        req.push_header(name, value);
    }
    Some((req, now))
}
