//! The signature base builder (RFC 9421 §2.5) over a fuzzed request: for every member of
//! its `Signature-Input` that interprets, building the base never panics, and a base that
//! builds ends with the `@signature-params` line.
#![no_main]

use botauth_core::components::Message;
use botauth_core::signature_base::signature_base;
use botauth_core::signature_input::parse_members;
use botauth_core::Request as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((req, _)) = botauth_fuzz::request(data) else { return };
    let mut lines = Vec::new();
    req.field_lines("signature-input", &mut lines);
    let joined = lines.join(&b", "[..]);
    let Ok(members) = parse_members(&joined) else { return };
    for m in &members {
        let Ok(input) = m.interpret(64) else { continue };
        if let Ok(base) = signature_base(&Message::request(&req), &input, 8192) {
            let last = base.rsplit('\n').next().unwrap_or("");
            assert!(last.starts_with("\"@signature-params\": ("), "{base:?}");
            assert!(base.is_ascii(), "{base:?}");
        }
    }
});
