//! `botauth sign`: add `Signature-Agent`, `Signature-Input` and `Signature` (RFC 9421 §4,
//! draft-meunier-webbotauth-httpsig-protocol §4) to a raw request. The base is built and
//! signed by core (`botauth_core::sign`), through the verifier's own parser.

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use botauth_core::components::Message;
use botauth_core::content_digest::sha256_field;
use botauth_core::sign::{sign, SignParams};
use botauth_core::signature_agent::{self, SignatureAgent};
use sfv::{DictSerializer, ItemSerializer, KeyRef, RefBareItem, StringRef};

use crate::covered::{field_name, is_req, parse_list, to_identifier};
use crate::input::{emit, now};
use crate::keys::load_private;
use crate::message::RawRequest;
use crate::{load_request, Outcome, TargetArgs};

/// Which `Signature-Agent` form to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentForm {
    /// `Signature-Agent: "https://agent.example"` (an sf-string; what ChatGPT sends today).
    Legacy,
    /// `Signature-Agent: sig1="https://agent.example"` (a dictionary keyed by label).
    Dictionary,
}

/// `botauth sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Private Ed25519 JWK (as written by `botauth keygen`).
    #[arg(long, value_name = "PRIVATE_JWK")]
    key: String,
    /// The raw HTTP/1.1 request file (`-` = stdin).
    #[arg(long, value_name = "FILE|-")]
    request: String,
    /// Signature-Agent URI to send and cover, e.g. https://agent.example (replaces any present).
    #[arg(long, value_name = "URI")]
    agent: Option<String>,
    /// Signature-Agent form.
    #[arg(long, value_enum, default_value_t = AgentForm::Dictionary)]
    agent_form: AgentForm,
    /// Signature label.
    #[arg(long, default_value = "sig1")]
    label: String,
    /// Covered components, comma-separated, written plainly:
    /// '@authority,@path,signature-agent;key=sig1,@query-param;name=q,content-digest'
    /// [default: @authority, plus signature-agent when an agent is sent].
    #[arg(long, value_name = "LIST")]
    components: Option<String>,
    /// `created`, unix seconds [default: now].
    #[arg(long, value_name = "UNIX")]
    created: Option<u64>,
    /// `expires`, unix seconds [default: created + --validity].
    #[arg(long, value_name = "UNIX", conflicts_with = "validity")]
    expires: Option<u64>,
    /// Send no `expires` (plain RFC 9421 signatures; Web Bot Auth verifiers reject them).
    #[arg(long, conflicts_with_all = ["expires", "validity"])]
    no_expires: bool,
    /// Seconds from created to expires.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    validity: u64,
    /// `nonce` [default: 64 random bytes, base64].
    #[arg(long, value_name = "STR", conflicts_with = "no_nonce")]
    nonce: Option<String>,
    /// Send no nonce.
    #[arg(long)]
    no_nonce: bool,
    /// `tag` (an empty string sends none).
    #[arg(long, default_value = "web-bot-auth")]
    tag: String,
    /// Omit `alg="ed25519"`.
    #[arg(long)]
    no_alg: bool,
    /// `keyid` [default: the key's RFC 7638 thumbprint, as Web Bot Auth requires].
    #[arg(long, value_name = "STR")]
    keyid: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
    /// Print a curl command line that sends the signed request, instead of the request.
    #[arg(long)]
    curl: bool,
    /// With --curl: where to send it (the Host header keeps the signed authority).
    #[arg(long, value_name = "URL", requires = "curl", default_value = "http://127.0.0.1:7676")]
    url_base: String,
}

/// Sign and print.
pub fn run(args: &Args) -> Result<Outcome> {
    if args.key == "-" && args.request == "-" {
        bail!("--key and --request cannot both be read from stdin");
    }
    KeyRef::from_str(&args.label)
        .map_err(|e| anyhow!("--label {:?} is not a structured-field key: {e}", args.label))?;
    let key = load_private(&args.key)?;
    let mut raw = load_request(&args.request)?;
    let scheme = args.target.scheme.as_deref();
    let authority = args.target.authority.as_deref();
    let resolved = raw.resolve(scheme, authority)?;
    // The printed request carries its authority, so it verifies without --authority.
    if !raw.has("host") && !raw.is_absolute_form() {
        raw.headers.insert(0, ("Host".to_owned(), resolved.authority.clone().into_bytes()));
    }
    raw.remove("signature");
    raw.remove("signature-input");

    let agent_component = agent(&mut raw, args)?;
    let components = match &args.components {
        Some(list) => parse_list(list)?,
        None => std::iter::once(to_identifier("@authority")?).chain(agent_component).collect(),
    };
    add_content_digest(&mut raw, &components);
    for c in &components {
        if let Some(field) = field_name(c).filter(|_| !is_req(c)) {
            if !raw.has(&field) {
                bail!("cannot sign: the covered field {field:?} is not in the request");
            }
        }
    }

    let created = match args.created {
        Some(c) => c,
        None => now()?,
    };
    let params = SignParams {
        label: args.label.clone(),
        components,
        created: Some(created),
        keyid: Some(args.keyid.clone().unwrap_or_else(|| key.thumbprint.clone())),
        alg: (!args.no_alg).then(|| "ed25519".to_owned()),
        expires: (!args.no_expires).then(|| args.expires.unwrap_or_else(|| created.saturating_add(args.validity))),
        nonce: if args.no_nonce { None } else { Some(nonce(args.nonce.as_deref())?) },
        tag: (!args.tag.is_empty()).then(|| args.tag.clone()),
    };
    let request = raw.resolve(scheme, authority)?;
    let signed = sign(&Message::request(&request), &key.seed, &params).map_err(|e| anyhow!("cannot sign: {e}"))?;
    raw.headers.push(("Signature-Input".to_owned(), signed.signature_input.into_bytes()));
    raw.headers.push(("Signature".to_owned(), signed.signature.into_bytes()));
    if args.curl {
        let cmd = crate::curl::command(&raw, &request.target, &request.authority, &args.url_base)?;
        emit(cmd.as_bytes())?;
    } else {
        emit(&raw.to_bytes())?;
    }
    Ok(Outcome::Ok)
}

/// Send `--agent` (replacing any `Signature-Agent`), or keep the request's own; return the
/// component that covers it (draft-meunier-webbotauth-httpsig-protocol §4: dictionary
/// members are covered with `;key="<label>"`).
fn agent(raw: &mut RawRequest, args: &Args) -> Result<Option<String>> {
    let label = args.label.as_str();
    if let Some(uri) = &args.agent {
        let uri_ref = StringRef::from_str(uri).map_err(|e| anyhow!("--agent {uri:?} is not a valid sf-string: {e}"))?;
        let (value, component) = match args.agent_form {
            AgentForm::Legacy => (ItemSerializer::new().bare_item(uri_ref).finish(), "signature-agent".to_owned()),
            AgentForm::Dictionary => {
                let mut dict = DictSerializer::new();
                let _ = dict.bare_item(KeyRef::from_str(label)?, RefBareItem::from(uri_ref));
                let value = dict.finish().context("empty Signature-Agent dictionary")?;
                (value, format!("signature-agent;key={label}"))
            }
        };
        raw.remove("signature-agent");
        raw.headers.push(("Signature-Agent".to_owned(), value.into_bytes()));
        return Ok(Some(to_identifier(&component)?));
    }
    let lines: Vec<&[u8]> = raw.values("signature-agent").collect();
    // With explicit --components the caller decides how (and whether) it is covered.
    if lines.is_empty() || args.components.is_some() {
        return Ok(None);
    }
    let joined = lines.join(&b", "[..]);
    let component = match signature_agent::parse(&joined) {
        Ok(SignatureAgent::Legacy(_)) => "signature-agent".to_owned(),
        Ok(sa @ SignatureAgent::Dictionary(_)) if sa.has_member(label) => {
            format!("signature-agent;key={label}")
        }
        Ok(SignatureAgent::Dictionary(_)) => {
            bail!("the request's Signature-Agent dictionary has no member {label:?}; pass --agent or --label")
        }
        Err(r) => bail!("the request's Signature-Agent is malformed ({}); pass --agent to replace it", r.code()),
    };
    Ok(Some(to_identifier(&component)?))
}

/// RFC 9530 §2: when `content-digest` is to be covered and absent, add one over the body.
fn add_content_digest(raw: &mut RawRequest, components: &[String]) {
    let wanted = components.iter().any(|c| !is_req(c) && field_name(c).as_deref() == Some("content-digest"));
    if wanted && !raw.has("content-digest") {
        let digest = sha256_field(raw.body.as_deref().unwrap_or_default());
        raw.headers.push(("Content-Digest".to_owned(), digest.into_bytes()));
    }
}

/// The given nonce, or 64 random bytes in base64 (as Web Bot Auth agents send).
fn nonce(given: Option<&str>) -> Result<String> {
    if let Some(n) = given {
        return Ok(n.to_owned());
    }
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness for the nonce: {e}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}
