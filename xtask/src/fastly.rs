//! The Fastly Compute service (`fastly-compute/`) under Viceroy.
//!
//! - `test`: build the release .wasm (size reported), run the crate's unit tests inside
//!   Viceroy with `cargo nextest` as the runner, then the host integration tests that drive
//!   Viceroy over HTTP (the fixture suite end to end, shield hop, stores, cache classes).
//! - `serve`: the README's run command: the service on 127.0.0.1:7676 with the demo keys and
//!   a demo origin on 127.0.0.1:7677. Ctrl-C stops everything.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{banner, cargo, have, root, run, tools_dir};

/// The Viceroy version the `fastly` crate pin (=0.13.2) is tested with.
const VICEROY_VERSION: &str = "0.22.0";
/// Where `serve` listens.
const SERVE_ADDR: &str = "127.0.0.1:7676";
/// The demo origin's port (the `origin` backend in `fastly.toml`).
const ORIGIN_PORT: &str = "7677";
/// Size goal for the release .wasm.
const WASM_GOAL_BYTES: u64 = 1024 * 1024;

/// Every test of the service.
pub fn test() -> Result<(), String> {
    let viceroy = viceroy()?;
    let wasm = build_release()?;
    report_size(&wasm)?;

    banner("fastly: unit tests inside Viceroy (cargo nextest, runner = viceroy run)");
    ensure_nextest()?;
    let runner = format!("{} run -C {} --", viceroy.display(), root().join("fastly.toml").display());
    run(cargo().env("CARGO_TARGET_WASM32_WASIP1_RUNNER", runner).args([
        "nextest",
        "run",
        "--target",
        "wasm32-wasip1",
        "-p",
        "botauth-fastly",
        "--bins",
        "--no-fail-fast",
    ]))?;

    banner("fastly: integration tests against Viceroy (fixtures, shield hop, stores, cache classes)");
    run(cargo().env("BOTAUTH_FASTLY_WASM", &wasm).env("VICEROY", &viceroy).args([
        "test",
        "-p",
        "botauth-fastly",
        "--test",
        "viceroy",
        "--test",
        "conformance",
        "--",
        "--test-threads",
        "2",
    ]))
}

/// `cargo xtask serve`: service + demo origin until Ctrl-C.
pub fn serve(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("serve takes no arguments (got `{a}`)"));
    }
    let viceroy = viceroy()?;
    let wasm = build_release()?;
    run(cargo().args(["build", "-q", "-p", "botauth-fastly", "--example", "demo-origin"]))?;
    run(cargo().args(["build", "-q", "-p", "botauth-cli", "--bin", "botauth"]))?;
    let bin_dir = target_dir().join("debug");

    // Children share our process group, so Ctrl-C reaches them too; the guards also stop
    // them when serve returns for any other reason.
    let mut origin = Guard(
        Command::new(bin_dir.join("examples/demo-origin"))
            .arg(ORIGIN_PORT)
            .spawn()
            .map_err(|e| format!("cannot start the demo origin: {e}"))?,
    );
    let mut service = Guard(
        Command::new(&viceroy)
            .args(["serve", "-C"])
            .arg(root().join("fastly.toml"))
            .args(["--addr", SERVE_ADDR])
            .arg(&wasm)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", viceroy.display()))?,
    );
    let botauth = bin_dir.join("botauth");
    println!(
        "\nbotauth edge service: http://{SERVE_ADDR} (Viceroy), origin: http://127.0.0.1:{ORIGIN_PORT} (demo echo)\n\
         Trusted for local use only: the published RFC 9421 test key, agent https://signature-agent.test.\n\n\
         Send a signed request (paste into another terminal, from {root}):\n\n  \
         {botauth} sign --key {key} --request {req} --agent https://signature-agent.test --curl --url-base http://{SERVE_ADDR} | sh\n\n\
         Unsigned:   curl -i http://{SERVE_ADDR}/blog/hello\n\
         Tampered:   curl -i -H 'Signature-Input: sig1=(\"@authority\");keyid=\"x\";tag=\"web-bot-auth\"' -H 'Signature: sig1=:AAAA:' http://{SERVE_ADDR}/\n\n\
         Ctrl-C stops everything.\n",
        root = root().display(),
        botauth = botauth.display(),
        key = "fastly-compute/demo/rfc9421-test-key.jwk",
        req = "fastly-compute/demo/request.http",
    );
    let status = service.0.wait().map_err(|e| format!("viceroy: {e}"))?;
    origin.stop();
    if status.success() {
        Ok(())
    } else {
        Err(format!("viceroy exited with {status}"))
    }
}

/// A child process killed when dropped.
struct Guard(std::process::Child);

impl Guard {
    fn stop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The workspace target directory (honours `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        Some(p) => root().join(p),
        None => root().join("target"),
    }
}

/// Build the service for wasm32-wasip1 in release mode; the path of the .wasm.
fn build_release() -> Result<PathBuf, String> {
    banner("fastly: build botauth-fastly (release, wasm32-wasip1)");
    run(cargo().args(["build", "--release", "--target", "wasm32-wasip1", "-p", "botauth-fastly"]))?;
    let wasm = target_dir().join("wasm32-wasip1/release/botauth-fastly.wasm");
    if wasm.is_file() {
        Ok(wasm)
    } else {
        Err(format!("{} was not produced", wasm.display()))
    }
}

fn report_size(wasm: &Path) -> Result<(), String> {
    let bytes = std::fs::metadata(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?.len();
    println!(
        "botauth-fastly.wasm (release): {bytes} bytes ({:.1} KiB; goal < 1 MiB: {})",
        bytes as f64 / 1024.0,
        if bytes < WASM_GOAL_BYTES { "met" } else { "MISSED" }
    );
    Ok(())
}

/// Viceroy at the pinned version: on PATH, or installed into `.tools/viceroy`.
fn viceroy() -> Result<PathBuf, String> {
    let pinned = |bin: &Path| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == format!("viceroy {VICEROY_VERSION}"))
    };
    if have("viceroy") && pinned(Path::new("viceroy")) {
        return Ok(PathBuf::from("viceroy"));
    }
    let home_bin = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/viceroy");
    if pinned(&home_bin) {
        return Ok(home_bin);
    }
    let local_root = tools_dir().join("viceroy");
    let local = local_root.join("bin/viceroy");
    if !pinned(&local) {
        banner(&format!("fastly: installing Viceroy {VICEROY_VERSION} into {}", local_root.display()));
        run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["install", "viceroy", "--locked", "--version", VICEROY_VERSION, "--root"])
            .arg(&local_root))?;
    }
    if pinned(&local) {
        Ok(local)
    } else {
        Err(format!("Viceroy {VICEROY_VERSION} is not usable at {}", local.display()))
    }
}

/// `cargo nextest`, installed when missing.
fn ensure_nextest() -> Result<(), String> {
    if have("cargo-nextest") {
        return Ok(());
    }
    banner("fastly: installing cargo-nextest");
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
        "install",
        "cargo-nextest",
        "--locked",
    ]))
}
