//! Live key directories under Viceroy, shared by `directories.rs` and `faults.rs`: one
//! testkit `DirectoryServer` per allow-listed agent (a static backend each), a
//! production-like setup on the real clock, and assertions on answers and log events.

use std::time::{Duration, Instant};

use botauth_testkit::directory::{Behaviour, DirectoryServer};
use botauth_testkit::origin::Origin;
use botauth_testkit::raw_http::Response;

use super::*;

pub const WELL_KNOWN: &str = "/.well-known/http-message-signatures-directory";
/// Pinned (Config Store) agent with a key of our own: must be untouched by directory trouble.
pub const PINNED: &str = "https://pinned.test";

/// One allow-listed agent and its directory server.
pub struct Agent {
    pub uri: &'static str,
    pub server: DirectoryServer,
}

impl Agent {
    pub fn new(uri: &'static str, behaviour: Behaviour) -> Self {
        Self { uri, server: DirectoryServer::start(behaviour).expect("directory server") }
    }

    /// The label core gives it in logs (its host).
    pub fn label(&self) -> &str {
        self.uri.trim_start_matches("https://")
    }

    /// Directory fetches received (the well-known path only).
    pub fn fetches(&self) -> usize {
        self.server.hits().iter().filter(|h| h.target == WELL_KNOWN).count()
    }
}

/// The backend name of agent `i`.
pub fn backend(i: usize) -> String {
    format!("directory_{i}")
}

/// A production-like setup (enforce, test keys refused, real clock) with `agents`
/// allow-listed (`extra`: more members of the `directories` JSON, e.g. bounds), the RFC
/// 9421 key pinned for [`AGENT`] and `pinned_key` pinned for [`PINNED`].
pub fn setup(agents: &[&Agent], extra: &str, pinned_key: &TestKey) -> Setup {
    let list: Vec<serde_json::Value> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| {
            serde_json::json!({
                "agent": a.uri,
                "directory": format!("{}{WELL_KNOWN}", a.server.base_url()),
                "backend": backend(i),
            })
        })
        .collect();
    let mut directories = serde_json::json!({ "agents": list }).to_string();
    if !extra.is_empty() {
        directories.pop();
        directories.push(',');
        directories.push_str(extra);
        directories.push('}');
    }
    let mut s = Setup::standard()
        .with_setting("policy", r#"{"mode":"enforce"}"#)
        .without_setting("testing_now")
        .with_setting("directories", &directories);
    s.jwks = Some(vec![
        (jwks_item_key(AGENT), test_jwks()),
        (jwks_item_key(PINNED), jwks_of(&[pinned_key])),
        ("agents".into(), serde_json::json!([AGENT, PINNED]).to_string()),
    ]);
    s.backends = agents.iter().enumerate().map(|(i, a)| (backend(i), format!("{}/", a.server.base_url()))).collect();
    s.directory_kv = Some(Vec::new());
    s
}

/// A fresh signature by `key` naming `agent` (legacy Signature-Agent form).
pub fn signed(key: &TestKey, agent: &str) -> Vec<(String, String)> {
    let now = unix_now();
    signed_headers_with(key, &Sig { agent, created: now - 5, expires: now + 300, ..Sig::default() })
}

pub fn send(svc: &Service, key: &TestKey, agent: &str) -> Response {
    svc.send("GET", "/page", &signed(key, agent), None)
}

pub fn unsigned(svc: &Service) -> Response {
    svc.send("GET", "/unsigned", &headers(&[("Host", "example.com")]), None)
}

/// The problem type code of an answer (`urn:botauth:problem:<code>`).
pub fn problem_code(resp: &Response) -> String {
    assert_eq!(resp.header("content-type"), Some("application/problem+json"), "{resp:?}");
    let p = resp.json().expect("problem+json");
    p["type"].as_str().unwrap_or_default().trim_start_matches("urn:botauth:problem:").to_owned()
}

/// The `directory_fetch` log events since the last call (other events are dropped).
pub fn fetch_events(svc: &mut Service) -> Vec<serde_json::Value> {
    svc.new_log_events().into_iter().filter(|e| e["event"] == "directory_fetch").collect()
}

/// Wait (up to `secs`) for a `directory_fetch` event; the others seen meanwhile are returned too.
pub fn wait_fetch_event(svc: &mut Service, secs: u64) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let events = fetch_events(svc);
        if !events.is_empty() || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn assert_verified(resp: &Response, origin: &Origin, agent: &str, key: &TestKey) {
    assert_eq!(resp.status, 200, "{agent}: {}", resp.text());
    let seen = origin.seen();
    let last = seen.last().expect("a request reached the origin");
    assert_eq!(last.header("botauth-verdict"), Some(verified_header(agent, &key.keyid, "sig1").as_str()));
}
