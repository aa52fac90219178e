//! Trusted keys: JWK / JWKS (RFC 7517, RFC 8037 OKP), RFC 7638 thumbprints, and the
//! keyring indexed by (Signature-Agent URI, keyid).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::crypto::PUBLIC_KEY_LEN;

/// One JSON Web Key as published in a key directory (RFC 7517 §4, RFC 8037 §2).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    /// Key type; `OKP` for Ed25519.
    pub kty: Option<String>,
    /// Curve; `Ed25519`.
    pub crv: Option<String>,
    /// Public key, base64url without padding.
    pub x: Option<String>,
    /// Private key: must not be present in a verifier's key set.
    pub d: Option<String>,
    /// Key identifier.
    pub kid: Option<String>,
    /// Algorithm hint; if present must be `EdDSA` or `Ed25519`.
    pub alg: Option<String>,
    /// Public key use; if present must be `sig`.
    #[serde(rename = "use")]
    pub use_: Option<String>,
    /// Not before, unix seconds (Web Bot Auth directories).
    pub nbf: Option<u64>,
    /// Expiry, unix seconds (Web Bot Auth directories).
    pub exp: Option<u64>,
}

/// A JWK Set (RFC 7517 §5).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Jwks {
    /// The keys, each kept as raw JSON so one odd key cannot spoil the set.
    pub keys: Vec<serde_json::Value>,
}

/// Why a key of a set was not used. The rest of the set still is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySkipReason {
    /// Not a JSON object with the JWK members of the right types.
    NotAJwk,
    /// `kty` is not `OKP`.
    UnsupportedKeyType,
    /// `crv` is not `Ed25519`.
    UnsupportedCurve,
    /// `alg` is present and is not `EdDSA`/`Ed25519`.
    UnsupportedAlgorithm,
    /// `use` is present and is not `sig`.
    NotForSignatures,
    /// `x` is absent, not base64url, or not 32 bytes.
    InvalidPublicKey,
    /// `d` is present: private keys do not belong in a verifier's configuration.
    PrivateKeyMaterial,
    /// A directory key whose `kid` is not its RFC 7638 thumbprint
    /// (draft-meunier-http-message-signatures-directory §5.1: the `kid` MUST be the thumbprint).
    KidNotThumbprint,
    /// A published test key (RFC 9421 B.1.4) where test keys are not allowed.
    TestKey,
    /// A signed directory carries no valid signature by this key
    /// (draft-meunier-http-message-signatures-directory §4: such keys are ignored).
    NoValidSignature,
}

impl KeySkipReason {
    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotAJwk => "not_a_jwk",
            Self::UnsupportedKeyType => "unsupported_key_type",
            Self::UnsupportedCurve => "unsupported_curve",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::NotForSignatures => "not_for_signatures",
            Self::InvalidPublicKey => "invalid_public_key",
            Self::PrivateKeyMaterial => "private_key_material",
            Self::KidNotThumbprint => "kid_not_thumbprint",
            Self::TestKey => "test_key",
            Self::NoValidSignature => "no_valid_signature",
        }
    }
}

/// A key that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the `keys` array.
    pub index: usize,
    /// Its `kid`, if it had one.
    pub kid: Option<String>,
    /// Why.
    pub reason: KeySkipReason,
}

/// Why a whole key set could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeysError {
    /// Not JSON, or not an object with a `keys` array (RFC 7517 §5).
    NotAJwks,
    /// A [`COMPACT_KEYS_TAG`] list whose entry number `entry` (1-based) is malformed.
    CompactEntry {
        /// Which entry.
        entry: usize,
    },
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAJwks => {
                f.write_str("not a JWK Set: expected a JSON object with a \"keys\" array (RFC 7517 section 5)")
            }
            Self::CompactEntry { entry } => write!(
                f,
                "compact key list ({COMPACT_KEYS_TAG}): entry {entry} is not `<keyid> <x> <kid|-> <nbf|-> <exp|->` \
                 (rewrite it with `botauth compact-keys`)"
            ),
        }
    }
}

/// A usable Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// RFC 7638 SHA-256 thumbprint, base64url: the Web Bot Auth `keyid`.
    pub thumbprint: String,
    /// The JWK `kid`, if any.
    pub kid: Option<String>,
    /// The raw 32-byte public key.
    pub key: [u8; PUBLIC_KEY_LEN],
    /// JWK `nbf`.
    pub nbf: Option<u64>,
    /// JWK `exp`.
    pub exp: Option<u64>,
}

impl PublicKey {
    /// Accept an Ed25519 JWK, or say why not.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeySkipReason> {
        if jwk.kty.as_deref() != Some("OKP") {
            return Err(KeySkipReason::UnsupportedKeyType);
        }
        if jwk.crv.as_deref() != Some("Ed25519") {
            return Err(KeySkipReason::UnsupportedCurve);
        }
        // Real directories write `EdDSA` (RFC 8037 §3.1), `Ed25519` or `ed25519` (the RFC 9421
        // §6.2.2 algorithm name).
        if !matches!(jwk.alg.as_deref(), None | Some("EdDSA" | "Ed25519" | "ed25519")) {
            return Err(KeySkipReason::UnsupportedAlgorithm);
        }
        if !matches!(jwk.use_.as_deref(), None | Some("sig")) {
            return Err(KeySkipReason::NotForSignatures);
        }
        if jwk.d.is_some() {
            return Err(KeySkipReason::PrivateKeyMaterial);
        }
        let x = jwk.x.as_deref().ok_or(KeySkipReason::InvalidPublicKey)?;
        let key = decode_key(x).ok_or(KeySkipReason::InvalidPublicKey)?;
        Ok(Self { thumbprint: thumbprint_okp("Ed25519", x), kid: jwk.kid.clone(), key, nbf: jwk.nbf, exp: jwk.exp })
    }

    /// A key from raw bytes (its thumbprint computed from the canonical JWK).
    pub fn from_bytes(key: [u8; PUBLIC_KEY_LEN]) -> Self {
        let x = URL_SAFE_NO_PAD.encode(key);
        Self { thumbprint: thumbprint_okp("Ed25519", &x), kid: None, key, nbf: None, exp: None }
    }
}

fn decode_key(x: &str) -> Option<[u8; PUBLIC_KEY_LEN]> {
    let bytes = URL_SAFE_NO_PAD.decode(x).ok()?;
    bytes.try_into().ok()
}

/// RFC 7638 §3.2 thumbprint of an OKP key: SHA-256 over
/// `{"crv":"…","kty":"OKP","x":"…"}` (members sorted, no whitespace), base64url.
pub fn thumbprint_okp(crv: &str, x: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"{\"crv\":\"");
    h.update(crv.as_bytes());
    h.update(b"\",\"kty\":\"OKP\",\"x\":\"");
    h.update(x.as_bytes());
    h.update(b"\"}");
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// RFC 7638 thumbprint of the RFC 9421 B.1.4 test key (the Web Bot Auth drafts' example
/// keyid): anyone can sign with it.
pub const RFC9421_TEST_KEY_THUMBPRINT: &str = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";

impl PublicKey {
    /// Whether this is a published test key (RFC 9421 B.1.4), by its bytes or its keyid.
    pub fn is_test_key(&self) -> bool {
        self.key == RFC9421_TEST_KEY || self.thumbprint == RFC9421_TEST_KEY_THUMBPRINT
    }
}

/// The RFC 9421 B.1.4 test key's public bytes.
const RFC9421_TEST_KEY: [u8; PUBLIC_KEY_LEN] = [
    0x26, 0xb4, 0x0b, 0x8f, 0x93, 0xff, 0xf3, 0xd8, 0x97, 0x11, 0x2f, 0x7e, 0xbc, 0x58, 0x2b, 0x23, 0x2d, 0xbd, 0x72,
    0x51, 0x7d, 0x08, 0x2f, 0xe8, 0x3c, 0xfb, 0x30, 0xdd, 0xce, 0x43, 0xd1, 0xbb,
];

/// The first entry of botauth's compact key list: the pre-validated form `botauth
/// compact-keys` writes for a key store item (a Fastly Config Store `botauth_jwks` item), which
/// the edge reads with no JSON parsing and no hashing.
///
/// The list is `botauth-keys/1`, then for each key `,` and five fields separated by one
/// space: the RFC 7638 thumbprint (the keyid) and the public key, both unpadded base64url;
/// the JWK `kid` as unpadded base64url of its UTF-8, or `-`; `nbf` and `exp` in unix
/// seconds, or `-`. The thumbprint is trusted as written (the writer computed it from the
/// key): a wrong one only makes that key unfindable, it cannot make another key verify.
pub const COMPACT_KEYS_TAG: &str = "botauth-keys/1";

/// Whether a store item is a compact key list (rather than a JWK Set).
pub fn is_compact_keys(item: &[u8]) -> bool {
    item.starts_with(COMPACT_KEYS_TAG.as_bytes())
}

/// Write `keys` as a compact key list ([`COMPACT_KEYS_TAG`]).
pub fn compact_keys(keys: &[PublicKey]) -> String {
    let mut out = String::from(COMPACT_KEYS_TAG);
    for k in keys {
        let kid = k.kid.as_deref().map_or_else(|| String::from("-"), |kid| URL_SAFE_NO_PAD.encode(kid));
        let num = |n: Option<u64>| n.map_or_else(|| String::from("-"), |n| alloc::format!("{n}"));
        out.push_str(&alloc::format!(
            ",{} {} {kid} {} {}",
            k.thumbprint,
            URL_SAFE_NO_PAD.encode(k.key),
            num(k.nbf),
            num(k.exp)
        ));
    }
    out
}

/// Read a compact key list ([`COMPACT_KEYS_TAG`]). It is all or nothing: a list is written
/// by a tool, so one malformed entry means the item is not what its writer wrote.
pub fn parse_compact_keys(item: &[u8]) -> Result<Vec<PublicKey>, KeysError> {
    let text = core::str::from_utf8(item).map_err(|_| KeysError::CompactEntry { entry: 0 })?;
    let mut entries = text.trim_end().split(',');
    if entries.next() != Some(COMPACT_KEYS_TAG) {
        return Err(KeysError::CompactEntry { entry: 0 });
    }
    entries.enumerate().map(|(i, e)| compact_entry(e).ok_or(KeysError::CompactEntry { entry: i + 1 })).collect()
}

fn compact_entry(entry: &str) -> Option<PublicKey> {
    let mut fields = entry.split(' ');
    let mut next = || fields.next();
    let (thumbprint, x, kid, nbf, exp) = (next()?, next()?, next()?, next()?, next()?);
    // A thumbprint is a SHA-256 digest in unpadded base64url: 32 bytes, like a key.
    if next().is_some() || decode_key(thumbprint).is_none() {
        return None;
    }
    let kid = match kid {
        "-" => None,
        kid => Some(String::from_utf8(URL_SAFE_NO_PAD.decode(kid).ok()?).ok()?),
    };
    let num = |n: &str| -> Option<Option<u64>> {
        match n {
            "-" => Some(None),
            n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok().map(Some),
            _ => None,
        }
    };
    Some(PublicKey { thumbprint: String::from(thumbprint), kid, key: decode_key(x)?, nbf: num(nbf)?, exp: num(exp)? })
}

/// Parse a JWK Set, keeping every usable Ed25519 key and reporting the others.
pub fn parse_jwks(json: &[u8]) -> Result<(Vec<PublicKey>, Vec<SkippedKey>), KeysError> {
    let set: Jwks = serde_json::from_slice(json).map_err(|_| KeysError::NotAJwks)?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (index, value) in set.keys.into_iter().enumerate() {
        let kid = value.get("kid").and_then(|k| k.as_str()).map(String::from);
        let result = serde_json::from_value::<Jwk>(value)
            .map_err(|_| KeySkipReason::NotAJwk)
            .and_then(|jwk| PublicKey::from_jwk(&jwk));
        match result {
            Ok(key) => keys.push(key),
            Err(reason) => skipped.push(SkippedKey { index, kid, reason }),
        }
    }
    Ok((keys, skipped))
}

/// The agent wildcard of [`Keyring::add_key`]: trusted for any (or no) Signature-Agent.
pub const ANY_AGENT: &str = "*";

/// Keys indexed by Signature-Agent URI, then keyid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keyring {
    agents: Vec<(String, Vec<PublicKey>)>,
}

/// Why a key for a signature was not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LookupError {
    Unknown,
    NotYetValid,
    Expired,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `key` for `agent`: an exact Signature-Agent URI, or [`ANY_AGENT`] to trust the
    /// key whatever agent a request names (and when it names none).
    ///
    /// Agents are stored and compared in their RFC 3986 normalised form
    /// ([`crate::agent_uri::canonical`]): `https://Agent.test:443/` and `https://agent.test` are one
    /// agent.
    pub fn add_key(&mut self, agent: &str, key: PublicKey) {
        let agent = agent_key(agent);
        match self.agents.iter_mut().find(|(a, _)| *a == agent) {
            Some((_, keys)) => keys.push(key),
            None => self.agents.push((agent, alloc::vec![key])),
        }
    }

    /// Whether any key is registered for exactly `agent` (normalised; [`ANY_AGENT`] keys
    /// do not count).
    pub fn has_agent(&self, agent: &str) -> bool {
        let agent = agent_key(agent);
        agent != ANY_AGENT && self.agents.iter().any(|(a, _)| *a == agent)
    }

    /// Add every usable key of a JWKS for `agent`; returns the keys that were skipped.
    pub fn add_jwks(&mut self, agent: &str, json: &[u8]) -> Result<Vec<SkippedKey>, KeysError> {
        let (keys, skipped) = parse_jwks(json)?;
        for key in keys {
            self.add_key(agent, key);
        }
        Ok(skipped)
    }

    /// Add every key of a key store item for `agent`: a compact key list
    /// ([`COMPACT_KEYS_TAG`]) or a JWK Set. Returns the JWK Set's skipped keys (a compact
    /// list has none: it is all or nothing).
    pub fn add_store_item(&mut self, agent: &str, item: &[u8]) -> Result<Vec<SkippedKey>, KeysError> {
        if !is_compact_keys(item) {
            return self.add_jwks(agent, item);
        }
        for key in parse_compact_keys(item)? {
            self.add_key(agent, key);
        }
        Ok(Vec::new())
    }

    /// Number of keys over all agents.
    pub fn len(&self) -> usize {
        self.agents.iter().map(|(_, k)| k.len()).sum()
    }

    /// Whether the keyring has no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The agents with keys.
    pub fn agents(&self) -> impl Iterator<Item = &str> {
        self.agents.iter().map(|(a, _)| a.as_str())
    }

    /// Find the key for `keyid` under `agent` (or under any agent when `None`), honouring
    /// the JWK `nbf`/`exp` at `now`. Returns the agent the key is registered for
    /// (`None` for a [`ANY_AGENT`] key).
    pub(crate) fn find(
        &self,
        agent: Option<&str>,
        keyid: &str,
        allow_kid: bool,
        now: u64,
    ) -> Result<(Option<&str>, &PublicKey), LookupError> {
        let matches = |k: &&PublicKey| k.thumbprint == keyid || (allow_kid && k.kid.as_deref() == Some(keyid));
        // Stored agents are canonical: a request naming one exactly (the usual case) needs
        // no normalisation, so the hot path does not allocate.
        let wanted: Option<alloc::borrow::Cow<'_, str>> = agent.map(|w| {
            if self.agents.iter().any(|(a, _)| a == w) {
                alloc::borrow::Cow::Borrowed(w)
            } else {
                alloc::borrow::Cow::Owned(agent_key(w))
            }
        });
        let mut found = None;
        for (a, keys) in &self.agents {
            if a != ANY_AGENT && wanted.as_deref().is_some_and(|wanted| wanted != a) {
                continue;
            }
            for key in keys.iter().filter(matches) {
                let valid = key.nbf.is_none_or(|nbf| nbf <= now) && key.exp.is_none_or(|exp| now < exp);
                if valid {
                    return Ok(((a != ANY_AGENT).then_some(a.as_str()), key));
                }
                found.get_or_insert(if key.nbf.is_some_and(|nbf| nbf > now) {
                    LookupError::NotYetValid
                } else {
                    LookupError::Expired
                });
            }
        }
        Err(found.unwrap_or(LookupError::Unknown))
    }
}

/// The keyring's name for an agent: its canonical URI, or the text itself when it is not a
/// URI (such an agent can only match itself).
fn agent_key(agent: &str) -> String {
    if agent == ANY_AGENT {
        return String::from(ANY_AGENT);
    }
    crate::agent_uri::canonical(agent).unwrap_or_else(|| String::from(agent))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9421 B.1.4 test key; its thumbprint is the Web Bot Auth drafts' keyid.
    const RFC_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";

    #[test]
    fn rfc7638_thumbprint_of_rfc9421_key() {
        assert_eq!(thumbprint_okp("Ed25519", RFC_X), "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U");
    }

    #[test]
    fn rfc8037_appendix_a3_thumbprint() {
        // RFC 8037 A.3.
        assert_eq!(
            thumbprint_okp("Ed25519", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn jwks_skips_unusable_keys_with_reasons() {
        let json = br#"{"keys":[
            {"kty":"RSA","n":"x","e":"AQAB","kid":"rsa"},
            {"kty":"OKP","crv":"X25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"},
            {"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs","d":"secret"},
            {"kty":"OKP","crv":"Ed25519","x":"short"},
            {"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs","use":"enc"},
            {"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs","alg":"ES256"},
            {"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs","nbf":"soon"},
            "not an object",
            {"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs","nbf":1,"exp":2}
        ]}"#;
        let (keys, skipped) = parse_jwks(json).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].nbf, Some(1));
        let reasons: Vec<_> = skipped.iter().map(|s| (s.index, s.reason)).collect();
        assert_eq!(
            reasons,
            [
                (0, KeySkipReason::UnsupportedKeyType),
                (1, KeySkipReason::UnsupportedCurve),
                (2, KeySkipReason::PrivateKeyMaterial),
                (3, KeySkipReason::InvalidPublicKey),
                (4, KeySkipReason::NotForSignatures),
                (5, KeySkipReason::UnsupportedAlgorithm),
                (6, KeySkipReason::NotAJwk),
                (7, KeySkipReason::NotAJwk),
            ]
        );
        assert_eq!(skipped[0].kid.as_deref(), Some("rsa"));
        assert_eq!(parse_jwks(b"[]"), Err(KeysError::NotAJwks));
        assert_eq!(parse_jwks(b"{\"keys\":{}}"), Err(KeysError::NotAJwks));
    }

    #[test]
    fn compact_key_list_round_trips_a_jwks() {
        let json = alloc::format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{RFC_X}","kid":"a, b c","nbf":10,"exp":20}},
            {{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}]}}"#
        );
        let (keys, _) = parse_jwks(json.as_bytes()).unwrap();
        let list = compact_keys(&keys);
        assert!(list.starts_with("botauth-keys/1,poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U "), "{list}");
        assert!(list.ends_with(" - - -"), "{list}");
        assert_eq!(parse_compact_keys(list.as_bytes()).unwrap(), keys);
        assert_eq!(parse_compact_keys(b"botauth-keys/1\n").unwrap(), []);
        let mut a = Keyring::new();
        let mut b = Keyring::new();
        a.add_store_item("https://a.test", list.as_bytes()).unwrap();
        b.add_store_item("https://a.test", json.as_bytes()).unwrap();
        assert_eq!(a, b, "the same keyring from either form");
        assert!(keys[0].is_test_key());
    }

    #[test]
    fn compact_key_list_refuses_every_malformed_entry() {
        let good = alloc::format!("poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U {RFC_X} - - -");
        let bad = [
            (String::from("botauth-keys/2"), 0),
            (String::from("keys/1"), 0),
            (String::from(""), 0),
            (alloc::format!("botauth-keys/1,{good},"), 2),
            (alloc::format!("botauth-keys/1,{good} -"), 1),
            (alloc::format!("botauth-keys/1,{}", &good[..good.len() - 2]), 1),
            (alloc::format!("botauth-keys/1,{}", good.replace(" - - -", " - 1x -")), 1),
            (alloc::format!("botauth-keys/1,{}", good.replace(" - - -", " - - +1")), 1),
            (alloc::format!("botauth-keys/1,{}", good.replace(" - - -", " !! - -")), 1),
            (alloc::format!("botauth-keys/1,{}", good.replace(" - - -", " _w - -")), 1),
            (alloc::format!("botauth-keys/1,{}", good.replace("poqk", "poq")), 1),
            (alloc::format!("botauth-keys/1,{}", good.replace(RFC_X, "short")), 1),
            (alloc::format!("botauth-keys/1,{}", good.replace(' ', "  ")), 1),
            (alloc::format!("botauth-keys/1,{good},{}", good.replace(" - - -", " - 99999999999999999999 -")), 2),
        ];
        for (item, entry) in bad {
            assert_eq!(parse_compact_keys(item.as_bytes()), Err(KeysError::CompactEntry { entry }), "{item:?}");
        }
        assert_eq!(parse_compact_keys(b"botauth-keys/1,\xff"), Err(KeysError::CompactEntry { entry: 0 }));
        let msg = alloc::format!("{}", KeysError::CompactEntry { entry: 3 });
        assert!(msg.contains("entry 3") && msg.contains("botauth compact-keys"), "{msg}");
        let mut ring = Keyring::new();
        assert!(ring.add_store_item("https://a.test", b"botauth-keys/1,x").is_err());
        assert!(ring.is_empty());
    }

    #[test]
    fn lookup_honours_agent_and_validity() {
        let mut ring = Keyring::new();
        let mut key = PublicKey::from_bytes([7; 32]);
        key.nbf = Some(100);
        key.exp = Some(200);
        let id = key.thumbprint.clone();
        ring.add_key("https://a.test", key);
        assert!(ring.find(Some("https://a.test"), &id, false, 150).is_ok());
        assert!(ring.find(Some("HTTPS://A.test:443/"), &id, false, 150).is_ok(), "RFC 3986 normalised");
        assert!(ring.has_agent("https://a.test/") && !ring.has_agent("https://b.test"));
        assert_eq!(ring.find(Some("https://b.test"), &id, false, 150).err(), Some(LookupError::Unknown));
        assert_eq!(ring.find(None, &id, false, 150).map(|(a, _)| a), Ok(Some("https://a.test")));
        let mut any = Keyring::new();
        any.add_key(ANY_AGENT, PublicKey::from_bytes([7; 32]));
        assert_eq!(any.find(Some("https://x.test"), &id, false, 150).map(|(a, _)| a), Ok(None));
        assert_eq!(ring.find(None, &id, false, 50).err(), Some(LookupError::NotYetValid));
        assert_eq!(ring.find(None, &id, false, 200).err(), Some(LookupError::Expired));
    }
}
