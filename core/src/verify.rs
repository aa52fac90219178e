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
    match each_signature(msg, keys, policy, now, trace) {
        Signatures::Unsigned => Verdict::Unsigned,
        Signatures::Malformed(reason) => reason.into(),
        Signatures::Each(outcomes) => fold(outcomes),
    }
}

/// What became of a signed request's signatures, before they are folded into a verdict.
pub(crate) enum Signatures {
    /// Neither field.
    Unsigned,
    /// The fields fail before any one signature is looked at (precheck, parse, selection).
    Malformed(Reason),
    /// Every signature the policy selects, in `Signature-Input` order, each verified on its
    /// own (draft-ietf-webbotauth-httpsig-protocol §4.3); never empty.
    Each(Vec<Result<Verified, Rejected>>),
}

/// Verify every signature the policy selects (by tag, by label, or all of them).
pub(crate) fn each_signature(
    msg: &Message<'_>,
    keys: &Keyring,
    policy: &Policy,
    now: u64,
    trace: &mut Option<&mut Trace>,
) -> Signatures {
    let fields = match record(trace, "precheck", precheck(msg.message, &policy.limits)) {
        Ok(None) => return Signatures::Unsigned,
        Ok(Some(fields)) => fields,
        Err(reason) => return Signatures::Malformed(reason),
    };
    // Step 3: parse both fields (RFC 9421 §4.1, §4.2) and select the signatures to verify.
    let parsed = record(trace, "parse", parse_fields(&fields, policy)).and_then(|(members, signatures)| {
        Ok((record(trace, "select", select(&members, policy))?, members, signatures))
    });
    let (selected, members, signatures) = match parsed {
        Ok(p) => p,
        Err(reason) => return Signatures::Malformed(reason),
    };
    let ctx = Context { msg, fields: &fields, members: &members, signatures: &signatures, keys, policy, now };
    let outcomes: Vec<Result<Verified, Rejected>> = selected.iter().map(|&i| one(&ctx, i, &mut None)).collect();
    if trace.is_some() {
        // The trace follows the signature the verdict reports: the first that verified,
        // else the first selected. Checking is pure, so running it again changes nothing.
        let shown = outcomes.iter().position(Result::is_ok).unwrap_or(0);
        if let Some(&i) = selected.get(shown) {
            let _ = one(&ctx, i, trace);
        }
    }
    Signatures::Each(outcomes)
}

/// The verdict on a request from its signatures' outcomes: verified when any verified (the
/// first is reported, the others in `also`, the failures in `discarded`); else the first
/// rejection.
pub(crate) fn fold(outcomes: Vec<Result<Verified, Rejected>>) -> Verdict {
    let mut verified: Option<Verified> = None;
    let mut also = Vec::new();
    let mut rejected = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(v) if verified.is_none() => verified = Some(v),
            Ok(v) => also.push(v),
            Err(r) => rejected.push(r),
        }
    }
    match verified {
        Some(mut v) => {
            v.also = also;
            v.discarded = rejected;
            Verdict::Verified(v)
        }
        None => match rejected.into_iter().next() {
            Some(r) => Verdict::Rejected(r),
            // `Each` is never empty; were it, nothing verified.
            None => Reason::TagMismatch.into(),
        },
    }
}

/// What every signature of one request is checked against.
struct Context<'a, 'm> {
    msg: &'a Message<'m>,
    fields: &'a SignedFields<'a>,
    members: &'a [Member],
    signatures: &'a [(String, Vec<u8>)],
    keys: &'a Keyring,
    policy: &'a Policy,
    now: u64,
}

/// Check the signature of member `index`, keeping what is known for a rejection's log fields.
fn one(ctx: &Context<'_, '_>, index: usize, trace: &mut Option<&mut Trace>) -> Result<Verified, Rejected> {
    let mut known = Known::default();
    check(ctx, index, trace, &mut known).map_err(|reason| Rejected {
        reason,
        label: known.label,
        agent: known.agent,
        keyid: known.keyid,
    })
}

fn record<T>(trace: &mut Option<&mut Trace>, name: &'static str, result: Result<T, Reason>) -> Result<T, Reason> {
    if let Some(t) = trace.as_deref_mut() {
        t.checks.push((name, result.as_ref().map(|_| ()).map_err(|r| *r)));
    }
    result
}

fn check(
    ctx: &Context<'_, '_>,
    index: usize,
    trace: &mut Option<&mut Trace>,
    known: &mut Known,
) -> Result<Verified, Reason> {
    let (msg, policy, now) = (ctx.msg, ctx.policy, ctx.now);
    let member = ctx.members.get(index).ok_or(Reason::LabelMismatch)?;
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
    let signature = ctx
        .signatures
        .iter()
        .find(|(label, _)| *label == input.label)
        .map(|(_, bytes)| bytes.as_slice())
        .ok_or(Reason::LabelMismatch);
    let signature = record(trace, "signature", signature.and_then(ed25519_signature))?;
    record(trace, "validity", check_window(&input, policy, now))?;
    record(trace, "nonce", check_nonce(&input, policy))?;
    record(trace, "coverage", check_coverage(&input, policy, msg.status.is_some()))?;
    record(trace, "covered_signatures", check_covered_signatures(&input, ctx.members, policy))?;
    let (agent, agent_covered) = record(trace, "signature_agent", agent(&input, ctx.fields, policy))?;
    known.agent.clone_from(&agent);

    // Step 5: key, base, Ed25519.
    let lookup = ctx.keys.find(agent.as_deref(), keyid, policy.allow_kid_keyid, now).map_err(|e| match e {
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
        also: Vec::new(),
        discarded: Vec::new(),
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

/// The signatures to verify, as indexes into `members`: every one with the policy's tag
/// (Web Bot Auth; a request may carry several, draft-ietf-webbotauth-httpsig-protocol §4.3),
/// else the one with the policy's label, else all of them.
fn select(members: &[Member], policy: &Policy) -> Result<Vec<usize>, Reason> {
    if let Some(tag) = policy.tag.as_deref() {
        let mut chosen = Vec::new();
        for (i, m) in members.iter().enumerate() {
            if m.tag()?.is_some_and(|t| t == tag || policy.extra_tags.iter().any(|e| e == t)) {
                chosen.push(i);
            }
        }
        return if chosen.is_empty() { Err(Reason::TagMismatch) } else { Ok(chosen) };
    }
    if let Some(label) = policy.label.as_deref() {
        return members.iter().position(|m| m.label == label).map(|i| alloc::vec![i]).ok_or(Reason::LabelMismatch);
    }
    Ok((0..members.len()).collect())
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
    // §4.3: a signature may also cover other signers' members; its own is the member keyed
    // by its label, else the only one it covers. Two covered, none of them its own: which
    // one it speaks for cannot be told.
    let own = input.components.iter().find(|c| c.is_field("signature-agent") && c.key.as_deref() == Some(&input.label));
    let mut covered = input.components.iter().filter(|c| c.is_field("signature-agent"));
    let (first, second) = match own {
        Some(c) => (Some(c), None),
        None => (covered.next(), covered.next()),
    };
    match (first, second) {
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

/// A signature that covers another's `"signature";key=X` must also cover
/// `"signature-input";key=X` and every component `X` covers
/// (draft-ietf-webbotauth-httpsig-protocol §4.3), so it commits to a message on which the
/// inner signature can be checked.
fn check_covered_signatures(input: &SignatureInput, members: &[Member], policy: &Policy) -> Result<(), Reason> {
    for c in input.components.iter().filter(|c| c.is_field("signature")) {
        let Some(inner_label) = c.key.as_deref() else { continue };
        let covers_input =
            input.components.iter().any(|d| d.is_field("signature-input") && d.key.as_deref() == Some(inner_label));
        if !covers_input {
            return Err(Reason::CoveredSignatureUnbound);
        }
        // A member that is not there fails when the base is built (dictionary_member_missing).
        let Some(inner) = members.iter().find(|m| m.label == inner_label) else { continue };
        let inner = inner.interpret(policy.limits.max_components)?;
        if !inner.components.iter().all(|ic| input.components.iter().any(|oc| oc.same_as(ic))) {
            return Err(Reason::CoveredSignatureUnbound);
        }
    }
    Ok(())
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
