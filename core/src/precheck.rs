//! Checks that need neither parsing nor crypto (ARCHITECTURE §2, step 2): presence, size
//! caps, ASCII, matching labels, base64 alphabet and decoded length, keyid present.
//!
//! Each check only rejects what the full parse would reject too; when the quick scanner
//! meets syntax it does not model, it leaves the verdict to `sfv`.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::policy::Limits;
use crate::reason::{Field, Reason};
use crate::request::Request;

/// The signature fields of a signed request, each with its lines joined by `", "`
/// (RFC 9421 §2.1; RFC 9110 §5.3).
#[derive(Clone, Debug)]
pub struct SignedFields<'a> {
    /// `Signature-Input`.
    pub signature_input: Cow<'a, [u8]>,
    /// `Signature`.
    pub signature: Cow<'a, [u8]>,
    /// `Signature-Agent`, if present.
    pub signature_agent: Option<Cow<'a, [u8]>>,
}

/// `Ok(None)`: unsigned. `Ok(Some(_))`: signed and passed the prechecks.
pub fn precheck<'a, R: Request + ?Sized>(req: &'a R, limits: &Limits) -> Result<Option<SignedFields<'a>>, Reason> {
    let has_input = req.has_field("signature-input");
    let has_sig = req.has_field("signature");
    match (has_input, has_sig) {
        (false, false) => return Ok(None),
        (true, false) => return Err(Reason::MissingSignature),
        (false, true) => return Err(Reason::MissingSignatureInput),
        (true, true) => {}
    }
    let mut lines = Vec::new();
    let signature_input =
        joined(req, &mut lines, "signature-input", limits.max_signature_input_len, Field::SignatureInput)?
            .unwrap_or_default();
    let signature =
        joined(req, &mut lines, "signature", limits.max_signature_len, Field::Signature)?.unwrap_or_default();
    let signature_agent =
        joined(req, &mut lines, "signature-agent", limits.max_signature_agent_len, Field::SignatureAgent)?;
    check_labels(&signature_input, &signature, limits.max_signatures)?;
    // Every signature we can verify needs a keyid (RFC 9421 §2.3); if the text
    // `keyid=` is nowhere in the field, no member can have one.
    if !has_keyid_param(&signature_input) {
        return Err(Reason::KeyidMissing);
    }
    Ok(Some(SignedFields { signature_input, signature, signature_agent }))
}

/// All lines of field `name`, joined (`None` when absent); `lines` is scratch space
/// reused between fields.
fn joined<'a, R: Request + ?Sized>(
    req: &'a R,
    lines: &mut Vec<&'a [u8]>,
    name: &str,
    cap: usize,
    field: Field,
) -> Result<Option<Cow<'a, [u8]>>, Reason> {
    lines.clear();
    req.field_lines(name, lines);
    if lines.is_empty() {
        return Ok(None);
    }
    let total = lines.iter().map(|l| l.len()).sum::<usize>() + 2 * lines.len().saturating_sub(1);
    if total > cap {
        return Err(Reason::FieldTooLarge(field));
    }
    // Structured fields are ASCII; anything else (or a control character) is rejected
    // here with the field named, rather than as a generic parse error.
    // No early exit inside a line, so the check vectorises.
    let bad = |l: &&[u8]| l.iter().fold(false, |bad, &b| bad | !(b == b'\t' || (0x20..0x7f).contains(&b)));
    if lines.iter().any(bad) {
        return Err(Reason::NonAscii(field));
    }
    Ok(Some(match lines.as_slice() {
        [one] => Cow::Borrowed(*one),
        _ => Cow::Owned(lines.join(&b", "[..])),
    }))
}

/// Whether `keyid=` occurs as a parameter (RFC 8941 §3.1.2: `";" *SP key "=" …`).
fn has_keyid_param(field: &[u8]) -> bool {
    params(field).any(|p| p.starts_with(b"keyid="))
}

/// What follows each `;` (and its optional spaces) in a field: the parameters, as text.
/// A `;` inside a string also counts, so callers may only use this to rule things out.
fn params(field: &[u8]) -> impl Iterator<Item = &[u8]> {
    field.iter().enumerate().filter(|(_, b)| **b == b';').filter_map(move |(at, _)| {
        let rest = field.get(at + 1..)?;
        rest.get(rest.iter().take_while(|b| **b == b' ').count()..)
    })
}

/// Top-level dictionary members: (key, raw value) without allocating. Returns `None`
/// for anything the scanner does not model (the full parse then decides).
struct Members<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Members<'a> {
    type Item = Option<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = trim_start(self.rest);
        if s.is_empty() {
            return None;
        }
        let key_len = s.iter().position(|b| !is_key_char(*b)).unwrap_or(s.len());
        let (key, after) = s.split_at(key_len);
        if key.is_empty() {
            self.rest = &[];
            return Some(None);
        }
        // Scan the value up to the next top-level comma.
        let mut depth = 0usize;
        let mut in_string = false;
        let mut in_bytes = false;
        let mut escaped = false;
        let mut end = after.len();
        for (i, &b) in after.iter().enumerate() {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            if in_bytes {
                in_bytes = b != b':';
                continue;
            }
            match b {
                b'"' => in_string = true,
                b':' => in_bytes = true,
                b'(' => depth += 1,
                b')' => match depth.checked_sub(1) {
                    Some(d) => depth = d,
                    None => {
                        self.rest = &[];
                        return Some(None);
                    }
                },
                b',' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        if in_string || in_bytes || depth != 0 {
            self.rest = &[];
            return Some(None);
        }
        let (value, rest) = after.split_at(end);
        self.rest = rest.get(1..).unwrap_or(&[]);
        Some(Some((key, value)))
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    s.get(n..).unwrap_or(&[])
}

/// RFC 8941 §3.1.2 key characters (first character checked by the full parse).
fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
}

/// Labels must match one to one between the two fields (RFC 9421 §4.1, §4.2); an
/// Ed25519 signature decodes to 64 bytes (RFC 8032 §5.1.6).
fn check_labels(input: &[u8], signature: &[u8], max: usize) -> Result<(), Reason> {
    let (Some(inputs), Some(sigs)) = (Scanned::of(input), Scanned::of(signature)) else {
        return Ok(());
    };
    if inputs.count > max || sigs.count > max {
        return Err(Reason::TooManySignatures);
    }
    let (Some(input_labels), Some(sig_labels)) = (inputs.labels(), sigs.labels()) else {
        // More members than the scanner keeps: the full parse decides.
        return Ok(());
    };
    if has_duplicate(input_labels) || has_duplicate(sig_labels) {
        return Err(Reason::DuplicateLabel);
    }
    if input_labels.len() != sig_labels.len() || !input_labels.iter().all(|a| sig_labels.contains(a)) {
        return Err(Reason::LabelMismatch);
    }
    // Every byte sequence must be base64 (RFC 8941 §3.3.5); with one signature that
    // claims no other algorithm, it must also decode to an Ed25519 signature's 64 bytes.
    let ed25519 = sigs.count == 1 && !has_other_alg(input);
    for value in sigs.values() {
        if let Some(b64) = value.strip_prefix(b"=:").and_then(|v| v.strip_suffix(b":")) {
            check_base64(trim_end(b64), ed25519)?;
        }
    }
    Ok(())
}

/// Members a single scan keeps: enough for any sane request (the default cap is 8).
const SCAN_CAP: usize = 16;

/// One pass of [`Members`] over a field, keeping up to [`SCAN_CAP`] members on the stack.
struct Scanned<'a> {
    keys: [&'a [u8]; SCAN_CAP],
    values: [&'a [u8]; SCAN_CAP],
    count: usize,
}

impl<'a> Scanned<'a> {
    /// `None` when the scanner meets syntax it does not model.
    fn of(field: &'a [u8]) -> Option<Self> {
        let mut out = Self { keys: [&[]; SCAN_CAP], values: [&[]; SCAN_CAP], count: 0 };
        for member in (Members { rest: field }) {
            let (key, value) = member?;
            if let (Some(k), Some(v)) = (out.keys.get_mut(out.count), out.values.get_mut(out.count)) {
                *k = key;
                *v = value;
            }
            out.count += 1;
        }
        Some(out)
    }

    /// The kept labels, `None` if some were not kept.
    fn labels(&self) -> Option<&[&'a [u8]]> {
        self.keys.get(..self.count)
    }

    fn values(&self) -> &[&'a [u8]] {
        self.values.get(..self.count.min(SCAN_CAP)).unwrap_or(&[])
    }
}

fn has_duplicate(labels: &[&[u8]]) -> bool {
    labels.iter().enumerate().any(|(i, a)| labels.get(i + 1..).is_some_and(|rest| rest.contains(a)))
}

/// Whether an `alg` parameter names something other than `ed25519` (RFC 9421 §3.3.6);
/// then the signature length is left to the algorithm check after parsing.
fn has_other_alg(field: &[u8]) -> bool {
    params(field).any(|p| p.strip_prefix(b"alg=").is_some_and(|v| !v.starts_with(b"\"ed25519\"")))
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|b| matches!(b, b' ' | b'\t')).count();
    s.get(..s.len().saturating_sub(n)).unwrap_or(&[])
}

/// Base64 alphabet (RFC 4648 §4) and, for Ed25519, the decoded length (RFC 8032 §5.1.6).
/// Padding may be absent: RFC 8941 §3.3.5 says parsers SHOULD NOT fail without it.
fn check_base64(b64: &[u8], ed25519: bool) -> Result<(), Reason> {
    let pad = b64.iter().rev().take_while(|b| **b == b'=').count();
    let body = b64.get(..b64.len().saturating_sub(pad)).unwrap_or(&[]);
    if pad > 2 || !body.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/') {
        return Err(Reason::SignatureBadBase64);
    }
    if (pad > 0 && !b64.len().is_multiple_of(4)) || body.len() % 4 == 1 {
        return Err(Reason::SignatureBadBase64);
    }
    if ed25519 && body.len() * 3 / 4 != crate::crypto::SIGNATURE_LEN {
        return Err(Reason::SignatureWrongLength);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::HttpRequest;

    fn req(input: &str, sig: &str) -> HttpRequest {
        HttpRequest::new("GET", "https", "example.com", "/")
            .with_header("Signature-Input", input)
            .with_header("Signature", sig)
    }

    const SIG: &str = "sig1=:QKN4fTdIYfh82fvoZCQiQA1weuozfCS/Led2zTMbewMMqH8PI2Wsy/5c4ao6B6D09nraNQdBNOADg8aM1MqfCg==:";

    #[test]
    fn table() {
        let l = Limits::default();
        let ok = r#"sig1=("@authority");keyid="k""#;
        assert!(precheck(&req(ok, SIG), &l).unwrap().is_some());
        assert!(precheck(&req(r#"sig1=("@authority"); keyid="k""#, SIG), &l).unwrap().is_some());
        let unsigned = HttpRequest::new("GET", "https", "example.com", "/");
        assert!(precheck(&unsigned, &l).unwrap().is_none());
        let two = r#"sig1=("@authority");keyid="k", sig2=("@authority");keyid="k""#;
        let unpadded = "sig1=:QKN4fTdIYfh82fvoZCQiQA1weuozfCS/Led2zTMbewMMqH8PI2Wsy/5c4ao6B6D09nraNQdBNOADg8aM1MqfCg:";
        let short = alloc::format!("{}:", &unpadded[..unpadded.len() - 3]); // 84 characters: 63 bytes
        let cases: &[(&str, &str, Reason)] = &[
            (r#"sig2=("@authority");keyid="k""#, SIG, Reason::LabelMismatch),
            (r#"sig1=("@authority");keyid="k", sig1=()"#, SIG, Reason::DuplicateLabel),
            (r#"sig1=("@authority")"#, SIG, Reason::KeyidMissing),
            (r#"sig1=("@authority");nonce="keyid=x""#, SIG, Reason::KeyidMissing),
            (
                ok,
                "sig1=:QKN4fTdIYfh8!fvoZCQiQA1weuozfCS/Led2zTMbewMMqH8PI2Wsy/5c4ao6B6D09nraNQdBNOADg8aM1MqfCg==:",
                Reason::SignatureBadBase64,
            ),
            (ok, "sig1=:QKN4fTdI:", Reason::SignatureWrongLength),
            (ok, "sig1=:QKN4fTd:", Reason::SignatureWrongLength),
            (ok, "sig1=:QKN4f:", Reason::SignatureBadBase64),
            (ok, "sig1=:QKN4fT=:", Reason::SignatureBadBase64),
            (ok, &short, Reason::SignatureWrongLength),
            (ok, "sig1=:QKN4fTdI!:, sig2=:AAAA:", Reason::LabelMismatch),
            (two, "sig1=:QKN4fTdI!:, sig2=:AAAA:", Reason::SignatureBadBase64),
            (r#"sig1=("@authority");keyid="k";alg="ed25519""#, "sig1=:AAAA:", Reason::SignatureWrongLength),
        ];
        // Unpadded base64 is accepted (RFC 8941 §3.3.5); another alg defers the length check.
        assert!(precheck(&req(ok, unpadded), &l).unwrap().is_some());
        assert!(precheck(&req(r#"sig1=("@authority");keyid="k";alg="rsa-pss-sha512""#, "sig1=:AAAA:"), &l).is_ok());
        assert!(precheck(&req(two, "sig1=:AAAA:, sig2=:AAAA:"), &l).is_ok(), "length is checked after selection");
        for (input, sig, want) in cases {
            assert_eq!(precheck(&req(input, sig), &l).err(), Some(*want), "{input} / {sig}");
        }
        let only_input = HttpRequest::new("GET", "https", "e", "/").with_header("signature-input", ok);
        assert_eq!(precheck(&only_input, &l).err(), Some(Reason::MissingSignature));
        let big = Limits { max_signature_input_len: 10, ..l };
        assert_eq!(precheck(&req(ok, SIG), &big).err(), Some(Reason::FieldTooLarge(Field::SignatureInput)));
        let non_ascii = req("sig1=(\"@authority\");keyid=\"k\u{e9}\"", SIG);
        assert_eq!(precheck(&non_ascii, &l).err(), Some(Reason::NonAscii(Field::SignatureInput)));
    }
}
