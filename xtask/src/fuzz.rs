//! `cargo xtask fuzz [--seconds N] [--runs M] [--parallel J] [TARGET...]`: every `cargo fuzz`
//! target of `fuzz/` (or the ones named) for N seconds each (default 60), or until it has
//! executed M inputs if that comes first, J targets at a time (default 1, each on one core),
//! on the nightly toolchain; fails if any target crashes.
//!
//! Installs what is missing (`rustup toolchain install nightly`, `cargo install cargo-fuzz
//! --locked`), seeds each corpus from the fixture cases (`fixtures/cases/*.json`), then runs
//! the targets and lists every crash with its reproducer (`fuzz/artifacts/<target>/`), not
//! just the first. The report (`RELIABILITY.md`) keeps the rows of targets a run did not fuzz,
//! each with the run it came from. The long run of record is
//! `cargo xtask fuzz --runs 10000000 --seconds 1500 --parallel 2` (10 M execs per target, or
//! 25 min each, two at a time).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use sha2::Digest as _;

use crate::util::{banner, have, root, run as run_cmd};

/// The targets of `fuzz/Cargo.toml`: one per public entry point, plus a round trip.
const TARGETS: [&str; 12] = [
    "signature_input",
    "signature_agent",
    "signature_base",
    "verify",
    "sign_verify",
    "directory_document",
    "directory_fetch",
    "agent_uri",
    "verdict_auth",
    "freshness",
    "settings",
    "plugin_config",
];

/// What one invocation asks for.
struct Plan {
    seconds: u64,
    runs: Option<u64>,
    parallel: usize,
    targets: Vec<&'static str>,
    /// `--from-logs`: no fuzzing; report the targets' last runs from their libFuzzer logs (a
    /// run that was stopped before it wrote its report), with the flags that run had.
    from_logs: bool,
}

impl Plan {
    fn parse(args: &[String]) -> Result<Self, String> {
        let usage = || {
            format!(
                "usage: cargo xtask fuzz [--seconds N] [--runs M] [--parallel J] [--from-logs] [{}]",
                TARGETS.join(" | ")
            )
        };
        let positive = |v: Option<&String>, flag: &str| {
            v.and_then(|s| s.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} needs a positive whole number ({})", usage()))
        };
        let mut plan = Self { seconds: 60, runs: None, parallel: 1, targets: Vec::new(), from_logs: false };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => plan.seconds = positive(it.next(), "--seconds")?,
                "--runs" => plan.runs = Some(positive(it.next(), "--runs")?),
                "--from-logs" => plan.from_logs = true,
                "--parallel" => {
                    plan.parallel = usize::try_from(positive(it.next(), "--parallel")?).map_err(|e| e.to_string())?
                }
                t => match TARGETS.iter().find(|known| **known == t) {
                    Some(known) if !plan.targets.contains(known) => plan.targets.push(known),
                    Some(_) => {}
                    None => return Err(format!("unknown argument `{t}` ({})", usage())),
                },
            }
        }
        if plan.targets.is_empty() {
            plan.targets = TARGETS.to_vec();
        }
        Ok(plan)
    }

    /// How the run is described in the report and its last line.
    fn describe(&self) -> String {
        let mut s = match self.runs {
            Some(runs) => format!("until {} execs or {} s, whichever came first", group(runs), self.seconds),
            None => format!("for {} s", self.seconds),
        };
        if self.parallel > 1 {
            let _ = write!(s, ", {} targets at a time (one core each)", self.parallel);
        } else {
            s.push_str(", one after the other");
        }
        s
    }

    fn command_line(&self) -> String {
        let mut s = format!("cargo xtask fuzz --seconds {}", self.seconds);
        if let Some(runs) = self.runs {
            let _ = write!(s, " --runs {runs}");
        }
        if self.parallel > 1 {
            let _ = write!(s, " --parallel {}", self.parallel);
        }
        if self.targets.len() < TARGETS.len() {
            let _ = write!(s, " {}", self.targets.join(" "));
        }
        s
    }
}

/// One target's run: libFuzzer's figures, how long it ran, and its crash if any.
struct Outcome {
    target: &'static str,
    stats: Stats,
    seconds: u64,
    crash: Option<String>,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let plan = Plan::parse(args)?;
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target")).join("fuzz");
    let logs = target_dir.join("logs");
    if plan.from_logs {
        return report_from_logs(&plan, &logs);
    }
    ensure_tools()?;

    banner("cargo +nightly fuzz build");
    run_cmd(nightly().args(["fuzz", "build", "--target-dir"]).arg(&target_dir))?;

    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let started = Instant::now();
    let queue = Mutex::new(plan.targets.iter().copied().collect::<VecDeque<_>>());
    let done = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..plan.parallel.min(plan.targets.len()) {
            s.spawn(|| {
                while let Some(t) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                    let outcome = fuzz_one(t, &plan, &target_dir, &logs);
                    if let Ok(mut d) = done.lock() {
                        d.push(outcome);
                    }
                }
            });
        }
    });
    let mut results = done.into_inner().map_err(|_| "a fuzz lane panicked".to_string())?;
    results.sort_by_key(|o| plan.targets.iter().position(|t| *t == o.target));
    let mut failures: Vec<String> = Vec::new();
    for o in &results {
        if let Some(e) = &o.stats.error {
            failures.push(format!("{}: {e}", o.target));
        }
        if let Some(c) = &o.crash {
            failures.push(format!("{}: {c}", o.target));
        }
    }
    write_report(&plan, &results, started.elapsed().as_secs())?;
    if failures.is_empty() {
        println!("\nfuzz: {} targets ran {} without a crash (RELIABILITY.md updated)", results.len(), plan.describe());
        Ok(())
    } else {
        let mut msg = format!("{} of {} fuzz targets failed:", failures.len(), results.len());
        for f in &failures {
            let _ = write!(msg, "\n  - {f}");
        }
        let _ = write!(msg, "\nreproduce with: cargo +nightly fuzz run <target> <file>");
        Err(msg)
    }
}

/// `--from-logs`: the report of a run that was stopped before writing it, from the logs of the
/// targets it had finished. A log without libFuzzer's final `Done … runs in … second(s)` line
/// is an error, not a row.
fn report_from_logs(plan: &Plan, logs: &Path) -> Result<(), String> {
    let mut results = Vec::new();
    for t in &plan.targets {
        let path = logs.join(format!("{t}.log"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let seconds = text
            .lines()
            .find_map(|l| l.strip_prefix("Done ").and_then(|r| r.split_once(" runs in ")))
            .and_then(|(_, secs)| secs.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| {
                format!("{}: no final `Done … runs in … second(s)` line (the run did not finish)", path.display())
            })?;
        results.push(Outcome { target: t, stats: Stats::from_log(&text), seconds, crash: None });
    }
    write_report(plan, &results, 0)?;
    println!("fuzz: {} targets reported from {} (RELIABILITY.md updated)", results.len(), logs.display());
    Ok(())
}

/// Runs one target to its time or exec limit; its log goes to `<logs>/<target>.log`.
fn fuzz_one(t: &'static str, plan: &Plan, target_dir: &Path, logs: &Path) -> Outcome {
    let began = Instant::now();
    let fail = |e: String| Outcome {
        target: t,
        stats: Stats { error: Some(e), ..Stats::default() },
        seconds: began.elapsed().as_secs(),
        crash: None,
    };
    println!("==> fuzz {t} {}", plan.describe());
    let corpus = root().join("fuzz").join("corpus").join(t);
    if let Err(e) = std::fs::create_dir_all(&corpus) {
        return fail(format!("cannot create {}: {e}", corpus.display()));
    }
    let log_path = logs.join(format!("{t}.log"));
    let log = match std::fs::File::create(&log_path) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot create {}: {e}", log_path.display())),
    };
    // The writable corpus first, then the committed seeds (read only).
    let mut cmd = nightly();
    cmd.args(["fuzz", "run", t, "--target-dir"])
        .arg(target_dir)
        .arg(&corpus)
        .arg(root().join(SEEDS_DIR).join(t))
        .arg("--")
        .arg(format!("-max_total_time={}", plan.seconds))
        .arg("-rss_limit_mb=2048")
        .arg("-timeout=10")
        .arg("-print_final_stats=1")
        .stdout(std::process::Stdio::null())
        .stderr(log);
    if let Some(runs) = plan.runs {
        cmd.arg(format!("-runs={runs}"));
    }
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot start cargo fuzz: {e}")),
    };
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let stats = Stats::from_log(&text);
    let crash = (!status.success()).then(|| format!("{status}; reproducers: {}", artifacts(t).join(", ")));
    let mut line = format!(
        "{t}: {} execs in {} s, cov {}, ft {}, corpus {}, {}",
        stats.execs,
        began.elapsed().as_secs(),
        stats.cov,
        stats.features,
        stats.corpus,
        crash.as_deref().unwrap_or("no crash")
    );
    if crash.is_some() {
        // The fuzzer's own account of the crash.
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        for l in tail.iter().rev() {
            let _ = write!(line, "\n    {l}");
        }
    }
    println!("{line}");
    Outcome { target: t, stats, seconds: began.elapsed().as_secs(), crash }
}

/// `12345678` as `12,345,678`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What libFuzzer reported at the end of a run (`-print_final_stats=1` and its last status line).
#[derive(Default)]
struct Stats {
    execs: u64,
    execs_per_sec: u64,
    cov: u64,
    features: u64,
    corpus: u64,
    peak_rss_mb: u64,
    /// Set when the target could not be run at all (its log, its corpus directory).
    error: Option<String>,
}

impl Stats {
    fn from_log(log: &str) -> Self {
        let stat = |name: &str| {
            log.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_start_matches(':').trim().parse().ok())
                .unwrap_or(0)
        };
        // e.g. `#1982328 DONE   cov: 771 ft: 2961 corp: 532/62Kb lim: 4096 exec/s: 94396 rss: 422Mb`
        let last = log.lines().rev().find(|l| l.starts_with('#') && l.contains("cov:")).unwrap_or("");
        let after = |key: &str| {
            last.split_whitespace()
                .skip_while(|w| *w != key)
                .nth(1)
                .and_then(|v| v.split('/').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Self {
            execs: stat("stat::number_of_executed_units"),
            execs_per_sec: stat("stat::average_exec_per_sec"),
            cov: after("cov:"),
            features: after("ft:"),
            corpus: after("corp:"),
            peak_rss_mb: stat("stat::peak_rss_mb"),
            error: None,
        }
    }
}

/// The fuzz section of `RELIABILITY.md` (between its markers), rewritten for this run. Rows
/// of targets this run did not fuzz are kept from the section as it was, with the run they came
/// from, so a rerun of some targets does not drop the others' record.
fn write_report(plan: &Plan, results: &[Outcome], wall: u64) -> Result<(), String> {
    let file = root().join("RELIABILITY.md");
    let date = crate::util::sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let (mut rows, mut runs) = earlier_rows(&std::fs::read_to_string(&file).unwrap_or_default());
    runs.retain(|(d, _)| *d != date);
    let wall = if plan.from_logs {
        "stopped before its report; these rows are from its targets' logs".to_string()
    } else {
        format!("{} min of wall-clock time in all", wall.div_ceil(60))
    };
    runs.push((date.clone(), format!("`{}`: {}, {wall}", plan.command_line(), plan.describe())));
    for o in results {
        let s = &o.stats;
        let stopped = match (&o.crash, &s.error, plan.runs) {
            (Some(_), _, _) | (_, Some(_), _) => "crash/error",
            (None, None, Some(runs)) if s.execs >= runs => "execs",
            _ => "time",
        };
        let row = format!(
            "| `{}` | {date} | {} | {} s | {} | {stopped} | {} | {} | {} | {} MB | {} |",
            o.target,
            group(s.execs),
            o.seconds,
            s.execs_per_sec,
            s.cov,
            s.features,
            s.corpus,
            s.peak_rss_mb,
            o.crash.as_deref().or(s.error.as_deref()).unwrap_or("none")
        );
        rows.insert(o.target.to_string(), row);
    }
    let mut md = format!(
        "## Fuzzing\n\nWritten by `cargo xtask fuzz` ({}, `nproc` {}): each target starts from the committed \
         seeds (`{SEEDS_DIR}/`, generated from the fixtures by `cargo xtask fixtures`) and the local corpus. \
         `run` is the run a row comes from (listed below the table); `cov` and `ft` are libFuzzer's edge \
         coverage and feature counts at the end of it; `stopped` says which limit ended it.\n\n\
         | target | run | execs | time | execs/s | stopped | cov | ft | corpus | peak RSS | crash |\n\
         |---|---|---:|---:|---:|---|---:|---:|---:|---:|---|\n",
        cpu_model(),
        crate::util::sh("nproc", &[]),
    );
    for t in TARGETS {
        if let Some(row) = rows.get(t) {
            md.push_str(row);
            md.push('\n');
        }
    }
    md.push_str("\nRuns:\n\n");
    for (d, what) in &runs {
        if rows.values().any(|r| r.contains(&format!(" | {d} | "))) {
            let _ = writeln!(md, "- {d}: {what}");
        }
    }
    write_section(&file, "fuzz", &md)
}

/// The rows by target and the runs (date, description) of the fuzz section of `text`. A section
/// written before rows named their run (one run, described in its first paragraph) gets that
/// run's date put into each row.
fn earlier_rows(text: &str) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let (mut rows, mut runs) = (BTreeMap::new(), Vec::new());
    let (Some(b), Some(e)) = (text.find("<!-- fuzz: begin -->"), text.find("<!-- fuzz: end -->")) else {
        return (rows, runs);
    };
    let section = text.get(b..e).unwrap_or("");
    let old = section.lines().find_map(|l| l.strip_prefix("Written by `")).and_then(|rest| {
        let (cmd, after) = rest.split_once("` on ")?;
        let date = after.get(..after.find(" UTC")? + 4)?.to_string();
        Some((date, format!("`{cmd}`")))
    });
    let named = section.contains("| target | run |");
    // The first reports had neither `time` nor `stopped`: those cells are `–` when kept.
    let untimed = !section.contains("| stopped |");
    for line in section.lines() {
        if let Some(d) = line.strip_prefix("- ").and_then(|l| l.split_once(" UTC: ")) {
            runs.push((format!("{} UTC", d.0), d.1.to_string()));
        }
        let Some(target) = line.strip_prefix("| `").and_then(|l| l.split('`').next()) else { continue };
        let row = match (&old, named) {
            (_, true) => line.to_string(),
            (Some((date, _)), false) => {
                let mut cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
                if untimed && cells.len() == 8 {
                    cells.insert(2, "–");
                    cells.insert(4, "–");
                }
                cells.insert(1, date);
                format!("| {} |", cells.join(" | "))
            }
            (None, false) => continue,
        };
        rows.insert(target.to_string(), row);
    }
    if let (Some(o), false) = (old, named) {
        runs.push(o);
    }
    (rows, runs)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The targets compile (stable `cargo check`, no sanitizers): part of `cargo xtask test`, so a
/// change in core's API cannot leave a target broken until the next fuzz run.
pub fn check_targets() -> Result<(), String> {
    let target_dir = root().join("target").join("fuzz-check");
    run_cmd(
        crate::util::cargo()
            .args(["check", "--manifest-path", "fuzz/Cargo.toml", "--bins", "--locked", "--target-dir"])
            .arg(target_dir),
    )
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

/// The committed seed corpus: `fuzz/seeds/<target>/<sha-256 prefix>`, written by
/// `cargo xtask fixtures` from the fixture files and checked by `cargo xtask fixtures --check`.
pub const SEEDS_DIR: &str = "fuzz/seeds";

/// Seeds by target, then by file name (a SHA-256 prefix of the content: one file per distinct
/// input), all from the committed fixtures: whole requests (text form of `fuzz/src/lib.rs`)
/// for `verify` and `signature_base`, field values for the parsers, directory bodies and
/// URIs, response fields for `freshness`, configuration texts for `settings` and
/// `plugin_config`.
pub fn seeds() -> Result<BTreeMap<String, BTreeMap<String, Vec<u8>>>, String> {
    let mut out = Seeds::default();
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
            seed_case(&mut out, case);
        }
    }
    seed_directory_fetches(&mut out)?;
    // The verdict-auth key item: a kid line, then a secret.
    out.add("settings", [&[4u8][..], b"k1\n0123456789abcdef0123456789abcdef"].concat());
    Ok(out.0)
}

#[derive(Default)]
struct Seeds(BTreeMap<String, BTreeMap<String, Vec<u8>>>);

impl Seeds {
    fn add(&mut self, target: &str, content: impl Into<Vec<u8>>) {
        let content = content.into();
        let digest = sha2::Sha256::digest(&content);
        let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        self.0.entry(target.into()).or_default().insert(name, content);
    }
}

fn seed_case(out: &mut Seeds, case: &serde_json::Value) {
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
        match hn.to_ascii_lowercase().as_str() {
            "signature-input" | "signature" => out.add("signature_input", hv),
            "signature-agent" => out.add("signature_agent", hv),
            _ => {}
        }
    }
    // `sign_verify` builds its request from structured input (`arbitrary`): raw request bytes
    // decode to some input and carry the fixtures' tokens.
    for t in ["verify", "signature_base", "sign_verify"] {
        out.add(t, whole.as_str());
    }
    // `verdict_auth` reads strings: the verdict header a host would send for this case.
    if let (Some(keyid), Some(label)) = (case.pointer("/expect/keyid"), case.pointer("/expect/label")) {
        let agent = case
            .pointer("/expect/agent")
            .and_then(|a| a.as_str())
            .map(|a| format!("agent=\"{a}\";"))
            .unwrap_or_default();
        out.add(
            "verdict_auth",
            format!(
                "t=1735689700, kid=\"k1\", mac=:AAAA:verified;{agent}keyid={keyid};label={label}GET{}{}",
                req["authority"].as_str().unwrap_or(""),
                req["target"].as_str().unwrap_or("/")
            ),
        );
    }
    // Configuration texts: the `settings` target takes an item selector byte, then the text.
    let policy = case.get("policy").cloned().unwrap_or_else(|| serde_json::json!({}));
    out.add("settings", [&[0u8][..], policy.to_string().as_bytes()].concat());
    if let Some(claims) = case.get("claims") {
        out.add("settings", [&[1u8][..], claims.to_string().as_bytes()].concat());
    }
    if let Some(config) = case.pointer("/directories/config") {
        out.add("settings", [&[2u8][..], config.to_string().as_bytes()].concat());
    }
    for jwks in case["keys"].as_object().into_iter().flat_map(|k| k.values()) {
        out.add("settings", [&[3u8][..], jwks.to_string().as_bytes()].concat());
    }
    let mut plugin = serde_json::json!({"keys": case["keys"], "policy": policy, "scheme": req["scheme"]});
    if let Some(claims) = case.get("claims") {
        plugin["claims"] = claims.clone();
    }
    if let Some(config) = case.pointer("/directories/config") {
        plugin["directories"] = config.clone();
    }
    out.add("plugin_config", plugin.to_string());
}

/// Directory bodies, agent URIs and response fields from `fixtures/directories/fetch.json`.
fn seed_directory_fetches(out: &mut Seeds) -> Result<(), String> {
    let file = root().join("fixtures/directories/fetch.json");
    let json = read_json(&file)?;
    let now = json["now"].as_u64().unwrap_or(1_735_689_700);
    for case in json["cases"].as_array().into_iter().flatten() {
        if let Some(body) = case["response"]["body"].as_str() {
            out.add("directory_document", body);
        }
        for key in ["agent", "directory"] {
            if let Some(uri) = case["agent"][key].as_str() {
                out.add("agent_uri", uri);
            }
        }
        let mut fields = String::new();
        for h in case["response"]["headers"].as_array().into_iter().flatten() {
            if let (Some(n), Some(v)) = (h[0].as_str(), h[1].as_str()) {
                let _ = writeln!(fields, "{n}: {v}");
            }
        }
        // `directory_fetch` (structured input): the status, the fields and the body, raw.
        let status = case["response"]["status"].as_u64().unwrap_or(200);
        let body = case["response"]["body"].as_str().unwrap_or("");
        out.add("directory_fetch", format!("{status}\n{fields}\n{body}"));
        // `freshness` input: now (u64), the bounds' four u16 (defaults: min_ttl 60, max_ttl
        // 86 400, max_stale ≈ 65 535, max_negative_ttl 300), failures, then the fields.
        let mut seed = now.to_le_bytes().to_vec();
        for v in [59u16, 26_340, u16::MAX, 299] {
            seed.extend(v.to_le_bytes());
        }
        seed.push(1);
        seed.extend(fields.as_bytes());
        out.add("freshness", seed);
    }
    Ok(())
}

/// Write [`seeds`] into `dir` (one directory per target), removing stale files.
pub fn write_seeds(dir: &Path) -> Result<usize, String> {
    let seeds = seeds()?;
    let _ = std::fs::remove_dir_all(dir);
    let mut n = 0;
    for (target, files) in &seeds {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        for (name, content) in files {
            std::fs::write(d.join(name), content).map_err(|e| format!("cannot write {name}: {e}"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Compare the committed seeds with [`seeds`]; the differences, named.
pub fn check_seeds(dir: &Path) -> Result<Vec<String>, String> {
    let seeds = seeds()?;
    let mut differ = Vec::new();
    for (target, files) in &seeds {
        for (name, content) in files {
            if std::fs::read(dir.join(target).join(name)).ok().as_deref() != Some(content.as_slice()) {
                differ.push(format!("{SEEDS_DIR}/{target}/{name} (missing or differs)"));
            }
        }
        let on_disk = std::fs::read_dir(dir.join(target)).map(|d| d.flatten().count()).unwrap_or(0);
        if on_disk != files.len() {
            differ.push(format!("{SEEDS_DIR}/{target}: {on_disk} files, {} generated", files.len()));
        }
    }
    Ok(differ)
}

/// A fixture file as JSON.
fn read_json(file: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// Replace the part of `file` between `<!-- {name}: begin -->` and `<!-- {name}: end -->`
/// with `body`; a missing file or section is created (the file with its title).
pub(crate) fn write_section(file: &Path, name: &str, body: &str) -> Result<(), String> {
    let (begin, end) = (format!("<!-- {name}: begin -->"), format!("<!-- {name}: end -->"));
    let text = std::fs::read_to_string(file).unwrap_or_else(|_| "# Reliability\n".into());
    let section = format!("{begin}\n{body}{end}");
    let new = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{section}{}", &text[..b], &text[e + end.len()..]),
        _ => format!("{}\n{section}\n", text.trim_end()),
    };
    std::fs::write(file, new).map_err(|e| format!("cannot write {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::earlier_rows;

    #[test]
    fn a_rerun_keeps_the_other_targets_rows_with_their_run() {
        // A section of one run, written before rows named their run.
        let one_run = "<!-- fuzz: begin -->\n## Fuzzing\n\nWritten by `cargo xtask fuzz --seconds 9` on 2026-12-03 \
                       23:52 UTC (CPU, `nproc` 2): 2 targets.\n\n| target | execs | time | execs/s | stopped | cov |\n\
                       |---|---:|---:|---:|---|---:|\n| `agent_uri` | 20,000 | 1 s | 20000 | execs | 470 |\n\
                       | `freshness` | 20,000 | 2 s | 10000 | execs | 577 |\n<!-- fuzz: end -->\n";
        let (rows, runs) = earlier_rows(one_run);
        assert_eq!(rows["agent_uri"], "| `agent_uri` | 2026-12-03 23:52 UTC | 20,000 | 1 s | 20000 | execs | 470 |");
        assert_eq!(rows.len(), 2);
        // The first format had no `time` and `stopped` columns: they are `–` in a kept row.
        let untimed =
            "<!-- fuzz: begin -->\nWritten by `cargo xtask fuzz --seconds 300` on 2026-12-03 14:22 UTC (CPU)\n\
                       | target | execs | execs/s | cov | ft | corpus | peak RSS | crash |\n\
                       | `verify` | 2136208 | 7097 | 3928 | 14843 | 1967 | 497 MB | none |\n<!-- fuzz: end -->\n";
        assert_eq!(
            earlier_rows(untimed).0["verify"],
            "| `verify` | 2026-12-03 14:22 UTC | 2136208 | – | 7097 | – | 3928 | 14843 | 1967 | 497 MB | none |"
        );
        assert_eq!(runs, [("2026-12-03 23:52 UTC".to_string(), "`cargo xtask fuzz --seconds 9`".to_string())]);
        // A section whose rows name their runs is read back as it is.
        let named = "<!-- fuzz: begin -->\n| target | run | execs |\n|---|---|---:|\n\
                     | `verify` | 2026-12-04 01:00 UTC | 5 |\n\nRuns:\n\n- 2026-12-04 01:00 UTC: `cargo xtask fuzz`: x\n\
                     <!-- fuzz: end -->\n";
        let (rows, runs) = earlier_rows(named);
        assert_eq!(rows["verify"], "| `verify` | 2026-12-04 01:00 UTC | 5 |");
        assert_eq!(runs, [("2026-12-04 01:00 UTC".to_string(), "`cargo xtask fuzz`: x".to_string())]);
        assert!(earlier_rows("# Reliability\n").0.is_empty());
    }
}
