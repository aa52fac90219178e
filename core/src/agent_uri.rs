//! Agent identifiers: `Signature-Agent` URIs and directory URLs compared after RFC 3986
//! §6.2.2 (syntax-based) and §6.2.3 (scheme-based) normalisation, query and fragment
//! dropped (draft-ietf-webbotauth-httpsig-protocol: key lookup is keyed on the agent URL).
//!
//! The canonical text of an origin has no trailing slash (`https://chatgpt.com`), so it is
//! the form agents send and operators write.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Longest URI accepted, bytes.
pub const MAX_URI_LEN: usize = 2048;

/// Why a text is not an agent URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriError {
    /// Empty, longer than [`MAX_URI_LEN`], or with bytes outside visible ASCII.
    InvalidCharacters,
    /// No `scheme://` (RFC 3986 §3.1, §3.2: an agent URI has an authority).
    NoAuthority,
    /// The scheme is not `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1).
    InvalidScheme,
    /// `userinfo@` is present: never part of an agent's identity.
    UserInfo,
    /// The host is empty or not a reg-name / IPv4 / bracketed IPv6 (RFC 3986 §3.2.2).
    InvalidHost,
    /// The port is not a number up to 65535 (RFC 3986 §3.2.3).
    InvalidPort,
    /// A `%` not followed by two hex digits (RFC 3986 §2.1).
    InvalidPercentEncoding,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidCharacters => "not a URI: empty, too long or not visible ASCII",
            Self::NoAuthority => "not an absolute URI with an authority (scheme://host)",
            Self::InvalidScheme => "invalid URI scheme",
            Self::UserInfo => "a URI with userinfo (user@host) is not an agent identifier",
            Self::InvalidHost => "invalid host",
            Self::InvalidPort => "invalid port",
            Self::InvalidPercentEncoding => "invalid percent-encoding",
        })
    }
}

/// A normalised absolute URI: the parts an agent identity and a fetch need.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentUri {
    canonical: String,
    scheme_len: usize,
    authority_end: usize,
}

impl AgentUri {
    /// Parse and normalise `text`.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        normalise(text)
    }

    /// The canonical text: lowercase scheme and host, no default port, dot segments
    /// removed, percent-encoding normalised, no query or fragment, and no trailing `/` when
    /// the path is empty or `/`.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The scheme, lowercase.
    pub fn scheme(&self) -> &str {
        self.canonical.get(..self.scheme_len).unwrap_or_default()
    }

    /// `host[:port]`, as sent in `Host` / `:authority`.
    pub fn authority(&self) -> &str {
        self.canonical.get(self.scheme_len + 3..self.authority_end).unwrap_or_default()
    }

    /// The path, `/` at least.
    pub fn path(&self) -> &str {
        match self.canonical.get(self.authority_end..) {
            Some("") | None => "/",
            Some(p) => p,
        }
    }

    /// `scheme://authority` (the URI's origin, RFC 6454 §4).
    pub fn origin(&self) -> &str {
        self.canonical.get(..self.authority_end).unwrap_or_default()
    }

    /// Whether the URI is an origin (its path is empty or `/`).
    pub fn is_origin(&self) -> bool {
        self.authority_end == self.canonical.len()
    }

    /// Whether the host is a loopback address (`127.0.0.0/8`, `[::1]`) or `localhost`.
    pub fn is_loopback(&self) -> bool {
        let host = split_host_port(self.authority()).map_or("", |(h, _)| h);
        host == "localhost" || host == "[::1]" || host.strip_prefix("127.").is_some_and(is_ipv4_tail)
    }
}

impl fmt::Display for AgentUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// The canonical text of an agent URI, or `None` when it is not one (then callers compare
/// nothing equal to it).
pub fn canonical(text: &str) -> Option<String> {
    normalise(text).ok().map(|u| u.canonical)
}

fn is_ipv4_tail(rest: &str) -> bool {
    let parts: Vec<&str> = rest.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// RFC 3986 §3.2.3 / §6.2.3: the default port of a scheme.
fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "https" => Some("443"),
        "http" => Some("80"),
        _ => None,
    }
}

fn normalise(text: &str) -> Result<AgentUri, UriError> {
    if text.is_empty() || text.len() > MAX_URI_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UriError::InvalidCharacters);
    }
    let (scheme, rest) = text.split_once("://").ok_or(UriError::NoAuthority)?;
    let mut sb = scheme.bytes();
    let scheme_ok = sb.next().is_some_and(|b| b.is_ascii_alphabetic())
        && sb.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(UriError::InvalidScheme);
    }
    let scheme = scheme.to_ascii_lowercase();
    // Drop the fragment, then the query (RFC 3986 §3.4, §3.5).
    let rest = rest.split('#').next().unwrap_or_default();
    let rest = rest.split('?').next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(UriError::UserInfo);
    }
    let (host, port) = split_host_port(authority)?;
    let host = normalise_host(host)?;
    let port = match port {
        None | Some("") => None,
        Some(p) => {
            let n: u32 = p.parse().map_err(|_| UriError::InvalidPort)?;
            if n > 65_535 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(UriError::InvalidPort);
            }
            let p = alloc::format!("{n}");
            (default_port(&scheme) != Some(p.as_str())).then_some(p)
        }
    };
    let path = remove_dot_segments(&normalise_percent(path)?);
    let mut canonical = String::with_capacity(text.len());
    canonical.push_str(&scheme);
    canonical.push_str("://");
    canonical.push_str(&host);
    if let Some(p) = &port {
        canonical.push(':');
        canonical.push_str(p);
    }
    let authority_end = canonical.len();
    if path != "/" {
        canonical.push_str(&path);
    }
    Ok(AgentUri { canonical, scheme_len: scheme.len(), authority_end })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UriError> {
    if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or(UriError::InvalidHost)?;
        let (host, after) = authority.split_at(end + 2);
        return match after {
            "" => Ok((host, None)),
            p => p.strip_prefix(':').map(|p| (host, Some(p))).ok_or(UriError::InvalidHost),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

/// RFC 3986 §6.2.2.1: the host is case-insensitive; reg-name characters only.
fn normalise_host(host: &str) -> Result<String, UriError> {
    if host.is_empty() {
        return Err(UriError::InvalidHost);
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err(UriError::InvalidHost);
        }
        return Ok(host.to_ascii_lowercase());
    }
    let decoded = normalise_percent(host)?;
    let ok = decoded.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !ok || decoded.starts_with('.') {
        return Err(UriError::InvalidHost);
    }
    Ok(decoded.to_ascii_lowercase())
}

/// RFC 3986 §6.2.2.1–6.2.2.2: hex digits of percent-encodings uppercase; unreserved
/// characters decoded.
fn normalise_percent(s: &str) -> Result<String, UriError> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let hex = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
            return Err(UriError::InvalidPercentEncoding);
        };
        let decoded = u8::try_from(hi * 16 + lo).unwrap_or(0);
        if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(decoded));
        } else {
            out.push('%');
            out.push(char::from_digit(hi, 16).unwrap_or('0').to_ascii_uppercase());
            out.push(char::from_digit(lo, 16).unwrap_or('0').to_ascii_uppercase());
        }
        i += 3;
    }
    Ok(out)
}

/// RFC 3986 §5.2.4 (used by §6.2.2.3): remove `.` and `..` segments; an empty path is `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing = i == last,
            ".." => {
                out.pop();
                trailing = i == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut result = String::from("/");
    result.push_str(&out.join("/"));
    if trailing && !result.ends_with('/') {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Result<String, UriError> {
        AgentUri::parse(s).map(|u| String::from(u.as_str()))
    }

    #[test]
    fn equivalent_forms_normalise_to_one_text() {
        for s in [
            "https://chatgpt.com",
            "https://chatgpt.com/",
            "HTTPS://ChatGPT.com",
            "https://chatgpt.com:443",
            "https://chatgpt.com:443/",
            "https://chatgpt.com/?q=1",
            "https://chatgpt.com#frag",
            "https://chatgpt.com/a/..",
            "https://chatgpt.com/./",
        ] {
            assert_eq!(c(s).as_deref(), Ok("https://chatgpt.com"), "{s}");
        }
        assert_eq!(c("http://a.test:80/x").as_deref(), Ok("http://a.test/x"));
        assert_eq!(c("https://a.test:8443").as_deref(), Ok("https://a.test:8443"));
        assert_eq!(c("https://a.test:08443").as_deref(), Ok("https://a.test:8443"));
        assert_eq!(c("https://a.test/%7euser/%2f/%41").as_deref(), Ok("https://a.test/~user/%2F/A"));
        assert_eq!(c("https://a.test/a/b/../c/./d").as_deref(), Ok("https://a.test/a/c/d"));
        assert_eq!(c("https://a.test/keys/").as_deref(), Ok("https://a.test/keys/"));
        assert_eq!(c("https://[::1]:8443/x").as_deref(), Ok("https://[::1]:8443/x"));
    }

    #[test]
    fn parts_and_loopback() {
        let u = AgentUri::parse("https://Agent.Example:8443/.well-known/x?y").unwrap();
        assert_eq!((u.scheme(), u.authority(), u.path()), ("https", "agent.example:8443", "/.well-known/x"));
        assert_eq!(u.origin(), "https://agent.example:8443");
        assert!(!u.is_origin());
        assert!(AgentUri::parse("https://a.test/").unwrap().is_origin());
        for l in ["http://127.0.0.1:8080", "http://localhost", "http://[::1]:1", "http://127.1.2.3"] {
            assert!(AgentUri::parse(l).unwrap().is_loopback(), "{l}");
        }
        for n in ["http://127.0.0.1.evil.test", "http://10.0.0.1", "https://localhost.test", "http://127.0.0"] {
            assert!(!AgentUri::parse(n).unwrap().is_loopback(), "{n}");
        }
    }

    #[test]
    fn malformed_uris_are_refused_with_the_violation() {
        assert_eq!(c(""), Err(UriError::InvalidCharacters));
        assert_eq!(c("https://a b.test"), Err(UriError::InvalidCharacters));
        assert_eq!(c("https://ä.test"), Err(UriError::InvalidCharacters));
        assert_eq!(c("chatgpt.com"), Err(UriError::NoAuthority));
        assert_eq!(c("urn:x:y"), Err(UriError::NoAuthority));
        assert_eq!(c("1http://a.test"), Err(UriError::InvalidScheme));
        assert_eq!(c("https://user@a.test"), Err(UriError::UserInfo));
        assert_eq!(c("https://"), Err(UriError::InvalidHost));
        assert_eq!(c("https://:443"), Err(UriError::InvalidHost));
        assert_eq!(c("https://a.test:99999"), Err(UriError::InvalidPort));
        assert_eq!(c("https://a.test:x"), Err(UriError::InvalidPort));
        assert_eq!(c("https://a.test/%zz"), Err(UriError::InvalidPercentEncoding));
        assert_eq!(c("https://a.test/%4"), Err(UriError::InvalidPercentEncoding));
        assert_eq!(c("https://[::1"), Err(UriError::InvalidHost));
        assert_eq!(c("https://a$b.test"), Err(UriError::InvalidHost));
        assert_eq!(c(&alloc::format!("https://a.test/{}", "x".repeat(MAX_URI_LEN))), Err(UriError::InvalidCharacters));
    }
}
