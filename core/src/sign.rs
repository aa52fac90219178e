//! Signing (feature `sign`): build `Signature-Input` and `Signature` members for a message
//! (RFC 9421 §3.1) with an Ed25519 private key (RFC 8032 §5.1.6). For tools, tests and
//! agents; verifiers do not need it.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use base64::Engine as _;

use crate::components::Message;
use crate::reason::Reason;
use crate::signature_base::signature_base;
use crate::signature_input::parse_members;

/// What to sign: the label, covered component identifiers and signature parameters.
#[derive(Clone, Debug, Default)]
pub struct SignParams {
    /// The signature label, e.g. `sig1`.
    pub label: String,
    /// Covered component identifiers as sf-items, e.g. `"@authority"` or
    /// `"signature-agent";key="sig1"` (with their quotes).
    pub components: Vec<String>,
    /// `created`.
    pub created: Option<u64>,
    /// `keyid`.
    pub keyid: Option<String>,
    /// `alg` (Web Bot Auth senders use `ed25519`).
    pub alg: Option<String>,
    /// `expires`.
    pub expires: Option<u64>,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `tag`, e.g. `web-bot-auth`.
    pub tag: Option<String>,
}

/// The two field members produced by [`sign`], and the base that was signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// `label=(…);params`: one `Signature-Input` member.
    pub signature_input: String,
    /// `label=:base64:`: one `Signature` member.
    pub signature: String,
    /// The signature base (RFC 9421 §2.5).
    pub signature_base: String,
}

/// The `Signature-Input` member for `params` (parameters in the order of the Web Bot Auth
/// drafts' examples: created, keyid, alg, expires, nonce, tag).
pub fn signature_input_member(params: &SignParams) -> String {
    let mut s = String::new();
    s.push_str(&params.label);
    s.push_str("=(");
    s.push_str(&params.components.join(" "));
    s.push(')');
    if let Some(c) = params.created {
        let _ = write!(s, ";created={c}");
    }
    push_string_param(&mut s, "keyid", params.keyid.as_deref());
    push_string_param(&mut s, "alg", params.alg.as_deref());
    if let Some(e) = params.expires {
        let _ = write!(s, ";expires={e}");
    }
    push_string_param(&mut s, "nonce", params.nonce.as_deref());
    push_string_param(&mut s, "tag", params.tag.as_deref());
    s
}

fn push_string_param(s: &mut String, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        s.push(';');
        s.push_str(name);
        s.push_str("=\"");
        for c in v.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
    }
}

/// Why [`sign`] could not sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignError {
    /// The seed is not a usable Ed25519 private key (e.g. all zeros).
    InvalidSeed,
    /// The parameters or the message do not make a valid signature input or base.
    Message(Reason),
}

impl From<Reason> for SignError {
    fn from(reason: Reason) -> Self {
        Self::Message(reason)
    }
}

impl core::fmt::Display for SignError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::InvalidSeed => f.write_str("the private key is not a usable Ed25519 seed"),
            Self::Message(r) => write!(f, "{} ({})", r.title(), r.code()),
        }
    }
}

fn key_pair(seed: &[u8; 32]) -> Result<ed25519_compact::KeyPair, SignError> {
    ed25519_compact::KeyPair::try_from_seed(ed25519_compact::Seed::new(*seed)).map_err(|_| SignError::InvalidSeed)
}

/// Sign `msg` with the 32-byte Ed25519 seed (the JWK `d`).
///
/// The member is parsed back with the verifier's own parser, so what is signed is exactly
/// what a verifier will rebuild.
pub fn sign(msg: &Message<'_>, seed: &[u8; 32], params: &SignParams) -> Result<Signed, SignError> {
    let key = key_pair(seed)?;
    let signature_input = signature_input_member(params);
    let members = parse_members(signature_input.as_bytes())?;
    let member = members.first().ok_or(Reason::LabelMismatch)?;
    let input = member.interpret(usize::MAX)?;
    let base = signature_base(msg, &input, usize::MAX)?;
    let sig = key.sk.sign(base.as_bytes(), None);
    let mut signature = params.label.clone();
    signature.push_str("=:");
    signature.push_str(&base64::engine::general_purpose::STANDARD.encode(sig.as_ref()));
    signature.push(':');
    Ok(Signed { signature_input, signature, signature_base: base })
}

/// The public key of a 32-byte seed.
pub fn public_key(seed: &[u8; 32]) -> Result<[u8; 32], SignError> {
    Ok(*key_pair(seed)?.pk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::HttpRequest;

    /// RFC 9421 B.2.6 re-signed with the published test key reproduces the signature.
    #[test]
    fn reproduces_rfc9421_b_2_6() {
        let d = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
            .unwrap();
        let seed: [u8; 32] = d.try_into().unwrap();
        let req = HttpRequest::new("POST", "https", "example.com", "/foo?param=Value&Pet=dog")
            .with_header("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
            .with_header("Content-Type", "application/json")
            .with_header("Content-Length", "18");
        let params = SignParams {
            label: "sig-b26".into(),
            components: [
                "\"date\"",
                "\"@method\"",
                "\"@path\"",
                "\"@authority\"",
                "\"content-type\"",
                "\"content-length\"",
            ]
            .map(String::from)
            .to_vec(),
            created: Some(1618884473),
            keyid: Some("test-key-ed25519".into()),
            ..SignParams::default()
        };
        let signed = sign(&Message::request(&req), &seed, &params).unwrap();
        assert_eq!(sign(&Message::request(&req), &[0; 32], &params), Err(SignError::InvalidSeed));
        assert_eq!(public_key(&[0; 32]), Err(SignError::InvalidSeed));
        assert_eq!(
            signed.signature,
            "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
        );
    }
}
