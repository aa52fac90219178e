//! Directory documents (`directory::parse_document`): any body, any caps, never a panic,
//! and the caps and the `kid` rule always hold.
#![no_main]

use botauth_core::directory::{parse_document, DocumentError, DocumentLimits, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u8, bool, bool, &[u8])| {
    let (body_kib, max_keys, accept_kid_mismatch, allow_test_keys, body) = input;
    let limits = DocumentLimits { max_body: usize::from(body_kib) * 64 + 1, max_keys: usize::from(max_keys % 40) + 1 };
    let options = ParseOptions { limits, accept_kid_mismatch, allow_test_keys };
    match parse_document(body, &options) {
        Ok(doc) => {
            assert!(body.len() <= limits.max_body);
            assert!(doc.keys.len() + doc.skipped.len() <= limits.max_keys);
            for key in &doc.keys {
                assert!(accept_kid_mismatch || key.kid.as_deref().is_none_or(|k| k == key.thumbprint));
                assert!(allow_test_keys || !key.is_test_key());
            }
        }
        Err(DocumentError::BodyTooLarge) => assert!(body.len() > limits.max_body),
        Err(_) => {}
    }
});
