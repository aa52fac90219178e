//! The peer implementations, each given the same request through its own message seam:
//! Cloudflare's `web-bot-auth` (`SignedMessage::lookup_component`) and `httpsig` (header
//! parsing, component values, signature base). Each call does the peer's whole job for
//! one request: parse the fields, pick the signature, build the base, verify Ed25519.

use botauth_core::HttpRequest;

use crate::workload::{Workload, TEST_KEYID};

fn field_values(req: &HttpRequest, name: &str) -> Vec<String> {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn path(req: &HttpRequest) -> &str {
    req.target.split_once('?').map_or(req.target.as_str(), |(p, _)| p)
}

fn query(req: &HttpRequest) -> String {
    format!("?{}", req.target.split_once('?').map_or("", |(_, q)| q))
}

/// Cloudflare's `web-bot-auth` crate (`WebBotAuthVerifier`).
pub struct WebBotAuth {
    keyring: web_bot_auth::keyring::KeyRing,
}

struct WbaMessage<'a>(&'a HttpRequest);

impl web_bot_auth::message_signatures::SignedMessage for WbaMessage<'_> {
    fn lookup_component(&self, name: &web_bot_auth::components::CoveredComponent) -> Vec<String> {
        use web_bot_auth::components::{CoveredComponent, DerivedComponent, HTTPField};
        let r = self.0;
        match name {
            CoveredComponent::HTTP(HTTPField { name, .. }) => field_values(r, name),
            CoveredComponent::Derived(d) => match d {
                DerivedComponent::Authority { req: false } => vec![r.authority.clone()],
                DerivedComponent::Method { req: false } => vec![r.method.clone()],
                DerivedComponent::Path { req: false } => vec![path(r).into()],
                DerivedComponent::Query { req: false } => vec![query(r)],
                DerivedComponent::Scheme { req: false } => vec![r.scheme.clone()],
                DerivedComponent::RequestTarget { req: false } => vec![r.target.clone()],
                DerivedComponent::TargetUri { req: false } => {
                    vec![format!("{}://{}{}", r.scheme, r.authority, r.target)]
                }
                _ => vec![],
            },
        }
    }
}

impl WebBotAuth {
    pub fn new(w: &Workload) -> Self {
        let mut keyring = web_bot_auth::keyring::KeyRing::default();
        keyring.import_raw(TEST_KEYID.into(), web_bot_auth::keyring::Algorithm::Ed25519, w.public_key.to_vec());
        Self { keyring }
    }

    pub fn verify(&self, req: &HttpRequest) -> Result<(), String> {
        let verifier = web_bot_auth::WebBotAuthVerifier::parse(&WbaMessage(req)).map_err(|e| format!("{e:?}"))?;
        verifier.verify(&self.keyring, None).map(|_| ()).map_err(|e| format!("{e:?}"))
    }
}

/// `httpsig` (junkurihara/httpsig-rs), the framework-free base crate.
pub struct HttpSig {
    key: httpsig::prelude::PublicKey,
}

impl HttpSig {
    pub fn new(w: &Workload) -> Self {
        let key = httpsig::prelude::PublicKey::from_bytes(&httpsig::prelude::AlgorithmName::Ed25519, &w.public_key);
        match key {
            Ok(key) => Self { key },
            Err(e) => panic!("httpsig rejects the test key: {e}"),
        }
    }

    pub fn verify(&self, req: &HttpRequest) -> Result<(), String> {
        use httpsig::prelude::message_component::{
            DerivedComponentName, HttpMessageComponent, HttpMessageComponentName,
        };
        use httpsig::prelude::{HttpSignatureBase, HttpSignatureHeaders};
        let sig = field_values(req, "signature").join(", ");
        let input = field_values(req, "signature-input").join(", ");
        let map = HttpSignatureHeaders::try_parse(&sig, &input).map_err(|e| e.to_string())?;
        // Choose as Web Bot Auth does: the signature tagged `web-bot-auth`.
        let headers = map
            .values()
            .find(|h| h.signature_params().tag.as_deref() == Some("web-bot-auth"))
            .ok_or("no web-bot-auth signature")?;
        if headers.signature_params().keyid.as_deref() != Some(TEST_KEYID) {
            return Err("unknown keyid".into());
        }
        let lines = headers
            .signature_params()
            .covered_components
            .iter()
            .map(|id| {
                let values = match &id.name {
                    HttpMessageComponentName::HttpField(name) => field_values(req, name),
                    HttpMessageComponentName::Derived(d) => vec![match d {
                        DerivedComponentName::Authority => req.authority.clone(),
                        DerivedComponentName::Method => req.method.clone(),
                        DerivedComponentName::Path => path(req).into(),
                        DerivedComponentName::Query => query(req),
                        DerivedComponentName::Scheme => req.scheme.clone(),
                        DerivedComponentName::RequestTarget => req.target.clone(),
                        DerivedComponentName::TargetUri => format!("{}://{}{}", req.scheme, req.authority, req.target),
                        _ => return Err(format!("component {d} not supported here")),
                    }],
                };
                HttpMessageComponent::try_from((id, values.as_slice())).map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let base = HttpSignatureBase::try_new(&lines, headers.signature_params()).map_err(|e| e.to_string())?;
        base.verify_signature_headers(&self.key, headers).map_err(|e| e.to_string())
    }
}
