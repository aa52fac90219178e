//! Kong-shaped input for the request-reading layer (ARCHITECTURE §6), over the whole fixture
//! suite: Kong's `:authority` is its upstream, its `:path` is normalised, header names keep
//! the client's case and repeated fields arrive as separate entries. Kong cannot run here,
//! so this is how its host semantics are tested: every case must get its expected verdict
//! from the request `request::build` assembles out of that shape.
#![cfg(not(target_arch = "wasm32"))]

#[path = "../../core/tests/common/fixture.rs"]
#[allow(unreachable_pub, missing_docs, clippy::all)]
mod fixture;

use botauth_core::{check_replay, verify, MemoryNonceStore, Verdict};
use botauth_proxy_wasm::request::{build, mentions_content_digest, AuthoritySource, HostRequest};
use fixture::{Case, ExpectedVerdict};

/// `Signature-Input` → `Signature-Input`, `signature` → `Signature`: names as a client typed them.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// What nginx makes of a path: percent-decoded, slashes merged, no query.
fn normalised(target: &str) -> String {
    let path = target.split('?').next().unwrap_or("");
    let mut out = String::new();
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| path.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        match decoded {
            Some(b) => {
                out.push(b as char);
                i += 3;
            }
            None => {
                out.push(bytes[i] as char);
                i += 1;
            }
        }
    }
    while out.contains("//") {
        out = out.replace("//", "/");
    }
    out
}

fn kong_shaped(case: &Case) -> HostRequest {
    let r = &case.request;
    let mut headers = vec![
        (":method".to_string(), r.method.as_bytes().to_vec()),
        (":path".to_string(), normalised(&r.target).into_bytes()),
        (":authority".to_string(), b"kong-upstream.internal:8000".to_vec()),
        (":scheme".to_string(), b"http".to_vec()),
        ("Host".to_string(), r.authority.as_bytes().to_vec()),
    ];
    headers.extend(r.headers.iter().map(|(n, v)| (title_case(n), v.as_bytes().to_vec())));
    let covers_digest = r
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("signature-input") && mentions_content_digest(v.as_bytes()));
    HostRequest {
        headers,
        path_property: Some(r.target.as_bytes().to_vec()),
        body: if covers_digest { r.body.as_ref().map(|b| b.as_bytes().to_vec()) } else { None },
    }
}

fn verdict(case: &Case, source: AuthoritySource) -> Verdict {
    verdict_of(&build(kong_shaped(case), Some(&case.request.scheme), source), case)
}

/// Core's verdict on `req` under the case's keys, policy, claims and clock (sent twice for
/// replay cases).
fn verdict_of(req: &botauth_core::HttpRequest, case: &Case) -> Verdict {
    let keys = case.keyring().unwrap_or_default();
    let policy = case.policy();
    let mut store = MemoryNonceStore::new(16);
    let first = case.with_claims(verify(req, &keys, &policy, case.now), req).unwrap_or_else(|e| panic!("{e}"));
    let mut v = check_replay(first, &mut store, &policy, case.now);
    if case.send_twice {
        v = check_replay(verify(req, &keys, &policy, case.now), &mut store, &policy, case.now);
    }
    v
}

/// Every case gets exactly core's verdict on the case's own request (all fields equal), and
/// that is the fixture's expectation (except core's documented `fixture::SKIP` gaps, where
/// agreeing with core is all a host can do).
#[test]
fn every_case_verifies_from_kong_shaped_input() {
    let cases: Vec<Case> = fixture::all_cases().into_iter().filter(|c| c.runs_on("kong")).collect();
    assert!(cases.len() >= 200, "{} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let got = verdict(c, AuthoritySource::Auto);
            let native = verdict_of(&c.request(), c);
            if got != native {
                return Some(format!("{}: {got:?}, core on the plain request: {native:?}", c.name));
            }
            let skipped = fixture::SKIP.iter().any(|(n, _)| *n == c.name);
            (!skipped).then(|| c.check(&got).err().map(|e| format!("{}: {e}", c.name))).flatten()
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// The difference is real: taking Kong's `:authority` at face value breaks every verified
/// signature over `@authority`.
#[test]
fn kong_authority_is_not_the_client_host() {
    let covering: Vec<Case> = fixture::all_cases()
        .into_iter()
        .filter(|c| c.runs_on("kong") && c.expect.verdict == ExpectedVerdict::Verified && !c.send_twice)
        .filter(|c| !fixture::SKIP.iter().any(|(n, _)| *n == c.name))
        .filter(|c| {
            c.request
                .headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("signature-input") && v.contains("\"@authority\""))
        })
        .collect();
    assert!(covering.len() >= 20, "{} cases", covering.len());
    for c in &covering {
        assert!(verdict(c, AuthoritySource::Auto).is_verified(), "{}", c.name);
        assert!(
            !verdict(c, AuthoritySource::Authority).is_verified(),
            "{}: verified against Kong's :authority",
            c.name
        );
    }
}

/// Directories behind Kong: the dispatch answer arrives with the directory's own header-name
/// case and a `:status` pseudo-header; read as core's fetch result it loads the agent's keys,
/// and a Kong-shaped signed request then verifies with them (and without them is
/// `directory_unavailable` once the fetch failed: Kong's TLS or DNS refused, say).
#[test]
fn directories_from_kong_shaped_answers() {
    use botauth_core::directory::{record, verify_with_directories, Directories, Entries, Step};
    use botauth_proxy_wasm::directory::answer;

    let case = fixture::all_cases()
        .into_iter()
        .find(|c| {
            c.runs_on("kong")
                && c.expect.verdict == ExpectedVerdict::Verified
                && c.expect.agent.as_deref() == Some("https://signature-agent.test")
                && !c.send_twice
                && c.request.body.is_none()
        })
        .unwrap_or_else(|| panic!("no verified case for the demo agent"));
    let agent = "https://signature-agent.test";
    // The directory serves the case's key without its `kid` (not a thumbprint, which a
    // directory may not use): keyid = thumbprint.
    let mut jwks = case.keys.get(agent).cloned().unwrap_or_default();
    if let Some(keys) = jwks["keys"].as_array_mut() {
        for k in keys {
            if let Some(o) = k.as_object_mut() {
                o.remove("kid");
            }
        }
    }
    let dirs = Directories::from_json(
        format!(r#"{{"agents":[{{"agent":"{agent}","upstream":"signature-agent.test:443","label":"demo"}}]}}"#)
            .as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let a = &dirs.agents[0];
    let mut policy = case.policy();
    policy.allow_test_keys = true;
    let kong_answer = vec![
        (":status".to_string(), b"200".to_vec()),
        ("Content-Type".to_string(), b"application/http-message-signatures-directory+json".to_vec()),
        ("Cache-Control".to_string(), b"max-age=600".to_vec()),
    ];
    let got = answer(kong_answer, Some(jwks.to_string().into_bytes()), 20, 2000);
    let rec = record(None, &dirs, a, true, got.fetched(), case.now);
    assert!(rec.result.is_ok(), "{:?}", rec.result);
    assert_eq!(rec.entry.fresh_until, case.now + 600, "Cache-Control read whatever its case");
    let mut entries = Entries::new();
    entries.insert(a.agent.as_str().to_string(), rec.entry.clone());
    let req = build(kong_shaped(&case), Some(&case.request.scheme), AuthoritySource::Auto);
    let pinned = botauth_core::Keyring::new();
    match verify_with_directories(&req, &pinned, &dirs, &entries, &policy, case.now) {
        Step::Done { verdict, .. } => assert!(verdict.is_verified(), "{verdict:?}"),
        Step::Fetch(f) => panic!("asked to fetch {:?}", f.reason),
    }
    // A dispatch that failed (no headers at all) leaves a cold agent without keys.
    let failed = record(None, &dirs, a, true, answer(Vec::new(), None, 20, 2000).fetched(), case.now);
    let mut entries = Entries::new();
    entries.insert(a.agent.as_str().to_string(), failed.entry);
    match verify_with_directories(&req, &pinned, &dirs, &entries, &policy, case.now) {
        Step::Done { verdict, .. } => {
            assert_eq!(verdict.reason().map(|r| r.code()), Some("directory_unavailable"), "{verdict:?}")
        }
        Step::Fetch(f) => panic!("negatively cached, yet asked to fetch {:?}", f.reason),
    }
}
