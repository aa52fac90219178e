//! The soak (issue 11) through the service under Viceroy: testkit's mixed stream (unsigned,
//! signed by two directory agents and a pinned one with several keys, tampered, replayed,
//! expired, garbage, oversized, good and bad `content-digest` bodies, and an allow-listed
//! agent whose directory answers 500) on 64 keep-alive connections, every answer and every
//! upstream record checked against its request's expected verdict.
//!
//! `BOTAUTH_SOAK_SECS` (default 10: the correctness check of `cargo xtask test`) and
//! `BOTAUTH_SOAK_CONNECTIONS` (default 64) size it; `cargo xtask soak` runs it for 60 s and
//! reads the report left in `BOTAUTH_SOAK_REPORT`. Only correctness is asserted here, never
//! timing or memory (those go to `RELIABILITY.md`).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use botauth_testkit::directory::Behaviour;
use botauth_testkit::origin::Origin;
use botauth_testkit::soak::{self, Plan, Signer};
use common::live::*;
use common::*;

#[test]
fn mixed_traffic_on_64_connections_gets_exactly_the_expected_verdicts() {
    let a = [Signer::from_byte("https://agent-a.test", 11), Signer::from_byte("https://agent-a.test", 12)];
    let b = [Signer::from_byte("https://agent-b.test", 13), Signer::from_byte("https://agent-b.test", 14)];
    let pinned = Signer::from_byte(PINNED, 15);
    let down = Signer::from_byte("https://agent-down.test", 16);
    let agent_a = Agent::new("https://agent-a.test", Behaviour::jwks(&soak::jwks(&[&a[0], &a[1]]), 300));
    let agent_b = Agent::new("https://agent-b.test", Behaviour::jwks(&soak::jwks(&[&b[0], &b[1]]), 300));
    let agent_down =
        Agent::new("https://agent-down.test", Behaviour::status(500, &[("Retry-After", "30")], "upstream trouble"));
    let origin = Origin::start().expect("origin");
    let pinned_key = TestKey::from_byte(15);
    assert_eq!(pinned_key.keyid, pinned.keyid);
    let svc = Service::start(&setup(&[&agent_a, &agent_b, &agent_down], "", &pinned_key), origin.port());

    let plan = Plan {
        authority: "example.com".into(),
        signers: vec![a[0].clone(), a[1].clone(), b[0].clone(), b[1].clone(), pinned],
        down: Some(down),
    };
    let opts = soak::Options::from_env(svc.port, vec![("viceroy".into(), svc.pid())]);
    origin.clear();
    let report = soak::run("Fastly service under Viceroy", &plan, &opts, &origin);
    report.save("fastly.json").expect("write the soak report");
    assert!(report.correct(), "{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    assert!(report.classes.len() >= 10, "every traffic class was sent: {:?}", report.classes.keys());
    let (_, log) = svc.output();
    assert!(!log.contains("panicked"), "the guest panicked:\n{log}");
    assert!(agent_down.fetches() < 20, "the down directory is not hammered: {} fetches", agent_down.fetches());
}
