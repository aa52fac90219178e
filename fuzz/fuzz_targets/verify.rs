//! Full verification of a fuzzed request against the fixtures' keys, under the Web Bot Auth
//! and the plain RFC 9421 policies: never panics, `verify` and `verify_with_trace` agree,
//! and every rejection has a stable code and a 4xx status.
#![no_main]

use std::sync::OnceLock;

use botauth_core::{verify, verify_with_trace, Keyring, Policy, Verdict};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static Keyring {
    static KEYS: OnceLock<Keyring> = OnceLock::new();
    KEYS.get_or_init(botauth_fuzz::keyring)
}

fuzz_target!(|data: &[u8]| {
    let Some((req, now)) = botauth_fuzz::request(data) else { return };
    for policy in [Policy::web_bot_auth(), Policy::rfc9421()] {
        let verdict = verify(&req, keys(), &policy, now);
        let (traced, trace) = verify_with_trace(&req, keys(), &policy, now);
        assert_eq!(verdict, traced);
        if let Verdict::Rejected(r) = &verdict {
            assert!(!r.reason.code().is_empty());
            assert!((400..500).contains(&r.reason.status().code()), "{:?}", r.reason);
            assert!(trace.checks.iter().any(|(_, res)| res.is_err()), "{trace:?}");
        }
        if verdict.is_verified() {
            assert!(trace.signature_base.is_some());
        }
    }
});
