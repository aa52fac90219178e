//! Raw HTTP/1.1 message files (RFC 9112 §2–§6): a request line, field lines, a blank line,
//! the body. Parsed byte for byte so a signature covers exactly what the file holds.

use std::fmt;

use botauth_core::HttpRequest;

/// A request as written in a file: nothing derived, nothing normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRequest {
    /// The method token (RFC 9112 §3.1).
    pub method: String,
    /// The request target as written: origin form, absolute form or `*` (RFC 9112 §3.2).
    pub target: String,
    /// The protocol version, e.g. `HTTP/1.1`.
    pub version: String,
    /// Field lines in file order, names as written; obs-fold kept inside the value.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The bytes after the blank line; `None` when the file has no blank line.
    pub body: Option<Vec<u8>>,
    /// The line ending of the request line (`\r\n` or `\n`), reused when printing.
    pub newline: &'static str,
}

/// Where a request file broke (1-based line number) and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub kind: ParseErrorKind,
}

/// The exact violation in a request file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// No request line at all.
    Empty,
    /// The request line is not valid UTF-8.
    RequestLineNotUtf8,
    /// The request line is not `METHOD SP TARGET SP VERSION` (RFC 9112 §3).
    RequestLineShape,
    /// The method is not a token (RFC 9110 §9.1).
    Method,
    /// The target is not origin form, absolute form or `*` (RFC 9112 §3.2).
    Target,
    /// The version is not `HTTP/<digit>.<digit>` (RFC 9112 §2.3).
    Version,
    /// A field line without `:` (RFC 9112 §5).
    MissingColon,
    /// A field name that is not a token, or whitespace before the colon (RFC 9112 §5.1).
    FieldName,
    /// A line starting with whitespace before any field line (RFC 9112 §5.2).
    FoldWithoutField,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ParseErrorKind::Empty => "the file is empty: expected a request line `METHOD TARGET HTTP/1.1`",
            ParseErrorKind::RequestLineNotUtf8 => "the request line is not valid UTF-8",
            ParseErrorKind::RequestLineShape => {
                "malformed request line: expected `METHOD TARGET HTTP/1.1` (three parts separated by single spaces)"
            }
            ParseErrorKind::Method => "malformed request line: the method is not an HTTP token (e.g. GET)",
            ParseErrorKind::Target => {
                "malformed request line: the target must be a path starting with `/`, `*`, or an absolute URI \
                 like `https://example.com/path`"
            }
            ParseErrorKind::Version => "malformed request line: the version must look like `HTTP/1.1`",
            ParseErrorKind::MissingColon => "malformed header line: expected `Name: value`",
            ParseErrorKind::FieldName => {
                "malformed header line: the name must be an HTTP token directly followed by `:`"
            }
            ParseErrorKind::FoldWithoutField => {
                "a line starting with whitespace (obs-fold continuation) comes before any header line"
            }
        };
        write!(f, "line {}: {what}", self.line)
    }
}

impl std::error::Error for ParseError {}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// A token (RFC 9110 §5.6.2).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Lines of `data`: `(content without CR LF, offset just after the line)`.
struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a [u8], usize, bool);

    /// `(content, offset after the line, ended with CRLF)`.
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let (line, consumed) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (rest.get(..i).unwrap_or_default(), i + 1),
            None => (rest, rest.len()),
        };
        self.pos += consumed;
        let (line, crlf) = match line.strip_suffix(b"\r") {
            Some(l) => (l, true),
            None => (line, false),
        };
        Some((line, self.pos, crlf))
    }
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parse a request file (RFC 9112 §2.2: empty lines before the request line are ignored).
pub fn parse_request(data: &[u8]) -> Result<RawRequest, ParseError> {
    let mut lines = Lines { data, pos: 0 }.enumerate().map(|(i, (l, end, crlf))| (i + 1, l, end, crlf));
    let (line_no, request_line, _, crlf) = loop {
        match lines.next() {
            None => return Err(ParseError { line: 1, kind: ParseErrorKind::Empty }),
            Some((_, [], _, _)) => continue,
            Some(found) => break found,
        }
    };
    let err = |kind| ParseError { line: line_no, kind };
    let request_line = std::str::from_utf8(request_line).map_err(|_| err(ParseErrorKind::RequestLineNotUtf8))?;
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(err(ParseErrorKind::RequestLineShape));
    };
    if !is_token(method.as_bytes()) {
        return Err(err(ParseErrorKind::Method));
    }
    if !(target.starts_with('/') || *target == "*" || target.contains("://"))
        || target.bytes().any(|b| !b.is_ascii_graphic())
    {
        return Err(err(ParseErrorKind::Target));
    }
    if !is_version(version) {
        return Err(err(ParseErrorKind::Version));
    }

    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    let mut body = None;
    for (line_no, line, line_end, _) in lines.by_ref() {
        if line.is_empty() {
            body = Some(data.get(line_end..).unwrap_or_default().to_vec());
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // RFC 9112 §5.2 obs-fold: kept in the value; RFC 9421 §2.1 canonicalisation
            // (in core) replaces it with one space.
            let Some((_, value)) = headers.last_mut() else {
                return Err(ParseError { line: line_no, kind: ParseErrorKind::FoldWithoutField });
            };
            value.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            value.extend_from_slice(trim_ows_end(line));
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(ParseError { line: line_no, kind: ParseErrorKind::MissingColon })?;
        let (name, value) = line.split_at(colon);
        if !is_token(name) {
            return Err(ParseError { line: line_no, kind: ParseErrorKind::FieldName });
        }
        let name = String::from_utf8_lossy(name).into_owned();
        headers.push((name, trim_ows(value.get(1..).unwrap_or_default()).to_vec()));
    }
    Ok(RawRequest {
        method: (*method).to_owned(),
        target: (*target).to_owned(),
        version: (*version).to_owned(),
        headers,
        body,
        newline: if crlf { "\r\n" } else { "\n" },
    })
}

fn trim_ows_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `HTTP-version = HTTP-name "/" DIGIT "." DIGIT` (RFC 9112 §2.3); `HTTP/2`, `HTTP/3` as
/// browsers' developer tools show them are accepted too.
fn is_version(v: &str) -> bool {
    let Some(n) = v.strip_prefix("HTTP/") else {
        return false;
    };
    let b = n.as_bytes();
    match b {
        [major] => major.is_ascii_digit(),
        [major, b'.', minor] => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

/// Why a parsed request cannot be turned into the parts core needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// No `Host`, no absolute-form target and no `--authority`.
    NoAuthority,
    /// More than one `Host` line (RFC 9112 §3.2: a 400 for servers).
    DuplicateHost,
    /// An absolute-form target that is not `scheme://authority[/path][?query]`.
    AbsoluteTarget,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoAuthority => "no authority: add a `Host:` header, use an absolute target, or pass --authority",
            Self::DuplicateHost => "the request has more than one `Host:` header",
            Self::AbsoluteTarget => {
                "the absolute-form target must be `scheme://host[:port][/path][?query]` (no userinfo)"
            }
        })
    }
}

impl std::error::Error for ResolveError {}

/// Split an absolute-form target (RFC 9112 §3.2.2) into scheme, authority and origin form.
fn split_absolute(target: &str) -> Result<(String, String, String), ResolveError> {
    let (scheme, rest) = target.split_once("://").ok_or(ResolveError::AbsoluteTarget)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if !scheme_ok || authority.is_empty() || authority.contains('@') {
        return Err(ResolveError::AbsoluteTarget);
    }
    let path = path.split('#').next().unwrap_or_default();
    let origin = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    Ok((scheme.to_ascii_lowercase(), authority.to_owned(), origin))
}

impl RawRequest {
    /// Whether the target is in absolute form.
    pub fn is_absolute_form(&self) -> bool {
        !self.target.starts_with('/') && self.target != "*"
    }

    /// Every value of `name` (case-insensitive).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Whether a field line named `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }

    /// Remove every field line named `name`.
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// The request as core sees it. Precedence: `--scheme`/`--authority` flags, then an
    /// absolute-form target, then `Host` (authority) and `https` (scheme).
    pub fn resolve(&self, scheme: Option<&str>, authority: Option<&str>) -> Result<HttpRequest, ResolveError> {
        let (abs_scheme, abs_authority, target) = if self.is_absolute_form() {
            let (s, a, t) = split_absolute(&self.target)?;
            (Some(s), Some(a), t)
        } else {
            (None, None, self.target.clone())
        };
        let mut hosts = self.values("host");
        let host = hosts.next();
        if hosts.next().is_some() {
            return Err(ResolveError::DuplicateHost);
        }
        let host = host.map(|h| String::from_utf8_lossy(h).into_owned()).filter(|h| !h.is_empty());
        let authority = authority.map(str::to_owned).or(abs_authority).or(host).ok_or(ResolveError::NoAuthority)?;
        let scheme = scheme.map(str::to_owned).or(abs_scheme).unwrap_or_else(|| "https".to_owned());
        Ok(HttpRequest {
            method: self.method.clone(),
            scheme,
            authority,
            target,
            headers: self.headers.clone(),
            body: self.body.clone(),
        })
    }

    /// The file form again: request line, field lines, blank line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let nl = self.newline.as_bytes();
        let mut out = Vec::new();
        out.extend_from_slice(format!("{} {} {}", self.method, self.target, self.version).as_bytes());
        out.extend_from_slice(nl);
        write_fields(&mut out, &self.headers, nl);
        out.extend_from_slice(nl);
        if let Some(body) = &self.body {
            out.extend_from_slice(body);
        }
        out
    }
}

/// `Name: value` lines.
pub fn write_fields(out: &mut Vec<u8>, headers: &[(String, Vec<u8>)], nl: &[u8]) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(nl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(data: &str) -> (usize, ParseErrorKind) {
        let e = parse_request(data.as_bytes()).unwrap_err();
        (e.line, e.kind)
    }

    #[test]
    fn parses_lf_and_crlf_with_repeated_fields_and_body() {
        let r = parse_request(b"\r\nPOST /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1 \r\nx-a:\t2\r\n\r\nbody\n")
            .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/a?b=1");
        assert_eq!(r.newline, "\r\n");
        assert_eq!(r.values("x-a").collect::<Vec<_>>(), [&b"1"[..], b"2"]);
        assert_eq!(r.body.as_deref(), Some(&b"body\n"[..]));
        let printed = r.to_bytes();
        assert_eq!(parse_request(&printed).unwrap(), r);

        let r = parse_request(b"GET / HTTP/1.1\nHost: h\n").unwrap();
        assert_eq!(r.newline, "\n");
        assert_eq!(r.body, None);
    }

    #[test]
    fn obs_fold_is_kept_for_core() {
        let r = parse_request(b"GET / HTTP/1.1\r\nX: a\r\n   b  \r\n\r\n").unwrap();
        assert_eq!(r.values("x").next(), Some(&b"a\r\n   b"[..]));
        assert_eq!(kind("GET / HTTP/1.1\n b\n"), (2, ParseErrorKind::FoldWithoutField));
    }

    #[test]
    fn malformed_files_name_the_line() {
        assert_eq!(kind(""), (1, ParseErrorKind::Empty));
        assert_eq!(kind("GET /\n"), (1, ParseErrorKind::RequestLineShape));
        assert_eq!(kind("GET  / HTTP/1.1\n"), (1, ParseErrorKind::RequestLineShape));
        assert_eq!(kind("G(T / HTTP/1.1\n"), (1, ParseErrorKind::Method));
        assert_eq!(kind("GET path HTTP/1.1\n"), (1, ParseErrorKind::Target));
        assert_eq!(kind("GET / HTTP/x\n"), (1, ParseErrorKind::Version));
        assert_eq!(kind("\nGET / HTTP/1.1\nHost: a\nnocolon\n"), (4, ParseErrorKind::MissingColon));
        assert_eq!(kind("GET / HTTP/1.1\nHost : a\n"), (2, ParseErrorKind::FieldName));
        assert_eq!(kind("GET / HTTP/1.1\nHo st: a\n"), (2, ParseErrorKind::FieldName));
        let e = parse_request(b"GET / HTTP/1.1\nHost : a\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: malformed header line"));
    }

    #[test]
    fn resolves_authority_and_scheme() {
        let r = parse_request(b"GET /p HTTP/1.1\nHost: a.test\n").unwrap();
        let h = r.resolve(None, None).unwrap();
        assert_eq!((h.scheme.as_str(), h.authority.as_str(), h.target.as_str()), ("https", "a.test", "/p"));
        let h = r.resolve(Some("http"), Some("b.test:8080")).unwrap();
        assert_eq!((h.scheme.as_str(), h.authority.as_str()), ("http", "b.test:8080"));

        let r = parse_request(b"GET HTTP://c.test:81?x=1#frag HTTP/1.1\n").unwrap();
        let h = r.resolve(None, None).unwrap();
        assert_eq!((h.scheme.as_str(), h.authority.as_str(), h.target.as_str()), ("http", "c.test:81", "/?x=1"));

        let r = parse_request(b"GET / HTTP/1.1\n").unwrap();
        assert_eq!(r.resolve(None, None), Err(ResolveError::NoAuthority));
        let r = parse_request(b"GET / HTTP/1.1\nHost: a\nHost: b\n").unwrap();
        assert_eq!(r.resolve(None, None), Err(ResolveError::DuplicateHost));
        let r = parse_request(b"GET https://u@a/ HTTP/1.1\n").unwrap();
        assert_eq!(r.resolve(None, None), Err(ResolveError::AbsoluteTarget));
    }
}
