//! Directory documents (draft-meunier-http-message-signatures-directory §3): a JWK Set of
//! the agent's keys. Tolerant of what real directories serve (extra members, a bare JWK,
//! keys without `kid`, `alg` absent / `EdDSA` / `ed25519`), strict where the spec is (a
//! `kid` MUST be the RFC 7638 thumbprint), and bounded (body size, key count).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde_json::Value;

use crate::keys::{Jwk, KeySkipReason, PublicKey, SkippedKey};

/// Size caps of a directory document (the drafts' SSRF advice: response-size and key-count caps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Largest body accepted, bytes (default 64 KiB).
    pub max_body: usize,
    /// Most keys accepted in one document (default 32).
    pub max_keys: usize,
}

impl Default for DocumentLimits {
    fn default() -> Self {
        Self { max_body: 64 * 1024, max_keys: 32 }
    }
}

/// How a document is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Caps.
    pub limits: DocumentLimits,
    /// Keep keys whose `kid` is not their thumbprint (operator opt-in; reported as a finding).
    pub accept_kid_mismatch: bool,
    /// Keep published test keys (RFC 9421 B.1.4).
    pub allow_test_keys: bool,
}

/// A parsed directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    /// Usable Ed25519 keys. Empty is valid: "no keys now".
    pub keys: Vec<PublicKey>,
    /// Keys not used, with the reason.
    pub skipped: Vec<SkippedKey>,
    /// What a conformance check reports, without affecting the keys.
    pub findings: Vec<Finding>,
}

/// A deviation from the directory draft that the parser tolerated (or an opt-in it applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// The body is one JWK, not a JWK Set (RFC 7517 §5); read as a set of one.
    BareJwk,
    /// Key `index` has no `kid`; its keyid is its RFC 7638 thumbprint.
    NoKid {
        /// Position in `keys`.
        index: usize,
    },
    /// Key `index` has a `kid` that is not its thumbprint, kept because the operator accepts it.
    KidNotThumbprintAccepted {
        /// Position in `keys`.
        index: usize,
    },
    /// The response's media type is not `application/http-message-signatures-directory+json`
    /// (the draft's MUST at the well-known path).
    MediaType,
    /// The response carries no directory signature (RECOMMENDED by the draft).
    Unsigned,
}

impl Finding {
    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::BareJwk => "bare_jwk",
            Self::NoKid { .. } => "no_kid",
            Self::KidNotThumbprintAccepted { .. } => "kid_not_thumbprint_accepted",
            Self::MediaType => "media_type",
            Self::Unsigned => "unsigned",
        }
    }
}

/// Why a whole document was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DocumentError {
    /// The body exceeds [`DocumentLimits::max_body`].
    BodyTooLarge,
    /// The body is not JSON (e.g. an HTML page served with 200).
    NotJson,
    /// JSON, but neither a JWK Set (an object with a `keys` array) nor a JWK.
    NotAJwkSet,
    /// More keys than [`DocumentLimits::max_keys`].
    TooManyKeys,
}

impl DocumentError {
    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::BodyTooLarge => "body_too_large",
            Self::NotJson => "not_json",
            Self::NotAJwkSet => "not_a_jwk_set",
            Self::TooManyKeys => "too_many_keys",
        }
    }
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BodyTooLarge => "the directory body exceeds the size cap",
            Self::NotJson => "the directory body is not JSON",
            Self::NotAJwkSet => "the directory is neither a JWK Set nor a JWK (RFC 7517)",
            Self::TooManyKeys => "the directory has more keys than the key-count cap",
        })
    }
}

/// Parse a directory body.
pub fn parse_document(body: &[u8], options: &ParseOptions) -> Result<Document, DocumentError> {
    if body.len() > options.limits.max_body {
        return Err(DocumentError::BodyTooLarge);
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| DocumentError::NotJson)?;
    let mut doc = Document::default();
    let Value::Object(mut object) = value else {
        return Err(DocumentError::NotAJwkSet);
    };
    let keys = match object.remove("keys") {
        Some(Value::Array(keys)) => keys,
        Some(_) => return Err(DocumentError::NotAJwkSet),
        // shopify.com serves one bare JWK.
        None if object.contains_key("kty") => {
            doc.findings.push(Finding::BareJwk);
            alloc::vec![Value::Object(object)]
        }
        None => return Err(DocumentError::NotAJwkSet),
    };
    if keys.len() > options.limits.max_keys {
        return Err(DocumentError::TooManyKeys);
    }
    for (index, value) in keys.into_iter().enumerate() {
        let kid = value.get("kid").and_then(Value::as_str).map(String::from);
        let key = serde_json::from_value::<Jwk>(value)
            .map_err(|_| KeySkipReason::NotAJwk)
            .and_then(|jwk| PublicKey::from_jwk(&jwk))
            .and_then(|key| check_key(key, index, options, &mut doc.findings));
        match key {
            Ok(key) => doc.keys.push(key),
            Err(reason) => doc.skipped.push(SkippedKey { index, kid, reason }),
        }
    }
    Ok(doc)
}

/// The directory draft's per-key rules.
fn check_key(
    key: PublicKey,
    index: usize,
    options: &ParseOptions,
    findings: &mut Vec<Finding>,
) -> Result<PublicKey, KeySkipReason> {
    match key.kid.as_deref() {
        None => findings.push(Finding::NoKid { index }),
        // draft-meunier-http-message-signatures-directory §5.1: `kid` MUST be the thumbprint.
        Some(kid) if kid != key.thumbprint => {
            if !options.accept_kid_mismatch {
                return Err(KeySkipReason::KidNotThumbprint);
            }
            findings.push(Finding::KidNotThumbprintAccepted { index });
        }
        Some(_) => {}
    }
    if key.is_test_key() && !options.allow_test_keys {
        return Err(KeySkipReason::TestKey);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "7F_3jDlxaquwh291MiACkcS3Opq88NksyHiakzS-Y1g";
    const KID: &str = "otMqcjr17mGyruktGvJU8oojQTSMHlVm7uO-lrcqbdg";

    fn parse(body: &str) -> Result<Document, DocumentError> {
        parse_document(body.as_bytes(), &ParseOptions::default())
    }

    #[test]
    fn chatgpt_directory_with_extra_members() {
        let body = alloc::format!(
            r#"{{"keys":[{{"crv":"Ed25519","kty":"OKP","x":"{X}","kid":"{KID}","use":"sig","nbf":1735689600,"exp":1786913274}}],"signature_agent":"https://chatgpt.com","purpose":"ai"}}"#
        );
        let doc = parse(&body).unwrap();
        assert_eq!(doc.keys.len(), 1);
        assert_eq!(doc.keys[0].thumbprint, KID);
        assert_eq!(doc.keys[0].exp, Some(1786913274));
        assert!(doc.findings.is_empty() && doc.skipped.is_empty());
    }

    #[test]
    fn tolerated_shapes() {
        let bare = parse(&alloc::format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{X}"}}"#)).unwrap();
        assert_eq!(bare.keys.len(), 1);
        assert_eq!(bare.findings, [Finding::BareJwk, Finding::NoKid { index: 0 }]);
        for alg in ["EdDSA", "ed25519", "Ed25519"] {
            let d = parse(&alloc::format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{X}","alg":"{alg}"}}]}}"#));
            assert_eq!(d.unwrap().keys.len(), 1, "{alg}");
        }
        assert_eq!(parse(r#"{"keys":[]}"#).unwrap(), Document::default(), "empty = no keys now");
    }

    #[test]
    fn kid_must_be_the_thumbprint_unless_accepted() {
        let body = alloc::format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{X}","kid":"key-2025"}}]}}"#);
        let doc = parse(&body).unwrap();
        assert!(doc.keys.is_empty());
        assert_eq!(doc.skipped[0].reason, KeySkipReason::KidNotThumbprint);
        assert_eq!(doc.skipped[0].kid.as_deref(), Some("key-2025"));
        let opts = ParseOptions { accept_kid_mismatch: true, ..ParseOptions::default() };
        let doc = parse_document(body.as_bytes(), &opts).unwrap();
        assert_eq!(doc.keys.len(), 1);
        assert_eq!(doc.findings, [Finding::KidNotThumbprintAccepted { index: 0 }]);
    }

    #[test]
    fn test_key_only_when_allowed() {
        let body = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"}]}"#;
        assert_eq!(parse(body).unwrap().skipped[0].reason, KeySkipReason::TestKey);
        let opts = ParseOptions { allow_test_keys: true, ..ParseOptions::default() };
        assert_eq!(parse_document(body.as_bytes(), &opts).unwrap().keys.len(), 1);
    }

    #[test]
    fn refused_documents() {
        assert_eq!(parse("<html>hi</html>"), Err(DocumentError::NotJson));
        assert_eq!(parse("[]"), Err(DocumentError::NotAJwkSet));
        assert_eq!(parse(r#"{"keys":{}}"#), Err(DocumentError::NotAJwkSet));
        assert_eq!(parse(r#"{"purpose":"ai"}"#), Err(DocumentError::NotAJwkSet));
        let limits = DocumentLimits { max_body: 20, max_keys: 1 };
        let opts = ParseOptions { limits, ..ParseOptions::default() };
        assert_eq!(parse_document(&[b' '; 21], &opts), Err(DocumentError::BodyTooLarge));
        assert_eq!(parse_document(br#"{"keys":[1,2]}"#, &opts), Err(DocumentError::TooManyKeys));
        assert!(parse_document(br#"{"keys":[1]}"#, &opts).is_ok());
    }
}
