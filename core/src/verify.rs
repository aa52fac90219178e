//! The one pure call: request, keys, policy, now → [`Verdict`] (ARCHITECTURE §1–2).

use alloc::string::String;
use alloc::vec::Vec;

use crate::components::{ComponentName, Derived, Message};
use crate::keys::{Keyring, LookupError};
use crate::policy::Policy;
use crate::precheck::{precheck, SignedFields};
use crate::reason::Reason;
use crate::request::Request;
use crate::signature_agent;
use crate::signature_base::signature_base;
use crate::signature_input::{ed25519_signature, parse_members, parse_signatures, Member, SignatureInput};
use crate::verdict::{Rejected, Verdict, Verified};
use crate::{content_digest, crypto};

/// What `explain` shows: each check in order with its outcome, and the signature base.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// `(check name, outcome)` in the order they ran; the first failure ends the list.
    pub checks: Vec<(&'static str, Result<(), Reason>)>,
    /// The label of the chosen signature.
    pub label: Option<String>,
    /// The covered component identifiers of the chosen signature.
    pub components: Vec<String>,
    /// The signature base, once built.
    pub signature_base: Option<String>,
}

/// Verify the Web Bot Auth signature of `request` under `policy` at `now` (unix seconds).
///
/// Never panics; any input yields a verdict. Unsigned requests cost two field lookups.
pub fn verify<R: Request>(request: &R, keys: &Keyring, policy: &Policy, now: u64) -> Verdict {
    verify_message(&Message::request(request), keys, policy, now, &mut None)
}

/// [`verify`], also recording each check and the signature base.
pub fn verify_with_trace<R: Request>(request: &R, keys: &Keyring, policy: &Policy, now: u64) -> (Verdict, Trace) {
    let mut trace = Trace::default();
    let verdict = verify_message(&Message::request(request), keys, policy, now, &mut Some(&mut trace));
    (verdict, trace)
}

/// What is known about the signature so far, for the rejection's log fields.
#[derive(Default)]
struct Known {
    label: Option<String>,
    agent: Option<String>,
    keyid: Option<String>,
}

pub(crate) fn verify_message(
    msg: &Message<'_>,
    keys: &Keyring,
    policy: &Policy,
    now: u64,
    trace: &mut Option<&mut Trace>,
) -> Verdict {
    let fields = match record(trace, "precheck", precheck(msg.message, &policy.limits)) {
        Ok(None) => return Verdict::Unsigned,
        Ok(Some(fields)) => fields,
        Err(reason) => return reason.into(),
    };
    let mut known = Known::default();
    match check(msg, &fields, keys, policy, now, trace, &mut known) {
        Ok(verified) => Verdict::Verified(verified),
        Err(reason) => {
            Verdict::Rejected(Rejected { reason, label: known.label, agent: known.agent, keyid: known.keyid })
        }
    }
}

fn record<T>(trace: &mut Option<&mut Trace>, name: &'static str, result: Result<T, Reason>) -> Result<T, Reason> {
    if let Some(t) = trace.as_deref_mut() {
        t.checks.push((name, result.as_ref().map(|_| ()).map_err(|r| *r)));
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn check(
    msg: &Message<'_>,
    fields: &SignedFields<'_>,
    keys: &Keyring,
    policy: &Policy,
    now: u64,
    trace: &mut Option<&mut Trace>,
    known: &mut Known,
) -> Result<Verified, Reason> {
    // Step 3: parse both fields (RFC 9421 §4.1, §4.2) and choose the signature.
    let (members, signatures) = record(trace, "parse", parse_fields(fields, policy))?;
    let member = record(trace, "select", select(&members, policy))?;
    known.label = Some(member.label.clone());
    let input = record(trace, "components", member.interpret(policy.limits.max_components))?;
    if let Some(t) = trace.as_deref_mut() {
        t.label = Some(input.label.clone());
        t.components = input.components.iter().map(|c| String::from(c.identifier())).collect();
    }
    known.keyid.clone_from(&input.params.keyid);

    // Step 4: policy checks that need no key.
    let keyid = record(trace, "keyid", input.params.keyid.as_deref().ok_or(Reason::KeyidMissing))?;
    record(trace, "alg", check_alg(&input))?;
    let signature = signatures
        .iter()
        .find(|(label, _)| *label == input.label)
        .map(|(_, bytes)| bytes.as_slice())
        .ok_or(Reason::LabelMismatch);
    let signature = record(trace, "signature", signature.and_then(ed25519_signature))?;
    record(trace, "validity", check_window(&input, policy, now))?;
    record(trace, "nonce", check_nonce(&input, policy))?;
    record(trace, "coverage", check_coverage(&input, policy, msg.status.is_some()))?;
    let (agent, agent_covered) = record(trace, "signature_agent", agent(&input, fields, policy))?;
    known.agent.clone_from(&agent);

    // Step 5: key, base, Ed25519.
    let lookup = keys.find(agent.as_deref(), keyid, policy.allow_kid_keyid, now).map_err(|e| match e {
        LookupError::Unknown => Reason::UnknownKey,
        LookupError::NotYetValid => Reason::KeyNotYetValid,
        LookupError::Expired => Reason::KeyExpired,
    });
    let (key_agent, key) = record(trace, "key", lookup)?;
    // Web Bot Auth: verifiers SHOULD reject published test keys.
    record(
        trace,
        "test_key",
        if key.is_test_key() && !policy.allow_test_keys { Err(Reason::TestKeyRejected) } else { Ok(()) },
    )?;
    record(trace, "content_digest", check_content_digest(msg, &input))?;
    let base = record(trace, "signature_base", signature_base(msg, &input, policy.limits.max_covered_field_len))?;
    if let Some(t) = trace.as_deref_mut() {
        t.signature_base = Some(base.clone());
    }
    let valid = crypto::verify(&key.key, base.as_bytes(), &signature);
    record(trace, "ed25519", if valid { Ok(()) } else { Err(Reason::SignatureInvalid) })?;
    // The verdict names an agent only when the key came from that agent's keys (its pinned
    // keys or its directory): the keyring's canonical name. A key trusted for any agent
    // proves the signer holds it, not who the signer is: a covered claim is reported as
    // `claimed_agent`; an uncovered one only narrowed the key search and is not reported.
    let claimed_agent = match key_agent {
        None if agent_covered => agent,
        _ => None,
    };
    Ok(Verified {
        agent: key_agent.map(String::from),
        claimed_agent,
        keyid: String::from(keyid),
        label: input.label,
        created: input.params.created,
        expires: input.params.expires,
        nonce: input.params.nonce,
    })
}

type ParsedFields = (Vec<Member>, Vec<(String, Vec<u8>)>);

fn parse_fields(fields: &SignedFields<'_>, policy: &Policy) -> Result<ParsedFields, Reason> {
    let members = parse_members(&fields.signature_input)?;
    let signatures = parse_signatures(&fields.signature)?;
    if members.len() > policy.limits.max_signatures {
        return Err(Reason::TooManySignatures);
    }
    // RFC 9421 §4.2: each signature has exactly one Signature-Input member of its label.
    if members.len() != signatures.len() || !members.iter().all(|m| signatures.iter().any(|(l, _)| *l == m.label)) {
        return Err(Reason::LabelMismatch);
    }
    Ok((members, signatures))
}

/// Choose the one signature to verify: by tag (Web Bot Auth), else by label, else the only one.
fn select<'m>(members: &'m [Member], policy: &Policy) -> Result<&'m Member, Reason> {
    if let Some(tag) = policy.tag.as_deref() {
        let mut chosen = None;
        for m in members {
            let wanted = m.tag()?.is_some_and(|t| t == tag || policy.extra_tags.iter().any(|e| e == t));
            if wanted {
                if chosen.is_some() {
                    return Err(Reason::AmbiguousSignature);
                }
                chosen = Some(m);
            }
        }
        return chosen.ok_or(Reason::TagMismatch);
    }
    if let Some(label) = policy.label.as_deref() {
        return members.iter().find(|m| m.label == label).ok_or(Reason::LabelMismatch);
    }
    match members {
        [only] => Ok(only),
        _ => Err(Reason::AmbiguousSignature),
    }
}

/// RFC 9421 §3.3.6: if `alg` is present it must name the algorithm of the key.
fn check_alg(input: &SignatureInput) -> Result<(), Reason> {
    match input.params.alg.as_deref() {
        None | Some("ed25519") => Ok(()),
        Some(_) => Err(Reason::UnsupportedAlgorithm),
    }
}

/// `created`/`expires` (RFC 9421 §2.3, §3.2.1) and the Web Bot Auth window
/// (draft-meunier-web-bot-auth-architecture §4.2: at most 24 hours).
fn check_window(input: &SignatureInput, policy: &Policy, now: u64) -> Result<(), Reason> {
    let p = &input.params;
    if policy.require_created && p.created.is_none() {
        return Err(Reason::CreatedMissing);
    }
    if policy.require_expires && p.expires.is_none() {
        return Err(Reason::ExpiresMissing);
    }
    if let (Some(created), Some(expires)) = (p.created, p.expires) {
        if expires <= created {
            return Err(Reason::InvalidValidityWindow);
        }
        if expires - created > policy.max_validity {
            return Err(Reason::ValidityTooLong);
        }
    }
    // §3.2.1: a `created` in the future (beyond the skew) is rejected.
    if let Some(created) = p.created {
        if created > now.saturating_add(policy.clock_skew) {
            return Err(Reason::NotYetValid);
        }
    }
    // §3.2.1: reject "if the current time is after the expires value" (plus skew).
    if let Some(expires) = p.expires {
        if now > expires.saturating_add(policy.clock_skew) {
            return Err(Reason::Expired);
        }
    }
    Ok(())
}

fn check_nonce(input: &SignatureInput, policy: &Policy) -> Result<(), Reason> {
    if policy.require_nonce && input.params.nonce.is_none() {
        return Err(Reason::NonceMissing);
    }
    Ok(())
}

/// Web Bot Auth requires the target's authority to be signed; policies may add more.
fn check_coverage(input: &SignatureInput, policy: &Policy, response: bool) -> Result<(), Reason> {
    let covers = |d: Derived| input.components.iter().any(|c| c.name == ComponentName::Derived(d) && c.req == response);
    if policy.require_authority && !covers(Derived::Authority) && !covers(Derived::TargetUri) {
        return Err(Reason::AuthorityNotCovered);
    }
    for required in &policy.required_components {
        let covered = input.components.iter().any(|c| match &c.name {
            ComponentName::Derived(d) => d.name() == required,
            ComponentName::Field(f) => f == required,
        });
        if !covered {
            return Err(Reason::RequiredComponentNotCovered);
        }
    }
    Ok(())
}

/// The agent this signature speaks for (draft-ietf-webbotauth-httpsig-protocol §4.1),
/// normalised, and whether the signature covers that claim.
fn agent(input: &SignatureInput, fields: &SignedFields<'_>, policy: &Policy) -> Result<(Option<String>, bool), Reason> {
    let Some(raw) = fields.signature_agent.as_deref() else {
        if policy.require_signature_agent {
            return Err(Reason::SignatureAgentMissing);
        }
        return Ok((None, false));
    };
    let parsed = signature_agent::parse(raw)?;
    let mut covered = input.components.iter().filter(|c| c.is_field("signature-agent"));
    match (covered.next(), covered.next()) {
        (None, _) if policy.require_agent_coverage => Err(Reason::SignatureAgentNotCovered),
        // Uncovered and allowed: a usable claim narrows the key search but is not trusted;
        // a member that is no https URI is refused in either case.
        (None, _) => match parsed.agent_for(None) {
            Ok(a) => Ok((a.map(|a| String::from(a.as_str())), false)),
            Err(r @ (Reason::SignatureAgentNotHttps | Reason::SignatureAgentInvalidUri)) => Err(r),
            Err(_) => Ok((None, false)),
        },
        (Some(c), None) => parsed.agent_for(c.key.as_deref()).map(|a| (a.map(|a| String::from(a.as_str())), true)),
        (Some(_), Some(_)) => Err(Reason::SignatureAgentAmbiguous),
    }
}

/// A covered `content-digest` must match the body when the host buffered it (RFC 9530).
fn check_content_digest(msg: &Message<'_>, input: &SignatureInput) -> Result<(), Reason> {
    let covered = input.components.iter().any(|c| c.is_field("content-digest") && !c.req);
    let Some(body) = msg.message.body() else {
        return Ok(());
    };
    if !covered {
        return Ok(());
    }
    let mut lines = Vec::new();
    msg.message.field_lines("content-digest", &mut lines);
    if lines.is_empty() {
        return Err(Reason::CoveredFieldMissing);
    }
    content_digest::check(&lines.join(&b", "[..]), body)
}
