//! Component identifiers and their values (RFC 9421 §2: HTTP Message Components).

use alloc::string::String;
use alloc::vec::Vec;

use base64::Engine as _;
use sfv::{BareItem, Version};

use crate::reason::{Field, Reason};
use crate::request::Request;
use crate::structured;

/// A derived component (RFC 9421 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Derived {
    /// `@method` (§2.2.1).
    Method,
    /// `@target-uri` (§2.2.2).
    TargetUri,
    /// `@authority` (§2.2.3).
    Authority,
    /// `@scheme` (§2.2.4).
    Scheme,
    /// `@request-target` (§2.2.5).
    RequestTarget,
    /// `@path` (§2.2.6).
    Path,
    /// `@query` (§2.2.7).
    Query,
    /// `@query-param` (§2.2.8).
    QueryParam,
    /// `@status` (§2.2.9): responses only.
    Status,
}

impl Derived {
    /// Look up a derived component by its name including `@`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "@method" => Self::Method,
            "@target-uri" => Self::TargetUri,
            "@authority" => Self::Authority,
            "@scheme" => Self::Scheme,
            "@request-target" => Self::RequestTarget,
            "@path" => Self::Path,
            "@query" => Self::Query,
            "@query-param" => Self::QueryParam,
            "@status" => Self::Status,
            _ => return None,
        })
    }

    /// The component name including `@`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Method => "@method",
            Self::TargetUri => "@target-uri",
            Self::Authority => "@authority",
            Self::Scheme => "@scheme",
            Self::RequestTarget => "@request-target",
            Self::Path => "@path",
            Self::Query => "@query",
            Self::QueryParam => "@query-param",
            Self::Status => "@status",
        }
    }
}

/// What a component identifier names (RFC 9421 §2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ComponentName {
    /// A derived component.
    Derived(Derived),
    /// An HTTP field, by lowercase name (§2.1).
    Field(String),
}

/// One covered component: a name and its parameters (RFC 9421 §2.1, §2.2.8, §2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentId {
    /// The component name.
    pub name: ComponentName,
    /// `sf`: re-serialise the field as a structured field (§2.1.1).
    pub sf: bool,
    /// `key`: one member of a dictionary field (§2.1.2).
    pub key: Option<String>,
    /// `bs`: byte-sequence wrapping of each field line (§2.1.3).
    pub bs: bool,
    /// `req`: taken from the related request (§2.4).
    pub req: bool,
    /// `name`: the query parameter of `@query-param` (§2.2.8).
    pub param_name: Option<String>,
    /// The identifier as it appears in the signature base (canonical sf serialisation).
    identifier: String,
}

impl ComponentId {
    /// Interpret one member of a covered-components inner list (RFC 9421 §2).
    pub fn from_item(item: &sfv::Item) -> Result<Self, Reason> {
        let BareItem::String(name) = &item.bare_item else {
            return Err(Reason::InvalidComponentName);
        };
        let name = name.as_str();
        let name = if name.starts_with('@') {
            if name == "@signature-params" {
                // §2.3: "@signature-params" MUST NOT be listed among covered components.
                return Err(Reason::InvalidComponentName);
            }
            ComponentName::Derived(Derived::from_name(name).ok_or(Reason::UnknownDerivedComponent)?)
        } else {
            // §2.1: field names are lowercased; a field name is an HTTP token (RFC 9110 §5.1).
            if name.is_empty() || !name.bytes().all(is_lower_tchar) {
                return Err(Reason::InvalidComponentName);
            }
            ComponentName::Field(name.into())
        };
        let mut id = ComponentId {
            name,
            sf: false,
            key: None,
            bs: false,
            req: false,
            param_name: None,
            identifier: structured::serialize_item(item),
        };
        for (key, value) in &item.params {
            match (key.as_str(), value) {
                ("sf", BareItem::Boolean(true)) => id.sf = true,
                ("bs", BareItem::Boolean(true)) => id.bs = true,
                ("req", BareItem::Boolean(true)) => id.req = true,
                ("key", BareItem::String(s)) => id.key = Some(s.as_str().into()),
                ("name", BareItem::String(s)) => id.param_name = Some(s.as_str().into()),
                ("sf" | "bs" | "req" | "key" | "name" | "tr", _) => {
                    // Known parameter, wrong type, or `tr` (trailers: not supported here).
                    return Err(Reason::InvalidComponentParameter);
                }
                _ => return Err(Reason::UnknownComponentParameter),
            }
        }
        id.check_parameters()?;
        Ok(id)
    }

    /// Which parameter combinations are meaningful (RFC 9421 §2.1, §2.2.8).
    fn check_parameters(&self) -> Result<(), Reason> {
        match &self.name {
            ComponentName::Derived(d) => {
                let wants_name = *d == Derived::QueryParam;
                if self.sf || self.bs || self.key.is_some() || wants_name != self.param_name.is_some() {
                    return Err(Reason::InvalidComponentParameter);
                }
            }
            ComponentName::Field(_) => {
                // §2.1.3: `bs` MUST NOT be combined with `sf` or `key`.
                if self.param_name.is_some() || (self.bs && (self.sf || self.key.is_some())) {
                    return Err(Reason::InvalidComponentParameter);
                }
            }
        }
        Ok(())
    }

    /// The identifier exactly as it is written in the signature base.
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// Whether this names the field `name` (any parameters).
    pub fn is_field(&self, name: &str) -> bool {
        matches!(&self.name, ComponentName::Field(n) if n == name)
    }

    /// Whether this names the derived component `d` (from the message itself, not `req`).
    pub fn is_derived(&self, d: Derived) -> bool {
        self.name == ComponentName::Derived(d) && !self.req
    }

    /// Same component for the purpose of §2.5 duplicate detection (parameter order aside).
    pub fn same_as(&self, other: &Self) -> bool {
        self.name == other.name
            && self.sf == other.sf
            && self.key == other.key
            && self.bs == other.bs
            && self.req == other.req
            && self.param_name == other.param_name
    }
}

/// `tchar` of RFC 9110 §5.6.2 without uppercase letters.
fn is_lower_tchar(b: u8) -> bool {
    b.is_ascii_lowercase()
        || b.is_ascii_digit()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// The message a signature base is built from: a request, or a response and its request.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    /// Fields (and, for requests, the derived parts) of the signed message.
    pub message: &'a dyn Request,
    /// `Some(status)` when the signed message is a response.
    pub status: Option<u16>,
    /// The related request of a response, for `;req` components (RFC 9421 §2.4).
    pub related: Option<&'a dyn Request>,
}

impl<'a> Message<'a> {
    /// A request message.
    pub fn request(request: &'a dyn Request) -> Self {
        Self { message: request, status: None, related: None }
    }
}

/// The value of a component in `msg` (RFC 9421 §2.1, §2.2), appended to `out`.
///
/// `@query-param` may produce several lines; the callback is called once per value.
pub fn component_values(
    msg: &Message<'_>,
    id: &ComponentId,
    max_field_len: usize,
    emit: &mut dyn FnMut(&str),
) -> Result<(), Reason> {
    let source: &dyn Request = if id.req {
        // §2.4: `req` is only meaningful when signing a response.
        match (msg.status, msg.related) {
            (Some(_), Some(related)) => related,
            _ => return Err(Reason::InvalidComponentParameter),
        }
    } else {
        msg.message
    };
    let in_response = msg.status.is_some() && !id.req;
    match &id.name {
        ComponentName::Field(name) => {
            let value = field_value(source, name, id, max_field_len)?;
            emit(&value);
            Ok(())
        }
        ComponentName::Derived(Derived::Status) => match msg.status {
            Some(status) if !id.req => {
                emit(&alloc::format!("{status}"));
                Ok(())
            }
            _ => Err(Reason::UnknownDerivedComponent),
        },
        ComponentName::Derived(_) if in_response => Err(Reason::UnknownDerivedComponent),
        ComponentName::Derived(d) => derived_value(source, *d, id.param_name.as_deref(), emit),
    }
}

/// Derived component values (RFC 9421 §2.2).
fn derived_value(
    req: &dyn Request,
    d: Derived,
    param_name: Option<&str>,
    emit: &mut dyn FnMut(&str),
) -> Result<(), Reason> {
    let target = req.target();
    // §2.2.5: origin-form request target; hosts hand over the raw, un-normalised target.
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Reason::InvalidTarget);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    match d {
        Derived::Method => {
            let m = req.method();
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Reason::InvalidTarget);
            }
            emit(m);
        }
        Derived::Scheme => emit(&scheme(req)?),
        Derived::Authority => emit(&authority(req)?),
        Derived::TargetUri => {
            let mut uri = scheme(req)?;
            uri.push_str("://");
            uri.push_str(&authority(req)?);
            uri.push_str(target);
            emit(&uri);
        }
        Derived::RequestTarget => emit(target),
        // §2.2.6: "If the path is empty, the value is a single slash".
        Derived::Path => emit(if path.is_empty() { "/" } else { path }),
        Derived::Query => {
            // §2.2.7: "If the query string is absent ... the value is the leading ? alone".
            let mut q = String::from("?");
            q.push_str(query.unwrap_or(""));
            emit(&q);
        }
        Derived::QueryParam => {
            let wanted = param_name.ok_or(Reason::InvalidComponentParameter)?;
            let mut found = false;
            for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if reencode(name) == wanted {
                    found = true;
                    emit(&reencode(value));
                }
            }
            if !found {
                return Err(Reason::QueryParamMissing);
            }
        }
        Derived::Status => return Err(Reason::UnknownDerivedComponent),
    }
    Ok(())
}

/// `@scheme`: lowercase (RFC 9421 §2.2.4).
fn scheme(req: &dyn Request) -> Result<String, Reason> {
    let s = req.scheme();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) {
        return Err(Reason::InvalidTarget);
    }
    Ok(s.to_ascii_lowercase())
}

/// `@authority`: lowercase host, default port removed (RFC 9421 §2.2.3, RFC 9110 §4.2.3).
pub fn authority(req: &dyn Request) -> Result<String, Reason> {
    let a = req.authority();
    if a.is_empty() || !a.bytes().all(|b| b.is_ascii_graphic()) || a.contains(['/', '?', '#', '@']) {
        return Err(Reason::InvalidTarget);
    }
    let mut a = a.to_ascii_lowercase();
    let default_port = match req.scheme().to_ascii_lowercase().as_str() {
        "https" => Some(":443"),
        "http" => Some(":80"),
        _ => None,
    };
    if let Some(port) = default_port {
        if a.ends_with(port) && !a.ends_with(']') {
            a.truncate(a.len().saturating_sub(port.len()));
        }
    }
    Ok(a)
}

/// `application/x-www-form-urlencoded` parse then percent-encode (RFC 9421 §2.2.8,
/// WHATWG URL §5.1 and the form-urlencoded percent-encode set, space as `%20`).
fn reencode(raw: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|h| (*h as char).to_digit(16));
                let lo = bytes.get(i + 2).and_then(|l| (*l as char).to_digit(16));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    decoded.push(((hi << 4) | lo) as u8);
                    i += 2;
                } else {
                    decoded.push(b'%');
                }
            }
            _ => decoded.push(b),
        }
        i += 1;
    }
    // "UTF-8 decode without BOM or fail" is lossy in the URL standard: invalid bytes become
    // U+FFFD before re-encoding.
    let text = String::from_utf8_lossy(&decoded);
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0') as char);
            out.push(HEX.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0') as char);
        }
    }
    out
}

/// Structured fields whose type RFC 9421 §2.1.1 needs to know to re-serialise them.
fn known_type(name: &str) -> KnownType {
    match name {
        "signature"
        | "signature-input"
        | "content-digest"
        | "repr-digest"
        | "want-content-digest"
        | "want-repr-digest"
        | "priority"
        | "accept-signature"
        | "example-dict" => KnownType::Dictionary,
        "accept-ch" | "cache-status" | "proxy-status" | "client-cert-chain" => KnownType::List,
        "client-cert" => KnownType::Item,
        _ => KnownType::Unknown,
    }
}

enum KnownType {
    Dictionary,
    List,
    Item,
    Unknown,
}

/// HTTP field values (RFC 9421 §2.1): lines trimmed, obs-fold replaced, joined by `", "`.
fn field_value(req: &dyn Request, name: &str, id: &ComponentId, max_len: usize) -> Result<String, Reason> {
    let mut lines = Vec::new();
    req.field_lines(name, &mut lines);
    if lines.is_empty() {
        return Err(Reason::CoveredFieldMissing);
    }
    if lines.iter().map(|l| l.len()).sum::<usize>() > max_len {
        return Err(Reason::FieldTooLarge(Field::Covered));
    }
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let line = trim_ows(line);
        if id.bs {
            // §2.1.3: each line's raw bytes, base64 in a byte sequence.
            out.push(':');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(line));
            out.push(':');
        } else {
            push_unfolded(&mut out, line, Field::Covered)?;
        }
    }
    if let Some(key) = &id.key {
        // §2.1.2: a member of a Dictionary structured field.
        let dict = sfv::Parser::new(&out)
            .with_version(Version::Rfc9651)
            .parse_dictionary::<sfv::Dictionary>()
            .map_err(|_| Reason::CoveredFieldNotStructured)?;
        let member =
            dict.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v).ok_or(Reason::DictionaryMemberMissing)?;
        return structured::serialize_entry(member).ok_or(Reason::CoveredFieldNotStructured);
    }
    if id.sf {
        // §2.1.1: strict serialisation of the structured field.
        let parser = || sfv::Parser::new(&out).with_version(Version::Rfc9651);
        let serialized = match known_type(name) {
            KnownType::Dictionary => {
                parser().parse_dictionary::<sfv::Dictionary>().ok().and_then(|d| structured::serialize_dictionary(&d))
            }
            KnownType::List => parser().parse_list::<sfv::List>().ok().and_then(|l| structured::serialize_list(&l)),
            KnownType::Item => parser().parse_item::<sfv::Item>().ok().map(|i| structured::serialize_item(&i)),
            KnownType::Unknown => structured::parse_any(out.as_bytes()),
        };
        return serialized.ok_or(Reason::CoveredFieldNotStructured);
    }
    Ok(out)
}

/// Strip leading and trailing optional whitespace (RFC 9110 §5.6.3).
pub(crate) fn trim_ows(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(start, |p| p + 1);
    line.get(start..end).unwrap_or(&[])
}

/// Append `line` replacing obs-fold (CRLF then SP/HTAB, RFC 9112 §5.2) with one space;
/// anything but VCHAR, SP and HTAB is rejected.
pub(crate) fn push_unfolded(out: &mut String, line: &[u8], field: Field) -> Result<(), Reason> {
    let mut i = 0;
    while let Some(&b) = line.get(i) {
        match b {
            b'\r' | b'\n' => {
                // Accept CRLF or LF followed by whitespace as one fold.
                let mut j = i;
                if b == b'\r' && line.get(j + 1) == Some(&b'\n') {
                    j += 1;
                }
                j += 1;
                if !matches!(line.get(j), Some(b' ' | b'\t')) {
                    return Err(Reason::NonAscii(field));
                }
                while matches!(line.get(j), Some(b' ' | b'\t')) {
                    j += 1;
                }
                while out.ends_with([' ', '\t']) {
                    out.pop();
                }
                out.push(' ');
                i = j;
                continue;
            }
            b'\t' | 0x20..=0x7e => out.push(b as char),
            _ => return Err(Reason::NonAscii(field)),
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::HttpRequest;
    use alloc::vec;

    fn item(s: &str) -> sfv::Item {
        sfv::Parser::new(s).parse_item().unwrap()
    }

    fn values(req: &HttpRequest, id: &str) -> Result<Vec<String>, Reason> {
        let id = ComponentId::from_item(&item(id))?;
        let mut out = Vec::new();
        component_values(&Message::request(req), &id, 8192, &mut |v| out.push(v.into()))?;
        Ok(out)
    }

    #[test]
    fn rfc9421_query_param_examples() {
        // RFC 9421 §2.2.8.
        let req = HttpRequest::new(
            "GET",
            "https",
            "example.com",
            "/path?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something",
        );
        assert_eq!(
            values(&req, r#""@query-param";name="var""#).unwrap(),
            vec!["this%20is%20a%20big%0Amultiline%20value"]
        );
        assert_eq!(values(&req, r#""@query-param";name="bar""#).unwrap(), vec!["with%20plus%20whitespace"]);
        assert_eq!(values(&req, r#""@query-param";name="fa%C3%A7ade%22%3A%20""#).unwrap(), vec!["something"]);
        assert_eq!(values(&req, r#""@query-param";name="nope""#), Err(Reason::QueryParamMissing));
        assert_eq!(values(&req, r#""@query-param""#), Err(Reason::InvalidComponentParameter));
    }

    #[test]
    fn derived_components_rfc9421_examples() {
        let req = HttpRequest::new("POST", "https", "www.Example.com:443", "/path?param=value");
        assert_eq!(values(&req, r#""@method""#).unwrap(), vec!["POST"]);
        assert_eq!(values(&req, r#""@authority""#).unwrap(), vec!["www.example.com"]);
        assert_eq!(values(&req, r#""@target-uri""#).unwrap(), vec!["https://www.example.com/path?param=value"]);
        assert_eq!(values(&req, r#""@path""#).unwrap(), vec!["/path"]);
        assert_eq!(values(&req, r#""@query""#).unwrap(), vec!["?param=value"]);
        assert_eq!(values(&req, r#""@request-target""#).unwrap(), vec!["/path?param=value"]);
        assert_eq!(values(&req, r#""@scheme""#).unwrap(), vec!["https"]);
        let bare = HttpRequest::new("GET", "http", "example.com:8080", "/");
        assert_eq!(values(&bare, r#""@query""#).unwrap(), vec!["?"]);
        assert_eq!(values(&bare, r#""@authority""#).unwrap(), vec!["example.com:8080"]);
        assert_eq!(values(&bare, r#""@status""#), Err(Reason::UnknownDerivedComponent));
        assert_eq!(values(&bare, r#""@bogus""#), Err(Reason::UnknownDerivedComponent));
    }

    #[test]
    fn field_values_rfc9421_2_1_examples() {
        let req = HttpRequest::new("GET", "https", "example.com", "/")
            .with_header("X-OWS-Header", "   Leading and trailing whitespace.   ")
            .with_header("X-Obs-Fold-Header", "Obsolete\r\n    line folding.")
            .with_header("Cache-Control", "max-age=60")
            .with_header("Cache-Control", "   must-revalidate")
            .with_header("Example-Dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c)");
        assert_eq!(values(&req, r#""x-ows-header""#).unwrap(), vec!["Leading and trailing whitespace."]);
        assert_eq!(values(&req, r#""x-obs-fold-header""#).unwrap(), vec!["Obsolete line folding."]);
        assert_eq!(values(&req, r#""cache-control""#).unwrap(), vec!["max-age=60, must-revalidate"]);
        assert_eq!(values(&req, r#""example-dict";sf"#).unwrap(), vec!["a=1, b=2;x=1;y=2, c=(a b c)"]);
        assert_eq!(values(&req, r#""example-dict";key="b""#).unwrap(), vec!["2;x=1;y=2"]);
        assert_eq!(values(&req, r#""example-dict";key="c""#).unwrap(), vec!["(a b c)"]);
        assert_eq!(values(&req, r#""example-dict";key="z""#), Err(Reason::DictionaryMemberMissing));
        assert_eq!(values(&req, r#""missing""#), Err(Reason::CoveredFieldMissing));
        assert_eq!(values(&req, r#""Example-Dict""#), Err(Reason::InvalidComponentName));
        assert_eq!(values(&req, r#""example-dict";bs;sf"#), Err(Reason::InvalidComponentParameter));
        assert_eq!(values(&req, r#""example-dict";foo"#), Err(Reason::UnknownComponentParameter));
        assert_eq!(values(&req, r#""@signature-params""#), Err(Reason::InvalidComponentName));
    }

    #[test]
    fn byte_sequence_fields_rfc9421_2_1_3() {
        let req = HttpRequest::new("GET", "https", "example.com", "/")
            .with_header("Example-Header", "value, with, lots")
            .with_header("Example-Header", "of, commas");
        assert_eq!(
            values(&req, r#""example-header";bs"#).unwrap(),
            vec![":dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:"]
        );
    }

    #[test]
    fn non_ascii_is_rejected_unless_bs() {
        let req = HttpRequest::new("GET", "https", "example.com", "/").with_header("x", &b"caf\xc3\xa9"[..]);
        assert_eq!(values(&req, r#""x""#), Err(Reason::NonAscii(Field::Covered)));
        assert_eq!(values(&req, r#""x";bs"#).unwrap(), vec![":Y2Fmw6k=:"]);
    }
}
