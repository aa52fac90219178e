//! A soak (issue 11): many keep-alive connections send a mixed stream of requests whose
//! verdicts are known before they are sent, for a fixed time, against a real host (the
//! Fastly service under Viceroy, the filter in Envoy). Every answer is checked against its
//! request's expected verdict, and so is the origin's view: a rejected request must never
//! reach it, a forwarded one must reach it exactly once with exactly the right verdict
//! header. The hosts' memory is sampled every second.
//!
//! Each request carries `x-soak-id` (not covered by any signature), which the echo origin
//! records and echoes, so answers and upstream records are matched to their requests.
//!
//! The adapters' `soak` tests drive this for `BOTAUTH_SOAK_SECS` (10 by default, a
//! correctness check inside `cargo xtask test`); `cargo xtask soak` runs them for 60 s and
//! writes the reports they leave at `BOTAUTH_SOAK_REPORT` into `RELIABILITY.md`.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use botauth_core::components::Message;
use botauth_core::sign::{sign, SignParams};
use botauth_core::HttpRequest;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::origin::Origin;
use crate::unix_now;

/// The request header that names a request in answers and upstream records.
pub const ID_HEADER: &str = "x-soak-id";
/// The verdict header the hosts send to the origin.
pub const VERDICT_HEADER: &str = "botauth-verdict";

/// One signing key of an agent.
#[derive(Clone, Debug)]
pub struct Signer {
    /// The `Signature-Agent` URI the signature names.
    pub agent: String,
    /// The Ed25519 seed.
    pub seed: [u8; 32],
    /// The keyid (RFC 7638 thumbprint).
    pub keyid: String,
}

impl Signer {
    /// The key whose seed is 32 times `byte` (non-zero), for `agent`.
    pub fn from_byte(agent: &str, byte: u8) -> Self {
        let seed = [byte; 32];
        let public = botauth_core::sign::public_key(&seed).unwrap_or([0; 32]);
        let x = B64URL.encode(public);
        Self { agent: agent.into(), seed, keyid: botauth_core::keys::thumbprint_okp("Ed25519", &x) }
    }

    /// The public JWK (with `kid`).
    pub fn jwk(&self) -> serde_json::Value {
        let public = botauth_core::sign::public_key(&self.seed).unwrap_or([0; 32]);
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": B64URL.encode(public), "kid": self.keyid})
    }

    /// The verdict header an origin must see for a request this key signed as `sig1`.
    pub fn verdict(&self) -> String {
        format!(r#"verified;agent="{}";keyid="{}";label="sig1""#, self.agent, self.keyid)
    }
}

/// A JWK Set of `signers`.
pub fn jwks(signers: &[&Signer]) -> String {
    serde_json::json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()}).to_string()
}

/// The agents of every host's soak: two directory agents with two keys each, an agent the
/// host's configuration pins, and an allow-listed agent whose directory is down.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// The keys of [`Fleet::AGENT_A`], both in its directory.
    pub a: [Signer; 2],
    /// The keys of [`Fleet::AGENT_B`], both in its directory.
    pub b: [Signer; 2],
    /// The key pinned for [`Fleet::PINNED`]: seed byte [`Fleet::PINNED_BYTE`].
    pub pinned: Signer,
    /// A key of [`Fleet::DOWN`], whose directory answers 500.
    pub down: Signer,
}

impl Fleet {
    /// A directory agent.
    pub const AGENT_A: &'static str = "https://agent-a.test";
    /// Another directory agent.
    pub const AGENT_B: &'static str = "https://agent-b.test";
    /// The agent with a pinned key.
    pub const PINNED: &'static str = "https://pinned.test";
    /// The allow-listed agent whose directory is down.
    pub const DOWN: &'static str = "https://agent-down.test";
    /// The seed byte of the pinned key (for hosts that build their keys from a byte).
    pub const PINNED_BYTE: u8 = 15;

    /// [`Fleet::AGENT_A`]'s directory.
    pub fn jwks_a(&self) -> String {
        jwks(&[&self.a[0], &self.a[1]])
    }

    /// [`Fleet::AGENT_B`]'s directory.
    pub fn jwks_b(&self) -> String {
        jwks(&[&self.b[0], &self.b[1]])
    }

    /// The soak's traffic with these agents, for `Host: example.com`.
    pub fn plan(&self) -> Plan {
        let mut signers = Vec::from(self.a.clone());
        signers.extend(self.b.clone());
        signers.push(self.pinned.clone());
        Plan { authority: "example.com".into(), signers, down: Some(self.down.clone()) }
    }
}

impl Default for Fleet {
    fn default() -> Self {
        Self {
            a: [Signer::from_byte(Self::AGENT_A, 11), Signer::from_byte(Self::AGENT_A, 12)],
            b: [Signer::from_byte(Self::AGENT_B, 13), Signer::from_byte(Self::AGENT_B, 14)],
            pinned: Signer::from_byte(Self::PINNED, Self::PINNED_BYTE),
            down: Signer::from_byte(Self::DOWN, 16),
        }
    }
}

/// What traffic the soak sends.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The `Host` of every request.
    pub authority: String,
    /// Keys the host must accept (several agents, several keys each).
    pub signers: Vec<Signer>,
    /// A key of an allow-listed agent whose directory is down: its requests must fail
    /// closed with `directory_unavailable` and never affect the others.
    pub down: Option<Signer>,
}

/// The answer a request must get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// 200 from the origin, which saw it once with exactly this verdict header (`None`: no
    /// verdict header at all).
    Forward(Option<String>),
    /// This status and problem code; the origin never sees it.
    Reject(u16, &'static str),
}

/// One request on the wire.
#[derive(Clone, Debug)]
pub struct Step {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    expect: Expect,
}

/// The traffic classes, each with its share of requests (per 100).
pub const CLASSES: &[(&str, u32)] = &[
    ("unsigned", 36),
    ("signed", 24),
    ("tampered", 6),
    ("replayed", 6),
    ("expired", 6),
    ("garbage", 6),
    ("oversized", 4),
    ("digest_good", 4),
    ("digest_bad", 4),
    ("directory_down", 4),
];

fn class_of(seq: u64, plan: &Plan) -> &'static str {
    // A fixed interleaving (a multiplicative hash of the sequence number), so every run
    // sends the same mix and every class appears within the first hundred requests.
    let slot = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 100;
    let mut acc = 0u64;
    for &(name, share) in CLASSES {
        acc += u64::from(share);
        if slot < acc {
            if name == "directory_down" && plan.down.is_none() {
                return "signed";
            }
            return name;
        }
    }
    "unsigned"
}

struct SignOpts<'a> {
    created: u64,
    expires: u64,
    nonce: Option<String>,
    digest: Option<&'a str>,
}

/// Host, Signature-Agent, (Content-Digest,) Signature-Input and Signature for `signer`.
fn signed(plan: &Plan, signer: &Signer, o: &SignOpts<'_>) -> Vec<(String, String)> {
    let agent_field = format!("\"{}\"", signer.agent);
    let mut req =
        HttpRequest::new("GET", "https", &plan.authority, "/").with_header("Signature-Agent", agent_field.as_bytes());
    let mut components = vec!["\"@authority\"".to_string(), "\"signature-agent\"".to_string()];
    if let Some(d) = o.digest {
        req = req.with_header("Content-Digest", d.as_bytes());
        components.push("\"content-digest\"".into());
    }
    let params = SignParams {
        label: "sig1".into(),
        components,
        created: Some(o.created),
        keyid: Some(signer.keyid.clone()),
        alg: Some("ed25519".into()),
        expires: Some(o.expires),
        nonce: o.nonce.clone(),
        tag: Some("web-bot-auth".into()),
    };
    let mut out = vec![("Host".to_string(), plan.authority.clone()), ("Signature-Agent".into(), agent_field)];
    if let Some(d) = o.digest {
        out.push(("Content-Digest".into(), d.into()));
    }
    // Signing cannot fail with the keys above; if it did, the request would go out unsigned
    // and its verdict be reported as wrong, never silently dropped.
    if let Ok(s) = sign(&Message::request(&req), &signer.seed, &params) {
        out.push(("Signature-Input".into(), s.signature_input));
        out.push(("Signature".into(), s.signature));
    }
    out
}

/// The requests of one draw of `class` (a replay is two requests on one connection).
fn steps(plan: &Plan, class: &'static str, seq: u64) -> Vec<Step> {
    let now = unix_now();
    let pick = |n: usize| (seq as usize / 7) % n.max(1);
    let signer = plan.signers.get(pick(plan.signers.len()));
    let fresh = |nonce: bool| SignOpts {
        created: now.saturating_sub(2),
        expires: now + 120,
        nonce: nonce.then(|| format!("soak-{seq}-{now}")),
        digest: None,
    };
    let get = |target: String, headers: Vec<(String, String)>, expect: Expect| Step {
        method: "GET",
        target,
        headers,
        body: None,
        expect,
    };
    let Some(signer) = signer else {
        return vec![get("/unsigned".into(), vec![("Host".into(), plan.authority.clone())], Expect::Forward(None))];
    };
    let target = format!("/{class}/{seq}");
    match class {
        "signed" => vec![get(target, signed(plan, signer, &fresh(true)), Expect::Forward(Some(signer.verdict())))],
        "tampered" => {
            // Signed for the authority, sent to another: `@authority` no longer matches.
            let mut h = signed(plan, signer, &fresh(true));
            if let Some(host) = h.iter_mut().find(|(n, _)| n == "Host") {
                host.1 = format!("tampered.{}", plan.authority);
            }
            vec![get(target, h, Expect::Reject(403, "signature_invalid"))]
        }
        "replayed" => {
            let h = signed(plan, signer, &fresh(true));
            vec![
                get(target.clone(), h.clone(), Expect::Forward(Some(signer.verdict()))),
                get(format!("{target}/again"), h, Expect::Reject(429, "replay")),
            ]
        }
        "expired" => {
            let o = SignOpts {
                created: now.saturating_sub(600),
                expires: now.saturating_sub(300),
                nonce: None,
                digest: None,
            };
            vec![get(target, signed(plan, signer, &o), Expect::Reject(403, "expired"))]
        }
        "garbage" => {
            // A real field with its inner list left open, or a Signature that is no base64.
            let mut h = signed(plan, signer, &fresh(true));
            let (name, code) = if seq.is_multiple_of(2) {
                ("Signature-Input", "malformed_field")
            } else {
                ("Signature", "signature_bad_base64")
            };
            if let Some(f) = h.iter_mut().find(|(n, _)| n == name) {
                f.1 = if seq.is_multiple_of(2) { f.1.replacen(')', "", 1) } else { "sig1=:not*base64:".into() };
            }
            vec![get(target, h, Expect::Reject(400, code))]
        }
        "oversized" => {
            let mut o = fresh(false);
            o.nonce = Some("n".repeat(5000));
            vec![get(target, signed(plan, signer, &o), Expect::Reject(400, "field_too_large"))]
        }
        "digest_good" | "digest_bad" => {
            let body: Vec<u8> = format!("{{\"seq\":{seq},\"pad\":\"{}\"}}", "x".repeat(400)).into_bytes();
            let digest = format!("sha-256=:{}:", B64.encode(Sha256::digest(&body)));
            let mut o = fresh(true);
            o.digest = Some(&digest);
            let headers = signed(plan, signer, &o);
            let (body, expect) = if class == "digest_good" {
                (body, Expect::Forward(Some(signer.verdict())))
            } else {
                let mut b = body;
                b.extend_from_slice(b" tampered");
                (b, Expect::Reject(400, "content_digest_mismatch"))
            };
            vec![Step { method: "POST", target, headers, body: Some(body), expect }]
        }
        "directory_down" => match &plan.down {
            Some(down) => {
                vec![get(target, signed(plan, down, &fresh(true)), Expect::Reject(503, "directory_unavailable"))]
            }
            None => Vec::new(),
        },
        _ => {
            let mut h = vec![("Host".to_string(), plan.authority.clone())];
            if seq.is_multiple_of(4) {
                // A client may not hand the origin a verdict of its own.
                h.push((VERDICT_HEADER.into(), format!("verified;agent=\"{}\";keyid=\"x\"", signer.agent)));
            }
            vec![get(target, h, Expect::Forward(None))]
        }
    }
}

// ---- a keep-alive HTTP/1.1 connection -----------------------------------------------

struct Conn {
    port: u16,
    stream: Option<BufReader<TcpStream>>,
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Conn {
    fn exchange(&mut self, wire: &[u8]) -> io::Result<Answer> {
        if self.stream.is_none() {
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.stream = Some(BufReader::new(s));
        }
        let result = match self.stream.as_mut() {
            Some(s) => round_trip(s, wire),
            None => Err(io::Error::other("no connection")),
        };
        match &result {
            Ok((_, keep)) if *keep => {}
            _ => self.stream = None,
        }
        result.map(|(a, _)| a)
    }
}

fn round_trip(s: &mut BufReader<TcpStream>, wire: &[u8]) -> io::Result<(Answer, bool)> {
    s.get_mut().write_all(wire)?;
    let mut line = String::new();
    if s.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the answer"));
    }
    let status =
        line.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| io::Error::other("bad status line"))?;
    let (mut len, mut chunked, mut keep, mut content_type) = (None, false, true, None);
    loop {
        line.clear();
        if s.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in the header section"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            let v = v.trim();
            match n.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => keep = !v.eq_ignore_ascii_case("close"),
                "content-type" => content_type = Some(v.to_string()),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        body = crate::origin::read_chunked(s)?;
    } else if let Some(n) = len {
        body.resize(n, 0);
        s.read_exact(&mut body)?;
    } else if status >= 200 && status != 204 && status != 304 {
        s.read_to_end(&mut body)?;
        keep = false;
    }
    Ok((Answer { status, content_type, body }, keep))
}

fn wire(step: &Step, id: u64) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", step.method, step.target).into_bytes();
    for (n, v) in &step.headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("{ID_HEADER}: {id}\r\n").as_bytes());
    if let Some(b) = &step.body {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
        out.extend_from_slice(b);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Why an answer is not the expected one, or `None` when it is.
fn check_answer(a: &Answer, expect: &Expect, id: u64) -> Option<String> {
    match expect {
        Expect::Forward(_) => {
            if a.status != 200 {
                return Some(format!("status {} ({}), expected 200 from the origin", a.status, problem_code(&a.body)));
            }
            let echoed = serde_json::from_slice::<serde_json::Value>(&a.body).ok().and_then(|v| {
                v["headers"].as_array()?.iter().find_map(|h| {
                    let name = h.get(0)?.as_str()?;
                    name.eq_ignore_ascii_case(ID_HEADER).then(|| h.get(1)?.as_str().map(String::from)).flatten()
                })
            });
            match echoed {
                Some(e) if e == id.to_string() => None,
                other => Some(format!("the origin's echo names request {other:?}, not {id}")),
            }
        }
        Expect::Reject(status, code) => {
            let got = problem_code(&a.body);
            let json = a.content_type.as_deref() == Some("application/problem+json");
            (a.status != *status || got != *code || !json)
                .then(|| format!("got {} {got} ({:?}), expected {status} {code}", a.status, a.content_type))
        }
    }
}

fn problem_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(String::from))
        .unwrap_or_else(|| "-".into())
}

// ---- memory -------------------------------------------------------------------------

/// The resident set of `pid` and all its descendants, in KiB (Linux `/proc`).
pub fn tree_rss_kib(pid: u32) -> u64 {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mut children = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                children.extend(c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    rss + children.into_iter().map(tree_rss_kib).sum::<u64>()
}

// ---- the run ------------------------------------------------------------------------

/// How to run a soak.
#[derive(Clone, Debug)]
pub struct Options {
    /// The host's port on 127.0.0.1.
    pub port: u16,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
    /// Memory is compared against its level at this point of the run.
    pub warm_up: Duration,
    /// Processes whose memory (with their children) is sampled every second, by name.
    pub processes: Vec<(String, u32)>,
}

impl Options {
    /// `BOTAUTH_SOAK_SECS` (default 10) at `BOTAUTH_SOAK_CONNECTIONS` (default 64)
    /// connections to `port`, warm-up a sixth of the run.
    pub fn from_env(port: u16, processes: Vec<(String, u32)>) -> Self {
        let secs = std::env::var("BOTAUTH_SOAK_SECS").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(10).max(1);
        let connections =
            std::env::var("BOTAUTH_SOAK_CONNECTIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(64usize).max(1);
        Self {
            port,
            connections,
            duration: Duration::from_secs(secs),
            warm_up: Duration::from_secs(secs.div_ceil(6)),
            processes,
        }
    }
}

/// Latency and correctness of one traffic class.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClassReport {
    /// Requests sent.
    pub requests: u64,
    /// Answers that were not the expected verdict.
    pub wrong: u64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
}

/// Memory of one process tree.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemoryReport {
    /// The process.
    pub name: String,
    /// RSS after the warm-up, KiB.
    pub after_warm_up_kib: u64,
    /// Highest RSS after the warm-up, KiB.
    pub max_kib: u64,
    /// RSS at the end, KiB.
    pub end_kib: u64,
    /// `(max - after warm-up) / after warm-up`, percent.
    pub growth_pct: f64,
    /// Every sample (one a second), KiB.
    pub samples_kib: Vec<u64>,
}

/// What a soak saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The host, e.g. "Fastly service under Viceroy".
    pub host: String,
    /// Seconds sent.
    pub seconds: f64,
    /// Connections.
    pub connections: usize,
    /// Requests sent (answered or not).
    pub requests: u64,
    /// Requests per second.
    pub rate: f64,
    /// Connection failures, resets and timeouts.
    pub transport_errors: u64,
    /// Answers that were not the expected verdict.
    pub wrong_verdicts: u64,
    /// Requests the origin saw that it must not have, saw twice, or saw with another
    /// verdict header than expected; and forwarded ones it never saw.
    pub wrong_upstream: u64,
    /// Up to 20 examples of each kind of failure.
    pub examples: Vec<String>,
    /// By traffic class.
    pub classes: BTreeMap<String, ClassReport>,
    /// By sampled process.
    pub memory: Vec<MemoryReport>,
}

impl Report {
    /// Whether the run met its correctness goal: no transport error, no wrong verdict, no
    /// wrong upstream view.
    pub fn correct(&self) -> bool {
        self.transport_errors == 0 && self.wrong_verdicts == 0 && self.wrong_upstream == 0 && self.requests > 0
    }

    /// Write the JSON report to `BOTAUTH_SOAK_REPORT`/`<file>` when that variable is set.
    pub fn save(&self, file: &str) -> io::Result<()> {
        if let Some(dir) = std::env::var_os("BOTAUTH_SOAK_REPORT") {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir)?;
            let json = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
            std::fs::write(dir.join(file), json)?;
        }
        Ok(())
    }
}

struct Sent {
    class: &'static str,
    expect: Expect,
    latency_us: u64,
    answered: bool,
    wrong: bool,
}

/// Run `plan` against the host for `opts.duration`, then check the origin's records.
pub fn run(host: &str, plan: &Plan, opts: &Options, origin: &Origin) -> Report {
    let seq = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    let deadline = start + opts.duration;
    let stop_sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let procs = opts.processes.clone();
        let stop = stop_sampling.clone();
        std::thread::spawn(move || {
            let mut samples: Vec<Vec<u64>> = vec![Vec::new(); procs.len()];
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                for (i, (_, pid)) in procs.iter().enumerate() {
                    if let Some(s) = samples.get_mut(i) {
                        s.push(tree_rss_kib(*pid));
                    }
                }
                next += Duration::from_secs(1);
                while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            samples
        })
    };
    let workers: Vec<_> = (0..opts.connections)
        .map(|_| {
            let (plan, seq, errors, port) = (plan.clone(), seq.clone(), errors.clone(), opts.port);
            std::thread::spawn(move || {
                let mut conn = Conn { port, stream: None };
                let mut sent: HashMap<u64, Sent> = HashMap::new();
                let (mut transport, mut wrong) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let class = class_of(n, &plan);
                    for (k, step) in steps(&plan, class, n).into_iter().enumerate() {
                        let id = n * 4 + k as u64;
                        let t0 = Instant::now();
                        let result = conn.exchange(&wire(&step, id));
                        let latency_us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                        let answered = result.is_ok();
                        let mut is_wrong = false;
                        match result {
                            Ok(a) => {
                                if let Some(why) = check_answer(&a, &step.expect, id) {
                                    wrong += 1;
                                    is_wrong = true;
                                    note(&errors, format!("{class} #{id}: {why}"));
                                }
                            }
                            Err(e) => {
                                transport += 1;
                                note(&errors, format!("{class} #{id}: transport: {e}"));
                            }
                        }
                        sent.insert(id, Sent { class, expect: step.expect, latency_us, answered, wrong: is_wrong });
                    }
                }
                (sent, transport, wrong)
            })
        })
        .collect();
    let mut sent: HashMap<u64, Sent> = HashMap::new();
    let (mut transport_errors, mut wrong_verdicts) = (0, 0);
    for w in workers {
        if let Ok((s, t, wv)) = w.join() {
            sent.extend(s);
            transport_errors += t;
            wrong_verdicts += wv;
        } else {
            transport_errors += 1;
            note(&errors, "a load thread panicked".into());
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    stop_sampling.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    // The origin records a request before it answers, so every forwarded request whose
    // answer arrived is in its log by now.
    let wrong_upstream = check_upstream(&sent, origin, &errors);

    let mut classes: BTreeMap<String, (ClassReport, Vec<u64>)> = BTreeMap::new();
    for s in sent.values() {
        let (r, lat) = classes.entry(s.class.to_string()).or_default();
        r.requests += 1;
        r.wrong += u64::from(s.wrong);
        if s.answered {
            lat.push(s.latency_us);
        }
    }
    let classes = classes
        .into_iter()
        .map(|(k, (mut r, mut lat))| {
            lat.sort_unstable();
            r.p50_us = percentile(&lat, 50);
            r.p99_us = percentile(&lat, 99);
            (k, r)
        })
        .collect();
    let warm = usize::try_from(opts.warm_up.as_secs()).unwrap_or(0);
    let memory = opts
        .processes
        .iter()
        .zip(samples)
        .map(|((name, _), s)| {
            let after = s.get(warm).or(s.last()).copied().unwrap_or(0);
            let max = s.iter().skip(warm).copied().max().unwrap_or(after);
            let growth = if after > 0 { (max as f64 - after as f64) * 100.0 / after as f64 } else { 0.0 };
            MemoryReport {
                name: name.clone(),
                after_warm_up_kib: after,
                max_kib: max,
                end_kib: s.last().copied().unwrap_or(0),
                growth_pct: growth,
                samples_kib: s,
            }
        })
        .collect();
    let examples = errors.lock().map(|e| e.clone()).unwrap_or_default();
    Report {
        host: host.into(),
        seconds,
        connections: opts.connections,
        requests: sent.len() as u64,
        rate: sent.len() as f64 / seconds.max(0.001),
        transport_errors,
        wrong_verdicts,
        wrong_upstream,
        examples,
        classes,
        memory,
    }
}

fn note(errors: &Mutex<Vec<String>>, e: String) {
    if let Ok(mut v) = errors.lock() {
        if v.len() < 40 {
            v.push(e);
        }
    }
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = (sorted.len() * p).div_ceil(100).saturating_sub(1).min(sorted.len() - 1);
    sorted.get(i).copied().unwrap_or(0)
}

/// Count upstream records that contradict their request's expectation.
fn check_upstream(sent: &HashMap<u64, Sent>, origin: &Origin, errors: &Mutex<Vec<String>>) -> u64 {
    let mut by_id: HashMap<u64, Vec<Vec<String>>> = HashMap::new();
    let mut wrong = 0;
    for seen in origin.seen() {
        let Some(id) = seen.header(ID_HEADER).and_then(|v| v.parse::<u64>().ok()) else {
            continue; // not the soak's (a directory server shares nothing with the origin)
        };
        let verdicts = seen
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(VERDICT_HEADER))
            .map(|(_, v)| v.clone())
            .collect();
        by_id.entry(id).or_default().push(verdicts);
    }
    for (id, s) in sent {
        let records = by_id.remove(id).unwrap_or_default();
        let why = match (&s.expect, records.as_slice()) {
            (Expect::Reject(..), []) => None,
            (Expect::Reject(status, code), _) => Some(format!("rejected ({status} {code}) but forwarded")),
            (Expect::Forward(v), [one]) => {
                let want: Vec<String> = v.iter().cloned().collect();
                (one != &want).then(|| format!("forwarded with verdict headers {one:?}, expected {want:?}"))
            }
            (Expect::Forward(_), []) if !s.answered => None, // the transport error is counted
            (Expect::Forward(_), []) => Some("answered but never forwarded".into()),
            (Expect::Forward(_), many) => Some(format!("forwarded {} times", many.len())),
        };
        if let Some(why) = why {
            wrong += 1;
            note(errors, format!("upstream {} #{id}: {why}", s.class));
        }
    }
    wrong += by_id.len() as u64; // records of requests never sent
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_appears_in_the_first_hundred_draws() {
        let plan = Plan { authority: "a".into(), signers: vec![], down: Some(Signer::from_byte("https://d", 3)) };
        let drawn: std::collections::BTreeSet<_> = (0..100).map(|s| class_of(s, &plan)).collect();
        assert_eq!(drawn.len(), CLASSES.len(), "{drawn:?}");
    }

    #[test]
    fn percentiles_of_a_known_list() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!((percentile(&v, 50), percentile(&v, 99)), (50, 99));
        assert_eq!(percentile(&[], 50), 0);
    }
}
