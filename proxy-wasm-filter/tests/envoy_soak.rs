//! The soak (issue 11) through the filter in a real Envoy with two workers, as shipped
//! (early header mutation + the composite matcher): testkit's mixed stream (unsigned, signed
//! by two directory agents and a pinned one with several keys, tampered, replayed, expired,
//! garbage, oversized, good and bad `content-digest` bodies, and an allow-listed agent whose
//! directory answers 500) on 64 keep-alive connections, every answer and every upstream
//! record checked against its request's expected verdict.
//!
//! `BOTAUTH_SOAK_SECS` (default 10: the correctness check of `cargo xtask test`) and
//! `BOTAUTH_SOAK_CONNECTIONS` (default 64) size it; `cargo xtask soak` runs it for 60 s and
//! reads the report left in `BOTAUTH_SOAK_REPORT`. Only correctness is asserted here, never
//! timing or memory (those go to `RELIABILITY.md`).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use botauth_testkit::directory::Behaviour;
use botauth_testkit::soak::{self, Fleet};
use common::gateway::{gateway_with, Agent};
use serde_json::json;

/// The replay cache's capacity: small enough to fill during the warm-up, so that the memory
/// measured after it shows leaks, not the cache filling up to its bound.
const REPLAY_CAPACITY: u64 = 2048;

#[test]
fn mixed_traffic_on_64_connections_gets_exactly_the_expected_verdicts() {
    let fleet = Fleet::default();
    let agent_a = Agent::new(Fleet::AGENT_A, "agent-a", Behaviour::jwks(&fleet.jwks_a(), 300));
    let agent_b = Agent::new(Fleet::AGENT_B, "agent-b", Behaviour::jwks(&fleet.jwks_b(), 300));
    let agent_down =
        Agent::new(Fleet::DOWN, "agent-down", Behaviour::status(500, &[("Retry-After", "30")], "upstream trouble"));
    let pinned_jwks: serde_json::Value = serde_json::from_str(&soak::jwks(&[&fleet.pinned])).unwrap_or_default();
    let extra = json!({
        "keys": { (Fleet::PINNED): pinned_jwks },
        "replay": { "namespace": "soak", "capacity": REPLAY_CAPACITY },
    });
    let gw = gateway_with(&[&agent_a, &agent_b, &agent_down], json!({}), json!({}), extra, |yaml| yaml);

    let plan = fleet.plan();
    let opts = soak::Options::from_env(gw.port, vec![("envoy".into(), gw.envoy.child.id())]);
    gw.origin.clear();
    let report = soak::run("filter in Envoy 1.40 (2 workers)", &plan, &opts, &gw.origin);
    report.save("envoy.json").unwrap_or_else(|e| panic!("write the soak report: {e}"));
    assert!(report.correct(), "{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    assert!(report.classes.len() >= 10, "every traffic class was sent: {:?}", report.classes.keys());
    let log = gw.envoy.log();
    assert!(!log.contains("panicked") && !log.contains("wasm trap"), "the filter failed:\n{log}");
    let entries = gw.envoy.stat("wasmcustom.botauth.replay.entries");
    assert!(entries <= REPLAY_CAPACITY, "the replay cache stays within its capacity: {entries}");
    assert!(gw.envoy.stat("wasmcustom.botauth.replay.evicted") > 0, "and evicts the oldest nonces");
    let down_fetches = agent_down.server.hits().len();
    assert!(down_fetches < 20, "the down directory is not hammered: {down_fetches} fetches");
}
