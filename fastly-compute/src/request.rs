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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_request_gives_core_the_received_parts() {
        let mut req = Request::get("https://example.com/a/b?x=1&y=%20");
        req.set_header("host", "Example.com:8443");
        req.append_header("x-rep", "a");
        req.append_header("x-rep", "b");
        let e = EdgeRequest::new(&req, "https", None);
        assert_eq!(e.method(), "GET");
        assert_eq!(e.scheme(), "https");
        assert_eq!(e.authority(), "Example.com:8443", "Host as received; core normalises");
        assert_eq!(e.target(), "/a/b?x=1&y=%20");
        let mut lines = Vec::new();
        e.field_lines("x-rep", &mut lines);
        assert_eq!(lines, [&b"a"[..], &b"b"[..]], "every field line, in order");
        let mut none = Vec::new();
        e.field_lines("not a header name", &mut none);
        assert!(none.is_empty());
        assert!(!e.has_field("not a header name"));
        assert!(e.has_field("x-rep"));
        assert_eq!(e.body(), None);
    }

    #[test]
    fn only_signature_fields_make_a_request_signed() {
        let mut req = Request::get("https://example.com/");
        assert!(!is_signed(&req));
        req.set_header("signature-agent", "\"https://a.test\"");
        assert!(!is_signed(&req), "Signature-Agent alone is not a signature");
        req.set_header("Signature-Input", "sig1=()");
        assert!(is_signed(&req));
        let mut req = Request::get("https://example.com/");
        req.set_header("signature", "sig1=:AA==:");
        assert!(is_signed(&req));
    }
}
