//! `botauth verify` and `botauth explain`: core's verdict on a raw request file, and the
//! trace behind it (each check, the covered components, the RFC 9421 §2.5 signature base).
//! With `--fetch`, keys of allow-listed agents come from their live directories through
//! core's `verify_with_directories` loop (core says when to fetch; the CLI fetches).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use botauth_core::agent_uri::AgentUri;
use botauth_core::directory::{
    claimed_agents, record, verify_with_directories, AgentDirectory, Directories, Entries, Fetch, FetchReason, Step,
};
use botauth_core::{verify_with_trace, HttpRequest, Keyring, Policy, Reason, Rejected, Trace, Verdict, Verified};
use serde::Serialize;
use serde_json::json;

use crate::directory::DirectoryOptions;
use crate::fetch::check_scheme;
use crate::input::{emit_line, now};
use crate::keys::{load_keyring, Trusted};
use crate::{load_request, Outcome, TargetArgs};

/// Most directory fetches one verification may make (core asks at most once per agent per
/// refetch interval; this only bounds the loop).
const MAX_FETCHES: usize = 16;

/// The verification profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Web Bot Auth: tag web-bot-auth, created+expires ≤ 24 h, @authority and Signature-Agent covered.
    WebBotAuth,
    /// Plain RFC 9421: no tag or window rules; keyid may also match a JWK kid.
    Rfc9421,
    /// Visa Trusted Agent Protocol: tag agent-browser-auth or agent-payer-auth, @authority and
    /// @path covered, nonce required, at most 8 minutes.
    VisaTap,
}

/// `botauth verify` / `botauth explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The raw HTTP/1.1 request file (`-` = stdin).
    #[arg(long, value_name = "FILE|-")]
    request: String,
    /// Trusted (pinned) keys: a JWK Set (or one JWK), for AGENT only when given as
    /// AGENT=FILE, otherwise for any agent. Repeatable. Required unless --fetch.
    #[arg(long, value_name = "[AGENT=]FILE", required_unless_present = "fetch")]
    jwks: Vec<String>,
    /// The verifier's clock, unix seconds [default: now].
    #[arg(long, value_name = "UNIX")]
    now: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Verification profile.
    #[arg(long, value_enum, default_value_t = Profile::WebBotAuth)]
    profile: Profile,
    /// Longest allowed expires - created, seconds [web-bot-auth default: 86400].
    #[arg(long, value_name = "S")]
    max_validity: Option<u64>,
    /// Tolerated clock skew for created/expires, seconds [default: 60].
    #[arg(long, value_name = "S")]
    skew: Option<u64>,
    /// Reject signatures without a nonce.
    #[arg(long)]
    require_nonce: bool,
    /// The label to verify when the profile selects by label (rfc9421 with several signatures).
    #[arg(long, value_name = "LABEL")]
    label: Option<String>,
    /// Trust published test keys (RFC 9421 B.1.4); default: rejected as test_key_rejected.
    #[arg(long)]
    allow_test_keys: bool,
    /// Agents that always sign (JSON file: `[{"agent": "https://chatgpt.com", "user_agent":
    /// ["ChatGPT-User"]}]`): an unsigned request claiming one is rejected unverified_claim.
    #[arg(long, value_name = "FILE")]
    claims: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    live: LiveArgs,
}

/// Live directories for `verify --fetch` / `explain --fetch`.
#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    /// Fetch the directories of allow-listed agents when core asks (unknown key, no keys yet).
    #[arg(long, requires = "allow")]
    fetch: bool,
    /// An agent whose directory may be fetched (an https URI as sent in Signature-Agent);
    /// repeatable. Other agents without pinned keys get agent_not_allowed; nothing is fetched
    /// for them.
    #[arg(long, value_name = "AGENT", requires = "fetch")]
    allow: Vec<String>,
    /// Send AGENT's directory fetch to BASE_URL (scheme://host[:port]) instead, like curl's
    /// --resolve: the path stays the directory path, Host stays the agent's authority.
    /// Plain http only to loopback hosts. Repeatable.
    #[arg(long, value_name = "AGENT=BASE_URL", requires = "fetch")]
    directory: Vec<String>,
    #[command(flatten)]
    options: DirectoryOptions,
}

/// The allow-list core resolves with, and where each agent's fetch goes instead.
struct Live {
    dirs: Directories,
    /// Canonical agent URI → base origin.
    bases: BTreeMap<String, String>,
}

impl Live {
    fn from_args(args: &LiveArgs) -> Result<Option<Self>> {
        if !args.fetch {
            return Ok(None);
        }
        let configs = args.allow.iter().map(|a| args.options.agent_config(a.clone(), None)).collect();
        let dirs = args.options.directories(configs).map_err(|e| anyhow!("--allow: {e}"))?;
        let mut bases = BTreeMap::new();
        for arg in &args.directory {
            let Some((agent, base)) = arg.split_once('=') else {
                bail!("--directory {arg:?}: expected AGENT=BASE_URL");
            };
            let Some(entry) = dirs.get(agent) else {
                bail!("--directory {arg:?}: {agent} is not an --allow agent");
            };
            let uri = AgentUri::parse(base).map_err(|e| anyhow!("--directory {arg:?}: {base}: {e}"))?;
            check_scheme(&uri, "--directory BASE_URL")?;
            if !uri.is_origin() {
                bail!(
                    "--directory {arg:?}: BASE_URL must be an origin (scheme://host[:port]); the path stays {}",
                    entry.path()
                );
            }
            bases.insert(entry.agent.as_str().to_owned(), uri.origin().to_owned());
        }
        Ok(Some(Self { dirs, bases }))
    }
}

struct Loaded {
    request: HttpRequest,
    ring: Keyring,
    trusted: Vec<Trusted>,
    policy: Policy,
    now: u64,
    live: Option<Live>,
    claims: botauth_core::claims::Claims,
}

fn load(args: &Args) -> Result<Loaded> {
    if args.request == "-" && args.jwks.iter().any(|j| j == "-" || j.ends_with("=-")) {
        bail!("--request and --jwks cannot both be read from stdin");
    }
    let raw = load_request(&args.request)?;
    let request = raw.resolve(args.target.scheme.as_deref(), args.target.authority.as_deref())?;
    let (ring, trusted) = load_keyring(&args.jwks)?;
    let mut policy = match args.profile {
        Profile::WebBotAuth => Policy::web_bot_auth(),
        Profile::Rfc9421 => Policy::rfc9421(),
        Profile::VisaTap => Policy::visa_tap(),
    };
    if let Some(v) = args.max_validity {
        policy.max_validity = v;
    }
    if let Some(s) = args.skew {
        policy.clock_skew = s;
    }
    policy.require_nonce |= args.require_nonce;
    policy.label.clone_from(&args.label);
    policy.allow_test_keys = args.allow_test_keys;
    let now = match args.now {
        Some(n) => n,
        None => now()?,
    };
    let live = Live::from_args(&args.live)?;
    let claims = match &args.claims {
        None => botauth_core::claims::Claims::default(),
        Some(path) => {
            let text = std::fs::read(path).map_err(|e| anyhow!("--claims {path}: {e}"))?;
            botauth_core::claims::Claims::from_json(&text).map_err(|e| anyhow!("--claims {path}: {e}"))?
        }
    };
    Ok(Loaded { request, ring, trusted, policy, now, live, claims })
}

/// One directory fetch made while verifying, as reported.
struct Fetched {
    agent: String,
    url: String,
    line: String,
}

/// Core's `verify_with_directories` loop: fetch what core asks for, record it, ask again.
/// Returns the verdict, the entries loaded, and what was fetched.
fn resolve(l: &Loaded, live: &Live) -> Result<(Verdict, Entries, Vec<Fetched>)> {
    let mut entries = Entries::new();
    let mut fetched = Vec::new();
    loop {
        match verify_with_directories(&l.request, &l.ring, &live.dirs, &entries, &l.policy, l.now) {
            Step::Done { verdict, .. } => return Ok((verdict, entries, fetched)),
            Step::Fetch(Fetch { agent, reason }) => {
                if fetched.len() >= MAX_FETCHES {
                    bail!("more than {MAX_FETCHES} directory fetches for one request");
                }
                let (url, host) = fetch_target(agent, live);
                let outcome = crate::fetch::get(&url, host, &live.dirs.settings);
                let key = agent.agent.as_str().to_owned();
                let recorded =
                    record(entries.get(&key), &live.dirs, agent, l.policy.allow_test_keys, outcome.as_fetched(), l.now);
                let line = match (&recorded.result, &outcome) {
                    (Ok(doc), _) => format!("{} key(s), {} skipped", doc.keys.len(), doc.skipped.len()),
                    (Err(e), crate::fetch::Outcome::Failed(_, detail)) => format!("{}: {e} ({detail})", e.code()),
                    (Err(e), _) => format!("{}: {e}", e.code()),
                };
                let why = match reason {
                    FetchReason::NoKeys => "no keys yet",
                    FetchReason::UnknownKeyid => "unknown keyid",
                    FetchReason::Stale => "stale",
                };
                let line = format!("{line} (fetched: {why})");
                eprintln!("botauth: directory {url} (agent {key}): {line}");
                fetched.push(Fetched { agent: key.clone(), url, line });
                entries.insert(key, recorded.entry);
            }
        }
    }
}

/// The URL to GET for `agent`, and the `Host` to send when it goes elsewhere (`--directory`).
fn fetch_target<'a>(agent: &'a AgentDirectory, live: &Live) -> (String, Option<&'a str>) {
    match live.bases.get(agent.agent.as_str()) {
        Some(base) => (format!("{base}{}", agent.path()), Some(agent.authority())),
        None => (agent.directory.as_str().to_owned(), None),
    }
}

fn exit_for(verdict: &Verdict) -> Outcome {
    if verdict.is_verified() {
        Outcome::Ok
    } else {
        Outcome::NotVerified
    }
}

/// `verified agent=… keyid=… label=…[ claimed-agent=…]`, `rejected <code> (<status>): <title>` or `unsigned`.
fn verdict_line(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Unsigned => "unsigned".to_owned(),
        Verdict::Verified(v) => {
            let one = |v: &Verified| {
                let claim = v.claimed_agent.as_deref().map(|c| format!(" claimed-agent={c} (not bound to the key)"));
                format!(
                    "agent={} keyid={} label={}{}",
                    v.agent.as_deref().unwrap_or("-"),
                    v.keyid,
                    v.label,
                    claim.unwrap_or_default()
                )
            };
            let mut line = format!("verified {}", one(v));
            // The request's other signatures, each checked on its own (WG draft §4.3).
            for other in &v.also {
                line.push_str(&format!("\n  also verified {}", one(other)));
            }
            for r in &v.discarded {
                line.push_str(&format!(
                    "\n  discarded label={} {} ({})",
                    r.label.as_deref().unwrap_or("-"),
                    r.reason.code(),
                    r.reason.title()
                ));
            }
            line
        }
        Verdict::Rejected(Rejected { reason, .. }) => {
            format!("rejected {} ({}): {}", reason.code(), reason.status().code(), reason.title())
        }
    }
}

/// The `--json` form: every member always present (`null` when not applicable).
#[derive(Debug, Default, Serialize)]
struct VerdictJson<'a> {
    verdict: &'a str,
    reason: Option<&'a str>,
    status: Option<u16>,
    title: Option<&'a str>,
    agent: Option<&'a str>,
    claimed_agent: Option<&'a str>,
    keyid: Option<&'a str>,
    label: Option<&'a str>,
    created: Option<u64>,
    expires: Option<u64>,
    nonce: Option<&'a str>,
    /// The other signatures that verified (WG draft §4.3): `agent`, `claimed_agent`, `keyid`, `label`.
    also: Vec<serde_json::Value>,
    /// Signatures beside a verified one that did not verify: `label`, `reason`.
    discarded: Vec<serde_json::Value>,
}

fn verdict_json(verdict: &Verdict) -> VerdictJson<'_> {
    match verdict {
        Verdict::Unsigned => VerdictJson { verdict: "unsigned", ..VerdictJson::default() },
        Verdict::Verified(v) => VerdictJson {
            verdict: "verified",
            agent: v.agent.as_deref(),
            claimed_agent: v.claimed_agent.as_deref(),
            keyid: Some(&v.keyid),
            label: Some(&v.label),
            created: v.created,
            expires: v.expires,
            nonce: v.nonce.as_deref(),
            also: v
                .also
                .iter()
                .map(
                    |o| json!({"agent": o.agent, "claimed_agent": o.claimed_agent, "keyid": o.keyid, "label": o.label}),
                )
                .collect(),
            discarded: v.discarded.iter().map(|r| json!({"label": r.label, "reason": r.reason.code()})).collect(),
            ..VerdictJson::default()
        },
        Verdict::Rejected(r) => VerdictJson {
            verdict: "rejected",
            reason: Some(r.reason.code()),
            status: Some(r.reason.status().code()),
            title: Some(r.reason.title()),
            agent: r.agent.as_deref(),
            keyid: r.keyid.as_deref(),
            label: r.label.as_deref(),
            ..VerdictJson::default()
        },
    }
}

/// Verify and print the verdict.
pub fn verify(args: &Args) -> Result<Outcome> {
    let l = load(args)?;
    let verdict = match &l.live {
        Some(live) => resolve(&l, live)?.0,
        None => botauth_core::verify(&l.request, &l.ring, &l.policy, l.now),
    };
    let verdict = with_claims(&l, verdict);
    if args.json {
        emit_line(&serde_json::to_string(&verdict_json(&verdict))?)?;
    } else {
        emit_line(&verdict_line(&verdict))?;
    }
    Ok(exit_for(&verdict))
}

/// An unsigned verdict becomes `unverified_claim` when the request claims a listed agent.
fn with_claims(l: &Loaded, verdict: Verdict) -> Verdict {
    match verdict {
        Verdict::Unsigned => l.claims.verdict(&l.request),
        other => other,
    }
}

/// Verify and print every check, the covered components, the base and the verdict.
pub fn explain(args: &Args) -> Result<Outcome> {
    let mut l = load(args)?;
    let mut fetches = Vec::new();
    let (verdict, trace) = match &l.live {
        None => verify_with_trace(&l.request, &l.ring, &l.policy, l.now),
        Some(live) => {
            // The verdict is core's directory loop's; the trace is core's over the same keys
            // (pinned plus the usable directory keys of the agents the request names).
            let (verdict, entries, fetched) = resolve(&l, live)?;
            let mut ring = l.ring.clone();
            let mut shown = Vec::new();
            for agent in claimed_agents(&l.request, &live.dirs, &l.policy) {
                let name = agent.agent.as_str();
                for key in entries.get(name).and_then(|e| e.usable_keys(l.now)).unwrap_or_default() {
                    ring.add_key(name, key.clone());
                    let file = format!("directory {}", agent.directory);
                    shown.push(Trusted { agent: name.to_owned(), file, key: key.clone() });
                }
            }
            let (_, trace) = verify_with_trace(&l.request, &ring, &l.policy, l.now);
            l.trusted.extend(shown);
            fetches = fetched;
            (verdict, trace)
        }
    };
    let verdict = with_claims(&l, verdict);
    if args.json {
        let checks: Vec<_> = trace
            .checks
            .iter()
            .map(|(name, r)| match r {
                Ok(()) => json!({ "check": name, "pass": true }),
                Err(reason) => json!({ "check": name, "pass": false, "reason": reason.code() }),
            })
            .collect();
        let fetches: Vec<_> =
            fetches.iter().map(|f| json!({ "agent": f.agent, "url": f.url, "result": f.line })).collect();
        let out = json!({
            "label": trace.label, "components": trace.components, "checks": checks,
            "signature_base": trace.signature_base, "result": verdict_json(&verdict),
            "directory_fetches": fetches,
        });
        emit_line(&out.to_string())?;
    } else {
        emit_line(&explain_text(&l, &verdict, &trace, &fetches))?;
    }
    Ok(exit_for(&verdict))
}

fn explain_text(l: &Loaded, verdict: &Verdict, trace: &Trace, fetches: &[Fetched]) -> String {
    let r = &l.request;
    let mut out = Vec::new();
    out.push(format!("request:    {} {}://{}{}", r.method, r.scheme, r.authority, r.target));
    out.push(format!("now:        {}", l.now));
    out.push("trusted keys:".to_owned());
    if l.trusted.is_empty() {
        out.push("  (none)".to_owned());
    }
    for t in &l.trusted {
        let kid = t.key.kid.as_deref().map(|k| format!(" kid={k}")).unwrap_or_default();
        out.push(format!("  agent={} keyid={}{kid} ({})", t.agent, t.key.thumbprint, t.file));
    }
    if l.live.is_some() {
        out.push("directory fetches:".to_owned());
        if fetches.is_empty() {
            out.push("  (none)".to_owned());
        }
        out.extend(fetches.iter().map(|f| format!("  {} (agent {}): {}", f.url, f.agent, f.line)));
    }
    if let Some(label) = &trace.label {
        out.push(format!("signature:  label={label}"));
    }
    if !trace.components.is_empty() {
        out.push("covered components:".to_owned());
        out.extend(trace.components.iter().map(|c| format!("  {c}")));
    }
    out.push("checks:".to_owned());
    for (name, result) in &trace.checks {
        match result {
            Ok(()) => out.push(format!("  PASS {name}")),
            Err(reason) => {
                out.push(format!("  FAIL {name}: {} ({}): {}", reason.code(), reason.status().code(), reason.title()))
            }
        }
    }
    if let Some(hint) = hint(verdict, l) {
        out.push(format!("hint:       {hint}"));
    }
    match &trace.signature_base {
        Some(base) => {
            out.push("signature base:".to_owned());
            out.push(base.clone());
        }
        None if matches!(verdict, Verdict::Unsigned) => {}
        None => out.push("signature base: (not built: a check before it failed)".to_owned()),
    }
    out.push(format!("verdict:    {}", verdict_line(verdict)));
    out.join("\n")
}

/// A pointer for the common "should verify but doesn't" cases.
fn hint(verdict: &Verdict, l: &Loaded) -> Option<String> {
    let Verdict::Rejected(r) = verdict else { return None };
    Some(match r.reason {
        Reason::UnknownKey => format!(
            "no trusted key has keyid {} for agent {}; compare with the trusted keys above \
             (`botauth thumbprint` prints a key's keyid)",
            r.keyid.as_deref().unwrap_or("?"),
            r.agent.as_deref().unwrap_or("(none)")
        ),
        Reason::SignatureInvalid => "the key was found but the signature does not match this base: a covered \
                                component differs from what was signed (compare the base above with the \
                                signer's), or the signer used another key"
            .to_owned(),
        Reason::TestKeyRejected => "the key is the published RFC 9421 B.1.4 test key, which anyone can sign with; \
                                   pass --allow-test-keys for local tests only"
            .to_owned(),
        Reason::AgentNotAllowed => format!(
            "the request's agent {} has no pinned keys (--jwks AGENT=FILE) and is not allow-listed (--fetch --allow)",
            r.agent.as_deref().unwrap_or("(none)")
        ),
        Reason::DirectoryUnavailable => {
            "the agent's directory gave no usable keys (see the directory fetches above)".to_owned()
        }
        Reason::Expired | Reason::NotYetValid => {
            format!("the verifier's clock is {}; pass --now to check at another time, or --skew", l.now)
        }
        _ => return None,
    })
}
