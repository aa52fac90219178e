//! From the host's header map to core's [`HttpRequest`], smoothing over the differences
//! between Proxy-Wasm hosts (ARCHITECTURE §6):
//!
//! - Kong's `:authority` is the upstream, not the client's `Host`: `@authority` comes from
//!   the `host` field when there is one ([`AuthoritySource::Auto`]), else `:authority`
//!   (Envoy turns an HTTP/1.1 `Host` into `:authority` and drops `host`).
//! - Kong's `:path` is normalised: the target comes from the `request.path` property, which
//!   is the raw request target on both hosts; `:path` is the fallback.
//! - Header names keep their case on Kong: fields are matched case-insensitively.
//! - Single-value lookups return only the first line: the full map is read, so every line of
//!   a repeated field reaches core, which joins them (RFC 9421 §2.1).

use botauth_core::HttpRequest;

/// Where `@authority` is taken from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthoritySource {
    /// The `host` field when present, else `:authority` (right on Envoy and Kong).
    #[default]
    Auto,
    /// `:authority` (else `host`).
    Authority,
    /// `host` (else `:authority`).
    Host,
}

/// What the host handed over for one request.
#[derive(Clone, Debug, Default)]
pub struct HostRequest {
    /// The full request header map, pseudo-headers included, in host order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The `request.path` property: the raw request target.
    pub path_property: Option<Vec<u8>>,
    /// The buffered body, when a covered `content-digest` needs it.
    pub body: Option<Vec<u8>>,
}

fn text(v: &[u8]) -> Option<String> {
    std::str::from_utf8(v).ok().map(String::from)
}

/// Build core's request from what the host handed over.
pub fn build(host: HostRequest, scheme: Option<&str>, authority: AuthoritySource) -> HttpRequest {
    let mut req = HttpRequest::default();
    let (mut pseudo_authority, mut host_field, mut path, mut pseudo_scheme) = (None, None, None, None);
    for (mut name, value) in host.headers {
        if let Some(pseudo) = name.strip_prefix(':') {
            match pseudo {
                "method" => req.method = text(&value).unwrap_or_default(),
                "authority" => pseudo_authority = text(&value),
                "path" => path = text(&value),
                "scheme" => pseudo_scheme = text(&value),
                _ => {}
            }
            continue;
        }
        name.make_ascii_lowercase(); // in place: the host's name is ours already
        if name == "host" && host_field.is_none() {
            host_field = text(&value);
        }
        req.headers.push((name, value));
    }
    req.authority = match authority {
        AuthoritySource::Auto | AuthoritySource::Host => host_field.or(pseudo_authority),
        AuthoritySource::Authority => pseudo_authority.or(host_field),
    }
    .unwrap_or_default();
    req.target = host.path_property.as_deref().and_then(text).filter(|p| !p.is_empty()).or(path).unwrap_or_default();
    req.scheme = scheme.map(String::from).or(pseudo_scheme).unwrap_or_else(|| "https".into());
    req.body = host.body;
    req
}

/// Whether the signature may cover `content-digest`, so the body must be buffered before
/// verifying: a cheap look at the `Signature-Input` lines, no parsing.
pub fn mentions_content_digest(signature_input: &[u8]) -> bool {
    signature_input.windows(b"\"content-digest\"".len()).any(|w| w.eq_ignore_ascii_case(b"\"content-digest\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use botauth_core::Request as _;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    fn lines<'a>(req: &'a HttpRequest, name: &str) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        req.field_lines(name, &mut out);
        out
    }

    #[test]
    fn envoy_shape() {
        let host = HostRequest {
            headers: h(&[
                (":authority", "example.com"),
                (":path", "/a?b=1"),
                (":method", "GET"),
                (":scheme", "http"),
                ("signature", "sig1=:AA==:"),
                ("x-forwarded-proto", "http"),
            ]),
            path_property: Some(b"/a?b=1".to_vec()),
            body: None,
        };
        let req = build(host, None, AuthoritySource::Auto);
        assert_eq!((req.method.as_str(), req.scheme.as_str()), ("GET", "http"));
        assert_eq!((req.authority.as_str(), req.target.as_str()), ("example.com", "/a?b=1"));
        assert_eq!(lines(&req, "signature"), [b"sig1=:AA==:"]);
        assert!(!req.has_field(":path"), "pseudo-headers are not fields");
    }

    /// Kong: `:authority` is the upstream, `:path` normalised, names keep their case,
    /// repeated fields arrive as separate entries.
    #[test]
    fn kong_shape() {
        let host = HostRequest {
            headers: h(&[
                (":method", "POST"),
                (":path", "/b/c"),
                (":authority", "upstream.internal:8000"),
                (":scheme", "http"),
                ("Host", "Example.COM:8443"),
                ("Signature-Input", "sig1=(\"@authority\")"),
                ("X-Multi", "a"),
                ("x-multi", "b, c"),
            ]),
            path_property: Some(b"/a/../b/%63?q=%20".to_vec()),
            body: None,
        };
        let req = build(host.clone(), Some("https"), AuthoritySource::Auto);
        assert_eq!(req.authority, "Example.COM:8443");
        assert_eq!(req.target, "/a/../b/%63?q=%20");
        assert_eq!(req.scheme, "https");
        assert_eq!(req.method, "POST");
        assert_eq!(lines(&req, "signature-input"), [b"sig1=(\"@authority\")".as_slice()]);
        assert_eq!(lines(&req, "x-multi"), [b"a".as_slice(), b"b, c".as_slice()]);
        assert_eq!(build(host.clone(), None, AuthoritySource::Authority).authority, "upstream.internal:8000");
        assert_eq!(build(host, None, AuthoritySource::Host).authority, "Example.COM:8443");
    }

    #[test]
    fn fallbacks() {
        let host = HostRequest { headers: h(&[(":path", "/p"), (":authority", "a.test")]), ..Default::default() };
        let req = build(host.clone(), None, AuthoritySource::Host);
        assert_eq!((req.authority.as_str(), req.target.as_str(), req.scheme.as_str()), ("a.test", "/p", "https"));
        let empty_prop = HostRequest { path_property: Some(Vec::new()), ..host };
        assert_eq!(build(empty_prop, None, AuthoritySource::Auto).target, "/p");
        let non_utf8 = HostRequest { path_property: Some(vec![0xff]), headers: h(&[(":path", "/q")]), body: None };
        assert_eq!(build(non_utf8, None, AuthoritySource::Auto).target, "/q");
    }

    #[test]
    fn content_digest_detection() {
        assert!(mentions_content_digest(br#"sig1=("@authority" "Content-Digest");tag="web-bot-auth""#));
        assert!(!mentions_content_digest(br#"sig1=("@authority" "content-type")"#));
        assert!(!mentions_content_digest(b""));
    }
}
