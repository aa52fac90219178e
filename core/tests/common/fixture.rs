//! The conformance case format (`fixtures/README.md`) as serde types, shared by every runner.
//!
//! Self-contained on purpose: it depends only on `serde`, `serde_json` and `botauth_core`, and
//! uses no `crate::` paths, so host harnesses include this very file with
//! `#[path = "…/core/tests/common/fixture.rs"] mod fixture;`. The case files are embedded with
//! `include_str!` (paths relative to this file), so the suite also runs where there is no
//! filesystem (wasm32-unknown-unknown).

#![allow(dead_code)]

use std::collections::BTreeMap;

use botauth_core::{HttpRequest, Keyring, Limits, Policy, Verdict};
use serde::Deserialize;

/// Every case file, by name under `fixtures/cases/`, with its text.
pub const FILES: &[(&str, &str)] = &[
    ("agent.json", include_str!("../../../fixtures/cases/agent.json")),
    ("components.json", include_str!("../../../fixtures/cases/components.json")),
    ("directory.json", include_str!("../../../fixtures/cases/directory.json")),
    ("keys.json", include_str!("../../../fixtures/cases/keys.json")),
    ("policy.json", include_str!("../../../fixtures/cases/policy.json")),
    ("structure.json", include_str!("../../../fixtures/cases/structure.json")),
    ("vectors.json", include_str!("../../../fixtures/cases/vectors.json")),
];

/// Cases core is known to get wrong, each with why. Runners still run them: a listed case
/// that passes is reported as stale, so the list cannot rot. Host runners reuse it.
pub const SKIP: &[(&str, &str)] = &[];

/// One file of cases.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// What the group covers.
    pub description: String,
    /// The cases.
    pub cases: Vec<Case>,
}

/// One conformance case: a request, the trusted keys, a clock, a policy, the expected verdict.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique over all files, `theme/what-it-proves`.
    pub name: String,
    /// `generated`, or the published vector it comes from.
    pub source: String,
    /// One line: what the case proves.
    pub description: String,
    /// Hosts that can run the case; absent means every host. `["core"]` marks input that
    /// cannot cross a real HTTP/1.1 hop unchanged (e.g. obs-fold).
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// The request.
    pub request: FixtureRequest,
    /// Agent URI (or `"*"`, any agent) → JWK Set.
    pub keys: BTreeMap<String, serde_json::Value>,
    /// Unix seconds the verifier uses as now.
    pub now: u64,
    /// Policy overrides; omitted members keep the profile's defaults.
    #[serde(default)]
    pub policy: PolicyOverrides,
    /// Send the request twice; the expectation is for the second send (replay).
    #[serde(default)]
    pub send_twice: bool,
    /// The expected verdict.
    pub expect: Expect,
    /// The exact RFC 9421 §2.5 signature base the verifier builds, when known.
    #[serde(default)]
    pub signature_base: Option<String>,
    /// Live directories (`directory.json`): the allow-list, cached entries, what each
    /// directory answers, and the fetches expected. Such cases are core-only.
    #[serde(default)]
    pub directories: Option<DirectoryCase>,
    /// Agents that always sign (`botauth_core::claims::Claims` JSON): an unsigned request
    /// that claims one is `unverified_claim`.
    #[serde(default)]
    pub claims: Option<serde_json::Value>,
    /// The file the case came from (filled by [`all_cases`]).
    #[serde(skip)]
    pub file: String,
}

/// The directory part of a case: run with `verify_with_directories`, fetching from
/// `responses` when core asks, as a host would.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryCase {
    /// The `directories` configuration (`botauth_core::directory::DirectoriesConfig` JSON).
    pub config: serde_json::Value,
    /// Cached entries by agent URI.
    pub entries: BTreeMap<String, EntryState>,
    /// What each agent's directory answers (a response, or `{"transport_error": …}`).
    pub responses: BTreeMap<String, FetchResponse>,
    /// How many fetches the host makes.
    pub fetches: usize,
    /// Whether the final step asks for a refresh.
    pub refresh: bool,
}

/// An agent's cached entry as fixtures write it (`botauth_core::directory::Entry`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryState {
    /// A JWK Set of the cached keys.
    pub keys: serde_json::Value,
    /// Ever loaded.
    pub loaded: bool,
    /// Last good fetch.
    pub fetched_at: u64,
    /// Fresh until.
    pub fresh_until: u64,
    /// Usable until.
    pub stale_until: u64,
    /// No fetch before.
    pub retry_after: u64,
    /// Consecutive failures.
    pub failures: u32,
}

impl EntryState {
    /// The core entry.
    pub fn entry(&self) -> Result<botauth_core::directory::Entry, String> {
        let json = serde_json::to_vec(&self.keys).map_err(|e| e.to_string())?;
        let (keys, skipped) = botauth_core::keys::parse_jwks(&json).map_err(|e| e.to_string())?;
        if !skipped.is_empty() {
            return Err("an entry's keys must all be usable".into());
        }
        Ok(botauth_core::directory::Entry {
            keys,
            loaded: self.loaded,
            fetched_at: self.fetched_at,
            fresh_until: self.fresh_until,
            stale_until: self.stale_until,
            retry_after: self.retry_after,
            failures: self.failures,
            last_error: None,
            etag: None,
        })
    }
}

/// What a directory answered.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum FetchResponse {
    /// A whole response.
    Response {
        /// Status.
        status: u16,
        /// Header fields.
        headers: Vec<(String, String)>,
        /// Body.
        body: String,
    },
    /// No whole response: `timeout`, `connect`, `body_too_large`, `other`.
    Failed {
        /// The transport error.
        transport_error: botauth_core::directory::TransportError,
    },
}

impl FetchResponse {
    /// Fold this answer into `previous` with core's `record`.
    pub fn record(
        &self,
        previous: Option<&botauth_core::directory::Entry>,
        dirs: &botauth_core::directory::Directories,
        agent: &botauth_core::directory::AgentDirectory,
        allow_test_keys: bool,
        now: u64,
    ) -> botauth_core::directory::Recorded {
        use botauth_core::directory::{record, Fetched};
        match self {
            Self::Failed { transport_error } => {
                record(previous, dirs, agent, allow_test_keys, Fetched::Failed(*transport_error), now)
            }
            Self::Response { status, headers, body } => {
                let mut fields = HttpRequest::new("GET", "https", agent.authority(), agent.path());
                for (n, v) in headers {
                    fields.push_header(n, v.as_bytes());
                }
                let fetched = Fetched::Response { status: *status, fields: &fields, body: body.as_bytes() };
                record(previous, dirs, agent, allow_test_keys, fetched, now)
            }
        }
    }
}

/// The request of a case. Hosts send `target` raw and `authority` as the Host header.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// `https` or `http`.
    pub scheme: String,
    /// `host[:port]`: what `@authority` is derived from (the Host header).
    pub authority: String,
    /// Raw origin-form path and query.
    pub target: String,
    /// Field lines in order as `[name, value]`; names may repeat. Never `Host`.
    pub headers: Vec<(String, String)>,
    /// Optional UTF-8 body.
    #[serde(default)]
    pub body: Option<String>,
}

/// Which profile the overrides apply to.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Profile {
    /// [`Policy::web_bot_auth`] (the default).
    #[default]
    #[serde(rename = "web-bot-auth")]
    WebBotAuth,
    /// [`Policy::rfc9421`].
    #[serde(rename = "rfc9421")]
    Rfc9421,
    /// [`Policy::visa_tap`].
    #[serde(rename = "visa-tap")]
    VisaTap,
}

/// Policy members a case may override (names as in [`Policy`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverrides {
    /// Base profile.
    #[serde(default)]
    pub profile: Profile,
    /// `tag` a chosen signature must carry.
    pub tag: Option<String>,
    /// Label to verify when the profile has no tag.
    pub label: Option<String>,
    /// Require `created`.
    pub require_created: Option<bool>,
    /// Require `expires`.
    pub require_expires: Option<bool>,
    /// Longest `expires - created`, seconds.
    pub max_validity: Option<u64>,
    /// Tolerated clock difference, seconds.
    pub clock_skew: Option<u64>,
    /// Require `@authority` or `@target-uri` coverage.
    pub require_authority: Option<bool>,
    /// A present `Signature-Agent` must be covered.
    pub require_agent_coverage: Option<bool>,
    /// A `Signature-Agent` must be present.
    pub require_signature_agent: Option<bool>,
    /// A `nonce` must be present.
    pub require_nonce: Option<bool>,
    /// `keyid` may match a JWK `kid`.
    pub allow_kid_keyid: Option<bool>,
    /// Trust published test keys. Unlike the profiles (off), a case trusts them unless it
    /// says `false`: the fixtures are signed with the RFC 9421 B.1.4 key on purpose.
    pub allow_test_keys: Option<bool>,
    /// Components every chosen signature must cover.
    pub required_components: Option<Vec<String>>,
    /// Size and count caps.
    pub limits: Option<LimitOverrides>,
}

/// Size and count caps a case may override: the operator configuration's own type.
pub type LimitOverrides = botauth_core::config::LimitsConfig;

/// The kind of verdict expected.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedVerdict {
    /// A valid signature.
    Verified,
    /// A signed request that fails.
    Rejected,
    /// No signature fields at all.
    Unsigned,
}

/// The expected outcome.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Verified, rejected or unsigned.
    pub verdict: ExpectedVerdict,
    /// Rejection code (`Reason::code`), when rejected.
    #[serde(default)]
    pub reason: Option<String>,
    /// 400, 403 or 429, when rejected.
    #[serde(default)]
    pub status: Option<u16>,
    /// Verified agent (`null`: none); always given for verified cases.
    #[serde(default)]
    pub agent: Option<String>,
    /// The covered agent claim of a signature verified with a key trusted for any agent
    /// (absent: none).
    #[serde(default)]
    pub claimed_agent: Option<String>,
    /// Verified keyid.
    #[serde(default)]
    pub keyid: Option<String>,
    /// Verified label.
    #[serde(default)]
    pub label: Option<String>,
    /// The request's other signatures that verified too, in `Signature-Input` order.
    #[serde(default)]
    pub also: Vec<ExpectSignature>,
    /// Signatures beside a verified one that did not verify, in order.
    #[serde(default)]
    pub discarded: Vec<ExpectDiscarded>,
}

/// Another verified signature of the request.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExpectSignature {
    /// Its agent (`null`: none).
    pub agent: Option<String>,
    /// Its covered claim under a key trusted for any agent.
    #[serde(default)]
    pub claimed_agent: Option<String>,
    /// Its keyid.
    pub keyid: String,
    /// Its label.
    pub label: String,
}

/// A signature that did not verify beside one that did.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExpectDiscarded {
    /// Its label.
    pub label: String,
    /// Why (`Reason::code`).
    pub reason: String,
}

impl Expect {
    /// The verified outcome this expects, as core's type (what the verdict header is made
    /// from), or `None` when it expects no verification.
    pub fn verified(&self) -> Option<botauth_core::Verified> {
        if self.verdict != ExpectedVerdict::Verified {
            return None;
        }
        let also = self
            .also
            .iter()
            .map(|a| botauth_core::Verified {
                agent: a.agent.clone(),
                claimed_agent: a.claimed_agent.clone(),
                keyid: a.keyid.clone(),
                label: a.label.clone(),
                ..Default::default()
            })
            .collect();
        Some(botauth_core::Verified {
            agent: self.agent.clone(),
            claimed_agent: self.claimed_agent.clone(),
            keyid: self.keyid.clone().unwrap_or_default(),
            label: self.label.clone().unwrap_or_default(),
            also,
            ..Default::default()
        })
    }
}

/// Every case of every file, in file order, each with its file name filled in.
///
/// Panics (this is test support) naming the file when a file does not parse.
pub fn all_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (file, text) in FILES {
        let parsed: CaseFile = match serde_json::from_str(text) {
            Ok(p) => p,
            Err(e) => panic!("fixtures/cases/{file}: {e}"),
        };
        for mut case in parsed.cases {
            case.file = String::from(*file);
            out.push(case);
        }
    }
    out
}

impl Case {
    /// Whether `host` (e.g. `core`, `fastly`, `envoy`) runs this case.
    pub fn runs_on(&self, host: &str) -> bool {
        self.hosts.as_ref().is_none_or(|h| h.iter().any(|x| x == host))
    }

    /// The request as core's owned request type.
    pub fn request(&self) -> HttpRequest {
        let r = &self.request;
        let mut req = HttpRequest::new(&r.method, &r.scheme, &r.authority, &r.target);
        for (name, value) in &r.headers {
            req.push_header(name, value.as_bytes());
        }
        req.body = r.body.as_ref().map(|b| b.as_bytes().to_vec());
        req
    }

    /// The trusted keys. Keys core cannot use (RSA, …) are skipped, as a host would.
    pub fn keyring(&self) -> Result<Keyring, String> {
        let mut ring = Keyring::new();
        for (agent, jwks) in &self.keys {
            let json = serde_json::to_vec(jwks).map_err(|e| format!("keys[{agent}]: {e}"))?;
            ring.add_jwks(agent, &json).map_err(|e| format!("keys[{agent}]: {e}"))?;
        }
        Ok(ring)
    }

    /// The operator policy configuration (`botauth_core::config::PolicyConfig` JSON) that
    /// expresses this case's policy in `mode`, for host runners; `Err` says why the case's
    /// policy is not an operator setting. The result is checked to yield exactly
    /// [`Case::policy`] (mode aside).
    pub fn policy_config(&self, mode: &str) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        let o = &self.policy;
        let unsupported: Vec<&str> = [
            ("require_created", o.require_created.is_some()),
            ("require_expires", o.require_expires.is_some()),
            ("require_authority", o.require_authority.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if !unsupported.is_empty() {
            return Err(format!("policy members that are not operator settings: {}", unsupported.join(", ")));
        }
        let mut policy = serde_json::Map::new();
        policy.insert("mode".into(), mode.into());
        match o.profile {
            Profile::WebBotAuth => {}
            Profile::Rfc9421 => {
                policy.insert("profile".into(), "rfc9421".into());
            }
            Profile::VisaTap => {
                policy.insert("profile".into(), "visa-tap".into());
            }
        }
        let members = [
            ("tag", o.tag.clone().map(Value::from)),
            ("label", o.label.clone().map(Value::from)),
            ("allow_kid_keyid", o.allow_kid_keyid.map(Value::from)),
            ("allow_test_keys", Some(Value::from(o.allow_test_keys.unwrap_or(true)))),
            ("max_validity", o.max_validity.map(Value::from)),
            ("clock_skew", o.clock_skew.map(Value::from)),
            ("require_nonce", o.require_nonce.map(Value::from)),
            ("require_signature_agent", o.require_signature_agent.map(Value::from)),
            ("require_agent_coverage", o.require_agent_coverage.map(Value::from)),
            ("required_components", o.required_components.clone().map(Value::from)),
        ];
        for (name, value) in members {
            if let Some(v) = value {
                policy.insert(name.into(), v);
            }
        }
        if let Some(l) = o.limits {
            policy.insert("limits".into(), serde_json::to_value(l).map_err(|e| e.to_string())?);
        }
        let policy = Value::Object(policy);
        let parsed = botauth_core::config::PolicyConfig::from_json(policy.to_string().as_bytes())
            .and_then(|c| c.to_policy())
            .map_err(|e| format!("not an operator setting: {e}"))?;
        let mut want = self.policy();
        want.mode = parsed.mode;
        if parsed != want {
            return Err("the operator configuration yields a different policy".into());
        }
        Ok(policy)
    }

    /// The policy: the profile with the case's overrides applied.
    pub fn policy(&self) -> Policy {
        let o = &self.policy;
        let mut p = match o.profile {
            Profile::WebBotAuth => Policy::web_bot_auth(),
            Profile::Rfc9421 => Policy::rfc9421(),
            Profile::VisaTap => Policy::visa_tap(),
        };
        if let Some(v) = &o.tag {
            p.tag = Some(v.clone());
            p.extra_tags.clear();
        }
        if let Some(v) = &o.label {
            p.label = Some(v.clone());
        }
        set(&mut p.require_created, o.require_created);
        set(&mut p.require_expires, o.require_expires);
        set(&mut p.max_validity, o.max_validity);
        set(&mut p.clock_skew, o.clock_skew);
        set(&mut p.require_authority, o.require_authority);
        set(&mut p.require_agent_coverage, o.require_agent_coverage);
        set(&mut p.require_signature_agent, o.require_signature_agent);
        set(&mut p.require_nonce, o.require_nonce);
        set(&mut p.allow_kid_keyid, o.allow_kid_keyid);
        p.allow_test_keys = o.allow_test_keys.unwrap_or(true);
        if let Some(v) = &o.required_components {
            p.required_components = v.clone();
        }
        if let Some(l) = o.limits {
            let d: &mut Limits = &mut p.limits;
            set(&mut d.max_signature_input_len, l.max_signature_input_len);
            set(&mut d.max_signature_len, l.max_signature_len);
            set(&mut d.max_signature_agent_len, l.max_signature_agent_len);
            set(&mut d.max_covered_field_len, l.max_covered_field_len);
            set(&mut d.max_signatures, l.max_signatures);
            set(&mut d.max_components, l.max_components);
        }
        p
    }

    /// `verdict` as a host with the case's `claims` makes it: an unsigned request that claims
    /// an agent that always signs becomes `unverified_claim` (hosts ask about unsigned only).
    pub fn with_claims(&self, verdict: Verdict, request: &HttpRequest) -> Result<Verdict, String> {
        match (&verdict, &self.claims) {
            (Verdict::Unsigned, Some(claims)) => {
                let json = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
                Ok(botauth_core::claims::Claims::from_json(&json).map_err(|e| e.to_string())?.verdict(request))
            }
            _ => Ok(verdict),
        }
    }

    /// The HTTP status an enforcing host answers with: the rejection's status, or `None`
    /// when the request is forwarded (verified or unsigned).
    pub fn expected_status(&self) -> Option<u16> {
        match self.expect.verdict {
            ExpectedVerdict::Rejected => self.expect.status,
            _ => None,
        }
    }

    /// The case is internally consistent (a rejection has a code and status, others none).
    pub fn validate(&self) -> Result<(), String> {
        let e = &self.expect;
        match e.verdict {
            ExpectedVerdict::Rejected if e.reason.is_none() || e.status.is_none() => {
                Err("a rejected expectation needs reason and status".into())
            }
            ExpectedVerdict::Verified | ExpectedVerdict::Unsigned if e.reason.is_some() || e.status.is_some() => {
                Err("only rejections carry reason and status".into())
            }
            ExpectedVerdict::Verified if e.keyid.is_none() || e.label.is_none() => {
                Err("a verified expectation names keyid and label".into())
            }
            _ if self.description.is_empty() || self.description.contains('\n') => {
                Err("the description must be one non-empty line".into())
            }
            _ => Ok(()),
        }
    }

    /// Compare `verdict` with the expectation: kind, reason code, status, agent, keyid, label.
    pub fn check(&self, verdict: &Verdict) -> Result<(), String> {
        self.validate()?;
        let e = &self.expect;
        match (e.verdict, verdict) {
            (ExpectedVerdict::Unsigned, Verdict::Unsigned) => Ok(()),
            (ExpectedVerdict::Verified, Verdict::Verified(v)) => {
                let mut diffs = Vec::new();
                if v.agent != e.agent {
                    diffs.push(format!("agent {:?}, expected {:?}", v.agent, e.agent));
                }
                if v.claimed_agent != e.claimed_agent {
                    diffs.push(format!("claimed_agent {:?}, expected {:?}", v.claimed_agent, e.claimed_agent));
                }
                if e.keyid.as_deref() != Some(v.keyid.as_str()) {
                    diffs.push(format!("keyid {:?}, expected {:?}", v.keyid, e.keyid));
                }
                if e.label.as_deref() != Some(v.label.as_str()) {
                    diffs.push(format!("label {:?}, expected {:?}", v.label, e.label));
                }
                let also: Vec<ExpectSignature> = v
                    .also
                    .iter()
                    .map(|a| ExpectSignature {
                        agent: a.agent.clone(),
                        claimed_agent: a.claimed_agent.clone(),
                        keyid: a.keyid.clone(),
                        label: a.label.clone(),
                    })
                    .collect();
                if also != e.also {
                    diffs.push(format!("also {also:?}, expected {:?}", e.also));
                }
                let discarded: Vec<ExpectDiscarded> = v
                    .discarded
                    .iter()
                    .map(|r| ExpectDiscarded {
                        label: r.label.clone().unwrap_or_default(),
                        reason: r.reason.code().into(),
                    })
                    .collect();
                if discarded != e.discarded {
                    diffs.push(format!("discarded {discarded:?}, expected {:?}", e.discarded));
                }
                if diffs.is_empty() {
                    Ok(())
                } else {
                    Err(diffs.join("; "))
                }
            }
            (ExpectedVerdict::Rejected, Verdict::Rejected(r)) => {
                let code = r.reason.code();
                let status = r.reason.status().code();
                if e.reason.as_deref() == Some(code) && e.status == Some(status) {
                    Ok(())
                } else {
                    Err(format!(
                        "rejected {code} ({status}), expected {} ({})",
                        e.reason.as_deref().unwrap_or("?"),
                        e.status.unwrap_or(0)
                    ))
                }
            }
            (_, got) => Err(format!("got {} ({got:?}), expected {:?} {:?}", got.code(), e.verdict, e.reason)),
        }
    }

    /// Compare the signature base a verifier built with the expected one, when the case gives one.
    pub fn check_signature_base(&self, built: Option<&str>) -> Result<(), String> {
        match (&self.signature_base, built) {
            (None, _) => Ok(()),
            (Some(want), Some(got)) if want == got => Ok(()),
            (Some(want), got) => Err(format!("signature base differs:\n--- expected\n{want}\n--- built\n{got:?}")),
        }
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}
