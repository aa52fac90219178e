//! Agent URI normalisation (RFC 3986 §6.2.2-6.2.3): never a panic, idempotent, and the parts
//! recombine to the canonical text.
#![no_main]

use botauth_core::agent_uri::AgentUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(uri) = AgentUri::parse(text) {
        let again = AgentUri::parse(uri.as_str());
        assert_eq!(again.as_ref().map(AgentUri::as_str), Ok(uri.as_str()), "normalising twice changes {text:?}");
        assert_eq!(uri.origin(), format!("{}://{}", uri.scheme(), uri.authority()));
        assert!(uri.path().starts_with('/'));
        assert!(!uri.as_str().contains('?') && !uri.as_str().contains('#'));
    }
});
