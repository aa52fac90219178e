//! `botauth directory sign` (and the flag form `botauth directory --key …`): a signed
//! key-directory response
//! (draft-meunier-http-message-signatures-directory §4): the JWK Set of the public keys at
//! `/.well-known/http-message-signatures-directory`, with `Content-Digest` (RFC 9530) and one
//! signature per key over `("@authority";req "content-digest")` (RFC 9421 §2.4),
//! `tag="http-message-signatures-directory"`.

use anyhow::{anyhow, bail, Result};
use botauth_core::components::Message;
use botauth_core::content_digest::sha256_field;
use botauth_core::directory::{MEDIA_TYPE, WELL_KNOWN_PATH};
use botauth_core::policy::DIRECTORY_TAG;
use botauth_core::sign::{sign, SignParams};
use botauth_core::HttpRequest;

use crate::input::{emit, now};
use crate::keys::{load_private, public_jwks};
use crate::message::write_fields;
use crate::Outcome;

/// `botauth directory sign` / `botauth directory --key …`. `--key` and `--authority` are
/// checked here, not by clap, so that the flag form can sit beside the subcommands.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Private Ed25519 JWK; repeat for several keys (each is published and signs). Required.
    #[arg(long, value_name = "PRIVATE_JWK")]
    key: Vec<String>,
    /// The authority the directory is served from (`"@authority";req`). Required.
    #[arg(long, value_name = "HOST[:PORT]")]
    authority: Option<String>,
    /// `created`, unix seconds [default: now].
    #[arg(long, value_name = "UNIX")]
    created: Option<u64>,
    /// Seconds from created to expires (also the response's Cache-Control max-age).
    #[arg(long, value_name = "SECS", default_value_t = 86400, value_parser = clap::value_parser!(u64).range(1..))]
    validity: u64,
}

/// Build, sign and print the response.
pub fn run(args: &SignArgs) -> Result<Outcome> {
    if args.key.is_empty() {
        bail!(
            "botauth directory: give a subcommand (fetch, check, sign) or --key PRIVATE_JWK and --authority HOST \
             (see botauth directory --help)"
        );
    }
    let Some(authority) = args.authority.as_deref() else {
        bail!("botauth directory: --authority HOST[:PORT] is required with --key");
    };
    let keys = args.key.iter().map(|k| load_private(k)).collect::<Result<Vec<_>>>()?;
    let created = match args.created {
        Some(c) => c,
        None => now()?,
    };
    let body = (public_jwks(&keys)? + "\n").into_bytes();
    let request = HttpRequest::new("GET", "https", authority, WELL_KNOWN_PATH).with_header("Host", authority);
    let mut fields: Vec<(String, Vec<u8>)> = vec![
        ("Content-Type".to_owned(), MEDIA_TYPE.into()),
        ("Cache-Control".to_owned(), format!("max-age={}", args.validity).into_bytes()),
        ("Content-Digest".to_owned(), sha256_field(&body).into_bytes()),
        ("Content-Length".to_owned(), body.len().to_string().into_bytes()),
    ];
    let response = HttpRequest { headers: fields.clone(), body: Some(body.clone()), ..request.clone() };
    let msg = Message { message: &response, status: Some(200), related: Some(&request) };
    let mut inputs = Vec::new();
    let mut signatures = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let params = SignParams {
            label: format!("sig{}", i + 1),
            components: vec!["\"@authority\";req".to_owned(), "\"content-digest\"".to_owned()],
            created: Some(created),
            keyid: Some(key.thumbprint.clone()),
            alg: Some("ed25519".to_owned()),
            expires: Some(created.saturating_add(args.validity)),
            nonce: None,
            tag: Some(DIRECTORY_TAG.to_owned()),
        };
        let signed = sign(&msg, &key.seed, &params).map_err(|e| anyhow!("cannot sign: {e}"))?;
        inputs.push(signed.signature_input);
        signatures.push(signed.signature);
    }
    fields.push(("Signature-Input".to_owned(), inputs.join(", ").into_bytes()));
    fields.push(("Signature".to_owned(), signatures.join(", ").into_bytes()));
    let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
    write_fields(&mut out, &fields, b"\r\n");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    emit(&out)?;
    Ok(Outcome::Ok)
}
