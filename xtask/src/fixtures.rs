//! `cargo xtask fixtures [--check]`: write `fixtures/cases/*.json` (format in
//! `fixtures/README.md`), or check that the committed files are what the generator writes.
//!
//! Output is deterministic: fixed times and nonces, deterministic Ed25519 (RFC 8032), fixed
//! field order. Cases are signed with core's `sign::sign` and the keys in `fixtures/keys/`;
//! negative cases mutate a validly signed request. Expectations are written here by hand,
//! never computed by the verifier.

mod agent;
mod build;
mod components;
mod directory;
mod keys;
mod multiple;
mod policy;
mod structure;
mod vectors;

use std::collections::BTreeSet;
use std::path::PathBuf;

use build::{Case, Expect, Keys};
use serde::Serialize;

use crate::util;

/// One output file: name, description, cases.
struct File {
    name: &'static str,
    description: &'static str,
    cases: Vec<Case>,
}

pub fn run(args: &[String]) -> Result<(), String> {
    match args {
        [] => write(),
        [flag] if flag == "--check" => check(),
        _ => Err(format!("unexpected arguments {args:?}; usage: cargo xtask fixtures [--check]")),
    }
}

/// Regenerate in memory and fail listing every file that differs from the committed one.
pub fn check() -> Result<(), String> {
    let dir = cases_dir();
    let mut differ = Vec::new();
    let generated = generate()?;
    for (name, text) in &generated {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(on_disk) if on_disk == *text => {}
            Ok(_) => differ.push(format!("{name} (differs)")),
            Err(_) => differ.push(format!("{name} (missing)")),
        }
    }
    let names: BTreeSet<&str> = generated.iter().map(|(n, _)| n.as_str()).collect();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let file = entry.map_err(|e| e.to_string())?.file_name().to_string_lossy().into_owned();
        if file.ends_with(".json") && !names.contains(file.as_str()) {
            differ.push(format!("{file} (not generated)"));
        }
    }
    let fetch = directory::fetch_file(&load_keys()?)?;
    let fetch_path = util::root().join(FETCH_FILE);
    if std::fs::read_to_string(&fetch_path).ok().as_deref() != Some(fetch.as_str()) {
        differ.push(format!("{FETCH_FILE} (differs or missing)"));
    }
    if differ.is_empty() {
        // Seeds are derived from the committed fixture files, so compare them once those match.
        differ.extend(crate::fuzz::check_seeds(&util::root().join(crate::fuzz::SEEDS_DIR))?);
    }
    if differ.is_empty() {
        let count: usize = generated.iter().map(|(_, t)| t.matches("\n    {\n").count()).sum();
        println!("fixtures/cases: {} files, {count} cases, all current", generated.len());
        Ok(())
    } else {
        Err(format!(
            "fixtures/cases is not what `cargo xtask fixtures` writes: {}; run `cargo xtask fixtures` and commit",
            differ.join(", ")
        ))
    }
}

fn write() -> Result<(), String> {
    let dir = cases_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let generated = generate()?;
    for (name, text) in &generated {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    let path = util::root().join(FETCH_FILE);
    std::fs::write(&path, directory::fetch_file(&load_keys()?)?).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    // The fuzz targets' committed seeds come from the files just written.
    let seeds = util::root().join(crate::fuzz::SEEDS_DIR);
    let n = crate::fuzz::write_seeds(&seeds)?;
    println!("wrote {n} seeds under {}", seeds.display());
    Ok(())
}

fn cases_dir() -> PathBuf {
    util::root().join("fixtures/cases")
}

/// The directory fetch cases (`directory::fetch_file`), beside `cases/`: another format.
const FETCH_FILE: &str = "fixtures/directories/fetch.json";

fn load_keys() -> Result<Keys, String> {
    let root = util::root();
    Ok(Keys {
        rfc: build::Key::load(&root.join("fixtures/keys/rfc9421-ed25519.json"))?,
        b: build::Key::load(&root.join("fixtures/keys/test-only-b-ed25519.json"))?,
    })
}

/// Every file's name and text.
fn generate() -> Result<Vec<(String, String)>, String> {
    let root = util::root();
    let keys = load_keys()?;
    let files = [
        File {
            name: "agent.json",
            description: "Signature-Agent: legacy sf-string and dictionary forms, coverage, ambiguity, tampering",
            cases: agent::cases(&keys)?.into_iter().chain(multiple::cases(&keys)?).collect(),
        },
        File {
            name: "components.json",
            description: "RFC 9421 components: derived components, field parameters, duplicates, unknowns, \
                          content-digest, tampered covered parts",
            cases: components::cases(&keys)?,
        },
        File {
            name: "directory.json",
            description: "Live key directories: cold fetch, fresh and stale entries, max_stale, negative caching, \
                          early refetch on an unknown keyid, allow-list, pinned keys beside directories",
            cases: directory::cases(&keys)?,
        },
        File {
            name: "keys.json",
            description: "Key lookup: agent and keyid, ANY-agent keys, JWK nbf/exp boundaries, wrong and skipped keys",
            cases: keys::cases(&keys)?,
        },
        File {
            name: "policy.json",
            description: "Web Bot Auth policy: tag and choice, alg, created/expires window and clock skew \
                          boundaries, nonce, coverage, replay",
            cases: policy::cases(&keys)?,
        },
        File {
            name: "structure.json",
            description: "Signature and Signature-Input structure: presence, labels, sf syntax, base64, lengths, \
                          parameters, non-ASCII, size caps",
            cases: structure::cases(&keys)?,
        },
        File {
            name: "vectors.json",
            description: "Published vectors (RFC 9421, the Web Bot Auth drafts, Cloudflare's web-bot-auth test data)",
            cases: vectors::cases(&keys, &root.join("fixtures/vectors"))?,
        },
    ];
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for f in &files {
        for c in &f.cases {
            if !names.insert(c.name.as_str()) {
                return Err(format!("duplicate case name {}", c.name));
            }
            if c.description.is_empty() || c.description.contains('\n') {
                return Err(format!("{}: the description must be one line", c.name));
            }
        }
        out.push((f.name.to_string(), emit(f)?));
    }
    Ok(out)
}

fn js<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Pretty but compact JSON: one member per line, header pairs and keys on one line each.
fn emit(f: &File) -> Result<String, String> {
    let mut o = String::new();
    o.push_str("{\n");
    o.push_str(&format!("  \"description\": {},\n", js(f.description)));
    o.push_str("  \"cases\": [\n");
    for (i, c) in f.cases.iter().enumerate() {
        let mut members: Vec<String> = vec![
            format!("\"name\": {}", js(&c.name)),
            format!("\"source\": {}", js(&c.source)),
            format!("\"description\": {}", js(&c.description)),
        ];
        if let Some(h) = &c.hosts {
            members.push(format!("\"hosts\": {}", js(h)));
        }
        members.push(format!("\"request\": {}", emit_request(c)?));
        members.push(format!("\"keys\": {}", emit_keys(c)));
        members.push(format!("\"now\": {}", c.now));
        if let Some(p) = &c.policy {
            members.push(format!("\"policy\": {}", js(p)));
        }
        if c.send_twice {
            members.push("\"send_twice\": true".into());
        }
        members.push(format!("\"expect\": {}", emit_expect(&c.expect)));
        if let Some(b) = &c.signature_base {
            members.push(format!("\"signature_base\": {}", js(b)));
        }
        if let Some(d) = &c.directories {
            members.push(format!("\"directories\": {}", js(d)));
        }
        if let Some(claims) = &c.claims {
            members.push(format!("\"claims\": {}", js(claims)));
        }
        o.push_str("    {\n      ");
        o.push_str(&members.join(",\n      "));
        o.push_str("\n    }");
        o.push_str(if i + 1 < f.cases.len() { ",\n" } else { "\n" });
    }
    o.push_str("  ]\n}\n");
    Ok(o)
}

fn emit_request(c: &Case) -> Result<String, String> {
    let r = &c.request;
    let mut lines = vec![
        format!("\"method\": {}", js(&r.method)),
        format!("\"scheme\": {}", js(&r.scheme)),
        format!("\"authority\": {}", js(&r.authority)),
        format!("\"target\": {}", js(&r.target)),
    ];
    let mut headers = Vec::new();
    for (name, value) in &r.headers {
        let value = std::str::from_utf8(value).map_err(|_| format!("{}: header {name} is not UTF-8", c.name))?;
        headers.push(format!("[{}, {}]", js(name), js(value)));
    }
    if headers.is_empty() {
        lines.push("\"headers\": []".into());
    } else {
        lines.push(format!("\"headers\": [\n          {}\n        ]", headers.join(",\n          ")));
    }
    if let Some(body) = &r.body {
        let body = std::str::from_utf8(body).map_err(|_| format!("{}: body is not UTF-8", c.name))?;
        lines.push(format!("\"body\": {}", js(body)));
    }
    Ok(format!("{{\n        {}\n      }}", lines.join(",\n        ")))
}

fn emit_keys(c: &Case) -> String {
    if c.keys.is_empty() {
        return "{}".into();
    }
    let members: Vec<String> = c.keys.iter().map(|(agent, jwks)| format!("{}: {}", js(agent), js(jwks))).collect();
    format!("{{\n        {}\n      }}", members.join(",\n        "))
}

fn emit_expect(e: &Expect) -> String {
    match e {
        Expect::Verified { agent, claimed_agent, keyid, label, also, discarded } => format!(
            "{{\"verdict\": \"verified\", \"agent\": {}, {}\"keyid\": {}, \"label\": {}{}{}}}",
            js(agent),
            claimed_agent.as_ref().map(|c| format!("\"claimed_agent\": {}, ", js(c))).unwrap_or_default(),
            js(keyid),
            js(label),
            if also.is_empty() { String::new() } else { format!(", \"also\": {}", js(also)) },
            if discarded.is_empty() { String::new() } else { format!(", \"discarded\": {}", js(discarded)) },
        ),
        Expect::Rejected { reason, status } => {
            format!("{{\"verdict\": \"rejected\", \"reason\": {}, \"status\": {status}}}", js(reason))
        }
        Expect::Unsigned => "{\"verdict\": \"unsigned\"}".into(),
    }
}
