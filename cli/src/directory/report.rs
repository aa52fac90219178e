//! `botauth directory fetch` and `botauth directory check`: core's verdict on one directory
//! response ([`record`] with a one-agent allow-list), and what a conformance check reports:
//! each key, the skipped keys, the signatures, the cache lifetime core computed, and the
//! findings.

use anyhow::{anyhow, bail, Context as _, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use botauth_core::directory::{
    check_signatures, parse_document, record, AgentDirectory, Directories, Document, DocumentError, FetchError,
    Finding, Recorded, SignatureReport,
};
use botauth_core::{HttpRequest, KeySkipReason, PublicKey, SkippedKey};
use serde::Serialize;

use super::{one_agent, saved, DirectoryOptions};
use crate::dates::{relative, utc};
use crate::fetch;
use crate::input::{emit_line, now, read_input};
use crate::Outcome;

/// Flags shared by `fetch` and `check`.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Write the usable keys as a JWK Set (public keys only, `kid` = thumbprint) to FILE,
    /// e.g. to warm a Fastly Config Store. Written only when at least one key is usable.
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
    /// The verifier's clock, unix seconds [default: now].
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// Keep published test keys (RFC 9421 B.1.4); default: skipped as `test_key`.
    #[arg(long)]
    allow_test_keys: bool,
    #[command(flatten)]
    options: DirectoryOptions,
}

/// `botauth directory fetch`.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    /// An agent (`https://chatgpt.com`: its directory at the well-known path) or a directory
    /// URL (any other path; its origin is the agent). Plain http only to loopback hosts.
    #[arg(value_name = "AGENT-URL|DIRECTORY-URL")]
    url: String,
    #[command(flatten)]
    common: CommonArgs,
}

/// `botauth directory check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The saved response body.
    #[arg(long, value_name = "FILE", required_unless_present = "response", requires = "headers")]
    body: Option<String>,
    /// The saved header fields: `Name: value` lines, optionally after a status line.
    #[arg(long, value_name = "FILE", required_unless_present = "response", requires = "body")]
    headers: Option<String>,
    /// A whole saved response (status line, fields, blank line, body) instead of --body/--headers.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["body", "headers"])]
    response: Option<String>,
    /// The status [default: the status line's, else 200].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(100..=599))]
    status: Option<u16>,
    /// Where the response came from (agent or directory URL, as for `fetch`): the
    /// `"@authority";req` a directory signature covers [default: https://directory.invalid].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

/// Fetch, check, print.
pub fn fetch(args: &FetchArgs) -> Result<Outcome> {
    let (dirs, shown) = one_agent(&args.url, &args.common.options)?;
    let agent = first(&dirs)?;
    let now = clock(args.common.now)?;
    let outcome = fetch::get(agent.directory.as_str(), None, &dirs.settings);
    finish(&args.common, &dirs, agent, &shown, &outcome, now)
}

/// Check a saved response, print.
pub fn check(args: &CheckArgs) -> Result<Outcome> {
    let url = args.url.as_deref().unwrap_or("https://directory.invalid");
    let (dirs, shown) = one_agent(url, &args.common.options)?;
    let agent = first(&dirs)?;
    let now = clock(args.common.now)?;
    let (status, fields, body) = match (&args.response, &args.headers, &args.body) {
        (Some(file), _, _) => {
            let s = load_saved(file)?;
            let body = s.body.clone().unwrap_or_default();
            (s.status, s.fields, body)
        }
        (None, Some(headers), Some(body)) => {
            let s = load_saved(headers)?;
            let bytes = read_input(body).with_context(|| format!("cannot read body {body}"))?;
            (s.status, s.fields, bytes)
        }
        _ => bail!("give --body and --headers, or --response"),
    };
    let status = args.status.or(status).unwrap_or(200);
    let mut response = HttpRequest::new("GET", agent.directory.scheme(), agent.authority(), agent.path());
    response.headers = fields;
    if args.url.is_none() && response.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("signature-input")) {
        eprintln!(
            "botauth: warning: the response carries signatures over \"@authority\";req: pass --url with the \
             directory's URL to check them against its authority"
        );
    }
    let outcome = fetch::Outcome::Response { status, fields: response, body };
    finish(&args.common, &dirs, agent, &shown, &outcome, now)
}

fn load_saved(file: &str) -> Result<saved::Saved> {
    let bytes = read_input(file).with_context(|| format!("cannot read {file}"))?;
    saved::parse(&bytes).with_context(|| format!("bad headers file {file}"))
}

fn first(dirs: &Directories) -> Result<&AgentDirectory> {
    dirs.agents.first().ok_or_else(|| anyhow!("no directory to check"))
}

fn clock(given: Option<u64>) -> Result<u64> {
    match given {
        Some(n) => Ok(n),
        None => now(),
    }
}

fn finish(
    args: &CommonArgs,
    dirs: &Directories,
    agent: &AgentDirectory,
    shown: &str,
    outcome: &fetch::Outcome,
    now: u64,
) -> Result<Outcome> {
    let recorded = record(None, dirs, agent, args.allow_test_keys, outcome.as_fetched(), now);
    let report = build(dirs, agent, shown, args.allow_test_keys, outcome, &recorded, now);
    if args.json {
        emit_line(&serde_json::to_string_pretty(&report)?)?;
    } else {
        emit_line(&text(&report))?;
    }
    if let Some(path) = &args.out {
        if report.usable_keys == 0 {
            eprintln!("botauth: {} not written: no usable keys", path.display());
        } else {
            let usable: Vec<&PublicKey> = match &recorded.result {
                Ok(doc) => doc.keys.iter().filter(|k| valid_at(k, now)).collect(),
                Err(_) => Vec::new(),
            };
            std::fs::write(path, jwks(&usable)? + "\n").with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("botauth: wrote {} usable key(s) to {}", usable.len(), path.display());
        }
    }
    Ok(if report.usable_keys > 0 { Outcome::Ok } else { Outcome::NotVerified })
}

/// Core's key validity at `now` (`nbf <= now < exp`, as key lookup applies it).
fn valid_at(key: &PublicKey, now: u64) -> bool {
    key.nbf.is_none_or(|nbf| nbf <= now) && key.exp.is_none_or(|exp| now < exp)
}

/// The public JWK Set of `keys`, `kid` = thumbprint, `nbf`/`exp` kept.
fn jwks(keys: &[&PublicKey]) -> Result<String> {
    #[derive(Serialize)]
    struct Jwk<'a> {
        kty: &'a str,
        crv: &'a str,
        kid: &'a str,
        x: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        nbf: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exp: Option<u64>,
    }
    #[derive(Serialize)]
    struct Set<'a> {
        keys: Vec<Jwk<'a>>,
    }
    let keys = keys
        .iter()
        .map(|k| Jwk {
            kty: "OKP",
            crv: "Ed25519",
            kid: &k.thumbprint,
            x: URL_SAFE_NO_PAD.encode(k.key),
            nbf: k.nbf,
            exp: k.exp,
        })
        .collect();
    Ok(serde_json::to_string_pretty(&Set { keys })?)
}

// ---- the report ----------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Report {
    url: String,
    agent: String,
    now: u64,
    now_utc: String,
    status: Option<u16>,
    content_type: Option<String>,
    body_bytes: Option<usize>,
    /// `usable` (at least one key valid at now) or `not_usable`.
    result: &'static str,
    /// Why not usable: a fetch error code (core's `FetchError::code`) or `no_usable_keys`.
    reason: Option<&'static str>,
    error: Option<ErrorJson>,
    usable_keys: usize,
    keys: Vec<KeyJson>,
    skipped: Vec<SkipJson>,
    signature: Option<SignatureJson>,
    cache: CacheJson,
    findings: Vec<FindingJson>,
}

#[derive(Debug, Serialize)]
struct ErrorJson {
    code: &'static str,
    message: String,
    detail: Option<String>,
}

#[derive(Debug, Serialize)]
struct KeyJson {
    index: usize,
    kid: Option<String>,
    thumbprint: String,
    /// `null` when the key has no `kid`.
    kid_is_thumbprint: Option<bool>,
    alg: Option<String>,
    nbf: Option<u64>,
    nbf_utc: Option<String>,
    exp: Option<u64>,
    exp_utc: Option<String>,
    expired: bool,
    not_yet_valid: bool,
    /// Kept by core (not skipped, signed where signatures are present).
    used: bool,
    /// Used and valid at now.
    usable: bool,
}

#[derive(Debug, Serialize)]
struct SkipJson {
    index: usize,
    kid: Option<String>,
    reason: &'static str,
}

#[derive(Debug, Serialize)]
struct SignatureJson {
    present: bool,
    signed_by: Vec<String>,
    failures: Vec<SignatureFailureJson>,
}

#[derive(Debug, Serialize)]
struct SignatureFailureJson {
    label: String,
    reason: &'static str,
}

#[derive(Debug, Serialize)]
struct Instant {
    unix: u64,
    utc: String,
    /// Seconds from now (negative: past).
    from_now: i64,
}

impl Instant {
    fn new(unix: u64, now: u64) -> Self {
        let from_now = i64::try_from(unix).unwrap_or(i64::MAX).saturating_sub(i64::try_from(now).unwrap_or(i64::MAX));
        Self { unix, utc: utc(unix), from_now }
    }
}

#[derive(Debug, Serialize)]
struct CacheJson {
    fresh_until: Option<Instant>,
    stale_until: Option<Instant>,
    /// No fetch before then (core's early-refetch interval, or negative caching).
    retry_after: Instant,
}

#[derive(Debug, Serialize)]
struct FindingJson {
    code: &'static str,
    key: Option<usize>,
    message: &'static str,
}

fn finding_message(code: &str) -> &'static str {
    match code {
        "media_type" => "the media type is not application/http-message-signatures-directory+json",
        "bare_jwk" => "the body is one JWK, not a JWK Set (read as a set of one)",
        "no_kid" => "the key has no kid (its keyid is its RFC 7638 thumbprint)",
        "kid_not_thumbprint" => "the key's kid is not its RFC 7638 thumbprint: skipped",
        "kid_not_thumbprint_accepted" => "the key's kid is not its RFC 7638 thumbprint: kept (--accept-kid-mismatch)",
        "unsigned" => "the response carries no directory signature (RECOMMENDED by the draft)",
        "test_key" => "a published test key (RFC 9421 B.1.4): skipped",
        "key_expired" => "the key's exp is past",
        "key_not_yet_valid" => "the key's nbf is in the future",
        _ => "",
    }
}

/// The raw JWK objects of a body, for the members core does not keep (`alg`).
fn raw_keys(body: &[u8]) -> Vec<serde_json::Value> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut o)) => match o.remove("keys") {
            Some(serde_json::Value::Array(keys)) => keys,
            Some(_) => Vec::new(),
            None => vec![serde_json::Value::Object(o)],
        },
        _ => Vec::new(),
    }
}

fn build(
    dirs: &Directories,
    agent: &AgentDirectory,
    shown: &str,
    allow_test_keys: bool,
    outcome: &fetch::Outcome,
    recorded: &Recorded,
    now: u64,
) -> Report {
    let (status, fields, body, detail) = match outcome {
        fetch::Outcome::Response { status, fields, body } => (Some(*status), Some(fields), Some(body), None),
        fetch::Outcome::Failed(_, detail) => (None, None, None, Some(detail.clone())),
    };
    let content_type = fields.and_then(|f| {
        f.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    });
    // The document as core's parser reads it (before any signature filtering), and the
    // signature report core's record computed from it: shown even when record refused it.
    let parsed: Option<Result<Document, DocumentError>> = match (status, body) {
        (Some(200), Some(body)) => Some(parse_document(body, &dirs.parse_options(agent, allow_test_keys))),
        _ => None,
    };
    let signatures: Option<SignatureReport> = match (&parsed, fields, body, status) {
        (Some(Ok(doc)), Some(fields), Some(body), Some(status)) => {
            let request = HttpRequest::new("GET", agent.directory.scheme(), agent.authority(), agent.path());
            Some(check_signatures(&request, fields, status, body, &doc.keys, now))
        }
        _ => None,
    };
    let raw = body.map(|b| raw_keys(b)).unwrap_or_default();
    let kept: &[PublicKey] = recorded.result.as_ref().map_or(&[], |d| d.keys.as_slice());

    let mut keys = Vec::new();
    let mut findings = Vec::new();
    if let Some(Ok(doc)) = &parsed {
        let total = doc.keys.len() + doc.skipped.len();
        let indices = (0..total).filter(|i| !doc.skipped.iter().any(|s| s.index == *i));
        for (index, key) in indices.zip(&doc.keys) {
            let alg = raw.get(index).and_then(|k| k.get("alg")).and_then(|a| a.as_str()).map(str::to_owned);
            let expired = key.exp.is_some_and(|exp| exp <= now);
            let not_yet_valid = key.nbf.is_some_and(|nbf| nbf > now);
            let used = kept.iter().any(|k| k.thumbprint == key.thumbprint);
            if expired {
                findings.push(FindingJson {
                    code: "key_expired",
                    key: Some(index),
                    message: finding_message("key_expired"),
                });
            }
            if not_yet_valid {
                let code = "key_not_yet_valid";
                findings.push(FindingJson { code, key: Some(index), message: finding_message(code) });
            }
            keys.push(KeyJson {
                index,
                kid: key.kid.clone(),
                thumbprint: key.thumbprint.clone(),
                kid_is_thumbprint: key.kid.as_ref().map(|k| *k == key.thumbprint),
                alg,
                nbf: key.nbf,
                nbf_utc: key.nbf.map(utc),
                exp: key.exp,
                exp_utc: key.exp.map(utc),
                expired,
                not_yet_valid,
                used,
                usable: used && valid_at(key, now),
            });
        }
    }
    // Skipped keys: core's final list when it kept the document (it adds keys without a
    // valid signature), else the parser's.
    let skipped_src: &[SkippedKey] = match (&recorded.result, &parsed) {
        (Ok(doc), _) => &doc.skipped,
        (Err(_), Some(Ok(doc))) => &doc.skipped,
        _ => &[],
    };
    let skipped: Vec<SkipJson> =
        skipped_src.iter().map(|s| SkipJson { index: s.index, kid: s.kid.clone(), reason: s.reason.code() }).collect();
    for s in skipped_src {
        let code = match s.reason {
            KeySkipReason::KidNotThumbprint => "kid_not_thumbprint",
            KeySkipReason::TestKey => "test_key",
            _ => continue,
        };
        findings.push(FindingJson { code, key: Some(s.index), message: finding_message(code) });
    }
    let doc_findings: &[Finding] = match (&recorded.result, &parsed) {
        (Ok(doc), _) => &doc.findings,
        (Err(_), Some(Ok(doc))) => &doc.findings,
        _ => &[],
    };
    for f in doc_findings {
        let key = match f {
            Finding::NoKid { index } | Finding::KidNotThumbprintAccepted { index } => Some(*index),
            _ => None,
        };
        findings.push(FindingJson { code: f.code(), key, message: finding_message(f.code()) });
    }
    findings.sort_by_key(|f| (f.key.is_some(), f.key));

    let usable_keys = keys.iter().filter(|k| k.usable).count();
    let error = recorded.result.as_ref().err().map(|e: &FetchError| ErrorJson {
        code: e.code(),
        message: e.to_string(),
        detail: detail.clone(),
    });
    let reason = match (&error, usable_keys) {
        (Some(e), _) => Some(e.code),
        (None, 0) => Some("no_usable_keys"),
        (None, _) => None,
    };
    let entry = &recorded.entry;
    let cache = if recorded.result.is_ok() {
        CacheJson {
            fresh_until: Some(Instant::new(entry.fresh_until, now)),
            stale_until: Some(Instant::new(entry.stale_until, now)),
            retry_after: Instant::new(entry.retry_after, now),
        }
    } else {
        CacheJson { fresh_until: None, stale_until: None, retry_after: Instant::new(entry.retry_after, now) }
    };
    Report {
        url: agent.directory.as_str().to_owned(),
        agent: shown.to_owned(),
        now,
        now_utc: utc(now),
        status,
        content_type,
        body_bytes: body.map(Vec::len),
        result: if usable_keys > 0 { "usable" } else { "not_usable" },
        reason,
        error,
        usable_keys,
        keys,
        skipped,
        signature: signatures.map(|s| SignatureJson {
            present: s.present,
            signed_by: s.signed_by,
            failures: s
                .failures
                .into_iter()
                .map(|(label, r)| SignatureFailureJson { label, reason: r.code() })
                .collect(),
        }),
        cache,
        findings,
    }
}

fn text(r: &Report) -> String {
    let mut out = Vec::new();
    out.push(format!("directory:  {}", r.url));
    out.push(format!("agent:      {}", r.agent));
    out.push(format!("now:        {} ({})", r.now, r.now_utc));
    match (r.status, &r.error) {
        (Some(status), _) => out.push(format!(
            "response:   {status}, {} bytes, Content-Type: {}",
            r.body_bytes.unwrap_or_default(),
            r.content_type.as_deref().unwrap_or("(none)")
        )),
        (None, Some(e)) => out.push(format!("response:   none ({})", e.detail.as_deref().unwrap_or(e.code))),
        (None, None) => {}
    }
    if !r.keys.is_empty() {
        out.push("keys:".to_owned());
    }
    for k in &r.keys {
        let kid = match (&k.kid, k.kid_is_thumbprint) {
            (Some(_), Some(true)) => "kid = thumbprint".to_owned(),
            (Some(kid), _) => format!("kid={kid} (NOT the thumbprint)"),
            (None, _) => "no kid".to_owned(),
        };
        let state = match (k.used, k.expired, k.not_yet_valid) {
            (false, _, _) => "not used",
            (true, true, _) => "used, EXPIRED at now",
            (true, _, true) => "used, NOT YET VALID at now",
            (true, false, false) => "usable",
        };
        out.push(format!("  #{} {} ({kid}) alg={}: {state}", k.index, k.thumbprint, k.alg.as_deref().unwrap_or("-")));
        let when = |name: &str, v: Option<u64>| {
            v.map_or_else(|| format!("{name} -"), |t| format!("{name} {t} ({}, {})", utc(t), relative(t, r.now)))
        };
        out.push(format!("     {}; {}", when("nbf", k.nbf), when("exp", k.exp)));
    }
    if !r.skipped.is_empty() {
        out.push("skipped:".to_owned());
    }
    for s in &r.skipped {
        let kid = s.kid.as_deref().map(|k| format!(" kid={k}")).unwrap_or_default();
        out.push(format!("  #{}{kid}: {}", s.index, s.reason));
    }
    if let Some(sig) = &r.signature {
        if !sig.present {
            out.push("signature:  unsigned".to_owned());
        } else {
            let signed = if sig.signed_by.is_empty() { "no key".to_owned() } else { sig.signed_by.join(", ") };
            out.push(format!("signature:  signed by {signed}"));
            for f in &sig.failures {
                out.push(format!("  FAIL {}: {}", f.label, f.reason));
            }
        }
    }
    let at = |i: &Instant| format!("{} ({}, {})", i.unix, i.utc, relative(i.unix, r.now));
    let next = format!("next fetch not before {}", at(&r.cache.retry_after));
    match (&r.cache.fresh_until, &r.cache.stale_until) {
        (Some(fresh), Some(stale)) => {
            out.push(format!("cache:      fresh until {}", at(fresh)));
            out.push(format!("            stale until {}", at(stale)));
            out.push(format!("            {next}"));
        }
        _ => out.push(format!("cache:      {next}")),
    }
    if !r.findings.is_empty() {
        out.push("findings:".to_owned());
    }
    for f in &r.findings {
        let key = f.key.map(|k| format!(" (key #{k})")).unwrap_or_default();
        out.push(format!("  {}{key}: {}", f.code, f.message));
    }
    out.push(match (&r.error, r.usable_keys) {
        (Some(e), _) => format!("result:     not usable: {}: {}", e.code, e.message),
        (None, 0) => "result:     not usable: no usable keys".to_owned(),
        (None, n) => format!("result:     usable: {n} key{}", if n == 1 { "" } else { "s" }),
    });
    out.join("\n")
}
