//! One directory fetch folded into an entry (`directory::record`), then verification with
//! directories: any status, fields, body and previous entry. Never a panic; a failure
//! never loses good keys; the next fetch is never allowed in the past; entries survive
//! their JSON form.
#![no_main]

use botauth_core::directory::{record, verify_with_directories, Directories, Entries, Entry, Fetched, TransportError};
use botauth_core::{HttpRequest, Keyring, Policy};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_735_689_700;

fuzz_target!(|input: (u16, u8, &str, &[u8], Option<&[u8]>)| {
    let (status, which, fields_text, body, previous) = input;
    let Ok(dirs) = Directories::from_json(br#"{"agents":[{"agent":"https://agent.test"}],"max_body":4096}"#) else {
        return;
    };
    let Some(agent) = dirs.agents.first() else { return };
    let previous = previous.and_then(Entry::from_json);
    let mut fields = HttpRequest::new("GET", "https", agent.authority(), agent.path());
    for line in fields_text.lines().take(16) {
        if let Some((n, v)) = line.split_once(':') {
            fields.push_header(n.trim(), v.trim().as_bytes());
        }
    }
    let fetched = match which % 5 {
        0 => Fetched::Failed(TransportError::Timeout),
        1 => Fetched::Failed(TransportError::Connect),
        _ => Fetched::Response { status, fields: &fields, body },
    };
    let recorded = record(previous.as_ref(), &dirs, agent, which & 0x80 != 0, fetched, NOW);
    let e = &recorded.entry;
    assert!(e.retry_after > NOW || recorded.result.is_ok(), "a failure is negatively cached");
    assert!(e.retry_after <= NOW + 86_400, "never waits more than the refetch bound");
    if let (Err(_), Some(p)) = (&recorded.result, &previous) {
        assert_eq!(e.keys, p.keys, "a failed fetch never evicts keys");
        assert_eq!(e.stale_until, p.stale_until);
    }
    if recorded.result.is_ok() {
        assert!(e.fresh_until >= NOW + 60 && e.fresh_until <= NOW + 86_400);
        assert!(e.stale_until >= e.fresh_until);
    }
    assert_eq!(Entry::from_json(&e.to_json()).as_ref(), Some(e));
    // And a request naming the agent, with whatever the entry now holds.
    let mut entries = Entries::new();
    entries.insert(agent.agent.as_str().into(), e.clone());
    let req = HttpRequest::new("GET", "https", "example.com", "/")
        .with_header("Signature-Agent", &br#""https://agent.test""#[..])
        .with_header("Signature-Input", &br#"sig1=("@authority" "signature-agent");created=1735689600;expires=1735693200;keyid="k";tag="web-bot-auth""#[..])
        .with_header("Signature", &b"sig1=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==:"[..]);
    let _ = verify_with_directories(&req, &Keyring::new(), &dirs, &entries, &Policy::web_bot_auth(), NOW);
});
