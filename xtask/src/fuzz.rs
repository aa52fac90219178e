//! `cargo xtask fuzz [--seconds N] [TARGET...]`: every `cargo fuzz` target of `fuzz/` for N
//! seconds each (default 60), on the nightly toolchain; fails if any target crashes.
//!
//! Installs what is missing (`rustup toolchain install nightly`, `cargo install cargo-fuzz
//! --locked`), seeds each corpus from the fixture cases (`fixtures/cases/*.json`), then runs
//! the targets one after the other and lists every crash with its reproducer
//! (`fuzz/artifacts/<target>/`), not just the first.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{banner, have, root, run as run_cmd};

/// The targets of `fuzz/Cargo.toml`: one per public entry point, plus a round trip.
const TARGETS: [&str; 9] = [
    "signature_input",
    "signature_agent",
    "signature_base",
    "verify",
    "sign_verify",
    "directory_document",
    "directory_fetch",
    "agent_uri",
    "verdict_auth",
];

pub fn run(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s| *s > 0)
                    .ok_or("--seconds needs a positive whole number")?;
            }
            t if TARGETS.contains(&t) => only.push(t),
            other => {
                return Err(format!(
                    "unknown argument `{other}` (usage: cargo xtask fuzz [--seconds N] [{}])",
                    TARGETS.join(" | ")
                ))
            }
        }
    }
    let targets: Vec<&str> = if only.is_empty() { TARGETS.to_vec() } else { only };

    ensure_tools()?;
    let seeded = seed_corpora()?;
    println!("seeded the corpora with {seeded} inputs from fixtures/cases");
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target")).join("fuzz");

    banner("cargo +nightly fuzz build");
    run_cmd(nightly().args(["fuzz", "build", "--target-dir"]).arg(&target_dir))?;

    let mut failures = Vec::new();
    for t in &targets {
        banner(&format!("fuzz {t} for {seconds} s"));
        let status = nightly()
            .args(["fuzz", "run", t, "--target-dir"])
            .arg(&target_dir)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=2048")
            .arg("-timeout=10")
            .arg("-print_final_stats=1")
            .status()
            .map_err(|e| format!("cannot start cargo fuzz: {e}"))?;
        if !status.success() {
            failures.push(format!("{t}: {status}; reproducers: {}", artifacts(t).join(", ")));
        }
    }
    if failures.is_empty() {
        println!("\nfuzz: {} targets ran {seconds} s each without a crash", targets.len());
        Ok(())
    } else {
        let mut msg = format!("{} of {} fuzz targets failed:", failures.len(), targets.len());
        for f in &failures {
            let _ = write!(msg, "\n  - {f}");
        }
        let _ = write!(msg, "\nreproduce with: cargo +nightly fuzz run <target> <file>");
        Err(msg)
    }
}

/// `cargo +nightly` through rustup, clear of the variables the outer (stable) cargo set.
fn nightly() -> Command {
    let mut c = Command::new("cargo");
    c.arg("+nightly").current_dir(root()).env_remove("RUSTUP_TOOLCHAIN").env_remove("RUSTC").env_remove("CARGO");
    c
}

fn ensure_tools() -> Result<(), String> {
    if !have("rustup") {
        return Err("fuzzing needs rustup (for the nightly toolchain): https://rustup.rs".into());
    }
    let toolchains =
        Command::new("rustup").args(["toolchain", "list"]).output().map_err(|e| format!("cannot run rustup: {e}"))?;
    if !String::from_utf8_lossy(&toolchains.stdout).lines().any(|l| l.starts_with("nightly")) {
        run_cmd(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    if !have("cargo-fuzz") {
        run_cmd(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

fn artifacts(target: &str) -> Vec<String> {
    let dir = root().join("fuzz").join("artifacts").join(target);
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path().display().to_string()).collect())
        .unwrap_or_default();
    found.sort();
    if found.is_empty() {
        found.push(format!("none in {}", dir.display()));
    }
    found
}

/// Write every fixture request into the corpora: whole requests (text form of
/// `fuzz/src/lib.rs`) for `verify` and `signature_base`, field values for the parsers.
fn seed_corpora() -> Result<usize, String> {
    let corpus = root().join("fuzz").join("corpus");
    let mut n = 0;
    let cases_dir = root().join("fixtures").join("cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .map_err(|e| format!("cannot read {}: {e}", cases_dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for file in files {
        let json = read_json(&file)?;
        for case in json["cases"].as_array().into_iter().flatten() {
            let name = case_name(case);
            let req = &case["request"];
            let mut whole = format!(
                "{} {} {} {}\n",
                req["method"].as_str().unwrap_or("GET"),
                req["target"].as_str().unwrap_or("/"),
                req["authority"].as_str().unwrap_or("example.com"),
                case["now"].as_u64().unwrap_or(0)
            );
            for h in req["headers"].as_array().into_iter().flatten() {
                let (Some(hn), Some(hv)) = (h[0].as_str(), h[1].as_str()) else { continue };
                let _ = writeln!(whole, "{hn}: {hv}");
                let field_target = match hn.to_ascii_lowercase().as_str() {
                    "signature-input" | "signature" => Some("signature_input"),
                    "signature-agent" => Some("signature_agent"),
                    _ => None,
                };
                if let Some(t) = field_target {
                    let kind = hn.to_ascii_lowercase();
                    n += seed(&corpus.join(t), &format!("fixture-{name}-{kind}"), hv)?;
                }
            }
            for t in ["verify", "signature_base"] {
                n += seed(&corpus.join(t), &format!("fixture-{name}"), &whole)?;
            }
        }
    }
    n += seed_directory_corpora(&corpus)?;
    Ok(n)
}

/// Directory bodies and agent URIs from `fixtures/directories/fetch.json`.
fn seed_directory_corpora(corpus: &Path) -> Result<usize, String> {
    let file = root().join("fixtures/directories/fetch.json");
    let json = read_json(&file)?;
    let mut n = 0;
    for case in json["cases"].as_array().into_iter().flatten() {
        let name = case_name(case);
        if let Some(body) = case["response"]["body"].as_str() {
            n += seed(&corpus.join("directory_document"), &format!("fixture-{name}"), body)?;
        }
        for key in ["agent", "directory"] {
            if let Some(uri) = case["agent"][key].as_str() {
                n += seed(&corpus.join("agent_uri"), &format!("fixture-{name}-{key}"), uri)?;
            }
        }
    }
    Ok(n)
}

/// A fixture file as JSON.
fn read_json(file: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// A case's name as a corpus file name.
fn case_name(case: &serde_json::Value) -> String {
    case["name"]
        .as_str()
        .unwrap_or("case")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

fn seed(dir: &Path, name: &str, content: &str) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(1)
}
