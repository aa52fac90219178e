//! `Signature-Agent` parsing, both forms (draft-ietf-webbotauth-httpsig-protocol §4.1).
#![no_main]

use botauth_core::signature_agent::{parse, SignatureAgent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(agent) = parse(data) {
        let _ = agent.agent_for(None);
        let _ = agent.agent_for(Some("sig1"));
        let (agents, candidates) = (agent.agents(), agent.key_candidates());
        // Every usable agent is a key candidate, and every candidate is https.
        assert!(agents.iter().all(|a| candidates.contains(a)), "{agents:?} ⊄ {candidates:?}");
        assert!(candidates.iter().all(|a| a.scheme() == "https"), "{candidates:?}");
        if let SignatureAgent::Dictionary(members) = &agent {
            for (key, member) in members {
                // Every member is found under its own key (the last one wins for duplicates,
                // RFC 8941 §3.2), and what it names agrees with the member itself.
                let found = agent.member_for(Some(key));
                assert!(found.is_ok(), "member {key:?} of {members:?} not found");
                if let Ok(found) = found {
                    assert_eq!(agent.agent_for(Some(key)), found.agent());
                    assert!(members.iter().any(|(k, m)| k == key && m == found), "{key:?} -> {found:?} ({member:?})");
                    // A member with parameters is ignored (§4.1): it names no agent.
                    assert!(!found.parameters || found.agent() == Ok(None));
                }
            }
        }
    }
});
