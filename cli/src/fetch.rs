//! Directory fetches over HTTP(S) with `ureq` (rustls, webpki roots): one GET, a timeout,
//! no redirect followed, no proxy, no content coding, and the body read only up to core's
//! size cap. What came back is handed to core ([`botauth_core::directory::record`]) as is:
//! the status, the header fields and the body, or the transport failure.

use std::io::Read as _;
use std::time::Duration;

use anyhow::{bail, Result};
use botauth_core::agent_uri::AgentUri;
use botauth_core::directory::{DirectorySettings, Fetched, TransportError, MEDIA_TYPE};
use botauth_core::HttpRequest;

/// What one fetch produced.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A whole response, its body at most `max_body` bytes.
    Response {
        /// Status code.
        status: u16,
        /// The response header fields, as a core request value (only fields are read).
        fields: HttpRequest,
        /// The body.
        body: Vec<u8>,
    },
    /// No whole response: core's transport error, and the client's own words.
    Failed(TransportError, String),
}

impl Outcome {
    /// The form [`botauth_core::directory::record`] takes.
    pub fn as_fetched(&self) -> Fetched<'_> {
        match self {
            Self::Response { status, fields, body } => Fetched::Response { status: *status, fields, body },
            Self::Failed(e, _) => Fetched::Failed(*e),
        }
    }
}

/// The scheme rule for every URL the CLI fetches: `https`, or plain `http` to a loopback
/// host only (core's [`AgentUri::is_loopback`]). Anything else is a usage error.
pub fn check_scheme(uri: &AgentUri, what: &str) -> Result<()> {
    match uri.scheme() {
        "https" => Ok(()),
        "http" if uri.is_loopback() => Ok(()),
        "http" => bail!(
            "{what} {uri}: plain http is allowed only to loopback hosts (127.0.0.0/8, [::1], localhost); use https"
        ),
        s => bail!("{what} {uri}: scheme {s:?} is not supported (https, or http to a loopback host)"),
    }
}

/// GET `url` (sending `Host: host` when given, like curl's `--resolve`), within the
/// settings' timeout, reading at most `max_body + 1` bytes of the body.
pub fn get(url: &str, host: Option<&str>, settings: &DirectorySettings) -> Outcome {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(settings.fetch_timeout_ms)))
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .user_agent(concat!("botauth/", env!("CARGO_PKG_VERSION")))
        .accept(format!("{MEDIA_TYPE}, application/jwk-set+json;q=0.9, application/json;q=0.8"))
        .build();
    let agent: ureq::Agent = config.into();
    let mut request = agent.get(url);
    if let Some(h) = host {
        request = request.header("Host", h);
    }
    let mut response = match request.call() {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(transport_error(&e), e.to_string()),
    };
    let status = response.status().as_u16();
    // Core reads only the fields of this value (method, target and authority are unused).
    let mut fields = HttpRequest::new("GET", "https", host.unwrap_or_default(), "/");
    for (name, value) in response.headers() {
        fields.push_header(name.as_str(), value.as_bytes());
    }
    let cap = settings.limits.max_body;
    let mut body = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    if let Err(e) = response.body_mut().as_reader().take(limit).read_to_end(&mut body) {
        let kind =
            if e.kind() == std::io::ErrorKind::TimedOut { TransportError::Timeout } else { TransportError::Other };
        return Outcome::Failed(kind, format!("reading the body: {e}"));
    }
    if body.len() > cap {
        return Outcome::Failed(TransportError::BodyTooLarge, format!("the body exceeds {cap} bytes; stopped reading"));
    }
    Outcome::Response { status, fields, body }
}

fn transport_error(e: &ureq::Error) -> TransportError {
    match e {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => TransportError::Connect,
        // Before a response: resolving, connecting, the TLS handshake's I/O, the head.
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => TransportError::Timeout,
            _ => TransportError::Connect,
        },
        _ => TransportError::Other,
    }
}
