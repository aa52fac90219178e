//! The directory fetch case format (`fixtures/directories/fetch.json`, written by
//! `cargo xtask fixtures`): one directory answer folded into an agent's entry with core's
//! `record`, and what must come out.

#![allow(dead_code)]

use botauth_core::directory::Directories;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::fixture::{EntryState, FetchResponse};

/// The embedded file.
pub const FETCH_FILE: &str = include_str!("../../../fixtures/directories/fetch.json");

/// The file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchFile {
    /// What it covers.
    pub description: String,
    /// The clock of every case.
    pub now: u64,
    /// The cases.
    pub cases: Vec<FetchCase>,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchCase {
    /// Unique name.
    pub name: String,
    /// What it proves.
    pub description: String,
    /// The allow-list entry (`AgentConfig` JSON).
    pub agent: Value,
    /// The other `directories` members (bounds, caps).
    pub settings: Value,
    /// Keep published test keys.
    pub allow_test_keys: bool,
    /// The entry before the fetch.
    pub previous: Option<EntryState>,
    /// The answer.
    pub response: FetchResponse,
    /// What must come out: `ok`, then `keys` (thumbprints), `skipped` ([index, reason]),
    /// `findings`, `fresh_until`, `stale_until`, `retry_after`, `failures`; or `error`
    /// (a `FetchError` code), `retry_after`, `failures`, and optionally `keys` and
    /// `stale_until` kept from before.
    pub expect: Value,
}

/// Every case.
pub fn fetch_cases() -> FetchFile {
    match serde_json::from_str(FETCH_FILE) {
        Ok(f) => f,
        Err(e) => panic!("fixtures/directories/fetch.json: {e}"),
    }
}

impl FetchCase {
    /// Run through core and compare; `Err` lists every difference.
    pub fn run(&self, now: u64) -> Result<(), String> {
        let mut config = self.settings.clone();
        config["agents"] = json!([self.agent]);
        let dirs = Directories::from_json(config.to_string().as_bytes()).map_err(|e| e.to_string())?;
        let agent = dirs.agents.first().ok_or("no agent")?;
        let previous = self.previous.as_ref().map(EntryState::entry).transpose()?;
        let recorded = self.response.record(previous.as_ref(), &dirs, agent, self.allow_test_keys, now);
        let e = &recorded.entry;
        let mut got = json!({
            "ok": recorded.result.is_ok(),
            "retry_after": e.retry_after,
            "failures": e.failures,
        });
        match &recorded.result {
            Ok(doc) => {
                got["keys"] = json!(doc.keys.iter().map(|k| k.thumbprint.clone()).collect::<Vec<_>>());
                got["skipped"] =
                    json!(doc.skipped.iter().map(|s| json!([s.index, s.reason.code()])).collect::<Vec<_>>());
                got["findings"] = json!(doc.findings.iter().map(|f| f.code()).collect::<Vec<_>>());
                got["fresh_until"] = json!(e.fresh_until);
                got["stale_until"] = json!(e.stale_until);
                if e.keys != doc.keys {
                    return Err("the entry's keys are not the document's".into());
                }
            }
            Err(err) => {
                got["error"] = json!(err.code());
                got["keys"] = json!(e.keys.iter().map(|k| k.thumbprint.clone()).collect::<Vec<_>>());
                got["stale_until"] = json!(e.stale_until);
            }
        }
        let want = self.expect.as_object().ok_or("expect is not an object")?;
        let diffs: Vec<String> = want
            .iter()
            .filter(|(k, v)| got.get(k.as_str()) != Some(v))
            .map(|(k, v)| format!("{k}: got {}, expected {v}", got.get(k.as_str()).unwrap_or(&Value::Null)))
            .collect();
        // An entry stored and read back is the same entry (hosts keep it as JSON).
        let round_trip = botauth_core::directory::Entry::from_json(&e.to_json());
        if round_trip.as_ref() != Some(e) {
            return Err(format!("Entry::to_json/from_json lost information: {round_trip:?}"));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("; "))
        }
    }
}
