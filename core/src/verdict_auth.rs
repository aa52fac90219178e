//! Authenticated verdict: an HMAC-SHA256 (RFC 2104, FIPS 180-4) over the verdict header and
//! the request it belongs to, so an origin can tell a verdict botauth sent from a forged one.
//!
//! The host adds `botauth-verdict-auth` next to the verdict header:
//!
//! ```text
//! botauth-verdict-auth: t=1735689700, kid="k1", mac=:<base64 of 32 bytes>:
//! ```
//!
//! an RFC 8941 §3.2 Dictionary with exactly the members `t` (Integer, unix seconds), `kid`
//! (String, the key id, for rotation) and `mac` (Byte Sequence, HMAC-SHA256 of the
//! [`canonical`] string). The canonical string is seven lines joined by LF (0x0A), no
//! trailing LF:
//!
//! ```text
//! botauth-verdict-auth/1
//! <t, decimal>
//! <kid>
//! <method, as sent>
//! <authority, host[:port] with ASCII letters lower-cased>
//! <path with query, as sent upstream>
//! <verdict header value, exactly as sent>
//! ```
//!
//! The MAC covers whatever verdict value the host sends; this module never looks inside it.
//! `docs/verdict-auth.md` documents the algorithm for origin operators.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use hmac::{Hmac, Mac as _};
use sfv::{BareItem, KeyRef, ListEntry, StringRef, Version};
use sha2::Sha256;

use crate::structured::{self, Strictness};

/// The header that carries the authentication of the verdict header.
pub const HEADER: &str = "botauth-verdict-auth";
/// The first line of the canonical string: names the algorithm and its version.
pub const CANONICAL_PREFIX: &str = "botauth-verdict-auth/1";
/// Shortest accepted secret, in bytes (RFC 2104 §3: not shorter than the hash output).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest accepted key id, in bytes.
pub const MAX_KID_LEN: usize = 64;
/// Longest accepted `botauth-verdict-auth` value, in bytes (a real one is under 100).
pub const MAX_HEADER_LEN: usize = 256;
/// A `t` at most this many seconds ahead of `now` is accepted (clocks of edge and origin
/// differ a little); further ahead is [`AuthError::FromFuture`].
pub const FUTURE_SKEW: u64 = 5;
/// A sensible `max_age` for [`check`], seconds.
pub const DEFAULT_MAX_AGE: u64 = 30;
/// Length of an HMAC-SHA256 tag (RFC 4231 §2), bytes.
pub const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a key id or secret was refused at configuration time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyError {
    /// The key id is empty.
    EmptyKid,
    /// The key id is longer than [`MAX_KID_LEN`].
    KidTooLong,
    /// The key id has a character other than ASCII letters, digits, `-`, `_` and `.`.
    KidCharset,
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    SecretTooShort {
        /// The length given.
        len: usize,
    },
}

impl KeyError {
    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::EmptyKid => "empty_kid",
            Self::KidTooLong => "kid_too_long",
            Self::KidCharset => "kid_charset",
            Self::SecretTooShort { .. } => "secret_too_short",
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretTooShort { len } => {
                write!(f, "verdict-auth secret is {len} bytes, at least {MIN_SECRET_LEN} are needed")
            }
            Self::EmptyKid => f.write_str("verdict-auth kid is empty"),
            Self::KidTooLong => write!(f, "verdict-auth kid is longer than {MAX_KID_LEN} bytes"),
            Self::KidCharset => f.write_str("verdict-auth kid may only have ASCII letters, digits, '-', '_' and '.'"),
        }
    }
}

/// Check a key id alone: 1 to [`MAX_KID_LEN`] ASCII letters, digits, `-`, `_`, `.` (so it
/// is a plain RFC 8941 String and a safe store item name).
pub fn check_kid(kid: &str) -> Result<(), KeyError> {
    if kid.is_empty() {
        return Err(KeyError::EmptyKid);
    }
    if kid.len() > MAX_KID_LEN {
        return Err(KeyError::KidTooLong);
    }
    if !kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(KeyError::KidCharset);
    }
    Ok(())
}

/// One verdict-authentication key: a key id and its secret (at least [`MIN_SECRET_LEN`]
/// bytes). `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct VerdictKey {
    kid: String,
    secret: Vec<u8>,
}

impl VerdictKey {
    /// Check a key id and secret (configuration time).
    pub fn new(kid: &str, secret: &[u8]) -> Result<Self, KeyError> {
        check_kid(kid)?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort { len: secret.len() });
        }
        Ok(Self { kid: kid.into(), secret: secret.into() })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn mac(&self, canonical: &[u8]) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(&self.secret).ok()?;
        mac.update(canonical);
        Some(mac)
    }
}

impl fmt::Debug for VerdictKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerdictKey").field("kid", &self.kid).field("secret", &"<redacted>").finish()
    }
}

/// What the MAC binds the verdict to: the verdict value and the request it was given for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The verdict header value, exactly as sent.
    pub verdict: &'a str,
    /// The request method, as sent (case-sensitive, RFC 9110 §9.1).
    pub method: &'a str,
    /// The authority, `host[:port]` (RFC 9110 §7.2); ASCII letters are lower-cased.
    pub authority: &'a str,
    /// The path with query, as sent upstream (RFC 9110 §7.1 origin-form).
    pub path: &'a str,
}

/// A part of the [`Binding`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Part {
    /// [`Binding::verdict`].
    Verdict,
    /// [`Binding::method`].
    Method,
    /// [`Binding::authority`].
    Authority,
    /// [`Binding::path`].
    Path,
}

impl Part {
    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Verdict => "verdict",
            Self::Method => "method",
            Self::Authority => "authority",
            Self::Path => "path",
        }
    }
}

/// How a `botauth-verdict-auth` value breaks the RFC 8941 Dictionary this module defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Malformed {
    /// Longer than [`MAX_HEADER_LEN`].
    TooLong,
    /// Not an RFC 8941 §3.2 Dictionary.
    Syntax,
    /// A member appears twice.
    DuplicateMember,
    /// A member other than `t`, `kid`, `mac`.
    UnknownMember,
    /// A member carries parameters.
    Parameters,
    /// No `t`.
    MissingT,
    /// `t` is not a non-negative Integer.
    BadT,
    /// No `kid`.
    MissingKid,
    /// `kid` is not a String.
    BadKid,
    /// No `mac`.
    MissingMac,
    /// `mac` is not a Byte Sequence of [`MAC_LEN`] bytes.
    BadMacEncoding,
}

impl Malformed {
    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooLong => "too_long",
            Self::Syntax => "syntax",
            Self::DuplicateMember => "duplicate_member",
            Self::UnknownMember => "unknown_member",
            Self::Parameters => "parameters",
            Self::MissingT => "missing_t",
            Self::BadT => "bad_t",
            Self::MissingKid => "missing_kid",
            Self::BadKid => "bad_kid",
            Self::MissingMac => "missing_mac",
            Self::BadMacEncoding => "bad_mac_encoding",
        }
    }
}

/// Why a `botauth-verdict-auth` value was refused (or could not be made).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthError {
    /// The header is not the Dictionary this module defines.
    Malformed(Malformed),
    /// A part of the binding has a control character (CR, LF, NUL, …), which no HTTP field
    /// or request line can carry (RFC 9110 §5.5).
    InvalidBinding(Part),
    /// No configured key has this `kid`.
    UnknownKid,
    /// The MAC does not match: forged, another key, or another verdict/request.
    BadMac,
    /// Authentic, but older than `max_age` (a replay).
    Stale {
        /// `now - t`, seconds.
        age: u64,
    },
    /// Authentic, but `t` is more than [`FUTURE_SKEW`] seconds ahead of `now`.
    FromFuture {
        /// `t - now`, seconds.
        ahead: u64,
    },
}

impl AuthError {
    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::InvalidBinding(_) => "invalid_binding",
            Self::UnknownKid => "unknown_kid",
            Self::BadMac => "bad_mac",
            Self::Stale { .. } => "stale",
            Self::FromFuture { .. } => "from_future",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(m) => write!(f, "malformed ({})", m.code()),
            Self::InvalidBinding(p) => write!(f, "invalid_binding ({} has a control character)", p.name()),
            Self::UnknownKid => f.write_str("unknown_kid"),
            Self::BadMac => f.write_str("bad_mac"),
            Self::Stale { age } => write!(f, "stale (age {age} s)"),
            Self::FromFuture { ahead } => write!(f, "from_future ({ahead} s ahead)"),
        }
    }
}

/// What an accepted header said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The key id that authenticated it.
    pub kid: String,
    /// Its timestamp, unix seconds.
    pub t: u64,
}

/// The canonical string the MAC is computed over (module docs): seven LF-separated lines.
pub fn canonical(binding: &Binding<'_>, kid: &str, t: u64) -> Result<Vec<u8>, AuthError> {
    for (part, value) in [
        (Part::Verdict, binding.verdict),
        (Part::Method, binding.method),
        (Part::Authority, binding.authority),
        (Part::Path, binding.path),
    ] {
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(AuthError::InvalidBinding(part));
        }
    }
    let mut out = Vec::with_capacity(
        CANONICAL_PREFIX.len()
            + 20
            + kid.len()
            + binding.method.len()
            + binding.authority.len()
            + binding.path.len()
            + binding.verdict.len()
            + 6,
    );
    let mut line = |s: &[u8]| {
        out.extend_from_slice(s);
        out.push(b'\n');
    };
    line(CANONICAL_PREFIX.as_bytes());
    line(itoa(t).as_bytes());
    line(kid.as_bytes());
    line(binding.method.as_bytes());
    line(binding.authority.to_ascii_lowercase().as_bytes());
    line(binding.path.as_bytes());
    out.extend_from_slice(binding.verdict.as_bytes());
    Ok(out)
}

fn itoa(t: u64) -> String {
    use core::fmt::Write as _;
    let mut s = String::new();
    let _ = write!(s, "{t}");
    s
}

/// The `botauth-verdict-auth` value for `binding`, signed with `key` at time `t`.
pub fn sign(key: &VerdictKey, binding: &Binding<'_>, t: u64) -> Result<String, AuthError> {
    let bytes = canonical(binding, key.kid(), t)?;
    let tag = key.mac(&bytes).ok_or(AuthError::BadMac)?.finalize().into_bytes();
    // `t` beyond RFC 8941's 15-digit Integer (year 31 million) cannot be serialised.
    let t = sfv::Integer::try_from(t).map_err(|_| AuthError::Malformed(Malformed::BadT))?;
    let kid = StringRef::from_str(key.kid()).map_err(|_| AuthError::Malformed(Malformed::BadKid))?;
    let (Ok(k_t), Ok(k_kid), Ok(k_mac)) = (KeyRef::from_str("t"), KeyRef::from_str("kid"), KeyRef::from_str("mac"))
    else {
        return Err(AuthError::Malformed(Malformed::Syntax));
    };
    let mut ser = sfv::DictSerializer::new();
    let _ = ser.bare_item(k_t, t);
    let _ = ser.bare_item(k_kid, kid);
    let _ = ser.bare_item(k_mac, tag.as_slice());
    ser.finish().ok_or(AuthError::Malformed(Malformed::Syntax))
}

/// The members of a parsed header.
struct Parsed {
    t: u64,
    kid: String,
    mac: Vec<u8>,
}

/// Parse a `botauth-verdict-auth` value (RFC 8941 §4.2, strict: no duplicates, no
/// parameters, no other members).
fn parse(header: &str) -> Result<Parsed, Malformed> {
    if header.len() > MAX_HEADER_LEN {
        return Err(Malformed::TooLong);
    }
    let members = structured::parse_dictionary_strict(header.as_bytes(), Version::Rfc8941).map_err(|e| match e {
        Strictness::Syntax => Malformed::Syntax,
        Strictness::DuplicateKey => Malformed::DuplicateMember,
        Strictness::DuplicateListParam | Strictness::DuplicateItemParam => Malformed::Parameters,
    })?;
    let (mut t, mut kid, mut mac) = (None, None, None);
    for (key, entry) in members {
        let ListEntry::Item(item) = entry else {
            return Err(match key.as_str() {
                "t" => Malformed::BadT,
                "kid" => Malformed::BadKid,
                "mac" => Malformed::BadMacEncoding,
                _ => Malformed::UnknownMember,
            });
        };
        match key.as_str() {
            "t" | "kid" | "mac" if !item.params.is_empty() => return Err(Malformed::Parameters),
            "t" => match item.bare_item {
                BareItem::Integer(i) => t = Some(u64::try_from(i).map_err(|_| Malformed::BadT)?),
                _ => return Err(Malformed::BadT),
            },
            "kid" => match item.bare_item {
                BareItem::String(s) => kid = Some(String::from(s.as_str())),
                _ => return Err(Malformed::BadKid),
            },
            "mac" => match item.bare_item {
                BareItem::ByteSequence(b) if b.len() == MAC_LEN => mac = Some(b),
                _ => return Err(Malformed::BadMacEncoding),
            },
            _ => return Err(Malformed::UnknownMember),
        }
    }
    Ok(Parsed {
        t: t.ok_or(Malformed::MissingT)?,
        kid: kid.ok_or(Malformed::MissingKid)?,
        mac: mac.ok_or(Malformed::MissingMac)?,
    })
}

/// Check a received `botauth-verdict-auth` value against the verdict and request it came
/// with: parse, find the key by `kid`, compare the MAC in constant time, then check that
/// `t` is at most `max_age` seconds old and at most [`FUTURE_SKEW`] seconds ahead of `now`.
pub fn check(
    header: &str,
    binding: &Binding<'_>,
    keys: &[VerdictKey],
    now: u64,
    max_age: u64,
) -> Result<Checked, AuthError> {
    let parsed = parse(header).map_err(AuthError::Malformed)?;
    let key = keys.iter().find(|k| k.kid == parsed.kid).ok_or(AuthError::UnknownKid)?;
    let bytes = canonical(binding, &parsed.kid, parsed.t)?;
    key.mac(&bytes).ok_or(AuthError::BadMac)?.verify_slice(&parsed.mac).map_err(|_| AuthError::BadMac)?;
    if parsed.t > now {
        let ahead = parsed.t - now;
        if ahead > FUTURE_SKEW {
            return Err(AuthError::FromFuture { ahead });
        }
    } else {
        let age = now - parsed.t;
        if age > max_age {
            return Err(AuthError::Stale { age });
        }
    }
    Ok(Checked { kid: parsed.kid, t: parsed.t })
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::vec;

    use super::*;

    const SECRET_1: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
    const SECRET_2: &[u8; 32] = b"fedcba9876543210fedcba9876543210";
    const T: u64 = 1_735_689_700;
    const VERDICT: &str = "verified;keyid=\"abc\";label=\"sig1\"";

    fn binding() -> Binding<'static> {
        Binding { verdict: VERDICT, method: "GET", authority: "Example.COM:8443", path: "/a/b?x=1" }
    }

    fn k1() -> VerdictKey {
        VerdictKey::new("k1", SECRET_1).unwrap()
    }

    fn k2() -> VerdictKey {
        VerdictKey::new("k2", SECRET_2).unwrap()
    }

    #[test]
    fn canonical_string_byte_for_byte() {
        let c = canonical(&binding(), "k1", T).unwrap();
        assert_eq!(
            c,
            b"botauth-verdict-auth/1\n1735689700\nk1\nGET\nexample.com:8443\n/a/b?x=1\nverified;keyid=\"abc\";label=\"sig1\""
        );
    }

    #[test]
    fn rfc4231_shape_and_header_shape() {
        let h = sign(&k1(), &binding(), T).unwrap();
        assert!(h.starts_with("t=1735689700, kid=\"k1\", mac=:"), "{h}");
        assert!(h.ends_with(":"), "{h}");
        // The MAC is HMAC-SHA256 of the canonical string: recompute with a fresh instance.
        let mut m = HmacSha256::new_from_slice(SECRET_1).unwrap();
        m.update(&canonical(&binding(), "k1", T).unwrap());
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
        assert_eq!(h, format!("t=1735689700, kid=\"k1\", mac=:{b64}:"));
    }

    #[test]
    fn good_header_checks() {
        let h = sign(&k1(), &binding(), T).unwrap();
        assert_eq!(check(&h, &binding(), &[k1()], T, 30), Ok(Checked { kid: "k1".into(), t: T }));
        // Age exactly max_age and FUTURE_SKEW ahead are still accepted.
        assert!(check(&h, &binding(), &[k1()], T + 30, 30).is_ok());
        assert!(check(&h, &binding(), &[k1()], T - FUTURE_SKEW, 30).is_ok());
        // Authority is compared lower-cased.
        let lower = Binding { authority: "example.com:8443", ..binding() };
        assert!(check(&h, &lower, &[k1()], T, 30).is_ok());
    }

    #[test]
    fn rotation_accepts_either_key() {
        let keys = [k2(), k1()];
        let h1 = sign(&k1(), &binding(), T).unwrap();
        let h2 = sign(&k2(), &binding(), T).unwrap();
        assert_eq!(check(&h1, &binding(), &keys, T, 30).unwrap().kid, "k1");
        assert_eq!(check(&h2, &binding(), &keys, T, 30).unwrap().kid, "k2");
    }

    #[test]
    fn each_error() {
        let h = sign(&k1(), &binding(), T).unwrap();
        assert_eq!(check(&h, &binding(), &[k2()], T, 30), Err(AuthError::UnknownKid));
        assert_eq!(check(&h, &binding(), &[], T, 30), Err(AuthError::UnknownKid));
        // Same kid, other secret: forged.
        let other = VerdictKey::new("k1", SECRET_2).unwrap();
        assert_eq!(check(&h, &binding(), &[other], T, 30), Err(AuthError::BadMac));
        assert_eq!(check(&h, &binding(), &[k1()], T + 31, 30), Err(AuthError::Stale { age: 31 }));
        assert_eq!(check(&h, &binding(), &[k1()], T - 6, 30), Err(AuthError::FromFuture { ahead: 6 }));
        // Moved: every part of the binding is covered.
        for moved in [
            Binding { verdict: "verified;keyid=\"abd\";label=\"sig1\"", ..binding() },
            Binding { method: "POST", ..binding() },
            Binding { method: "get", ..binding() },
            Binding { authority: "example.com", ..binding() },
            Binding { authority: "example.org:8443", ..binding() },
            Binding { path: "/a/b", ..binding() },
            Binding { path: "/a/b?x=2", ..binding() },
        ] {
            assert_eq!(check(&h, &moved, &[k1()], T, 30), Err(AuthError::BadMac), "{moved:?}");
        }
        // A forged MAC of the right length, and a tampered t.
        let forged = format!("t={T}, kid=\"k1\", mac=:{}:", "A".repeat(43) + "=");
        assert_eq!(check(&forged, &binding(), &[k1()], T, 30), Err(AuthError::BadMac));
        let moved_t = h.replace("t=1735689700", "t=1735689701");
        assert_eq!(check(&moved_t, &binding(), &[k1()], T, 30), Err(AuthError::BadMac));
        // Stale is only reported for an authentic header: a stale forgery is a bad MAC.
        assert_eq!(check(&moved_t, &binding(), &[k1()], T + 1000, 30), Err(AuthError::BadMac));
    }

    #[test]
    fn control_characters_in_binding() {
        let b = Binding { path: "/a\nb", ..binding() };
        assert_eq!(sign(&k1(), &b, T), Err(AuthError::InvalidBinding(Part::Path)));
        let b = Binding { verdict: "verified\r", ..binding() };
        assert_eq!(sign(&k1(), &b, T), Err(AuthError::InvalidBinding(Part::Verdict)));
        let b = Binding { method: "G\0T", ..binding() };
        assert_eq!(sign(&k1(), &b, T), Err(AuthError::InvalidBinding(Part::Method)));
        let b = Binding { authority: "a\x7f", ..binding() };
        let h = sign(&k1(), &binding(), T).unwrap();
        assert_eq!(check(&h, &b, &[k1()], T, 30), Err(AuthError::InvalidBinding(Part::Authority)));
        // HTAB is allowed in field values (RFC 9110 §5.5).
        assert!(sign(&k1(), &Binding { verdict: "a\tb", ..binding() }, T).is_ok());
    }

    #[test]
    fn key_errors_at_config_time() {
        assert_eq!(VerdictKey::new("k1", &SECRET_1[..31]), Err(KeyError::SecretTooShort { len: 31 }));
        assert_eq!(VerdictKey::new("k1", b""), Err(KeyError::SecretTooShort { len: 0 }));
        assert_eq!(VerdictKey::new("", SECRET_1), Err(KeyError::EmptyKid));
        assert_eq!(VerdictKey::new(&"k".repeat(65), SECRET_1), Err(KeyError::KidTooLong));
        assert!(VerdictKey::new(&"k".repeat(64), SECRET_1).is_ok());
        for bad in ["k 1", "k\"1", "k\\1", "k,1", "é"] {
            assert_eq!(VerdictKey::new(bad, SECRET_1), Err(KeyError::KidCharset), "{bad}");
        }
        assert!(VerdictKey::new("2026-10_a.b", SECRET_1).is_ok());
        let dbg = format!("{:?}", k1());
        assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
    }

    #[test]
    fn malformed_headers() {
        let good = sign(&k1(), &binding(), T).unwrap();
        let mac = String::from(good.rsplit_once("mac=").unwrap().1);
        let long = format!("{good}, {}", "x".repeat(MAX_HEADER_LEN));
        let cases: Vec<(String, Malformed)> = vec![
            (long, Malformed::TooLong),
            (String::new(), Malformed::MissingT),
            (",".into(), Malformed::Syntax),
            ("t=1, kid=\"k1\", mac=:AAAA".into(), Malformed::Syntax),
            ("t=1;kid=\"k1\";mac=:AAAA:".into(), Malformed::Parameters),
            (format!("t=1, kid=\"k1\", mac={mac};x=1"), Malformed::Parameters),
            (format!("t=1;x=1, kid=\"k1\", mac={mac}"), Malformed::Parameters),
            (format!("t=1, kid=\"k1\";x, mac={mac}"), Malformed::Parameters),
            (format!("t=1, t=2, kid=\"k1\", mac={mac}"), Malformed::DuplicateMember),
            (format!("t=1, kid=\"k1\", mac={mac}, v=1"), Malformed::UnknownMember),
            (format!("t=1, kid=\"k1\", mac={mac}, v=(1 2)"), Malformed::UnknownMember),
            (format!("kid=\"k1\", mac={mac}"), Malformed::MissingT),
            (format!("t=1, mac={mac}"), Malformed::MissingKid),
            ("t=1, kid=\"k1\"".into(), Malformed::MissingMac),
            (format!("t=-1, kid=\"k1\", mac={mac}"), Malformed::BadT),
            (format!("t=1.5, kid=\"k1\", mac={mac}"), Malformed::BadT),
            (format!("t=\"1\", kid=\"k1\", mac={mac}"), Malformed::BadT),
            (format!("t, kid=\"k1\", mac={mac}"), Malformed::BadT),
            (format!("t=(1), kid=\"k1\", mac={mac}"), Malformed::BadT),
            (format!("t=1, kid=k1, mac={mac}"), Malformed::BadKid),
            (format!("t=1, kid=:azE=:, mac={mac}"), Malformed::BadKid),
            (format!("t=1, kid=(\"k1\"), mac={mac}"), Malformed::BadKid),
            ("t=1, kid=\"k1\", mac=:AAAA:".into(), Malformed::BadMacEncoding),
            (format!("t=1, kid=\"k1\", mac=:{}:", "A".repeat(44) + "AAAA"), Malformed::BadMacEncoding),
            ("t=1, kid=\"k1\", mac=\"x\"".into(), Malformed::BadMacEncoding),
            ("t=1, kid=\"k1\", mac=(:AAAA:)".into(), Malformed::BadMacEncoding),
            ("t=1, kid=\"k1\", mac".into(), Malformed::BadMacEncoding),
        ];
        for (header, want) in cases {
            assert_eq!(check(&header, &binding(), &[k1()], T, 30), Err(AuthError::Malformed(want)), "{header:?}");
        }
        // Whitespace variations a proxy may introduce still parse (RFC 8941 §4.2).
        let spaced = good.replace(", ", ",\t ");
        assert!(check(&spaced, &binding(), &[k1()], T, 30).is_ok());
        // Member order does not matter.
        let reordered = format!("mac={mac}, kid=\"k1\", t={T}");
        assert!(check(&reordered, &binding(), &[k1()], T, 30).is_ok());
    }

    #[test]
    fn every_error_has_a_code() {
        let errs = [
            AuthError::Malformed(Malformed::Syntax),
            AuthError::InvalidBinding(Part::Path),
            AuthError::UnknownKid,
            AuthError::BadMac,
            AuthError::Stale { age: 1 },
            AuthError::FromFuture { ahead: 1 },
        ];
        let codes: Vec<_> = errs.iter().map(|e| e.code()).collect();
        assert_eq!(codes, ["malformed", "invalid_binding", "unknown_kid", "bad_mac", "stale", "from_future"]);
        assert_eq!(format!("{}", AuthError::Stale { age: 31 }), "stale (age 31 s)");
    }
}
