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
use botauth_testkit::soak::{self, Fleet};
use common::live::*;
use common::*;

#[test]
fn mixed_traffic_on_64_connections_gets_exactly_the_expected_verdicts() {
    let fleet = Fleet::default();
    let agent_a = Agent::new(Fleet::AGENT_A, Behaviour::jwks(&fleet.jwks_a(), 300));
    let agent_b = Agent::new(Fleet::AGENT_B, Behaviour::jwks(&fleet.jwks_b(), 300));
    let agent_down = Agent::new(Fleet::DOWN, Behaviour::status(500, &[("Retry-After", "30")], "upstream trouble"));
    let origin = Origin::start().expect("origin");
    let pinned_key = TestKey::from_byte(Fleet::PINNED_BYTE);
    assert_eq!((PINNED, pinned_key.keyid.as_str()), (Fleet::PINNED, fleet.pinned.keyid.as_str()));
    let svc = Service::start(&setup(&[&agent_a, &agent_b, &agent_down], "", &pinned_key), origin.port());

    let plan = fleet.plan();
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
