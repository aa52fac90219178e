//! Signed key-directory responses (draft-meunier-http-message-signatures-directory §4):
//! `GET /.well-known/http-message-signatures-directory` answered with a JWKS, signed with
//! `tag="http-message-signatures-directory"` over at least `"@authority";req`, and with a
//! `Content-Digest` of the body.

use alloc::string::String;
use alloc::vec::Vec;

use crate::components::Message;
use crate::keys::{parse_jwks, Keyring, PublicKey, SkippedKey};
use crate::policy::{Policy, DIRECTORY_TAG};
use crate::reason::Reason;
use crate::request::Request;
use crate::signature_input::parse_members;
use crate::verdict::{Verdict, Verified};
use crate::verify::verify_message;

/// A verified directory: its keys, what was skipped, and which key signed it.
#[derive(Clone, Debug)]
pub struct VerifiedDirectory {
    /// Usable Ed25519 keys of the directory.
    pub keys: Vec<PublicKey>,
    /// Keys that were skipped, with reasons.
    pub skipped: Vec<SkippedKey>,
    /// The signature that vouched for the directory.
    pub signature: Verified,
}

/// Why a directory response was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The body is not a JWK Set.
    NotAJwks,
    /// The response carries no signature.
    Unsigned,
    /// `content-digest` is not covered by the signature.
    ContentDigestNotCovered,
    /// The signature was rejected for this reason.
    Rejected(Reason),
}

/// Verify a directory `response` (its fields and body) to `request` at `now`.
///
/// The signing key must be one of the keys in the directory itself; `content-digest`
/// must be covered and must match the body, so the signature binds the key set.
pub fn verify_directory_response(
    request: &dyn Request,
    response: &dyn Request,
    status: u16,
    body: &[u8],
    now: u64,
) -> Result<VerifiedDirectory, DirectoryError> {
    let (keys, skipped) = parse_jwks(body).map_err(|_| DirectoryError::NotAJwks)?;
    let (ring, policy, labels) = setup(response, &keys);
    let with_body = WithBody { inner: response, body };
    let msg = Message { message: &with_body, status: Some(status), related: Some(request) };
    // A directory may carry one signature per key: every signature with the directory tag
    // must verify (none may be ignored), and at least one must be present.
    let runs: Vec<Policy> = if labels.is_empty() {
        alloc::vec![policy]
    } else {
        labels.into_iter().map(|label| Policy { tag: None, label: Some(label), ..policy.clone() }).collect()
    };
    let mut first = None;
    for run in &runs {
        match verify_message(&msg, &ring, run, now, &mut None) {
            Verdict::Verified(mut signature) => {
                signature.agent = None;
                first.get_or_insert(signature);
            }
            Verdict::Unsigned => return Err(DirectoryError::Unsigned),
            Verdict::Rejected(r) if r.reason == Reason::RequiredComponentNotCovered => {
                return Err(DirectoryError::ContentDigestNotCovered)
            }
            Verdict::Rejected(r) => return Err(DirectoryError::Rejected(r.reason)),
        }
    }
    let signature = first.ok_or(DirectoryError::Unsigned)?;
    Ok(VerifiedDirectory { keys, skipped, signature })
}

/// The keyring of the directory's own keys, the directory signature policy, and the labels
/// of the directory-tagged signatures.
fn setup(response: &dyn Request, keys: &[PublicKey]) -> (Keyring, Policy, Vec<String>) {
    let mut ring = Keyring::new();
    for key in keys {
        ring.add_key("", key.clone());
    }
    // The directory draft bounds a response signature by `created`/`expires` but sets no
    // maximum window (its own test vector spans a century), so only the window is checked.
    // Test keys are the document parser's concern, not the signature check's.
    let policy = Policy {
        tag: Some(DIRECTORY_TAG.into()),
        max_validity: u64::MAX,
        require_agent_coverage: false,
        required_components: alloc::vec!["content-digest".into()],
        allow_test_keys: true,
        ..Policy::web_bot_auth()
    };
    (ring, policy, directory_labels(response))
}

/// Which of `keys` signed a directory response, signature by signature.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureReport {
    /// Whether any signature carries the directory tag.
    pub present: bool,
    /// Thumbprints of the keys with a valid directory signature.
    pub signed_by: Vec<String>,
    /// Labels whose signature failed, with the reason.
    pub failures: Vec<(String, Reason)>,
}

/// Check each directory-tagged signature of `response` against `keys` (the directory's
/// own), so that keys without a valid signature can be dropped one by one.
pub fn check_signatures(
    request: &dyn Request,
    response: &dyn Request,
    status: u16,
    body: &[u8],
    keys: &[PublicKey],
    now: u64,
) -> SignatureReport {
    let (ring, policy, labels) = setup(response, keys);
    let with_body = WithBody { inner: response, body };
    let msg = Message { message: &with_body, status: Some(status), related: Some(request) };
    let mut report = SignatureReport { present: !labels.is_empty(), ..SignatureReport::default() };
    for label in labels {
        let run = Policy { tag: None, label: Some(label.clone()), ..policy.clone() };
        match verify_message(&msg, &ring, &run, now, &mut None) {
            Verdict::Verified(v) => report.signed_by.push(v.keyid),
            Verdict::Rejected(r) => report.failures.push((label, r.reason)),
            Verdict::Unsigned => report.failures.push((label, Reason::MissingSignature)),
        }
    }
    report
}

/// Labels of the `Signature-Input` members tagged as directory signatures.
fn directory_labels(response: &dyn Request) -> Vec<alloc::string::String> {
    let mut lines = Vec::new();
    response.field_lines("signature-input", &mut lines);
    let joined = lines.join(&b", "[..]);
    parse_members(&joined)
        .map(|members| members.into_iter().filter(|m| m.tag() == Ok(Some(DIRECTORY_TAG))).map(|m| m.label).collect())
        .unwrap_or_default()
}

/// A response's fields together with its body, so `content-digest` is always checked.
struct WithBody<'a> {
    inner: &'a dyn Request,
    body: &'a [u8],
}

impl Request for WithBody<'_> {
    fn method(&self) -> &str {
        self.inner.method()
    }
    fn scheme(&self) -> &str {
        self.inner.scheme()
    }
    fn authority(&self) -> &str {
        self.inner.authority()
    }
    fn target(&self) -> &str {
        self.inner.target()
    }
    fn field_lines<'a>(&'a self, name: &str, out: &mut Vec<&'a [u8]>) {
        self.inner.field_lines(name, out);
    }
    fn body(&self) -> Option<&[u8]> {
        Some(self.body)
    }
}
