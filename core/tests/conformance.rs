//! The conformance suite: every case of `fixtures/cases/*.json` through core, in the sfv
//! style: serde mirror of the format (`common/fixture.rs`), all cases run, every failure
//! listed by name, a documented skip list.
//!
//! Runs natively and in wasm32-unknown-unknown (wasm-bindgen-test under node), with each
//! Ed25519 backend:
//!
//! ```text
//! cargo test -p botauth-core --test conformance
//! cargo test -p botauth-core --test conformance --no-default-features --features ed25519-dalek
//! CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//!   cargo test -p botauth-core --target wasm32-unknown-unknown --test conformance
//! ```

#[path = "common/fetch_fixture.rs"]
mod fetch_fixture;
#[path = "common/fixture.rs"]
mod fixture;

use std::collections::BTreeSet;

use botauth_core::directory::{verify_directory_response, DirectoryError};
use botauth_core::{check_replay, verify_with_trace, HttpRequest, MemoryNonceStore, Reason};
use fixture::{all_cases, Case, ExpectedVerdict, SKIP};

/// Run one case through core the way a host would: verify, then the replay check.
fn run(case: &Case) -> Result<(), String> {
    if case.directories.is_some() {
        return run_with_directories(case);
    }
    let keys = case.keyring()?;
    let policy = case.policy();
    let req = case.request();
    let mut store = MemoryNonceStore::new(64);
    let (first, trace) = verify_with_trace(&req, &keys, &policy, case.now);
    case.check_signature_base(trace.signature_base.as_deref())?;
    let first = case.with_claims(first, &req)?;
    let first = check_replay(first, &mut store, &policy, case.now);
    let verdict = if case.send_twice {
        if !first.is_verified() {
            return Err(format!("send_twice: the first send must verify, got {}", first.code()));
        }
        let (second, _) = verify_with_trace(&req, &keys, &policy, case.now);
        check_replay(second, &mut store, &policy, case.now)
    } else {
        first
    };
    // A host's per-source limiter counts the rejections that cost an Ed25519 verify: exactly
    // those whose trace reached the `ed25519` check.
    if let Some(reason) = verdict.reason() {
        let verified_once = trace.checks.iter().any(|(name, _)| *name == "ed25519");
        if reason.spent_a_verify() != verified_once {
            return Err(format!(
                "{}: spent_a_verify is {}, the trace says {verified_once}",
                reason.code(),
                reason.spent_a_verify()
            ));
        }
    }
    case.check(&verdict).map_err(|e| {
        let checks: Vec<String> = trace
            .checks
            .iter()
            .map(|(name, r)| match r {
                Ok(()) => format!("{name}:ok"),
                Err(reason) => format!("{name}:{}", reason.code()),
            })
            .collect();
        format!("{e} [checks: {}]", checks.join(" "))
    })
}

/// A directory case, as a host runs it: verify with directories; when core asks for a
/// fetch, answer from the case's `responses`, fold it in with `record`, and go again.
fn run_with_directories(case: &Case) -> Result<(), String> {
    use botauth_core::directory::{verify_with_directories, Directories, Entries, Step};
    let d = case.directories.as_ref().ok_or("no directories")?;
    let dirs = Directories::from_json(d.config.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let pinned = case.keyring()?;
    let policy = case.policy();
    let req = case.request();
    let mut entries = Entries::new();
    for (agent, state) in &d.entries {
        let canonical = botauth_core::agent_uri::canonical(agent).ok_or("entry agent is not a URI")?;
        entries.insert(canonical, state.entry()?);
    }
    let mut fetches = 0;
    loop {
        match verify_with_directories(&req, &pinned, &dirs, &entries, &policy, case.now) {
            Step::Fetch(f) => {
                fetches += 1;
                if fetches > 4 {
                    return Err("more than 4 fetches for one request".into());
                }
                let agent = f.agent.agent.as_str();
                let response = d
                    .responses
                    .iter()
                    .find(|(a, _)| botauth_core::agent_uri::canonical(a).as_deref() == Some(agent))
                    .map(|(_, r)| r)
                    .ok_or_else(|| format!("unexpected fetch for {agent} ({:?})", f.reason))?;
                let recorded = response.record(entries.get(agent), &dirs, f.agent, policy.allow_test_keys, case.now);
                entries.insert(agent.to_string(), recorded.entry);
            }
            Step::Done { verdict, refresh } => {
                if fetches != d.fetches {
                    return Err(format!("{fetches} fetches, expected {}", d.fetches));
                }
                if refresh.is_some() != d.refresh {
                    return Err(format!("refresh {refresh:?}, expected {}", d.refresh));
                }
                return case.check(&verdict);
            }
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn directory_fetch_cases_pass() {
    let file = fetch_fixture::fetch_cases();
    assert!(file.cases.len() >= 40, "only {} fetch cases", file.cases.len());
    let mut names = BTreeSet::new();
    let failures: Vec<String> = file
        .cases
        .iter()
        .filter_map(|c| {
            if !names.insert(c.name.clone()) {
                return Some(format!("{}: duplicate name", c.name));
            }
            c.run(file.now).err().map(|e| format!("{}: {e}", c.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fetch cases failed:\n{}",
        failures.len(),
        file.cases.len(),
        failures.join("\n")
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn all_cases_pass() {
    let cases = all_cases();
    assert!(cases.len() >= 120, "only {} cases", cases.len());
    let mut failures = Vec::new();
    let mut stale = Vec::new();
    for case in &cases {
        let outcome = run(case);
        match (SKIP.iter().find(|(n, _)| *n == case.name), outcome) {
            (None, Ok(())) | (Some(_), Err(_)) => {}
            (None, Err(e)) => failures.push(format!("{} ({}): {e}", case.name, case.file)),
            (Some((_, why)), Ok(())) => stale.push(format!("{} passes now; remove it from SKIP ({why})", case.name)),
        }
    }
    for (name, _) in SKIP {
        if !cases.iter().any(|c| c.name == *name) {
            stale.push(format!("{name} is in SKIP but is not a case"));
        }
    }
    let mut report = failures;
    report.extend(stale);
    assert!(report.is_empty(), "{} of {} cases failed:\n{}", report.len(), cases.len(), report.join("\n\n"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn names_are_unique_and_cases_consistent() {
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for case in all_cases() {
        if !seen.insert(case.name.clone()) {
            problems.push(format!("duplicate name {}", case.name));
        }
        if let Err(e) = case.validate() {
            problems.push(format!("{}: {e}", case.name));
        }
        if let Some(reason) = &case.expect.reason {
            match Reason::ALL.iter().find(|r| r.code() == reason) {
                Some(r) if Some(r.status().code()) == case.expect.status => {}
                Some(r) => problems.push(format!(
                    "{}: {reason} is {} not {:?}",
                    case.name,
                    r.status().code(),
                    case.expect.status
                )),
                None => problems.push(format!("{}: unknown reason code {reason}", case.name)),
            }
        }
        // Sendable over HTTP/1.1 (fixtures/README.md, "Hosts") unless marked core-only.
        if case.runs_on("fastly") || case.runs_on("envoy") {
            if let Err(e) = sendable(&case) {
                problems.push(format!("{}: {e} but not marked hosts [\"core\"]", case.name));
            }
        }
        if case.request.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            problems.push(format!("{}: Host comes from `authority`, not `headers`", case.name));
        }
        let body_len = case.request.body.as_ref().map_or(0, String::len);
        for (_, v) in case.request.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
            if v.parse::<usize>().ok() != Some(body_len) {
                problems.push(format!("{}: Content-Length {v} but the body has {body_len} bytes", case.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What a real HTTP/1.1 hop carries unchanged: token names, values without control
/// characters except HTAB (bytes >= 0x80 are obs-text), an origin-form target.
fn sendable(case: &Case) -> Result<(), String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    for (name, value) in &case.request.headers {
        if name.is_empty() || !name.bytes().all(tchar) {
            return Err(format!("header name {name:?} is not a token"));
        }
        if value.bytes().any(|b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
            return Err(format!("a control character in {name}"));
        }
    }
    if !case.request.target.starts_with('/') || case.request.target.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err("the target is not origin-form".into());
    }
    Ok(())
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn every_reason_is_covered() {
    let cases = all_cases();
    let missing: Vec<&str> = Reason::ALL
        .iter()
        .map(|r| r.code())
        .filter(|code| !cases.iter().any(|c| c.expect.reason.as_deref() == Some(*code)))
        .collect();
    assert!(missing.is_empty(), "reasons without a case: {missing:?}");
    for kind in [ExpectedVerdict::Verified, ExpectedVerdict::Unsigned] {
        assert!(cases.iter().any(|c| c.expect.verdict == kind), "no {kind:?} case");
    }
}

/// Every file in `fixtures/cases/` is embedded (and every embedded file exists).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn every_case_file_is_included() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cases");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut included: Vec<String> = fixture::FILES.iter().map(|(n, _)| String::from(*n)).collect();
    included.sort();
    assert_eq!(on_disk, included, "fixtures/cases/*.json and fixture::FILES differ");
}

/// The published signed directory response (draft-meunier-webbotauth-httpsig-protocol,
/// "Signed Directory Response"): verifies for its directory host, and fails once its body
/// is altered.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn directory_response_vector() {
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/vectors/spec-ed25519-vectors.json")).expect("vectors parse");
    let v = vectors
        .as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == "directory-response-binding"))
        .expect("the directory vector is present");
    let h = &v["headers"];
    let text = |k: &str| h[k].as_str().unwrap_or_else(|| panic!("vector lacks {k}"));
    let authority = v["authority"].as_str().expect("authority");
    let request = HttpRequest::new("GET", "https", authority, botauth_core::directory::WELL_KNOWN_PATH);
    let response = HttpRequest::new("GET", "https", authority, "/")
        .with_header("Content-Type", botauth_core::directory::MEDIA_TYPE)
        .with_header("Content-Digest", text("Content-Digest"))
        .with_header("Signature-Input", text("Signature-Input"))
        .with_header("Signature", text("Signature"));
    let body = text("body").as_bytes();
    let now = 1735690000;

    let dir = verify_directory_response(&request, &response, 200, body, now).expect("directory verifies");
    assert_eq!(dir.keys.len(), 1);
    assert_eq!(dir.keys[0].thumbprint, v["keyid_thumbprint"].as_str().expect("thumbprint"));
    assert_eq!(dir.signature.label, "binding");
    assert_eq!(dir.signature.keyid, "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U");

    // Same keys, different bytes: the Content-Digest no longer matches.
    let tampered = text("body").replacen("{\"keys\":", "{ \"keys\":", 1);
    assert_ne!(tampered, text("body"));
    assert_eq!(
        verify_directory_response(&request, &response, 200, tampered.as_bytes(), now).err(),
        Some(DirectoryError::Rejected(Reason::ContentDigestMismatch))
    );
    // `@authority;req` binds the directory to its host.
    let elsewhere = HttpRequest::new("GET", "https", "evil.test", botauth_core::directory::WELL_KNOWN_PATH);
    assert_eq!(
        verify_directory_response(&elsewhere, &response, 200, body, now).err(),
        Some(DirectoryError::Rejected(Reason::SignatureInvalid))
    );
}
