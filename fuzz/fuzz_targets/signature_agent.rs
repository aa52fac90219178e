//! `Signature-Agent` parsing, both forms (draft-meunier-webbotauth-httpsig-protocol §4).
#![no_main]

use botauth_core::signature_agent::{parse, SignatureAgent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(agent) = parse(data) {
        let _ = agent.agent_for(None);
        let _ = agent.agent_for(Some("sig1"));
        if let SignatureAgent::Dictionary(members) = &agent {
            for (key, uri) in members {
                // Every member is found under its own key (the last one wins for duplicates,
                // RFC 8941 §3.2), and the answer is one of the URIs of the field.
                let found = agent.agent_for(Some(key));
                assert!(found.is_ok(), "member {key:?} of {members:?} not found");
                let found = found.unwrap_or_default();
                assert!(members.iter().any(|(k, u)| k == key && u == found), "{key:?} -> {found:?} ({uri:?})");
            }
        }
    }
});
