//! `Content-Digest` (RFC 9530 §2) checked against a buffered body.

use sfv::{BareItem, ListEntry, Version};
use sha2::{Digest as _, Sha256, Sha512};

use crate::reason::Reason;
use crate::structured;

/// Check every supported digest (`sha-256`, `sha-512`, RFC 9530 §5) in `field` against
/// `body`. At least one supported algorithm must be present and all present must match.
pub fn check(field: &[u8], body: &[u8]) -> Result<(), Reason> {
    let dict =
        structured::parse_dictionary_strict(field, Version::Rfc8941).map_err(|_| Reason::CoveredFieldNotStructured)?;
    let mut checked = false;
    for (alg, entry) in &dict {
        let ListEntry::Item(sfv::Item { bare_item: BareItem::ByteSequence(expected), .. }) = entry else {
            return Err(Reason::CoveredFieldNotStructured);
        };
        let ok = match alg.as_str() {
            "sha-256" => Sha256::digest(body).as_slice() == expected.as_slice(),
            "sha-512" => Sha512::digest(body).as_slice() == expected.as_slice(),
            // RFC 9530 §5: other (or deprecated) algorithms are ignored.
            _ => continue,
        };
        if !ok {
            return Err(Reason::ContentDigestMismatch);
        }
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(Reason::ContentDigestUnsupported)
    }
}

/// A `Content-Digest` value with SHA-256 of `body`.
pub fn sha256_field(body: &[u8]) -> alloc::string::String {
    use base64::Engine as _;
    let mut s = alloc::string::String::from("sha-256=:");
    s.push_str(&base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body)));
    s.push(':');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9530_example() {
        // RFC 9530 §2 example: {"hello": "world"}
        let body = b"{\"hello\": \"world\"}";
        assert_eq!(check(b"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", body), Ok(()));
        assert_eq!(sha256_field(body), "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
        assert_eq!(
            check(b"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", b"x"),
            Err(Reason::ContentDigestMismatch)
        );
        assert_eq!(check(b"md5=:AAAA:", body), Err(Reason::ContentDigestUnsupported));
        assert_eq!(check(b"sha-256=1", body), Err(Reason::CoveredFieldNotStructured));
    }
}
