//! `Signature-Input` and `Signature` parsing (RFC 9421 §4.1, §4.2): any bytes, no panic, and
//! whatever parses can be interpreted (components, parameters) without panicking.
#![no_main]

use botauth_core::signature_input::{ed25519_signature, parse_members, parse_signatures};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(members) = parse_members(data) {
        for m in &members {
            let _ = m.tag();
            if let Ok(input) = m.interpret(32) {
                for c in &input.components {
                    let _ = c.identifier();
                }
            }
        }
    }
    if let Ok(signatures) = parse_signatures(data) {
        for (_, bytes) in &signatures {
            let _ = ed25519_signature(bytes);
        }
    }
});
