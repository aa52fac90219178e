//! Diagnoses an operator can act on, from the aggregated counters. Each rule has a fixed
//! threshold (documented in cli/README.md) so a report is reproducible.

use serde::Serialize;

use super::stats::{GroupStats, KeySeen, Stats, NONE, OTHER, TEST_KEYID};
use crate::dates::utc;

/// Fewest matching requests before a rule speaks.
pub const MIN_EVENTS: u64 = 5;
/// `unknown_key` share of an agent's signed requests that means a key rotation (≥ 10 %).
pub const ROTATION_SHARE: f64 = 0.10;
/// `not_yet_valid` + `expired` share of an agent's signed requests that means clock skew (> 50 %).
pub const SKEW_SHARE: f64 = 0.50;
/// Share of all `signature_invalid` on one path prefix (≥ 60 %) …
pub const PATH_SHARE: f64 = 0.60;
/// … with a `signature_invalid` rate there at least this many times the rate elsewhere,
pub const PATH_RATE_FACTOR: f64 = 3.0;
/// … and at least this rate there (≥ 20 % of the prefix's signed requests).
pub const PATH_MIN_RATE: f64 = 0.20;

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    /// `test_key`, `key_rotation`, `clock_skew`, `path_rewrite`.
    pub rule: &'static str,
    /// `error` (a misconfiguration) or `warning`.
    pub severity: &'static str,
    /// The agent or path prefix concerned (`*` for the whole input).
    pub subject: String,
    /// Requests the finding is about.
    pub count: u64,
    /// What the logs show.
    pub finding: String,
    /// What to do.
    pub action: String,
}

#[allow(clippy::cast_precision_loss)]
fn share(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn pct(a: u64, b: u64) -> String {
    let p = share(a, b) * 100.0;
    if p > 0.0 && p < 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{}%", p.round() as u64)
    }
}

fn when(t: Option<u64>) -> String {
    t.map_or_else(|| "time not logged".to_owned(), utc)
}

/// Every rule over `stats`, errors first.
pub fn diagnose(stats: &Stats) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    test_key(stats, &mut out);
    for (agent, g) in stats.agents.iter() {
        if agent == OTHER {
            continue;
        }
        key_rotation(agent, g, &mut out);
        clock_skew(agent, g, &mut out);
    }
    path_rewrite(stats, &mut out);
    out
}

/// Any verified request with the RFC 9421 test key is a misconfiguration.
fn test_key(stats: &Stats, out: &mut Vec<Diagnosis>) {
    let n = stats.all.test_key_verified;
    if n == 0 {
        return;
    }
    let mut agents: Vec<(&str, u64)> =
        stats.agents.iter().filter(|(_, g)| g.test_key_verified > 0).map(|(a, g)| (a, g.test_key_verified)).collect();
    agents.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let named: Vec<String> = agents.iter().take(3).map(|(a, c)| format!("{a} ({c})")).collect();
    out.push(Diagnosis {
        rule: "test_key",
        severity: "error",
        subject: "*".to_owned(),
        count: n,
        finding: format!(
            "{n} request(s) verified with the RFC 9421 test key (keyid {TEST_KEYID}), from {}",
            named.join(", ")
        ),
        action: "this verifier trusts a published key anyone can sign with: turn allow_test_keys off and remove the \
                 test key from the pinned keys (it is for local tests only)"
            .to_owned(),
    });
}

/// A surge of `unknown_key` for one agent: it signs with a key this verifier does not have.
fn key_rotation(agent: &str, g: &GroupStats, out: &mut Vec<Diagnosis>) {
    let unknown = g.reason("unknown_key");
    let signed = g.counts.signed();
    if unknown < MIN_EVENTS || share(unknown, signed) < ROTATION_SHARE {
        return;
    }
    let mut keys: Vec<(&String, &KeySeen)> = g.keys.unknown.iter().collect();
    keys.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    let named: Vec<String> =
        keys.iter().take(3).map(|(k, (c, first, _))| format!("{k} ({c}, first {})", when(*first))).collect();
    let mut finding = format!(
        "{unknown} of {signed} signed requests ({}) are unknown_key{}",
        pct(unknown, signed),
        if named.is_empty() { String::new() } else { format!(", keyid {}", named.join(", ")) }
    );
    let mut verified: Vec<(&String, &KeySeen)> = g.keys.verified.iter().collect();
    verified.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    if let Some((k, (c, _, last))) = verified.first() {
        finding.push_str(&format!("; {c} verified with keyid {k} (last {})", when(*last)));
    }
    let fetch = if agent == NONE {
        "refresh the pinned keys".to_owned()
    } else {
        format!("fetch its directory again (`botauth directory fetch {agent}`) and update the pinned keys")
    };
    out.push(Diagnosis {
        rule: "key_rotation",
        severity: "warning",
        subject: agent.to_owned(),
        count: unknown,
        finding,
        action: format!(
            "the agent has most likely rotated its signing key: {fetch}, or let live directories follow it \
             (allow-list the agent)"
        ),
    });
}

/// `not_yet_valid` or `expired` on most of one agent's requests: clocks disagree.
fn clock_skew(agent: &str, g: &GroupStats, out: &mut Vec<Diagnosis>) {
    let ahead = g.reason("not_yet_valid");
    let behind = g.reason("expired");
    let signed = g.counts.signed();
    let n = ahead + behind;
    if n < MIN_EVENTS || share(n, signed) <= SKEW_SHARE {
        return;
    }
    let (what, why) = if ahead >= behind {
        (
            format!("{ahead} not_yet_valid"),
            "its `created` lies in the future: the agent's clock runs ahead of this verifier's".to_owned(),
        )
    } else {
        (
            format!("{behind} expired"),
            "its `expires` lies in the past: the agent's clock runs behind (or it replays old signatures)".to_owned(),
        )
    };
    let other = if ahead >= behind { behind } else { ahead };
    out.push(Diagnosis {
        rule: "clock_skew",
        severity: "warning",
        subject: agent.to_owned(),
        count: n,
        finding: format!(
            "{n} of {signed} signed requests ({}) fail the validity window ({what}{}): {why}",
            pct(n, signed),
            if other > 0 { format!(", {other} the other way") } else { String::new() }
        ),
        action: "check NTP on the agent's signers (and this verifier's clock, if several agents show it); a larger \
                 `skew` only hides it"
            .to_owned(),
    });
}

/// `signature_invalid` concentrated on one path prefix: something rewrites that path.
fn path_rewrite(stats: &Stats, out: &mut Vec<Diagnosis>) {
    let total_invalid: u64 = stats.paths.iter().map(|(_, p)| p.signature_invalid).sum();
    let total_signed: u64 = stats.paths.iter().map(|(_, p)| p.signed).sum();
    if total_invalid < MIN_EVENTS {
        return;
    }
    let Some((prefix, top)) = stats
        .paths
        .iter()
        .filter(|(k, _)| *k != OTHER)
        .max_by(|a, b| a.1.signature_invalid.cmp(&b.1.signature_invalid).then(b.0.cmp(a.0)))
    else {
        return;
    };
    let rate_in = share(top.signature_invalid, top.signed);
    let rate_out = share(total_invalid - top.signature_invalid, total_signed - top.signed);
    if share(top.signature_invalid, total_invalid) < PATH_SHARE
        || rate_in < PATH_MIN_RATE
        || rate_in < PATH_RATE_FACTOR * rate_out
    {
        return;
    }
    out.push(Diagnosis {
        rule: "path_rewrite",
        severity: "warning",
        subject: prefix.to_owned(),
        count: top.signature_invalid,
        finding: format!(
            "{} of {} signed requests under {prefix} ({}) are signature_invalid, against {} on other paths; {} of \
             all signature_invalid",
            top.signature_invalid,
            top.signed,
            pct(top.signature_invalid, top.signed),
            pct(total_invalid - top.signature_invalid, total_signed - top.signed),
            pct(top.signature_invalid, total_invalid)
        ),
        action: format!(
            "something between the agents and this verifier rewrites {prefix} or its query (CDNs reorder or \
             normalise query parameters; proxies add or strip path prefixes): verify before the rewrite, or stop \
             the rewrite for signed requests"
        ),
    });
}
