//! The Fastly Compute service (`fastly-compute/`) under Viceroy.
//!
//! - `test`: build the release .wasm (size reported), run the crate's unit tests inside
//!   Viceroy with `cargo nextest` as the runner, then the host integration tests that drive
//!   Viceroy over HTTP (the fixture suite end to end, shield hop, stores, cache classes,
//!   key directories, verdict authentication, and `faults.rs`: failing directories, origins
//!   and store items).
//! - `serve`: the README's run command: the service on 127.0.0.1:7676 with the demo keys, a
//!   demo origin on 127.0.0.1:7677 and the demo agent's key directory on 127.0.0.1:7678.
//!   Ctrl-C stops everything.
//! - `bench`: wrk against Viceroy (passthrough build, unsigned, signed), for `cargo xtask
//!   bench`; alone: `cargo xtask serve --bench`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{banner, cargo, have, root, run, tools_dir};

/// The Viceroy version the `fastly` crate pin (=0.13.2) is tested with.
const VICEROY_VERSION: &str = "0.22.0";
/// Where `serve` listens.
const SERVE_ADDR: &str = "127.0.0.1:7676";
/// The demo origin's port (the `origin` backend in `fastly.toml`).
const ORIGIN_PORT: &str = "7677";
/// The demo key directory's port (the `demo_directory` backend in `fastly.toml`).
const DIRECTORY_PORT: &str = "7678";
/// The demo agent, whose only key is in its directory (the `directories` setting in `fastly.toml`).
const DEMO_AGENT: &str = "https://demo-agent.test";
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

    banner("fastly: integration tests against Viceroy (fixtures, shield hop, stores, cache classes, key directories, verdict auth, faults, the short soak)");
    run(cargo().env("BOTAUTH_FASTLY_WASM", &wasm).env("VICEROY", &viceroy).args([
        "test",
        "-p",
        "botauth-fastly",
        "--test",
        "viceroy",
        "--test",
        "conformance",
        "--test",
        "directories",
        "--test",
        "verdict_auth",
        "--test",
        "faults",
        "--test",
        "soak",
        "--",
        "--test-threads",
        "2",
    ]))
}

/// `cargo xtask serve`: service + demo origin + demo key directory until Ctrl-C. `cargo xtask serve --bench`
/// runs only the edge load bench ([`bench`]) and prints its Markdown.
pub fn serve(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        None => {}
        Some("--bench") => {
            println!("{}", bench()?);
            return Ok(());
        }
        Some(a) => return Err(format!("serve takes no arguments but --bench (got `{a}`)")),
    }
    let viceroy = viceroy()?;
    let wasm = build_release()?;
    run(cargo().args([
        "build",
        "-q",
        "-p",
        "botauth-fastly",
        "--example",
        "demo-origin",
        "--example",
        "demo-directory",
    ]))?;
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
    // Up before Viceroy, which checks its backends at startup.
    let mut directory = Guard(
        Command::new(bin_dir.join("examples/demo-directory"))
            .arg(DIRECTORY_PORT)
            .spawn()
            .map_err(|e| format!("cannot start the demo key directory: {e}"))?,
    );
    wait_port(DIRECTORY_PORT.parse().map_err(|e| format!("{e}"))?)?;
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
        "\nbotauth edge service: http://{SERVE_ADDR} (Viceroy), origin: http://127.0.0.1:{ORIGIN_PORT} (demo echo),\n\
         key directory of {DEMO_AGENT}: http://127.0.0.1:{DIRECTORY_PORT}/.well-known/http-message-signatures-directory\n\
         Trusted for local use only: the published RFC 9421 test key (pinned in botauth_jwks) for agent\n\
         https://signature-agent.test, and the TEST ONLY demo agent key, which is only in its directory.\n\n\
         Send a request signed with the directory key (paste into another terminal, from {root}): the\n\
         service fetches {DEMO_AGENT}'s directory on first use, and the origin sees a verified verdict:\n\n  \
         {botauth} sign --key fastly-compute/demo/demo-agent-TEST-ONLY.jwk --request fastly-compute/demo/request.http --agent {DEMO_AGENT} --curl --url-base http://{SERVE_ADDR} | sh\n\n\
         Signed with the pinned RFC 9421 test key:\n\n  \
         {botauth} sign --key fastly-compute/demo/rfc9421-test-key.jwk --request fastly-compute/demo/request.http --agent https://signature-agent.test --curl --url-base http://{SERVE_ADDR} | sh\n\n\
         Unsigned:   curl -i http://{SERVE_ADDR}/blog/hello\n\
         Tampered:   curl -i -H 'Signature-Input: sig1=(\"@authority\");keyid=\"x\";tag=\"web-bot-auth\"' -H 'Signature: sig1=:AAAA:' http://{SERVE_ADDR}/\n\n\
         Ctrl-C stops everything.\n",
        root = root().display(),
        botauth = botauth.display(),
    );
    let status = service.0.wait().map_err(|e| format!("viceroy: {e}"))?;
    origin.stop();
    directory.stop();
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
pub(crate) fn build_release() -> Result<PathBuf, String> {
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
pub(crate) fn viceroy() -> Result<PathBuf, String> {
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

/// `cargo xtask bench` (Fastly part): wrk against Viceroy for a no-op passthrough build,
/// unsigned traffic and signed (verified) traffic in one run; the latency verification
/// adds over passthrough, compared with one native OpenSSL Ed25519 verify. Returns the
/// Markdown section for `BENCHMARKS.md`.
pub fn bench() -> Result<String, String> {
    let viceroy = viceroy()?;
    crate::util::ensure_wrk()?;
    let secs: u64 =
        std::env::var("BOTAUTH_BENCH_SECS").ok().and_then(|s| s.parse::<f64>().ok()).map_or(10, |s| s.max(3.0) as u64);

    banner("fastly bench: builds (passthrough baseline, service, demo origin, botauth)");
    let passthrough = build_variant("bench-passthrough", "botauth-fastly-passthrough.wasm")?;
    let service = build_release()?;
    let size = std::fs::metadata(&service).map_err(|e| e.to_string())?.len();
    let bin_dir = build_bench_tools()?;

    // A fixed clock and a nonce-free signature keep every request of the run valid.
    let created: u64 = 1_735_689_600;
    let signed = signed_demo_headers(&bin_dir.join("botauth"), created)?;
    let origin_port = free_port()?;
    let dir = std::env::temp_dir().join(format!("botauth-fastly-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let manifest = dir.join("fastly.toml");
    let now = (created + 10).to_string();
    let settings = [("policy", ENFORCE_TEST_KEYS), ("testing_now", now.as_str())];
    std::fs::write(&manifest, local_manifest("botauth-bench", origin_port, &[(RFC_AGENT_ITEM, DEMO_JWKS)], &settings))
        .map_err(|e| e.to_string())?;
    let mut origin = quiet_origin(&bin_dir, origin_port)?;

    let unsigned = vec!["Host: 127.0.0.1:7676".to_string()];
    // Both builds run side by side and the cases alternate over several rounds, so drift in
    // the machine's background load hits every case alike; each figure is the median round.
    let mut instances = Vec::new();
    for wasm in [&passthrough, &service] {
        let port = free_port()?;
        instances.push((port, quiet_service(&viceroy, &manifest, port, wasm, None)?));
    }
    let (base_port, svc_port) = (instances[0].0, instances[1].0);
    let cases: [(&str, u16, &Vec<String>); 3] = [
        ("passthrough build (no verification)", base_port, &unsigned),
        ("unsigned traffic", svc_port, &unsigned),
        ("signed traffic (verified)", svc_port, &signed),
    ];
    for (name, port, headers) in cases {
        let check = wrk(port, headers, 1)?;
        if check.non_2xx > 0 {
            return Err(format!("{name}: {} non-2xx answers in the warm-up; the bench setup is wrong", check.non_2xx));
        }
    }
    let rounds = 5;
    let per_run = (secs / rounds).max(1);
    let mut runs: Vec<Vec<Wrk>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for round in 1..=rounds {
        banner(&format!("fastly bench: round {round}/{rounds}"));
        for (i, (name, port, headers)) in cases.iter().enumerate() {
            let r = wrk(*port, headers, per_run)?;
            if r.non_2xx > 0 {
                return Err(format!("{name}: {} non-2xx answers", r.non_2xx));
            }
            println!("{name}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs", r.rps, r.p50_us, r.p99_us);
            runs[i].push(r);
        }
    }
    // A forged-signature flood at 64 connections: the verified request with the signature's
    // S changed (R stays a valid point, the key is known), so each costs a whole verify.
    let forged = forged_signature(&signed)?;
    let probe = wrk_with(svc_port, &forged, 1, 1)?;
    if probe.non_2xx == 0 {
        return Err("the forged flood request was not rejected; the bench setup is wrong".into());
    }
    let (mut flood, mut verified64) = (Vec::new(), Vec::new());
    for round in 1..=3 {
        banner(&format!("fastly bench: forged flood round {round}/3 (64 connections)"));
        flood.push(wrk_with(svc_port, &forged, per_run, 64)?.rps);
        verified64.push(wrk_with(svc_port, &signed, per_run, 64)?.rps);
    }
    drop(instances);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let mut rows = Vec::new();
    for ((name, _, _), rs) in cases.iter().zip(&runs) {
        let r = Wrk {
            rps: median(&mut rs.iter().map(|r| r.rps).collect()),
            p50_us: median(&mut rs.iter().map(|r| r.p50_us).collect()),
            p99_us: median(&mut rs.iter().map(|r| r.p99_us).collect()),
            non_2xx: 0,
        };
        rows.push((*name, r));
    }
    origin.stop();
    let _ = std::fs::remove_dir_all(&dir);

    let (flood_rps, verified64_rps) = (median(&mut flood), median(&mut verified64));
    let openssl_us = openssl_verify_us()?;
    let (base, unsigned_r, signed_r) = (&rows[0].1, &rows[1].1, &rows[2].1);
    let added = signed_r.p50_us - base.p50_us;
    let unsigned_pct = (base.rps - unsigned_r.rps) / base.rps * 100.0;
    let mut md = format!(
        "\n## Fastly Compute service under Viceroy {VICEROY_VERSION} (wrk, 1 connection so latency is service time, not queueing; {rounds} alternating rounds of {per_run} s per case, medians)\n\n\
         Viceroy instantiates the module per request, so absolute numbers are Viceroy's, not a POP's; the\n\
         differences between the rows are the service's. Machine: {} cores, shared with other jobs.\n\n\
         | case | requests/s | p50 | p99 |\n|---|---:|---:|---:|\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (name, r) in &rows {
        md.push_str(&format!("| {name} | {:.0} | {:.0} µs | {:.0} µs |\n", r.rps, r.p50_us, r.p99_us));
    }
    md.push_str(&format!(
        "\n- Latency verification adds (p50 signed − p50 passthrough): **{added:.0} µs**\n\
         - One native OpenSSL Ed25519 verify (`openssl speed -seconds 3 ed25519`): **{openssl_us:.1} µs**\n\
         - Ratio added / OpenSSL verify: **{:.1}** (goal ≤ 2; the seed Lua + FFI plugin: 40–60)\n\
         - Where a signed request's time goes inside the service (keys, settings, cold and warm verify): \
         the next section, \"The edge's cold cost\"\n\
         - Unsigned throughput vs passthrough: {:+.1}% (goal: within 5%)\n\
         - Release .wasm: {size} bytes ({:.0} KiB; goal < 1 MiB)\n\
         - Forged-signature flood, 64 connections: forged requests whose `R` is a valid point, over a known key, \
         rejected `403 signature_invalid` at **{flood_rps:.0}/s**; verified requests at {verified64_rps:.0}/s \
         (Viceroy, this machine's 2 cores; a POP spreads the work over many). The defence is \
         `invalid_signature_limit` (Edge Rate Limiting penalty box per client address).\n",
        added / openssl_us,
        -unsigned_pct,
        size as f64 / 1024.0
    ));
    Ok(md)
}

/// The demo agent's key set: the published RFC 9421 test key (test keys are allowed in the
/// benches' policy).
const DEMO_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"}]}"#;

/// The `botauth_jwks` item key of `https://signature-agent.test`.
const RFC_AGENT_ITEM: &str = "https_3A_2F_2Fsignature-agent.test";

/// The benches' policy: enforce mode, test keys allowed.
const ENFORCE_TEST_KEYS: &str = r#"{"mode":"enforce","allow_test_keys":true}"#;

/// A Viceroy manifest for the benches: the `origin` backend on `origin_port`, `botauth_jwks`
/// with `keys` and `botauth_settings` with `settings` (item key, value; values are written
/// as TOML literal strings).
fn local_manifest(name: &str, origin_port: u16, keys: &[(&str, &str)], settings: &[(&str, &str)]) -> String {
    let items = |items: &[(&str, &str)]| items.iter().map(|(k, v)| format!("\"{k}\" = '{v}'\n")).collect::<String>();
    format!(
        "manifest_version = 3\nname = \"{name}\"\nlanguage = \"other\"\n[local_server]\n\
         [local_server.backends.origin]\nurl = \"http://127.0.0.1:{origin_port}/\"\n\
         [local_server.config_stores.botauth_jwks]\nformat = \"inline-toml\"\n\
         [local_server.config_stores.botauth_jwks.contents]\n{}\
         [local_server.config_stores.botauth_settings]\nformat = \"inline-toml\"\n\
         [local_server.config_stores.botauth_settings.contents]\n{}",
        items(keys),
        items(settings)
    )
}

/// Build a feature variant of the service and keep a copy named `name` beside the ordinary
/// build (which the next ordinary build overwrites).
fn build_variant(feature: &str, name: &str) -> Result<PathBuf, String> {
    run(cargo().args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip1",
        "-p",
        "botauth-fastly",
        "--features",
        feature,
    ]))?;
    let release = target_dir().join("wasm32-wasip1/release");
    let copy = release.join(name);
    std::fs::copy(release.join("botauth-fastly.wasm"), &copy).map_err(|e| format!("copy the {feature} build: {e}"))?;
    Ok(copy)
}

/// Build the demo origin and `botauth`; the directory they are in.
fn build_bench_tools() -> Result<PathBuf, String> {
    run(cargo().args(["build", "-q", "-p", "botauth-fastly", "--example", "demo-origin"]))?;
    run(cargo().args(["build", "-q", "-p", "botauth-cli", "--bin", "botauth"]))?;
    Ok(target_dir().join("debug"))
}

/// The demo origin on `port`, quiet.
fn quiet_origin(bin_dir: &Path, port: u16) -> Result<Guard, String> {
    Command::new(bin_dir.join("examples/demo-origin"))
        .args([&port.to_string(), "--quiet"])
        .stdout(Stdio::null())
        .spawn()
        .map(Guard)
        .map_err(|e| format!("demo origin: {e}"))
}

/// `viceroy serve` of `wasm` with `manifest` on 127.0.0.1:`port` (its output discarded), once
/// it listens; `profile` is a `--profile` strategy.
fn quiet_service(
    viceroy: &Path,
    manifest: &Path,
    port: u16,
    wasm: &Path,
    profile: Option<&str>,
) -> Result<Guard, String> {
    let mut cmd = Command::new(viceroy);
    cmd.args(["serve", "-C"]).arg(manifest).args(["--addr", &format!("127.0.0.1:{port}")]);
    if let Some(p) = profile {
        cmd.arg(format!("--profile={p}"));
    }
    let guard = cmd
        .arg(wasm)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Guard)
        .map_err(|e| format!("viceroy: {e}"))?;
    wait_port(port)?;
    Ok(guard)
}

/// `Name: value` header lines of the demo request signed by `botauth sign` (no nonce, so
/// the same request stays valid for the whole run).
fn signed_demo_headers(botauth: &Path, created: u64) -> Result<Vec<String>, String> {
    signed_demo_headers_for(botauth, created, "https://signature-agent.test")
}

/// [`signed_demo_headers`] naming `agent` in `Signature-Agent`.
fn signed_demo_headers_for(botauth: &Path, created: u64, agent: &str) -> Result<Vec<String>, String> {
    let out = Command::new(botauth)
        .current_dir(root())
        .args([
            "sign",
            "--key",
            "fastly-compute/demo/rfc9421-test-key.jwk",
            "--request",
            "fastly-compute/demo/request.http",
        ])
        .args(["--agent", agent, "--no-nonce", "--created", &created.to_string()])
        .args(["--validity", "3600"])
        .output()
        .map_err(|e| format!("botauth sign: {e}"))?;
    if !out.status.success() {
        return Err(format!("botauth sign failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let headers: Vec<String> = text.lines().skip(1).take_while(|l| !l.is_empty()).map(String::from).collect();
    if !headers.iter().any(|h| h.to_ascii_lowercase().starts_with("signature:")) {
        return Err(format!("botauth sign printed no Signature header:\n{text}"));
    }
    Ok(headers)
}

/// What wrk measured.
struct Wrk {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: u64,
}

fn wrk(port: u16, headers: &[String], secs: u64) -> Result<Wrk, String> {
    wrk_with(port, headers, secs, 1)
}

/// [`wrk`] with `connections` connections (two threads when there are many).
fn wrk_with(port: u16, headers: &[String], secs: u64, connections: u32) -> Result<Wrk, String> {
    let mut cmd = Command::new("wrk");
    let threads = if connections > 1 { 2 } else { 1 };
    cmd.args([&format!("-t{threads}"), &format!("-c{connections}"), &format!("-d{secs}s"), "--latency"]);
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    // The demo request's target.
    cmd.arg(format!("http://127.0.0.1:{port}/api/v1/hello?lang=en"));
    let out = cmd.output().map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr)));
    }
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()));
    let rps =
        field("Requests/sec:").and_then(|v| v.parse().ok()).ok_or_else(|| format!("no Requests/sec in:\n{text}"))?;
    let p50_us = field("50%").and_then(|v| duration_us(&v)).ok_or_else(|| format!("no p50 in:\n{text}"))?;
    let p99_us = field("99%").and_then(|v| duration_us(&v)).ok_or_else(|| format!("no p99 in:\n{text}"))?;
    let non_2xx = field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Wrk { rps, p50_us, p99_us, non_2xx })
}

/// `headers` (`Name: value` lines) with the `Signature` member's S half changed (its lowest
/// byte): R stays a valid point, so only the whole Ed25519 verify can refuse it.
fn forged_signature(headers: &[String]) -> Result<Vec<String>, String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    headers
        .iter()
        .map(|h| {
            let Some(value) = h.strip_prefix("Signature: ").or_else(|| h.strip_prefix("signature: ")) else {
                return Ok(h.clone());
            };
            let (label, rest) = value.split_once("=:").ok_or_else(|| format!("signature {value}"))?;
            let mut sig = b64.decode(rest.trim_end_matches(':')).map_err(|e| e.to_string())?;
            let byte = sig.get_mut(32).ok_or("signature shorter than 33 bytes")?;
            *byte ^= 0x01;
            Ok(format!("Signature: {label}=:{}:", b64.encode(sig)))
        })
        .collect()
}

/// `1.23ms` / `456.00us` / `1.2s` → µs.
fn duration_us(v: &str) -> Option<f64> {
    let (num, mul) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|n| n * mul)
}

/// One Ed25519 verify by OpenSSL on this machine, µs.
fn openssl_verify_us() -> Result<f64, String> {
    banner("fastly bench: openssl speed -seconds 3 ed25519");
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "3", "ed25519"])
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "253 bits EdDSA (Ed25519)   0.0000s   0.0001s  48000.0  16000.0": sign s, verify s, sign/s, verify/s.
    let line = text.lines().find(|l| l.contains("(Ed25519)")).ok_or_else(|| format!("no Ed25519 line in:\n{text}"))?;
    let nums: Vec<f64> = line.split_whitespace().filter_map(|w| w.parse::<f64>().ok()).collect();
    let verify_per_s = nums.last().copied().filter(|v| *v > 0.0).ok_or_else(|| format!("cannot read: {line}"))?;
    Ok(1e6 / verify_per_s)
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn wait_port(port: u16) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(format!("viceroy did not listen on 127.0.0.1:{port}"))
}

/// The edge's cold cost (issue 11): where a signed request's time goes inside the service.
///
/// A `bench-phases` build (which verifies every signed request a second time in the same
/// instance) runs under Viceroy with debug `Server-Timing`; signed requests are sent one at a
/// time, alternating between the cases, and each phase's median is reported beside one
/// native OpenSSL verify measured in the same run. Viceroy instantiates the module for every
/// request, as Compute does, so `verify` is the cold-instance time and `verify-warm` the same
/// work once the instance has run it.
pub fn cold_cost() -> Result<String, String> {
    let viceroy = viceroy()?;
    banner("edge cold cost: bench-phases build, botauth, demo origin");
    let phases = build_variant("bench-phases", "botauth-fastly-phases.wasm")?;
    // Leave the ordinary build where the tests look for it.
    build_release()?;
    let bin_dir = build_bench_tools()?;
    let botauth = bin_dir.join("botauth");

    let created: u64 = 1_735_689_600;
    let cases = cold_cases(&botauth, created)?;
    let origin_port = free_port()?;
    let dir = std::env::temp_dir().join(format!("botauth-fastly-cold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let manifest = dir.join("fastly.toml");
    let keys: Vec<(&str, &str)> = cases.iter().map(|c| (c.item_key, c.item.as_str())).collect();
    let now = (created + 10).to_string();
    let settings = [("policy", ENFORCE_TEST_KEYS), ("testing_now", now.as_str()), ("debug", "true")];
    std::fs::write(&manifest, local_manifest("botauth-cold", origin_port, &keys, &settings))
        .map_err(|e| e.to_string())?;
    let mut origin = quiet_origin(&bin_dir, origin_port)?;
    let port = free_port()?;
    let mut vic = quiet_service(&viceroy, &manifest, port, &phases, None)?;
    let rounds = std::env::var("BOTAUTH_COLD_REQUESTS").ok().and_then(|s| s.parse().ok()).unwrap_or(400usize);
    let mut samples: Vec<BTreeMap<&'static str, Vec<f64>>> = vec![BTreeMap::new(); cases.len()];
    for i in 0..rounds + 20 {
        for (c, case) in cases.iter().enumerate() {
            let timings = timed_request(port, &case.headers)?;
            if i < 20 {
                continue; // warm-up: Viceroy's first requests include its own start-up
            }
            for phase in ["settings", "keys", "botauth", "verify-warm", "ed25519-warm"] {
                let v = timings.get(phase).copied().ok_or_else(|| {
                    format!("{}: no `{phase}` in Server-Timing (is the request verified?)", case.name)
                })?;
                samples[c].entry(phase).or_default().push(v);
            }
        }
    }
    vic.stop();
    origin.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let openssl_us = openssl_verify_us()?;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let mut md = format!(
        "\n## The edge's cold cost (`cargo xtask bench --edge-cold`)\n\n\
         A `bench-phases` build of the service under Viceroy {VICEROY_VERSION} (a fresh instance per request, \
         as on Compute), debug `Server-Timing` read from {rounds} signed requests per case, sent one at a time \
         with the cases alternating; medians, µs. `verify` is core's verification in the request's cold \
         instance, `verify (warm)` the same call repeated in that instance, `keys` the Config Store read \
         and parse of the request's keys, `settings` the verification settings. One native OpenSSL \
         Ed25519 verify in the same run: **{openssl_us:.1} µs**.\n\n\
         | store form | settings | keys | verify | verify (warm) | raw Ed25519 (warm) | keys + verify | (keys + verify) / OpenSSL | verify / OpenSSL |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for (case, s) in cases.iter().zip(samples.iter_mut()) {
        let mut get = |p: &str| s.get_mut(p).map_or(0.0, &median);
        let (settings, keys, verify, warm) = (get("settings"), get("keys"), get("botauth"), get("verify-warm"));
        let ed25519 = get("ed25519-warm");
        md.push_str(&format!(
            "| {} | {settings:.0} | {keys:.0} | {verify:.0} | {warm:.0} | {ed25519:.0} | {:.0} | {:.2} | {:.2} |\n",
            case.name,
            keys + verify,
            (keys + verify) / openssl_us,
            verify / openssl_us
        ));
    }
    md.push_str(&guest_profile(&viceroy, &botauth, &bin_dir)?);
    Ok(md)
}

/// Where the whole request's time goes inside the service, by Viceroy's guest profiler
/// (`--profile=guest`, a sample every 10 µs, one profile per request): an ordinary release
/// build with its symbols kept (no `bench-phases` repeats), the real clock (no
/// `testing_now`, whose warning would be logged on every request), the JWK Set item.
/// Returns the Markdown table: the share of samples in each part of the work.
fn guest_profile(viceroy: &Path, botauth: &Path, bin_dir: &Path) -> Result<String, String> {
    banner("edge cold cost: guest profile (release build with symbols)");
    let target = target_dir().join("profile");
    run(cargo()
        .env("CARGO_PROFILE_RELEASE_STRIP", "false")
        .args(["build", "--release", "--target", "wasm32-wasip1", "-p", "botauth-fastly", "--target-dir"])
        .arg(&target))?;
    let wasm = target.join("wasm32-wasip1/release/botauth-fastly.wasm");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let headers = signed_demo_headers(botauth, now.saturating_sub(5))?;
    let dir = std::env::temp_dir().join(format!("botauth-fastly-profile-{}", std::process::id()));
    let profiles = dir.join("profiles");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let origin_port = free_port()?;
    let manifest = dir.join("fastly.toml");
    let settings = [("policy", ENFORCE_TEST_KEYS), ("debug", "true")];
    std::fs::write(
        &manifest,
        local_manifest("botauth-profile", origin_port, &[(RFC_AGENT_ITEM, DEMO_JWKS)], &settings),
    )
    .map_err(|e| e.to_string())?;
    let mut origin = quiet_origin(bin_dir, origin_port)?;
    let port = free_port()?;
    let profile = format!("guest,{},10us", profiles.display());
    let mut vic = quiet_service(viceroy, &manifest, port, &wasm, Some(&profile))?;
    let requests = 300;
    for _ in 0..requests {
        let resp = timed_request(port, &headers)?;
        if resp.is_empty() {
            return Err("the profiled service sent no Server-Timing (is debug off?)".into());
        }
    }
    // Viceroy writes each request's profile when the request ends.
    std::thread::sleep(std::time::Duration::from_millis(500));
    vic.stop();
    origin.stop();
    let (total, parts) = profile_parts(&profiles)?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut md = format!(
        "\nWhere the whole request goes (Viceroy's guest profiler, a sample every 10 µs over {requests} verified \
         requests, {total} samples; a sample counts for every part on its stack, so parts overlap). The profiler \
         samples where wasmtime checks its epoch (function entries, loop headers), so straight-line field \
         arithmetic is under-counted and small functions called often (`malloc`, `free`) over-counted: read \
         it as where the calls go, and the table above for the time:\n\n\
         | part of the work | share of samples |\n|---|---:|\n"
    );
    for (name, n) in parts {
        if n == 0 {
            // Inlined by LTO into its caller: it has no frame of its own to count.
            md.push_str(&format!("| {name} | (inlined: no frame of its own) |\n"));
        } else {
            md.push_str(&format!("| {name} | {:.1} % |\n", 100.0 * n as f64 / total.max(1) as f64));
        }
    }
    Ok(md)
}

/// The parts of [`guest_profile`], each with the functions that make it up (substrings of
/// the symbol names); the first is the whole verification.
const PROFILE_PARTS: [(&str, &[&str]); 12] = [
    ("core `verify` (all of it)", &["botauth_core::verify::"]),
    ("Ed25519 (`crypto::verify`: key decompression, double scalar multiplication)", &["botauth_core::crypto::verify"]),
    ("key decompression (`CompressedEdwardsY::decompress`)", &["CompressedEdwardsY::decompress"]),
    (
        "Structured Fields and `Signature-Input` parsing",
        &["botauth_core::structured", "sfv::", "botauth_core::signature_input"],
    ),
    ("signature base", &["botauth_core::signature_base"]),
    ("keys: Config Store reads and JWKS parsing (`keys::load`)", &["botauth_fastly::keys::load"]),
    ("JSON (`serde_json`, keys and settings)", &["serde_json::"]),
    ("Config Store reads (`ConfigStore::try_get`)", &["ConfigStore::try_get"]),
    ("settings (`Settings::verification`)", &["Settings::verification"]),
    ("the log line (`log::`)", &["botauth_fastly::log::"]),
    ("forwarding to the origin (`upstream::send`)", &["botauth_fastly::upstream::send"]),
    ("allocation (`malloc`, `free`, `realloc`)", &["malloc", "free", "realloc"]),
];

/// Samples per [`PROFILE_PARTS`] part.
type PartCounts = Vec<(&'static str, u64)>;

/// Total samples, and the samples of each [`PROFILE_PARTS`] part, over every profile in
/// `dir` (the Firefox profiler's processed format).
fn profile_parts(dir: &Path) -> Result<(u64, PartCounts), String> {
    let mut total = 0u64;
    let mut counts = vec![0u64; PROFILE_PARTS.len()];
    let entries = std::fs::read_dir(dir).map_err(|e| format!("no guest profiles in {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
        let p: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", entry.path().display()))?;
        for t in p["threads"].as_array().into_iter().flatten() {
            let idx = |v: &serde_json::Value| v.as_u64().and_then(|n| usize::try_from(n).ok());
            let strings = t["stringArray"].as_array().cloned().unwrap_or_default();
            let func_name = |func: usize| -> &str {
                idx(&t["funcTable"]["name"][func]).and_then(|s| strings.get(s)).and_then(|s| s.as_str()).unwrap_or("")
            };
            for stack in t["samples"]["stack"].as_array().into_iter().flatten() {
                let mut at = idx(stack);
                if at.is_none() {
                    continue;
                }
                total += 1;
                let mut hit = vec![false; PROFILE_PARTS.len()];
                // Bounded walk to the root (prefix links point towards it).
                for _ in 0..10_000 {
                    let Some(s) = at else { break };
                    let name = idx(&t["stackTable"]["frame"][s])
                        .and_then(|f| idx(&t["frameTable"]["func"][f]))
                        .map(func_name)
                        .unwrap_or("");
                    for (i, (_, needles)) in PROFILE_PARTS.iter().enumerate() {
                        if needles.iter().any(|n| if n.contains("::") { name.contains(n) } else { name == *n }) {
                            hit[i] = true;
                        }
                    }
                    at = idx(&t["stackTable"]["prefix"][s]);
                }
                for (c, h) in counts.iter_mut().zip(hit) {
                    *c += u64::from(h);
                }
            }
        }
    }
    if total == 0 {
        return Err(format!("the guest profiles in {} hold no samples", dir.display()));
    }
    Ok((total, PROFILE_PARTS.iter().map(|(n, _)| *n).zip(counts).collect()))
}

/// One case of [`cold_cost`]: a store item and the signed request that uses it.
struct ColdCase {
    name: &'static str,
    item_key: &'static str,
    item: String,
    headers: Vec<String>,
}

/// The same key, for two agents: one stored as a JWK Set, one as the compact key list
/// `botauth compact-keys` writes.
fn cold_cases(botauth: &Path, created: u64) -> Result<Vec<ColdCase>, String> {
    let mut compact = Command::new(botauth);
    compact.args(["compact-keys", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = compact.spawn().map_err(|e| format!("botauth compact-keys: {e}"))?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().ok_or("botauth compact-keys: no stdin")?;
        stdin.write_all(DEMO_JWKS.as_bytes()).map_err(|e| format!("botauth compact-keys: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("botauth compact-keys: {e}"))?;
    let list = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !list.starts_with("botauth-keys/1,") {
        return Err(format!("botauth compact-keys printed {list:?}"));
    }
    Ok(vec![
        ColdCase {
            name: "JWK Set (JSON)",
            item_key: RFC_AGENT_ITEM,
            item: DEMO_JWKS.into(),
            headers: signed_demo_headers(botauth, created)?,
        },
        ColdCase {
            name: "compact key list (`botauth compact-keys`)",
            item_key: "https_3A_2F_2Fcompact-agent.test",
            item: list,
            headers: signed_demo_headers_for(botauth, created, "https://compact-agent.test")?,
        },
    ])
}

/// Send the demo request with `headers` and return its `Server-Timing` durations, µs.
fn timed_request(port: u16, headers: &[String]) -> Result<BTreeMap<String, f64>, String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut req = String::from("GET /api/v1/hello?lang=en HTTP/1.1\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("expected 200, got: {}", head.lines().next().unwrap_or("")));
    }
    let mut out = BTreeMap::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        if !name.eq_ignore_ascii_case("server-timing") {
            continue;
        }
        for metric in value.split(',') {
            let mut parts = metric.split(';').map(str::trim);
            let Some(name) = parts.next() else { continue };
            if let Some(ms) = parts.find_map(|p| p.strip_prefix("dur=")).and_then(|d| d.parse::<f64>().ok()) {
                out.insert(name.to_owned(), ms * 1000.0);
            }
        }
    }
    Ok(out)
}
