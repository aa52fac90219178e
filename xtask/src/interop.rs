//! Interop with independent implementations (part of `cargo xtask test`).
//!
//! Three implementations judge the same raw request files:
//! - `botauth`: `botauth verify --request FILE --jwks [AGENT=]FILE --now UNIX --json`;
//! - npm `web-bot-auth` (Cloudflare), pinned in `interop/package.json` and its lock file,
//!   installed with `npm ci` into `.tools/interop/node`, driven by `interop/wba.mjs`;
//! - PyPI `http-message-signatures`, pinned in `interop/requirements.txt`, installed into
//!   the venv `.tools/interop/venv`, driven by `interop/hms_verify.py`.
//!
//! Requests are signed by npm `web-bot-auth` and by `botauth sign` with the RFC 9421
//! B.1.4 test key, at the current time (the two peers read the wall clock). Every scenario
//! states what each implementation must decide for the signed request, and every tampered
//! copy must be rejected by all three. All failures are listed, not just the first.
//!
//! Quirk recorded here (RFC 9421 wins, ARCHITECTURE §3): npm `web-bot-auth` 0.1.3 (its
//! `http-message-sig` 0.2.0) ignores the `key` parameter of a covered field and signs and
//! verifies the whole `Signature-Agent` field instead of the named dictionary member
//! (RFC 9421 §2.1.2). Dictionary-form requests therefore do not interoperate with it in
//! either direction, while botauth and `http-message-signatures` agree with each other.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::util::{cargo, have, root, run, tools_dir};

const AGENT: &str = "https://signature-agent.test";
const KEYID: &str = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";
const VALIDITY: u64 = 300;
const SIG_INVALID: &str = "signature_invalid";
/// A tampered agent URI no longer names the agent the key is trusted for.
const UNKNOWN_KEY: &str = "unknown_key";

/// The three verifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verifier {
    Botauth,
    Npm,
    Python,
}

const VERIFIERS: [Verifier; 3] = [Verifier::Botauth, Verifier::Npm, Verifier::Python];

impl Verifier {
    fn name(self) -> &'static str {
        match self {
            Self::Botauth => "botauth",
            Self::Npm => "npm web-bot-auth",
            Self::Python => "PyPI http-message-signatures",
        }
    }
}

/// Who signs a scenario's request.
enum Signer {
    /// npm `web-bot-auth`: extra header lines and optional explicit components (JSON).
    Npm { target: &'static str, headers: Vec<(&'static str, String)>, components: Option<serde_json::Value> },
    /// `botauth sign`, with these extra flags, over a request with these header lines.
    Botauth { target: &'static str, headers: Vec<(&'static str, String)>, flags: Vec<&'static str> },
}

/// A change to a signed request file that every verifier must notice.
type Tamper = fn(&str) -> String;

struct Scenario {
    name: &'static str,
    signer: Signer,
    /// Whether the agent is bound to the key (`--jwks AGENT=FILE`) or any agent (`--jwks FILE`).
    agent_bound: bool,
    /// What each verifier must decide for the signed request (true = verified).
    expect: [bool; 3],
    /// botauth's rejection code for the signed request when `expect[0]` is false.
    botauth_reason: Option<&'static str>,
    /// Tampered copies: (what was changed, the change, botauth's rejection code). Every
    /// verifier must reject each.
    tampers: Vec<(&'static str, Tamper, &'static str)>,
}

fn legacy_agent() -> Vec<(&'static str, String)> {
    vec![("Signature-Agent", format!("\"{AGENT}\"")), ("User-Agent", "interop-test/1.0".into())]
}

fn dictionary_agent() -> Vec<(&'static str, String)> {
    vec![("Signature-Agent", format!("sig1=\"{AGENT}\"")), ("User-Agent", "interop-test/1.0".into())]
}

fn tamper_host(req: &str) -> String {
    replace_header(req, "host", "evil.example")
}

fn tamper_agent(req: &str) -> String {
    req.replace(AGENT, "https://evil.example")
}

fn tamper_path(req: &str) -> String {
    req.replacen("/articles/42", "/articles/43", 1)
}

fn tamper_query(req: &str) -> String {
    req.replacen("?lang=en", "?lang=fr", 1)
}

fn tamper_method(req: &str) -> String {
    req.strip_prefix("GET ").map(|rest| format!("DELETE {rest}")).unwrap_or_else(|| req.to_owned())
}

/// Flip one bit of the first decoded signature byte (stays valid base64 of 64 bytes).
fn tamper_signature(req: &str) -> String {
    let mut out = String::new();
    for line in req.split_inclusive('\n') {
        if line.to_ascii_lowercase().starts_with("signature:") {
            if let Some(pos) = line.find("=:") {
                let i = pos + 2;
                let c = line.as_bytes()[i];
                let flipped = if c == b'A' { 'B' } else { 'A' };
                out.push_str(&line[..i]);
                out.push(flipped);
                out.push_str(&line[i + 1..]);
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

fn replace_header(req: &str, name: &str, value: &str) -> String {
    req.split_inclusive('\n')
        .map(|line| {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with(&format!("{name}:")) {
                let nl = if line.ends_with("\r\n") { "\r\n" } else { "\n" };
                format!("{}: {value}{nl}", &line[..name.len()])
            } else {
                line.to_owned()
            }
        })
        .collect()
}

fn scenarios() -> Vec<Scenario> {
    let all = [true, true, true];
    vec![
        Scenario {
            name: "npm-signed/legacy-agent",
            signer: Signer::Npm { target: "/articles/42?lang=en", headers: legacy_agent(), components: None },
            agent_bound: true,
            expect: all,
            botauth_reason: None,
            tampers: vec![
                ("host", tamper_host, SIG_INVALID),
                ("signature-agent", tamper_agent, UNKNOWN_KEY),
                ("signature", tamper_signature, SIG_INVALID),
            ],
        },
        Scenario {
            // The WG draft's dictionary form with an `agent2`-style key; one member, so the
            // whole-field coverage npm produces names it unambiguously.
            name: "npm-signed/dictionary-agent2 (one member, whole field covered)",
            signer: Signer::Npm {
                target: "/articles/42",
                headers: vec![
                    ("Signature-Agent", format!("agent2=\"{AGENT}\"")),
                    ("User-Agent", "interop-test/1.0".into()),
                ],
                components: None,
            },
            agent_bound: true,
            expect: all,
            botauth_reason: None,
            tampers: vec![("host", tamper_host, SIG_INVALID), ("signature-agent", tamper_agent, UNKNOWN_KEY)],
        },
        Scenario {
            // draft-ietf-webbotauth-httpsig-protocol §4.1: the agent MUST be https. The peers
            // only check the signature; botauth refuses the agent.
            name: "npm-signed/http-agent (refused by botauth: https is a MUST)",
            signer: Signer::Npm {
                target: "/articles/42",
                headers: vec![
                    ("Signature-Agent", format!("\"{}\"", AGENT.replacen("https://", "http://", 1))),
                    ("User-Agent", "interop-test/1.0".into()),
                ],
                components: None,
            },
            agent_bound: true,
            expect: [false, true, true],
            botauth_reason: Some("signature_agent_not_https"),
            tampers: vec![],
        },
        Scenario {
            name: "npm-signed/no-agent",
            signer: Signer::Npm { target: "/articles/42", headers: vec![], components: None },
            agent_bound: false,
            expect: all,
            botauth_reason: None,
            tampers: vec![("host", tamper_host, SIG_INVALID), ("signature", tamper_signature, SIG_INVALID)],
        },
        Scenario {
            name: "npm-signed/method-path-query",
            signer: Signer::Npm {
                target: "/articles/42?lang=en",
                headers: legacy_agent(),
                components: Some(serde_json::json!(["@method", "@path", "@query", "@authority", "signature-agent"])),
            },
            agent_bound: true,
            expect: all,
            botauth_reason: None,
            tampers: vec![
                ("method", tamper_method, SIG_INVALID),
                ("path", tamper_path, SIG_INVALID),
                ("query", tamper_query, SIG_INVALID),
            ],
        },
        Scenario {
            // Quirk: npm signs the whole field, not the member `sig1` (RFC 9421 §2.1.2).
            name: "npm-signed/dictionary-agent (npm quirk: whole field signed for ;key)",
            signer: Signer::Npm {
                target: "/articles/42",
                headers: dictionary_agent(),
                components: Some(serde_json::json!(["@authority", {"name": "signature-agent", "key": "sig1"}])),
            },
            agent_bound: true,
            expect: [false, true, false],
            botauth_reason: Some(SIG_INVALID),
            tampers: vec![("host", tamper_host, SIG_INVALID), ("signature-agent", tamper_agent, UNKNOWN_KEY)],
        },
        Scenario {
            name: "botauth-signed/legacy-agent",
            signer: Signer::Botauth {
                target: "/articles/42?lang=en",
                headers: vec![("User-Agent", "interop-test/1.0".into())],
                flags: vec!["--agent", AGENT, "--agent-form", "legacy"],
            },
            agent_bound: true,
            expect: all,
            botauth_reason: None,
            tampers: vec![
                ("host", tamper_host, SIG_INVALID),
                ("signature-agent", tamper_agent, UNKNOWN_KEY),
                ("signature", tamper_signature, SIG_INVALID),
            ],
        },
        Scenario {
            name: "botauth-signed/no-agent",
            signer: Signer::Botauth {
                target: "/articles/42",
                headers: vec![],
                flags: vec!["--components", "@authority"],
            },
            agent_bound: false,
            expect: all,
            botauth_reason: None,
            tampers: vec![("host", tamper_host, SIG_INVALID), ("signature", tamper_signature, SIG_INVALID)],
        },
        Scenario {
            name: "botauth-signed/method-path-query",
            signer: Signer::Botauth {
                target: "/articles/42?lang=en",
                headers: vec![],
                flags: vec![
                    "--agent",
                    AGENT,
                    "--agent-form",
                    "legacy",
                    "--components",
                    "@method,@path,@query,@authority,signature-agent",
                ],
            },
            agent_bound: true,
            expect: all,
            botauth_reason: None,
            tampers: vec![
                ("method", tamper_method, SIG_INVALID),
                ("path", tamper_path, SIG_INVALID),
                ("query", tamper_query, SIG_INVALID),
            ],
        },
        Scenario {
            // The same quirk seen from the other side: npm rebuilds the base from the whole field.
            name: "botauth-signed/dictionary-agent (npm quirk: whole field signed for ;key)",
            signer: Signer::Botauth {
                target: "/articles/42",
                headers: vec![],
                flags: vec![
                    "--agent",
                    AGENT,
                    "--agent-form",
                    "dictionary",
                    "--label",
                    "sig1",
                    "--components",
                    "@authority,signature-agent;key=sig1",
                ],
            },
            agent_bound: true,
            expect: [true, false, true],
            botauth_reason: None,
            tampers: vec![
                ("host", tamper_host, SIG_INVALID),
                ("signature-agent", tamper_agent, UNKNOWN_KEY),
                ("signature", tamper_signature, SIG_INVALID),
            ],
        },
    ]
}

struct Env {
    botauth: PathBuf,
    node_dir: PathBuf,
    python: PathBuf,
    dir: PathBuf,
    private_jwk: PathBuf,
    public_jwk: PathBuf,
    jwks: PathBuf,
    now: u64,
}

/// `cargo xtask test` step: install the peers if needed, build `botauth`, run every scenario.
pub fn test() -> Result<(), String> {
    let node_dir = install_node()?;
    let python = install_python()?;
    run(cargo().args(["build", "-p", "botauth-cli"]))?;
    let botauth = target_dir().join("debug").join("botauth");
    if !botauth.is_file() {
        return Err(format!("built botauth-cli but {} does not exist", botauth.display()));
    }
    let dir = target_dir().join("interop");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (private_jwk, public_jwk, jwks) = write_keys(&dir)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let env = Env { botauth, node_dir, python, dir, private_jwk, public_jwk, jwks, now };

    let mut failures = Vec::new();
    let mut checks = 0usize;
    for (i, s) in scenarios().iter().enumerate() {
        let signed = match sign(&env, s, i) {
            Ok(text) => text,
            Err(e) => {
                failures.push(format!("{}: signing failed: {e}", s.name));
                continue;
            }
        };
        let file = env.dir.join(format!("{i}-signed.http"));
        write(&file, &signed)?;
        for (v, want) in VERIFIERS.iter().zip(s.expect) {
            checks += 1;
            let want_reason = if *v == Verifier::Botauth && !want { s.botauth_reason } else { None };
            if let Err(e) = expect(&env, *v, &file, s.agent_bound, want, want_reason) {
                failures.push(format!("{}: signed request: {e}", s.name));
            }
        }
        for (what, tamper, reason) in &s.tampers {
            let tampered = tamper(&signed);
            if tampered == signed {
                failures.push(format!("{}: tampering `{what}` changed nothing", s.name));
                continue;
            }
            let file = env.dir.join(format!("{i}-tampered-{what}.http"));
            write(&file, &tampered)?;
            for v in VERIFIERS {
                checks += 1;
                let want_reason = if v == Verifier::Botauth { Some(*reason) } else { None };
                if let Err(e) = expect(&env, v, &file, s.agent_bound, false, want_reason) {
                    failures.push(format!("{}: `{what}` tampered: {e}", s.name));
                }
            }
        }
        println!("interop: {} done", s.name);
    }
    if failures.is_empty() {
        println!("interop: {checks} checks passed ({} scenarios, 3 implementations)", scenarios().len());
        Ok(())
    } else {
        let mut msg = format!("{} of {checks} interop checks failed:", failures.len());
        for f in &failures {
            let _ = write!(msg, "\n  - {f}");
        }
        Err(msg)
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `npm ci` into `.tools/interop/node` unless the lock file there is already the committed one.
fn install_node() -> Result<PathBuf, String> {
    if !have("node") || !have("npm") {
        return Err("node and npm are needed for the interop tests (Debian: `apt-get install nodejs npm`)".into());
    }
    let src = root().join("interop");
    let dir = tools_dir().join("interop").join("node");
    let lock = read(&src.join("package-lock.json"))?;
    let installed = dir.join("node_modules").join("web-bot-auth").join("package.json").is_file();
    if installed && std::fs::read_to_string(dir.join("package-lock.json")).ok().as_deref() == Some(lock.as_str()) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write(&dir.join("package.json"), &read(&src.join("package.json"))?)?;
    write(&dir.join("package-lock.json"), &lock)?;
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir))?;
    Ok(dir)
}

/// A venv in `.tools/interop/venv` with `interop/requirements.txt` installed (once per change).
fn install_python() -> Result<PathBuf, String> {
    let venv = tools_dir().join("interop").join("venv");
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        let py = if have("python3") { "python3" } else { "python" };
        run(Command::new(py).args(["-m", "venv"]).arg(&venv))?;
    }
    let reqs = root().join("interop").join("requirements.txt");
    let wanted = read(&reqs)?;
    let stamp = venv.join("botauth-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet", "-r"])
        .arg(&reqs))?;
    write(&stamp, &wanted)?;
    Ok(python)
}

/// The RFC 9421 B.1.4 test key from the published vectors: private JWK, public JWK, JWKS.
fn write_keys(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let vectors = read(&root().join("fixtures/vectors/spec-ed25519-vectors.json"))?;
    let vectors: serde_json::Value = serde_json::from_str(&vectors).map_err(|e| e.to_string())?;
    let jwk = vectors.get(0).and_then(|v| v.get("key_jwk")).ok_or("no key_jwk in the first vector")?;
    let x = jwk.get("x").and_then(|x| x.as_str()).ok_or("key_jwk without x")?;
    let public = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x});
    let private = dir.join("private.jwk.json");
    let public_path = dir.join("public.jwk.json");
    let jwks = dir.join("jwks.json");
    write(&private, &jwk.to_string())?;
    write(&public_path, &public.to_string())?;
    write(&jwks, &serde_json::json!({ "keys": [public] }).to_string())?;
    Ok((private, public_path, jwks))
}

fn output(cmd: &mut Command, stdin: Option<&str>) -> Result<Output, String> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write as _;
        pipe.write_all(text.as_bytes()).map_err(|e| format!("{shown}: {e}"))?;
    }
    child.wait_with_output().map_err(|e| format!("{shown}: {e}"))
}

fn sign(env: &Env, s: &Scenario, i: usize) -> Result<String, String> {
    let (created, expires) = (env.now, env.now + VALIDITY);
    match &s.signer {
        Signer::Npm { target, headers, components } => {
            let mut spec = serde_json::json!({
                "jwk": serde_json::from_str::<serde_json::Value>(&read(&env.private_jwk)?).map_err(|e| e.to_string())?,
                "method": "GET",
                "url": format!("https://example.com{target}"),
                "headers": headers.iter().map(|(n, v)| [n.to_string(), v.clone()]).collect::<Vec<_>>(),
                "created": created,
                "expires": expires,
            });
            if let Some(c) = components {
                spec["components"] = c.clone();
            }
            let out = output(
                Command::new("node").arg(root().join("interop/wba.mjs")).arg("sign").current_dir(&env.node_dir),
                Some(&spec.to_string()),
            )?;
            if !out.status.success() {
                return Err(format!("npm signer failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
            String::from_utf8(out.stdout).map_err(|e| e.to_string())
        }
        Signer::Botauth { target, headers, flags } => {
            let mut req = format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n");
            for (n, v) in headers {
                let _ = write!(req, "{n}: {v}\r\n");
            }
            req.push_str("\r\n");
            let file = env.dir.join(format!("{i}-unsigned.http"));
            write(&file, &req)?;
            let out = output(
                Command::new(&env.botauth)
                    .args(["sign", "--key"])
                    .arg(&env.private_jwk)
                    .arg("--request")
                    .arg(&file)
                    .args(["--created", &created.to_string(), "--expires", &expires.to_string()])
                    .args(["--tag", "web-bot-auth"])
                    .args(flags),
                None,
            )?;
            if !out.status.success() {
                return Err(format!("botauth sign failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)));
            }
            String::from_utf8(out.stdout).map_err(|e| e.to_string())
        }
    }
}

/// Judge `file` with `v` and compare with `want` (and botauth's rejection code, if given).
fn expect(
    env: &Env,
    v: Verifier,
    file: &Path,
    agent_bound: bool,
    want: bool,
    want_reason: Option<&str>,
) -> Result<(), String> {
    let (got, detail) = judge(env, v, file, agent_bound)?;
    if got != want {
        return Err(format!(
            "{} {} it, expected it to {} ({detail}; file {})",
            v.name(),
            if got { "verified" } else { "rejected" },
            if want { "verify" } else { "reject" },
            file.display()
        ));
    }
    if let Some(reason) = want_reason {
        let json: serde_json::Value = serde_json::from_str(detail.trim())
            .map_err(|e| format!("botauth verify --json printed no JSON ({e}): {detail}"))?;
        if json["reason"].as_str() != Some(reason) {
            return Err(format!(
                "botauth rejected it for {}, expected {reason} (file {})",
                json["reason"],
                file.display()
            ));
        }
    }
    Ok(())
}

/// `Ok((verified, detail))`, or `Err` when the verifier could not judge (bad input, crash).
fn judge(env: &Env, v: Verifier, file: &Path, agent_bound: bool) -> Result<(bool, String), String> {
    let out = match v {
        Verifier::Botauth => {
            let jwks =
                if agent_bound { format!("{AGENT}={}", env.jwks.display()) } else { env.jwks.display().to_string() };
            output(
                Command::new(&env.botauth).args(["verify", "--request"]).arg(file).args([
                    "--jwks",
                    &jwks,
                    "--now",
                    &env.now.to_string(),
                    "--json",
                    // The interop scenarios sign with the published RFC 9421 test key.
                    "--allow-test-keys",
                ]),
                None,
            )?
        }
        Verifier::Npm => output(
            Command::new("node")
                .arg(root().join("interop/wba.mjs"))
                .arg("verify")
                .arg(file)
                .arg(&env.public_jwk)
                .current_dir(&env.node_dir),
            None,
        )?,
        Verifier::Python => output(
            Command::new(&env.python).arg(root().join("interop/hms_verify.py")).arg(file).arg(&env.public_jwk),
            None,
        )?,
    };
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let detail = if stderr.is_empty() { stdout.clone() } else { format!("{stdout} {stderr}") };
    match out.status.code() {
        Some(0) => {
            if v == Verifier::Botauth {
                check_botauth_json(&stdout)?;
            }
            Ok((true, detail))
        }
        Some(1) => Ok((false, detail)),
        _ => Err(format!("could not judge ({}): {detail}", out.status)),
    }
}

/// A verified `botauth verify --json` names the verdict and the test key's keyid.
fn check_botauth_json(stdout: &str) -> Result<(), String> {
    let json: serde_json::Value =
        serde_json::from_str(stdout).map_err(|e| format!("botauth verify --json printed no JSON ({e}): {stdout}"))?;
    let text = json.to_string();
    if !text.contains("verified") || !text.contains(KEYID) {
        return Err(format!("botauth verify exited 0 but its JSON does not say verified with keyid {KEYID}: {text}"));
    }
    Ok(())
}
