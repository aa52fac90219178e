//! The request as core sees it: a seam each host fills in (RFC 9421 §2: message components).

use alloc::string::String;
use alloc::vec::Vec;

/// Read access to the parts of an HTTP request that RFC 9421 components are derived from.
///
/// Adapters implement this over their host's request type so that nothing is copied.
pub trait Request {
    /// The method, as received (RFC 9421 §2.2.1: case-sensitive).
    fn method(&self) -> &str;
    /// The scheme, e.g. `https` (RFC 9421 §2.2.4).
    fn scheme(&self) -> &str;
    /// The authority (`host[:port]`) the client addressed (RFC 9421 §2.2.3).
    fn authority(&self) -> &str;
    /// The raw request target in origin form: path and optional `?query`, not normalised
    /// (RFC 9421 §2.2.5).
    fn target(&self) -> &str;
    /// Append every field line of `name` (lowercase) in received order to `out`.
    fn field_lines<'a>(&'a self, name: &str, out: &mut Vec<&'a [u8]>);
    /// Whether at least one field line of `name` (lowercase) is present.
    fn has_field(&self, name: &str) -> bool {
        let mut lines = Vec::new();
        self.field_lines(name, &mut lines);
        !lines.is_empty()
    }
    /// The body, when the host has it buffered (needed only for `content-digest`).
    ///
    /// When a signature covers `content-digest` and this returns `None`, core verifies the
    /// signature over the field but cannot compare the digest with the body: a host that
    /// forwards the body must then verify again with the body (or call
    /// [`content_digest::check`](crate::content_digest::check)) before trusting it, as the
    /// proxy-wasm filter does. `Some(&[])` means an empty body, which is checked.
    fn body(&self) -> Option<&[u8]> {
        None
    }
}

/// An owned request: the CLI, tests and hosts that hand over copied parts use this.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Scheme, e.g. `https`.
    pub scheme: String,
    /// Authority, e.g. `example.com`.
    pub authority: String,
    /// Raw path and query, e.g. `/a/b?c=d`.
    pub target: String,
    /// Field lines in received order; names compare case-insensitively.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Buffered body, if any.
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// A request with no fields.
    pub fn new(method: &str, scheme: &str, authority: &str, target: &str) -> Self {
        Self {
            method: method.into(),
            scheme: scheme.into(),
            authority: authority.into(),
            target: target.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Append one field line.
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Append one field line in place.
    pub fn push_header(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.headers.push((name.into(), value.into()));
    }

    /// Remove every field line of `name` (case-insensitive).
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

impl Request for HttpRequest {
    fn method(&self) -> &str {
        &self.method
    }
    fn scheme(&self) -> &str {
        &self.scheme
    }
    fn authority(&self) -> &str {
        &self.authority
    }
    fn target(&self) -> &str {
        &self.target
    }
    fn field_lines<'a>(&'a self, name: &str, out: &mut Vec<&'a [u8]>) {
        out.extend(self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice()));
    }
    fn has_field(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
    fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }
}
