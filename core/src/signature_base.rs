//! The signature base (RFC 9421 §2.5): one line per covered component, then
//! `"@signature-params"`.

use alloc::string::String;

use crate::components::{component_values, Message};
use crate::reason::Reason;
use crate::signature_input::SignatureInput;

/// Build the signature base of `input` over `msg`.
///
/// §2.5: for each covered component, in order: the component identifier, `": "`, the
/// value, `"\n"`; then `"@signature-params": ` and the inner list, with no trailing newline.
pub fn signature_base(msg: &Message<'_>, input: &SignatureInput, max_field_len: usize) -> Result<String, Reason> {
    let mut base = String::with_capacity(256);
    for id in &input.components {
        let mut emit = |value: &str| {
            base.push_str(id.identifier());
            base.push_str(": ");
            base.push_str(value);
            base.push('\n');
        };
        component_values(msg, id, max_field_len, &mut emit)?;
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&input.signature_params);
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::HttpRequest;
    use crate::signature_input::parse_members;

    /// RFC 9421 Appendix B.2.6 (Ed25519 over date, method, path, authority, content
    /// type and length).
    #[test]
    fn rfc9421_b_2_6() {
        let req = HttpRequest::new("POST", "https", "example.com", "/foo?param=Value&Pet=dog")
            .with_header("Host", "example.com")
            .with_header("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
            .with_header("Content-Type", "application/json")
            .with_header("Content-Length", "18");
        let members = parse_members(
            br#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#,
        )
        .unwrap();
        let input = members[0].interpret(32).unwrap();
        let base = signature_base(&Message::request(&req), &input, 8192).unwrap();
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n\"content-type\": application/json\n\"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
        );
    }
}
