//! The client request as core sees it ([`botauth_core::Request`]), read in place.

use botauth_core::Request as CoreRequest;
use fastly::http::HeaderName;
use fastly::Request;

/// A borrowed Fastly request plus the parts Fastly does not keep in the form RFC 9421 needs.
pub struct EdgeRequest<'a> {
    req: &'a Request,
    scheme: &'a str,
    authority: String,
    target: String,
    body: Option<&'a [u8]>,
}

impl<'a> EdgeRequest<'a> {
    /// Wrap `req`. `scheme` is the configured scheme (Compute only accepts TLS, so
    /// `https`); `body` is the buffered body when a covered `content-digest` needs it.
    pub fn new(req: &'a Request, scheme: &'a str, body: Option<&'a [u8]>) -> Self {
        let url = req.get_url();
        // @authority comes from Host as received (RFC 9421 §2.2.3); the URL's host is the
        // fallback for HTTP/2 requests without one.
        let authority = match req.get_header_str("host") {
            Some(h) => h.to_owned(),
            None => match (url.host_str(), url.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => String::new(),
            },
        };
        // The Fastly SDK parses the URL (WHATWG rules), so dot segments are already
        // resolved here: the target is the path and query as Fastly hands them over.
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        Self { req, scheme, authority, target, body }
    }
}

impl CoreRequest for EdgeRequest<'_> {
    fn method(&self) -> &str {
        self.req.get_method_str()
    }
    fn scheme(&self) -> &str {
        self.scheme
    }
    fn authority(&self) -> &str {
        &self.authority
    }
    fn target(&self) -> &str {
        &self.target
    }
    fn field_lines<'b>(&'b self, name: &str, out: &mut Vec<&'b [u8]>) {
        // A covered component may name something that is not a valid header name; such a
        // field cannot be present (and the SDK would panic on it).
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            out.extend(self.req.get_header_all(name).map(|v| v.as_bytes()));
        }
    }
    fn has_field(&self, name: &str) -> bool {
        HeaderName::from_bytes(name.as_bytes()).is_ok_and(|n| self.req.contains_header(n))
    }
    fn body(&self) -> Option<&[u8]> {
        self.body
    }
}

/// Whether the request carries signature fields: the only work unsigned traffic pays.
pub fn is_signed(req: &Request) -> bool {
    req.contains_header("signature") || req.contains_header("signature-input")
}
