//! `cargo xtask soak [--seconds N]`: the soak of issue 11, a benchmark-style run.
//!
//! Builds both wasm modules, then runs the soak tests (`fastly-compute/tests/soak.rs` under
//! Viceroy, `proxy-wasm-filter/tests/envoy_soak.rs` in Envoy with two workers) for N seconds
//! each (default 60) at 64 connections, and writes what their JSON reports say into the
//! `soak` section of `RELIABILITY.md`: transport errors, wrong verdicts, wrong upstream
//! views, p50/p99 per traffic class, and the RSS of Viceroy and Envoy sampled every second
//! with its growth after the warm-up. Fails when a run is not correct (the tests assert it).

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use crate::util::{banner, cargo, root, run as run_cmd};

/// The memory goal: RSS after the warm-up grows by at most this much.
const GROWTH_GOAL_PCT: f64 = 10.0;

pub fn run(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s| *s >= 6)
                    .ok_or("--seconds needs a whole number of at least 6")?;
            }
            other => return Err(format!("unknown argument `{other}` (usage: cargo xtask soak [--seconds N])")),
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    let reports = target.join("soak");
    let _ = std::fs::remove_dir_all(&reports);
    let viceroy = crate::fastly::viceroy()?;
    let service = crate::fastly::build_release()?;
    let filter = crate::envoy::build_wasm()?;
    let envoy = crate::envoy::ensure_envoy()?;
    let secs = seconds.to_string();

    banner(&format!("soak: Fastly service under Viceroy, {seconds} s"));
    run_cmd(
        cargo()
            .args(["test", "--release", "-p", "botauth-fastly", "--test", "soak", "--", "--nocapture"])
            .env("BOTAUTH_FASTLY_WASM", &service)
            .env("VICEROY", &viceroy)
            .env("BOTAUTH_SOAK_SECS", &secs)
            .env("BOTAUTH_SOAK_REPORT", &reports),
    )?;
    banner(&format!("soak: filter in Envoy (2 workers), {seconds} s"));
    run_cmd(
        cargo()
            .args(["test", "--release", "-p", "botauth-proxy-wasm", "--test", "envoy_soak", "--", "--nocapture"])
            .env("BOTAUTH_WASM", &filter)
            .env("BOTAUTH_ENVOY", &envoy)
            .env("BOTAUTH_SOAK_SECS", &secs)
            .env("BOTAUTH_SOAK_REPORT", &reports),
    )?;

    let mut body = format!(
        "## Soak\n\nWritten by `cargo xtask soak --seconds {seconds}`: each host for {seconds} s on 64 keep-alive \
         connections with testkit's mixed stream (`testkit/src/soak.rs`). Every answer is checked against its \
         request's expected verdict, and the origin's records against what must reach it: a rejected request \
         never, a forwarded one exactly once with exactly its verdict header. RSS is the host's process tree, \
         sampled every second; growth is from the end of the warm-up (the first sixth) to the highest sample \
         after it (goal: within {GROWTH_GOAL_PCT} %). Latencies include the client, which shares the machine's \
         cores with the host.\n\n{}\n",
        crate::bench::machine()
    );
    for file in ["fastly.json", "envoy.json"] {
        let path = reports.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let report: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        body.push_str(&section(&report));
    }
    let file = root().join("RELIABILITY.md");
    crate::fuzz::write_section(&file, "soak", &body)?;
    println!("wrote the soak section of {}", file.display());
    Ok(())
}

/// One host's part of the section.
fn section(r: &Value) -> String {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let mut s = format!(
        "### {}\n\n- {} requests in {:.0} s on {} connections: **{:.0} req/s**\n\
         - transport errors: **{}**; wrong verdicts: **{}**; wrong upstream views: **{}** (goal: 0, 0, 0)\n",
        r["host"].as_str().unwrap_or("?"),
        n(&r["requests"]),
        f(&r["seconds"]),
        n(&r["connections"]),
        f(&r["rate"]),
        n(&r["transport_errors"]),
        n(&r["wrong_verdicts"]),
        n(&r["wrong_upstream"]),
    );
    for m in r["memory"].as_array().into_iter().flatten() {
        let growth = f(&m["growth_pct"]);
        let _ = writeln!(
            s,
            "- RSS of {}: {} KiB after the warm-up, at most {} KiB, {} KiB at the end: growth **{growth:.1} %** ({})",
            m["name"].as_str().unwrap_or("?"),
            n(&m["after_warm_up_kib"]),
            n(&m["max_kib"]),
            n(&m["end_kib"]),
            if growth <= GROWTH_GOAL_PCT { "flat within the goal" } else { "OVER the goal" }
        );
    }
    for e in r["examples"].as_array().into_iter().flatten().take(5) {
        let _ = writeln!(s, "- example failure: `{}`", e.as_str().unwrap_or(""));
    }
    s.push_str("\n| class | requests | wrong | p50 | p99 |\n|---|---:|---:|---:|---:|\n");
    if let Some(classes) = r["classes"].as_object() {
        for (name, c) in classes {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} µs | {} µs |",
                n(&c["requests"]),
                n(&c["wrong"]),
                n(&c["p50_us"]),
                n(&c["p99_us"])
            );
        }
    }
    s.push('\n');
    s
}
