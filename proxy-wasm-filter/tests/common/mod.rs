//! The real-Envoy harness shared by `tests/envoy*.rs`: tool paths, rendering the shipped
//! examples (`examples/envoy/*.yaml`) with test ports, clusters and plugin configurations,
//! and a running Envoy stopped by its guard. Everything binds 127.0.0.1.
//!
//! Paths: `BOTAUTH_WASM` (default `target/wasm32-wasip1/release/botauth_proxy_wasm.wasm`)
//! and `BOTAUTH_ENVOY` (default `.tools/envoy-venv/bin/envoy`); `cargo xtask test` builds
//! and installs both. Missing either is a failure, never a skip.
#![allow(dead_code, unreachable_pub)]

pub mod gateway;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use botauth_core::components::Message;
use botauth_core::sign::{public_key, sign, SignParams};
use botauth_core::HttpRequest;
use botauth_testkit::raw_http::{self, Response};
use botauth_testkit::{free_port, wait_for_port, ChildGuard};
use serde_json::{json, Value};

/// The main example: every Envoy of the tests starts from it.
pub const EXAMPLE: &str = include_str!("../../../examples/envoy/envoy.yaml");
/// The per-agent local rate limit example.
pub const LOCAL_RATELIMIT: &str = include_str!("../../../examples/envoy/local-ratelimit.yaml");
/// The per-agent global rate limit example (a rate limit service).
pub const GLOBAL_RATELIMIT: &str = include_str!("../../../examples/envoy/global-ratelimit.yaml");
/// The main example plus a per-source budget of signed requests (forged-signature floods).
pub const SOURCE_LIMITS: &str = include_str!("../../../examples/envoy/source-limits.yaml");

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn tool(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| root().join(default));
    assert!(
        path.exists(),
        "{} not found ({var}); run `cargo xtask test`, which builds and installs it",
        path.display()
    );
    path
}

pub fn wasm() -> PathBuf {
    tool("BOTAUTH_WASM", "target/wasm32-wasip1/release/botauth_proxy_wasm.wasm")
}

pub fn envoy_bin() -> PathBuf {
    tool("BOTAUTH_ENVOY", ".tools/envoy-venv/bin/envoy")
}

// ---- rendering the examples -----------------------------------------------------------

pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "the example must contain `{from}` exactly once");
    text.replacen(from, to, 1)
}

/// `(before, block, after)` around the lines holding `# <marker>: begin` / `end`.
pub fn split_block<'a>(text: &'a str, marker: &str) -> (&'a str, &'a str, &'a str) {
    let begin = format!("# {marker}: begin\n");
    let end = format!("# {marker}: end\n");
    let b = text.find(&begin).unwrap_or_else(|| panic!("no `{begin}` in the example"));
    let b_line = text[..b].rfind('\n').map_or(0, |i| i + 1);
    let e = text.find(&end).unwrap_or_else(|| panic!("no `{end}` in the example"));
    let e_line = e + end.len();
    (&text[..b_line], &text[b + begin.len()..text[..e].rfind('\n').map_or(e, |i| i + 1)], &text[e_line..])
}

/// The indentation of the `# <marker>: begin` line.
fn marker_indent(text: &str, marker: &str) -> usize {
    let begin = format!("# {marker}: begin\n");
    let b = text.find(&begin).unwrap_or_else(|| panic!("no `{begin}`"));
    let line = text[..b].rfind('\n').map_or(0, |i| i + 1);
    b - line
}

/// `block` with its common indentation replaced by `indent` spaces.
pub fn reindent(block: &str, indent: usize) -> String {
    let common =
        block.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    let pad = " ".repeat(indent);
    block
        .lines()
        .map(|l| if l.trim().is_empty() { "\n".to_string() } else { format!("{pad}{}\n", &l[common..]) })
        .collect()
}

/// How the botauth filter sits in a listener's filter chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    /// As shipped: the connection manager's early header mutation strips the filter's
    /// headers, then the wasm filter runs inside composite + ExtensionWithMatcher (signed
    /// requests only).
    Matcher,
    /// The early strip, then the wasm filter for every request.
    NoMatcher,
    /// The wasm filter alone, for every request (it strips the headers itself).
    WasmOnly,
    /// Neither (a baseline: Envoy without the filter).
    None,
    /// The early strip alone, no wasm filter (bench: what the strip costs).
    StripOnly,
    /// The strip as an `envoy.filters.http.header_mutation` HTTP filter (the example's
    /// removals) instead of the early mutation, then the filter inside the matcher (bench:
    /// the other way Envoy can strip, side by side).
    FilterStripMatcher,
}

/// One listener of a rendered configuration.
pub struct Listener {
    pub port: u16,
    pub config: Value,
    pub chain: Chain,
}

impl Listener {
    /// A listener as shipped (with the matcher).
    pub fn new(port: u16, config: Value) -> Self {
        Self { port, config, chain: Chain::Matcher }
    }
}

/// The listener section of `example`, once per listener, as YAML list items.
pub fn listener_yaml(example: &str, listeners: &[Listener], wasm: &Path) -> String {
    let (_, block, _) = split_block(example, "botauth-listener");
    let block = replace_once(
        block,
        "filename: target/wasm32-wasip1/release/botauth_proxy_wasm.wasm",
        &format!("filename: {}", wasm.display()),
    );
    let mut out = String::new();
    for (i, l) in listeners.iter().enumerate() {
        let mut b = replace_once(&block, "  - name: botauth\n", &format!("  - name: botauth_{i}\n"));
        b = replace_once(&b, "port_value: 10000", &format!("port_value: {}", l.port));
        // Test speed only: the raw client reads until close, and Envoy otherwise waits 1 s for
        // the client to close first after a local reply.
        b = replace_once(
            &b,
            "stat_prefix: botauth_ingress\n",
            "stat_prefix: botauth_ingress\n          delayed_close_timeout: 0s\n",
        );
        let indent = marker_indent(&b, "botauth-filter");
        let (head, filter, tail) = split_block(&b, "botauth-filter");
        let (_, wasm_block, _) = split_block(filter, "botauth-wasm");
        let direct = format!(
            "{pad}- name: envoy.filters.http.wasm\n{pad}  typed_config:\n{}",
            reindent(wasm_block, indent + 4),
            pad = " ".repeat(indent)
        );
        let (before_strip, strip, after_strip) = split_block(head, "botauth-strip");
        let unstripped = format!("{before_strip}{after_strip}");
        let b = match l.chain {
            Chain::Matcher => format!("{head}{filter}{tail}"),
            Chain::NoMatcher => format!("{head}{direct}{tail}"),
            Chain::StripOnly => format!("{head}{tail}"),
            Chain::WasmOnly => format!("{unstripped}{direct}{tail}"),
            Chain::None => format!("{unstripped}{tail}"),
            Chain::FilterStripMatcher => {
                let removes: String = strip
                    .lines()
                    .filter_map(|line| line.trim().strip_prefix("- remove: "))
                    .map(|name| format!("                - remove: {name}\n"))
                    .collect();
                let filters = "          http_filters:\n";
                let mutation = format!(
                    "{filters}          - name: envoy.filters.http.header_mutation\n            typed_config:\n              \
                     \"@type\": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation\n              \
                     mutations:\n                request_mutations:\n{removes}"
                );
                format!("{}{filter}{tail}", replace_once(&unstripped, filters, &mutation))
            }
        };
        if matches!(l.chain, Chain::None | Chain::StripOnly) {
            out.push_str(&b);
            continue;
        }
        let indent = marker_indent(&b, "botauth-config");
        let (head, _, tail) = split_block(&b, "botauth-config");
        let value = serde_json::to_string(&l.config.to_string()).unwrap_or_default();
        out.push_str(&format!("{head}{}value: {value}\n{tail}", " ".repeat(indent)));
    }
    out
}

/// A command for `program`, run on the CPUs `cpus` only (`taskset -c`) when given.
pub fn command_on(program: impl AsRef<std::ffi::OsStr>, cpus: Option<&str>) -> std::process::Command {
    match cpus {
        Some(cpus) => {
            let mut taskset = std::process::Command::new("taskset");
            taskset.args(["-c", cpus]).arg(program);
            taskset
        }
        None => std::process::Command::new(program),
    }
}

/// What a test Envoy is made of.
pub struct Layout<'a> {
    /// The example file rendered (one of the constants above).
    pub example: &'a str,
    pub admin: u16,
    /// The `origin` cluster's port.
    pub origin: u16,
    pub listeners: &'a [Listener],
    /// YAML list items put in place of the example's directory clusters.
    pub clusters: String,
}

/// `layout.example` with the test's listeners, origin and clusters.
pub fn render(layout: &Layout<'_>) -> String {
    let (before, _, after) = split_block(layout.example, "botauth-listener");
    let before = replace_once(before, "port_value: 9901", &format!("port_value: {}", layout.admin));
    let after = replace_once(after, "port_value: 8080", &format!("port_value: {}", layout.origin));
    let (a, _, b) = split_block(&after, "botauth-directory-clusters");
    let after = format!("{a}{}{b}", layout.clusters);
    format!("{before}{}{after}", listener_yaml(layout.example, layout.listeners, &wasm()))
}

/// The main example with `listeners`, no directory clusters.
pub fn render_main(admin: u16, origin: u16, listeners: &[Listener]) -> String {
    render(&Layout { example: EXAMPLE, admin, origin, listeners, clusters: String::new() })
}

/// A plain-HTTP cluster to 127.0.0.1:`port` (a local directory server), as a list item.
pub fn cluster(name: &str, port: u16) -> String {
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: {name}\n      \
         endpoints:\n      - lb_endpoints:\n        - endpoint:\n            address:\n              \
         socket_address: {{ address: 127.0.0.1, port_value: {port} }}\n"
    )
}

/// `n` distinct ports that were free on 127.0.0.1 a moment ago (each `free_port` call closes
/// its socket, so two calls may return the same port).
pub fn ports(n: usize) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::with_capacity(n);
    while out.len() < n {
        let p = free_port().unwrap_or_else(|e| panic!("free port: {e}"));
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

// ---- a running Envoy -----------------------------------------------------------------

static RUN: AtomicUsize = AtomicUsize::new(0);

pub struct Envoy {
    pub child: ChildGuard,
    pub admin: u16,
    pub dir: PathBuf,
}

impl Envoy {
    pub fn dir() -> PathBuf {
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("botauth-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        dir
    }

    pub fn spawn(dir: PathBuf, yaml: &str, admin: u16, concurrency: u32) -> Self {
        Self::spawn_on(dir, yaml, admin, concurrency, None)
    }

    /// [`Envoy::spawn`], on the CPUs `cpus` only (`taskset -c`) when given.
    pub fn spawn_on(dir: PathBuf, yaml: &str, admin: u16, concurrency: u32, cpus: Option<&str>) -> Self {
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let mut cmd = command_on(envoy_bin(), cpus);
        cmd.arg("-c")
            .arg(&config)
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--disable-hot-restart", "-l", "warn", "--component-log-level", "wasm:info"])
            .stdout(std::process::Stdio::null())
            // stderr, not --log-path: the log file sink is flushed only every few seconds.
            .stderr(std::fs::File::create(dir.join("envoy.log")).unwrap_or_else(|e| panic!("envoy.log: {e}")));
        let child = ChildGuard::spawn("envoy", &mut cmd).unwrap_or_else(|e| panic!("{e}"));
        Self { child, admin, dir }
    }

    /// Start Envoy (one worker) and wait until the admin says it is ready and every port
    /// accepts.
    pub fn start(yaml: &str, admin: u16, ports: &[u16]) -> Self {
        Self::start_with(yaml, admin, ports, 1)
    }

    /// [`Envoy::start`] with `concurrency` workers.
    pub fn start_with(yaml: &str, admin: u16, ports: &[u16], concurrency: u32) -> Self {
        Self::start_on(yaml, admin, ports, concurrency, None)
    }

    /// [`Envoy::start_with`], on the CPUs `cpus` only (`taskset -c`) when given.
    pub fn start_on(yaml: &str, admin: u16, ports: &[u16], concurrency: u32, cpus: Option<&str>) -> Self {
        let mut envoy = Self::spawn_on(Self::dir(), yaml, admin, concurrency, cpus);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Err(e) = envoy.child.ensure_running() {
                panic!("{e}\n--- envoy.log\n{}", envoy.log());
            }
            if envoy.get("/ready").is_some_and(|r| r.status == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "envoy not ready after 90 s\n--- envoy.log\n{}", envoy.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        for &port in ports {
            wait_for_port(port, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}\n{}", envoy.log()));
        }
        envoy
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    pub fn get(&self, target: &str) -> Option<Response> {
        raw_http::send(self.admin, "GET", target, &[("Host".into(), "admin".into())], None).ok()
    }

    /// The cumulative p50 of the histogram `wasmcustom.<name>` (Envoy's `P50(interval,cumulative)`).
    pub fn histogram_p50(&self, name: &str) -> f64 {
        let filter = format!("/stats?filter=^wasmcustom\\.{}$", name.replace('.', "\\."));
        let text = self.get(&filter).map(|r| r.text()).unwrap_or_default();
        text.split("P50(")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|pair| pair.split(',').nth(1))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no P50 for {name} in {text:?}"))
    }

    /// Every `wasmcustom.<prefix>.` counter, by name without the `wasmcustom.` prefix.
    pub fn counters(&self, prefix: &str) -> BTreeMap<String, u64> {
        let text = self.get(&format!("/stats?filter=^wasmcustom\\.{prefix}\\.")).map(|r| r.text()).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(n, v)| Some((n.strip_prefix("wasmcustom.")?.to_string(), v.trim().parse().ok()?)))
            .collect()
    }

    /// One Envoy statistic by its full name (0 when absent).
    pub fn stat(&self, name: &str) -> u64 {
        let filter = format!("^{}$", name.replace('.', "\\."));
        self.get(&format!("/stats?filter={filter}"))
            .map(|r| r.text())
            .and_then(|t| {
                t.lines().find_map(|l| l.split_once(": ").map(|(_, v)| v.trim().parse::<u64>().ok())).flatten()
            })
            .unwrap_or(0)
    }

    /// Wait until `check` holds (polling every 50 ms), or fail after `secs` with `what`.
    pub fn wait_until(&self, secs: u64, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check() {
            assert!(Instant::now() < deadline, "{what}: not after {secs} s\n--- envoy.log\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.child.stop();
        if std::env::var_os("BOTAUTH_KEEP_ENVOY_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What the origin reported seeing (its JSON echo), as `(name, value)` pairs.
pub fn seen_headers(res: &Response) -> Vec<(String, String)> {
    let body = res.json().unwrap_or_else(|e| panic!("{e}: {}", res.text()));
    body["headers"]
        .as_array()
        .map(|hs| {
            hs.iter().filter_map(|h| Some((h[0].as_str()?.to_ascii_lowercase(), h[1].as_str()?.to_string()))).collect()
        })
        .unwrap_or_default()
}

pub fn values<'a>(seen: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    seen.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
}

// ---- signed requests -----------------------------------------------------------------

/// An Ed25519 test key: seed and public JWK parts.
pub struct Key {
    pub seed: [u8; 32],
    pub x: String,
    pub thumbprint: String,
}

impl Key {
    pub fn from_file(name: &str) -> Self {
        let path = root().join("fixtures/keys").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let d = B64URL.decode(v["jwk"]["d"].as_str().unwrap_or_default()).unwrap_or_default();
        let seed: [u8; 32] = d.try_into().unwrap_or_else(|_| panic!("{name}: d is not 32 bytes"));
        let x = B64URL.encode(public_key(&seed).unwrap_or_else(|e| panic!("{e}")));
        let thumbprint = botauth_core::keys::thumbprint_okp("Ed25519", &x);
        Self { seed, x, thumbprint }
    }

    /// RFC 9421 B.1.4 (trusted only with `allow_test_keys`).
    pub fn rfc() -> Self {
        Self::from_file("rfc9421-ed25519.json")
    }

    /// botauth's second test-only key (not a known test key).
    pub fn b() -> Self {
        Self::from_file("test-only-b-ed25519.json")
    }

    pub fn jwk(&self) -> Value {
        json!({ "kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.thumbprint, "alg": "EdDSA" })
    }
}

/// A directory document serving `keys`.
pub fn jwks(keys: &[&Key]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
}

pub use botauth_testkit::unix_now;

static NONCE: AtomicU64 = AtomicU64::new(0);

/// A request to example.com signed now by `key` for `agent` (Web Bot Auth: `@authority` and
/// the `signature-agent` member covered, a fresh nonce).
pub fn signed(agent: &str, key: &Key) -> Vec<(String, String)> {
    signed_at(agent, key, unix_now())
}

/// [`signed`] with `created` = `now` (valid for 60 s from then): a `now` in the past gives
/// an expired signature.
pub fn signed_at(agent: &str, key: &Key, now: u64) -> Vec<(String, String)> {
    let nonce = format!("n-{}-{}", std::process::id(), NONCE.fetch_add(1, Ordering::Relaxed));
    signed_with_nonce(agent, key, now, &B64URL.encode(nonce))
}

/// [`signed_at`] with the given `nonce` (sent as is).
pub fn signed_with_nonce(agent: &str, key: &Key, now: u64, nonce: &str) -> Vec<(String, String)> {
    let agent_field = format!("sig1=\"{agent}\"");
    let req = HttpRequest::new("GET", "https", "example.com", "/resource")
        .with_header("signature-agent", agent_field.as_str());
    let params = SignParams {
        label: "sig1".into(),
        components: vec!["\"@authority\"".into(), "\"signature-agent\";key=\"sig1\"".into()],
        created: Some(now),
        expires: Some(now + 60),
        keyid: Some(key.thumbprint.clone()),
        alg: Some("ed25519".into()),
        nonce: Some(nonce.to_string()),
        tag: Some("web-bot-auth".into()),
    };
    let s = sign(&Message::request(&req), &key.seed, &params).unwrap_or_else(|e| panic!("{e}"));
    vec![
        ("Host".into(), "example.com".into()),
        ("Signature-Agent".into(), agent_field),
        ("Signature-Input".into(), s.signature_input),
        ("Signature".into(), s.signature),
    ]
}

// ---- a listener from LDS (hot reload) ------------------------------------------------

/// An Envoy whose one listener (the example's, on `port`) comes from a watched LDS file, so
/// a test can swap its plugin configuration while Envoy runs.
pub struct LdsEnvoy {
    pub envoy: Envoy,
    pub port: u16,
}

impl LdsEnvoy {
    /// Start with `config`; the origin cluster points at 127.0.0.1:`origin`.
    pub fn start(origin: u16, config: &Value) -> Self {
        let (admin, port) = match ports(2)[..] {
            [a, p] => (a, p),
            _ => unreachable!(),
        };
        let dir = Envoy::dir();
        write_lds(&dir, port, config);
        let (before, _, after) = split_block(EXAMPLE, "botauth-listener");
        let before = replace_once(before, "port_value: 9901", &format!("port_value: {admin}"));
        let before = replace_once(&before, "  listeners:\n", "");
        let after = replace_once(after, "port_value: 8080", &format!("port_value: {origin}"));
        let (clusters_before, _, clusters_after) = split_block(&after, "botauth-directory-clusters");
        let dynamic = format!(
            "node: {{ id: botauth-test, cluster: botauth-test }}\ndynamic_resources:\n  lds_config:\n    resource_api_version: V3\n    \
             path_config_source:\n      path: {}\n      watched_directory: {{ path: {} }}\n",
            dir.join("lds.yaml").display(),
            dir.display()
        );
        let yaml = format!("{dynamic}{before}{clusters_before}{clusters_after}");
        let mut envoy = Envoy::spawn(dir, &yaml, admin, 1);
        let deadline = Instant::now() + Duration::from_secs(90);
        while wait_for_port(port, Duration::from_millis(200)).is_err() {
            envoy.child.ensure_running().unwrap_or_else(|e| panic!("{e}\n{}", envoy.log()));
            assert!(Instant::now() < deadline, "listener never came up\n{}", envoy.log());
        }
        Self { envoy, port }
    }

    /// Swap the listener's plugin configuration (atomically: written aside, then renamed).
    pub fn reload(&self, config: &Value) {
        write_lds(&self.envoy.dir, self.port, config);
    }

    /// `listener_manager.lds.<name>` (`update_success`, `update_rejected`).
    pub fn lds_stat(&self, name: &str) -> u64 {
        self.envoy.stat(&format!("listener_manager.lds.{name}"))
    }
}

fn write_lds(dir: &Path, port: u16, config: &Value) {
    let item = listener_yaml(EXAMPLE, &[Listener::new(port, config.clone())], &wasm());
    let item = replace_once(
        &item,
        "  - name: botauth_0\n",
        "  - \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n    name: botauth\n",
    );
    let tmp = dir.join("lds.tmp");
    std::fs::write(&tmp, format!("resources:\n{item}")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, dir.join("lds.yaml")).unwrap_or_else(|e| panic!("{e}"));
}
