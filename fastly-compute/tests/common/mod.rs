//! Harness for driving the service under Viceroy: a manifest per scenario, Viceroy on a
//! free 127.0.0.1 port with its output captured, an echo origin, and request signing with
//! the published RFC 9421 test key. Everything started here stops on drop.

#![allow(dead_code)]

pub mod live;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use botauth_core::components::Message;
use botauth_core::sign::{sign, SignParams};
use botauth_core::HttpRequest;
use botauth_testkit::raw_http::{self, Response};
use botauth_testkit::{free_port, wait_for_port, ChildGuard};

/// RFC 9421 B.1.4 test key: private seed (JWK `d`), public `x`, RFC 7638 thumbprint.
pub const TEST_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
pub const TEST_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
pub const TEST_KEYID: &str = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";
/// The agent the local configuration trusts the test key for.
pub const AGENT: &str = "https://signature-agent.test";
/// The clock the scenarios run at (`testing_now`).
pub const NOW: u64 = 1_735_689_700;

/// The JWKS of the test key.
pub fn test_jwks() -> String {
    format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{TEST_X}"}}]}}"#)
}

/// The Config Store item key of an agent URI: the encoding documented in
/// `fastly-compute/README.md` and implemented in `src/config.rs` (checked there too).
pub fn jwks_item_key(agent: &str) -> String {
    let mut key = String::new();
    for b in agent.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            key.push(char::from(b));
        } else {
            key.push_str(&format!("_{b:02X}"));
        }
    }
    key
}

/// The release build of the service, built once per test process (or taken from
/// `BOTAUTH_FASTLY_WASM`, which `cargo xtask test` sets after building it; a relative path
/// is taken from the workspace root).
pub fn wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        if let Some(p) = std::env::var_os("BOTAUTH_FASTLY_WASM") {
            // Relative to the workspace root (where `cargo test` is typed), not to this crate.
            let p = PathBuf::from(p);
            return if p.is_absolute() { p } else { root.join(p) };
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--release", "--target", "wasm32-wasip1", "-p", "botauth-fastly"])
            .status()
            .expect("run cargo build for wasm32-wasip1");
        assert!(status.success(), "building the service for wasm32-wasip1 failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
        let target = if target.is_absolute() { target } else { root.join(target) };
        target.join("wasm32-wasip1/release/botauth-fastly.wasm")
    })
}

/// The Viceroy binary: `VICEROY`, else `viceroy` on PATH, else `~/.cargo/bin/viceroy`.
pub fn viceroy_bin() -> PathBuf {
    if let Some(v) = std::env::var_os("VICEROY") {
        return PathBuf::from(v);
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("viceroy")).find(|p| p.is_file()));
    on_path.unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/viceroy"))
}

/// How the shielding sites look from one Viceroy.
#[derive(Clone, Debug)]
pub enum ShieldSites {
    /// This instance is the shield POP `site`.
    Local(String),
    /// `site` is another POP, reached at this loopback port.
    Remote(String, u16),
}

/// One scenario's local configuration.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Settings items; `None` leaves the settings store out of the manifest.
    pub settings: Option<Vec<(String, String)>>,
    /// JWKS items (item key, JSON); `None` leaves the key store out of the manifest.
    pub jwks: Option<Vec<(String, String)>>,
    /// Declare the nonce KV store.
    pub nonces: bool,
    /// Shielding sites.
    pub shield: Option<ShieldSites>,
    /// Extra backends (name, URL), e.g. key directories on 127.0.0.1.
    pub backends: Vec<(String, String)>,
    /// The directory KV store `botauth_directories` with these items (key, value);
    /// `None` leaves it out of the manifest.
    pub directory_kv: Option<Vec<(String, String)>>,
    /// The Secret Store `botauth_secrets` with these items (key, data); `None` leaves it out.
    pub secrets: Option<Vec<(String, String)>>,
}

impl Setup {
    /// The test key for [`AGENT`], debug on, enforce mode (test keys allowed: the RFC
    /// 9421 key is published), clock at [`NOW`].
    pub fn standard() -> Self {
        Self {
            settings: Some(vec![
                ("policy".into(), r#"{"mode":"enforce","allow_test_keys":true}"#.into()),
                ("debug".into(), "true".into()),
                ("testing_now".into(), NOW.to_string()),
            ]),
            jwks: Some(vec![(jwks_item_key(AGENT), test_jwks())]),
            nonces: true,
            shield: None,
            backends: Vec::new(),
            directory_kv: None,
            secrets: None,
        }
    }

    /// Set (or replace) one settings item.
    pub fn with_setting(mut self, key: &str, value: &str) -> Self {
        let s = self.settings.get_or_insert_with(Vec::new);
        s.retain(|(k, _)| k != key);
        s.push((key.into(), value.into()));
        self
    }

    /// Remove one settings item.
    pub fn without_setting(mut self, key: &str) -> Self {
        if let Some(s) = &mut self.settings {
            s.retain(|(k, _)| k != key);
        }
        self
    }

    fn manifest(&self, origin_port: u16) -> String {
        let mut m =
            String::from("manifest_version = 3\nname = \"botauth-test\"\nlanguage = \"rust\"\n\n[local_server]\n");
        m.push_str(&format!("[local_server.backends.origin]\nurl = \"http://127.0.0.1:{origin_port}/\"\n"));
        for (name, url) in &self.backends {
            m.push_str(&format!("[local_server.backends.{}]\nurl = {}\n", toml_str(name), toml_str(url)));
        }
        if self.nonces || self.directory_kv.is_some() {
            m.push_str("[local_server.kv_stores]\n");
        }
        if self.nonces {
            m.push_str("botauth_nonces = []\n");
        }
        if let Some(items) = &self.directory_kv {
            let items: Vec<String> =
                items.iter().map(|(k, v)| format!("{{ key = {}, data = {} }}", toml_str(k), toml_str(v))).collect();
            m.push_str(&format!("botauth_directories = [{}]\n", items.join(", ")));
        }
        if let Some(items) = &self.secrets {
            let items: Vec<String> =
                items.iter().map(|(k, v)| format!("{{ key = {}, data = {} }}", toml_str(k), toml_str(v))).collect();
            m.push_str(&format!("[local_server.secret_stores]\nbotauth_secrets = [{}]\n", items.join(", ")));
        }
        for (name, items) in [("botauth_settings", &self.settings), ("botauth_jwks", &self.jwks)] {
            if let Some(items) = items {
                m.push_str(&format!("[local_server.config_stores.{name}]\nformat = \"inline-toml\"\n"));
                m.push_str(&format!("[local_server.config_stores.{name}.contents]\n"));
                for (k, v) in items {
                    m.push_str(&format!("{} = {}\n", toml_str(k), toml_str(v)));
                }
            }
        }
        match &self.shield {
            None => {}
            Some(ShieldSites::Local(site)) => {
                m.push_str(&format!("[local_server.shielding_sites]\n{} = \"Local\"\n", toml_str(site)));
            }
            Some(ShieldSites::Remote(site, port)) => {
                m.push_str(&format!(
                    "[local_server.shielding_sites.{}]\nencrypted = \"http://127.0.0.1:{port}/\"\nunencrypted = \"http://127.0.0.1:{port}/\"\n",
                    toml_str(site)
                ));
            }
        }
        m
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running Viceroy with the service; stops (and removes its files) on drop.
pub struct Service {
    viceroy: ChildGuard,
    /// The port Viceroy listens on.
    pub port: u16,
    dir: PathBuf,
    seen_out: usize,
}

impl Service {
    /// Start Viceroy with `setup`, sending origin traffic to 127.0.0.1:`origin_port`.
    pub fn start(setup: &Setup, origin_port: u16) -> Self {
        Self::start_on(setup, origin_port, free_port().expect("free port"))
    }

    /// Start on a chosen port.
    pub fn start_on(setup: &Setup, origin_port: u16, port: u16) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("botauth-fastly-test-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let manifest = dir.join("fastly.toml");
        fs::write(&manifest, setup.manifest(origin_port)).expect("write manifest");
        let out = fs::File::create(dir.join("stdout.log")).expect("stdout log");
        let err = fs::File::create(dir.join("stderr.log")).expect("stderr log");
        let mut viceroy = ChildGuard::spawn(
            "viceroy",
            Command::new(viceroy_bin())
                .arg("serve")
                .arg("-C")
                .arg(&manifest)
                .arg("--addr")
                .arg(format!("127.0.0.1:{port}"))
                .arg(wasm())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        )
        .expect("start viceroy");
        let ready = wait_for_port(port, Duration::from_secs(120));
        if ready.is_err() || viceroy.ensure_running().is_err() {
            let log = fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            panic!("viceroy did not start on {port}: {ready:?}\n{log}\nmanifest:\n{}", setup.manifest(origin_port));
        }
        Self { viceroy, port, dir, seen_out: 0 }
    }

    /// Viceroy's process id.
    pub fn pid(&self) -> u32 {
        self.viceroy.id()
    }

    /// Send a request (raw HTTP/1.1; `headers` should include Host).
    pub fn send(&self, method: &str, target: &str, headers: &[(String, String)], body: Option<&[u8]>) -> Response {
        raw_http::send(self.port, method, target, headers, body).expect("request to viceroy")
    }

    /// Everything Viceroy and the guest wrote to stdout (log endpoints) and stderr.
    pub fn output(&self) -> (String, String) {
        (
            fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default(),
            fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default(),
        )
    }

    /// The JSON lines written to the `botauth` log endpoint since the last call.
    pub fn new_log_events(&mut self) -> Vec<serde_json::Value> {
        // The guest writes the log line before it answers, but Viceroy's writer may trail
        // by a moment.
        std::thread::sleep(Duration::from_millis(30));
        let (out, _) = self.output();
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("botauth :: ")).collect();
        let fresh = lines.get(self.seen_out..).unwrap_or_default();
        self.seen_out = lines.len();
        fresh
            .iter()
            .map(|l| serde_json::from_str(l.trim_start_matches("botauth :: ")).expect("log line is JSON"))
            .collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.viceroy.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The 32-byte seed of the test key.
pub fn seed() -> [u8; 32] {
    use base64::Engine as _;
    let d = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(TEST_D).expect("seed");
    d.try_into().expect("32 bytes")
}

/// What to sign.
pub struct Sig<'a> {
    pub method: &'a str,
    pub authority: &'a str,
    pub target: &'a str,
    pub agent: &'a str,
    pub created: u64,
    pub expires: u64,
    pub nonce: Option<&'a str>,
}

impl Default for Sig<'_> {
    fn default() -> Self {
        Self {
            method: "GET",
            authority: "example.com",
            target: "/",
            agent: AGENT,
            created: NOW - 10,
            expires: NOW + 300,
            nonce: None,
        }
    }
}

/// An Ed25519 key of the tests' own, from a fixed seed (not a published test key, so
/// verifiers that reject test keys accept it).
#[derive(Clone, Debug)]
pub struct TestKey {
    pub seed: [u8; 32],
    /// JWK `x`.
    pub x: String,
    /// RFC 7638 thumbprint (the keyid).
    pub keyid: String,
}

impl TestKey {
    /// The key whose seed is 32 times `byte` (non-zero).
    pub fn from_byte(byte: u8) -> Self {
        use base64::Engine as _;
        assert_ne!(byte, 0, "an all-zero seed is refused by core");
        let seed = [byte; 32];
        let public = botauth_core::sign::public_key(&seed).expect("public key");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public);
        let keyid = botauth_core::keys::thumbprint_okp("Ed25519", &x);
        Self { seed, x, keyid }
    }

    /// The published RFC 9421 test key.
    pub fn rfc9421() -> Self {
        Self { seed: seed(), x: TEST_X.into(), keyid: TEST_KEYID.into() }
    }

    /// The public JWK (with `kid` = thumbprint).
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.keyid})
    }
}

/// A JWK Set of `keys`.
pub fn jwks_of(keys: &[&TestKey]) -> String {
    serde_json::json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// The current unix time, seconds.
pub use botauth_testkit::unix_now;

/// Host, Signature-Agent, Signature-Input and Signature for a Web Bot Auth request signed
/// with the test key, covering `@authority` and `signature-agent`.
pub fn signed_headers(s: &Sig<'_>) -> Vec<(String, String)> {
    signed_headers_with(&TestKey::rfc9421(), s)
}

/// [`signed_headers`] with another key.
pub fn signed_headers_with(key: &TestKey, s: &Sig<'_>) -> Vec<(String, String)> {
    let agent_field = format!("\"{}\"", s.agent);
    let req = HttpRequest::new(s.method, "https", s.authority, s.target)
        .with_header("Signature-Agent", agent_field.as_bytes());
    let params = SignParams {
        label: "sig1".into(),
        components: vec!["\"@authority\"".into(), "\"signature-agent\"".into()],
        created: Some(s.created),
        keyid: Some(key.keyid.clone()),
        alg: Some("ed25519".into()),
        expires: Some(s.expires),
        nonce: s.nonce.map(String::from),
        tag: Some("web-bot-auth".into()),
    };
    let signed = sign(&Message::request(&req), &key.seed, &params).expect("sign");
    vec![
        ("Host".into(), s.authority.into()),
        ("Signature-Agent".into(), agent_field),
        ("Signature-Input".into(), signed.signature_input),
        ("Signature".into(), signed.signature),
    ]
}

/// `(name, value)` pairs from string slices.
pub fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| (String::from(*n), String::from(*v))).collect()
}

/// The verdict header the origin must see for a verified request of the test key.
pub fn verified_header(agent: &str, keyid: &str, label: &str) -> String {
    format!(r#"verified;agent="{agent}";keyid="{keyid}";label="{label}""#)
}
