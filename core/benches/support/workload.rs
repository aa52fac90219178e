//! The requests every benchmark measures, shared by the criterion bench (`verify.rs`) and
//! the wasm32-wasip1 bench program (`bench/`), so that native and wasm numbers describe
//! the same work.
//!
//! The signed request is what a Web Bot Auth agent sends today: `@authority` and the
//! legacy `Signature-Agent` covered, `created`/`expires` one hour apart, a 64-byte nonce,
//! `tag="web-bot-auth"`, signed with the RFC 9421 B.1.4 test key.

use base64::Engine as _;
use botauth_core::claims::Claims;
use botauth_core::components::Message;
use botauth_core::policy::Policy;
use botauth_core::precheck::precheck;
use botauth_core::signature_input::{ed25519_signature, parse_members, parse_signatures, Member};
use botauth_core::{signature_agent, HttpRequest, Keyring, Reason, Verdict};

/// RFC 9421 B.1.4 Ed25519 test key (private seed `d`, public `x`).
pub const TEST_KEY_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
/// Its public half.
pub const TEST_KEY_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
/// Its RFC 7638 thumbprint: the Web Bot Auth `keyid`.
pub const TEST_KEYID: &str = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";
/// The agent the key belongs to.
pub const AGENT: &str = "https://signature-agent.test";
/// `created` of the signature: 2100-01-01 (far enough ahead that peers that read the
/// wall clock for `expires` accept it).
pub const CREATED: u64 = 4_102_444_800;
/// `expires`: one hour later.
pub const EXPIRES: u64 = CREATED + 3600;
/// The verifier's clock: ten seconds after `created`.
pub const NOW: u64 = CREATED + 10;

const NONCE: &str = "ZO3/XMEZjrvSnLtAP9M7jK0WGQf3J+pbmQRUpHDhF65eG5U1YbOfBxUFi/6ePfMLr1TlNAvvrrW0n7FT/ds3dw==";

/// Everything one benchmark iteration needs.
pub struct Workload {
    /// An ordinary visitor (a browser's `User-Agent`): no signature fields.
    pub unsigned: HttpRequest,
    /// Signed, and valid under `policy` at [`NOW`].
    pub signed: HttpRequest,
    /// The same signature parameters in the order `httpsig` serialises them (created,
    /// expires, nonce, alg, keyid, tag): that peer rebuilds `@signature-params` in its own
    /// order instead of the received one, so it only verifies signatures in that order.
    pub signed_params_reordered: HttpRequest,
    /// Signed, but the signature decodes to 63 bytes: rejected by the prechecks.
    pub bad_length: HttpRequest,
    /// The trusted key of [`AGENT`].
    pub keys: Keyring,
    /// The Web Bot Auth policy.
    pub policy: Policy,
    /// The public key, raw.
    pub public_key: [u8; 32],
    /// The signature base of `signed`.
    pub base: String,
    /// The signature of `signed`, raw.
    pub signature: [u8; 64],
    /// Agents that always sign, as an operator lists them (ChatGPT by its User-Agent tokens).
    pub claims: Claims,
    /// Unsigned, but its `User-Agent` claims ChatGPT: `unverified_claim` under `claims`.
    pub claiming: HttpRequest,
}

/// What a host does with an unsigned request when claims are configured: verify, then (for
/// unsigned only) ask the claims list about `User-Agent` and `Signature-Agent`.
pub fn verify_with_claims(w: &Workload, req: &HttpRequest) -> Verdict {
    match botauth_core::verify(req, &w.keys, &w.policy, NOW) {
        Verdict::Unsigned => w.claims.verdict(req),
        v => v,
    }
}

fn browser_like(req: HttpRequest) -> HttpRequest {
    req.with_header("Host", "example.com")
        .with_header(
            "User-Agent",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
        )
        .with_header("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
        .with_header("Accept-Language", "en-US,en;q=0.9")
        .with_header("Accept-Encoding", "gzip, deflate, br")
        .with_header("Cache-Control", "no-cache")
}

fn base_request() -> HttpRequest {
    browser_like(HttpRequest::new("GET", "https", "example.com", "/articles/42?lang=en"))
        .with_header("Signature-Agent", format!("\"{AGENT}\""))
}

/// Sign the base request under the `Signature-Input` member `signature_input` with the test
/// key; returns the signed request, its signature base and the raw signature.
fn sign(signature_input: &str) -> (HttpRequest, String, [u8; 64]) {
    let req = base_request();
    let members = parse_members(signature_input.as_bytes()).unwrap_or_default();
    let base = match members.first().map(|m| m.interpret(32)) {
        Some(Ok(input)) => {
            botauth_core::signature_base::signature_base(&Message::request(&req), &input, 8192).unwrap_or_default()
        }
        _ => String::new(),
    };
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(decode32(TEST_KEY_D)));
    let signature: [u8; 64] = *pair.sk.sign(base.as_bytes(), None);
    let field = format!("sig1=:{}:", base64::engine::general_purpose::STANDARD.encode(signature));
    (req.with_header("Signature-Input", signature_input).with_header("Signature", field), base, signature)
}

fn decode32(b64url: &str) -> [u8; 32] {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64url).unwrap_or_default();
    bytes.try_into().unwrap_or([0; 32])
}

impl Workload {
    /// Build the requests and sign the signed ones (not measured).
    pub fn new() -> Self {
        let unsigned = browser_like(HttpRequest::new("GET", "https", "example.com", "/articles/42?lang=en"));
        let (signed, base, signature) = sign(&format!(
            "sig1=(\"@authority\" \"signature-agent\");created={CREATED};keyid=\"{TEST_KEYID}\";alg=\"ed25519\";\
             expires={EXPIRES};nonce=\"{NONCE}\";tag=\"web-bot-auth\""
        ));
        let (signed_params_reordered, _, _) = sign(&format!(
            "sig1=(\"@authority\" \"signature-agent\");created={CREATED};expires={EXPIRES};nonce=\"{NONCE}\";\
             alg=\"ed25519\";keyid=\"{TEST_KEYID}\";tag=\"web-bot-auth\""
        ));
        let short = base64::engine::general_purpose::STANDARD.encode(&signature[..63]);
        let mut bad_length = signed.clone();
        bad_length.remove_header("Signature");
        bad_length.push_header("Signature", format!("sig1=:{short}:"));
        // The agent's own request, unsigned: its User-Agent claims ChatGPT.
        let claiming = unsigned.clone();
        // An ordinary visitor: the same request from a browser.
        let mut unsigned = unsigned;
        unsigned.remove_header("User-Agent");
        unsigned.push_header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0");
        let claims = Claims::from_json(
            br#"[{"agent": "https://chatgpt.com", "user_agent": ["ChatGPT-User", "ChatGPT Agent"]}]"#,
        )
        .unwrap_or_default();
        let jwks = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{TEST_KEY_X}"}}]}}"#);
        let mut keys = Keyring::new();
        let _ = keys.add_jwks(AGENT, jwks.as_bytes());
        Self {
            unsigned,
            signed,
            signed_params_reordered,
            bad_length,
            keys,
            // The workload signs with the RFC 9421 test key, which the profile refuses by default.
            policy: Policy { allow_test_keys: true, ..Policy::web_bot_auth() },
            public_key: *ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(decode32(TEST_KEY_D))).pk,
            base,
            signature,
            claims,
            claiming,
        }
    }

    /// Check that each request yields the verdict its benchmark claims to measure.
    pub fn check(&self) -> Result<(), String> {
        let v = botauth_core::verify(&self.unsigned, &self.keys, &self.policy, NOW);
        if v != Verdict::Unsigned {
            return Err(format!("unsigned request: {v:?}"));
        }
        if self.claims.is_empty() || verify_with_claims(self, &self.unsigned) != Verdict::Unsigned {
            return Err("the ordinary visitor is not unsigned under the claims list".into());
        }
        let v = verify_with_claims(self, &self.claiming);
        if v.reason() != Some(Reason::UnverifiedClaim) {
            return Err(format!("the claiming request is not an unverified claim: {v:?}"));
        }
        let (v, trace) = botauth_core::verify_with_trace(&self.bad_length, &self.keys, &self.policy, NOW);
        let first = trace.checks.first().map(|(name, r)| (*name, *r));
        if v.reason() != Some(Reason::SignatureWrongLength)
            || first != Some(("precheck", Err(Reason::SignatureWrongLength)))
        {
            return Err(format!("bad-length request is not a precheck rejection: {v:?} {trace:?}"));
        }
        for req in [&self.signed, &self.signed_params_reordered] {
            let v = botauth_core::verify(req, &self.keys, &self.policy, NOW);
            if !v.is_verified() {
                return Err(format!("signed request does not verify: {v:?}"));
            }
        }
        match parse_and_base(&self.signed, &self.policy) {
            Some((base, _)) if base == self.base => Ok(()),
            other => Err(format!("parse_and_base disagrees with the signed base: {other:?}")),
        }
    }
}

impl Default for Workload {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything `verify` does for `req` except key lookup and Ed25519: prechecks, `sfv`
/// parsing of both fields, choice by tag, signature decoding, component interpretation,
/// `Signature-Agent` parsing and the RFC 9421 §2.5 signature base.
pub fn parse_and_base(req: &HttpRequest, policy: &Policy) -> Option<(String, [u8; 64])> {
    let fields = precheck(req, &policy.limits).ok()??;
    let members = parse_members(&fields.signature_input).ok()?;
    let signatures = parse_signatures(&fields.signature).ok()?;
    let tag = policy.tag.as_deref();
    let member: &Member = members.iter().find(|m| m.tag().ok().flatten() == tag)?;
    let raw = signatures.iter().find(|(l, _)| *l == member.label).map(|(_, s)| s.as_slice())?;
    let signature = ed25519_signature(raw).ok()?;
    let input = member.interpret(policy.limits.max_components).ok()?;
    if let Some(agent) = fields.signature_agent.as_deref() {
        signature_agent::parse(agent).ok()?;
    }
    let base = botauth_core::signature_base::signature_base(
        &Message::request(req),
        &input,
        policy.limits.max_covered_field_len,
    )
    .ok()?;
    Some((base, signature))
}
