//! `botauth verify` and `botauth explain`: core's verdict on a raw request file, and the
//! trace behind it (each check, the covered components, the RFC 9421 §2.5 signature base).

use anyhow::{bail, Result};
use botauth_core::{verify_with_trace, HttpRequest, Keyring, Policy, Reason, Rejected, Trace, Verdict};
use serde::Serialize;
use serde_json::json;

use crate::input::{emit_line, now};
use crate::keys::{load_keyring, Trusted};
use crate::{load_request, Outcome, TargetArgs};

/// The verification profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Web Bot Auth: tag web-bot-auth, created+expires ≤ 24 h, @authority and Signature-Agent covered.
    WebBotAuth,
    /// Plain RFC 9421: no tag or window rules; keyid may also match a JWK kid.
    Rfc9421,
}

/// `botauth verify` / `botauth explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The raw HTTP/1.1 request file (`-` = stdin).
    #[arg(long, value_name = "FILE|-")]
    request: String,
    /// Trusted keys: a JWK Set (or one JWK), for AGENT only when given as AGENT=FILE,
    /// otherwise for any agent. Repeatable.
    #[arg(long, value_name = "[AGENT=]FILE", required = true)]
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
    #[command(flatten)]
    target: TargetArgs,
}

struct Loaded {
    request: HttpRequest,
    ring: Keyring,
    trusted: Vec<Trusted>,
    policy: Policy,
    now: u64,
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
    };
    if let Some(v) = args.max_validity {
        policy.max_validity = v;
    }
    if let Some(s) = args.skew {
        policy.clock_skew = s;
    }
    policy.require_nonce |= args.require_nonce;
    policy.label.clone_from(&args.label);
    let now = match args.now {
        Some(n) => n,
        None => now()?,
    };
    Ok(Loaded { request, ring, trusted, policy, now })
}

fn exit_for(verdict: &Verdict) -> Outcome {
    if verdict.is_verified() {
        Outcome::Ok
    } else {
        Outcome::NotVerified
    }
}

/// `verified agent=… keyid=… label=…`, `rejected <code> (<status>): <title>` or `unsigned`.
fn verdict_line(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Unsigned => "unsigned".to_owned(),
        Verdict::Verified(v) => {
            format!("verified agent={} keyid={} label={}", v.agent.as_deref().unwrap_or("-"), v.keyid, v.label)
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
    keyid: Option<&'a str>,
    label: Option<&'a str>,
    created: Option<u64>,
    expires: Option<u64>,
    nonce: Option<&'a str>,
}

fn verdict_json(verdict: &Verdict) -> VerdictJson<'_> {
    match verdict {
        Verdict::Unsigned => VerdictJson { verdict: "unsigned", ..VerdictJson::default() },
        Verdict::Verified(v) => VerdictJson {
            verdict: "verified",
            agent: v.agent.as_deref(),
            keyid: Some(&v.keyid),
            label: Some(&v.label),
            created: v.created,
            expires: v.expires,
            nonce: v.nonce.as_deref(),
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
    let verdict = botauth_core::verify(&l.request, &l.ring, &l.policy, l.now);
    if args.json {
        emit_line(&serde_json::to_string(&verdict_json(&verdict))?)?;
    } else {
        emit_line(&verdict_line(&verdict))?;
    }
    Ok(exit_for(&verdict))
}

/// Verify and print every check, the covered components, the base and the verdict.
pub fn explain(args: &Args) -> Result<Outcome> {
    let l = load(args)?;
    let (verdict, trace) = verify_with_trace(&l.request, &l.ring, &l.policy, l.now);
    if args.json {
        let checks: Vec<_> = trace
            .checks
            .iter()
            .map(|(name, r)| match r {
                Ok(()) => json!({ "check": name, "pass": true }),
                Err(reason) => json!({ "check": name, "pass": false, "reason": reason.code() }),
            })
            .collect();
        let out = json!({
            "label": trace.label, "components": trace.components, "checks": checks,
            "signature_base": trace.signature_base, "result": verdict_json(&verdict),
        });
        emit_line(&out.to_string())?;
    } else {
        emit_line(&explain_text(&l, &verdict, &trace))?;
    }
    Ok(exit_for(&verdict))
}

fn explain_text(l: &Loaded, verdict: &Verdict, trace: &Trace) -> String {
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
        Reason::Expired | Reason::NotYetValid => {
            format!("the verifier's clock is {}; pass --now to check at another time, or --skew", l.now)
        }
        _ => return None,
    })
}
