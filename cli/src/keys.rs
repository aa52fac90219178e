//! Key files: private Ed25519 JWKs (RFC 8037 §2) for signing, JWK Sets (RFC 7517 §5) to
//! trust, RFC 7638 thumbprints (computed by core).

use anyhow::{bail, Context as _, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use botauth_core::keys::{parse_jwks, thumbprint_okp, PublicKey};
use botauth_core::{Keyring, ANY_AGENT};
use serde::Serialize;

use crate::input::read_input;

/// A private Ed25519 key read from a JWK.
#[derive(Clone, Debug)]
pub struct SigningKey {
    /// The 32-byte seed (JWK `d`, RFC 8032 §5.1.5).
    pub seed: [u8; 32],
    /// `x`, base64url.
    pub x: String,
    /// RFC 7638 thumbprint: the Web Bot Auth `keyid`.
    pub thumbprint: String,
}

impl SigningKey {
    /// The key of a seed; an unusable seed (all zeros) is an error.
    pub fn from_seed(seed: [u8; 32]) -> Result<Self> {
        let public = botauth_core::sign::public_key(&seed).map_err(|e| anyhow::anyhow!("{e}"))?;
        let x = URL_SAFE_NO_PAD.encode(public);
        let thumbprint = thumbprint_okp("Ed25519", &x);
        Ok(Self { seed, x, thumbprint })
    }

    /// A fresh random key (OS randomness).
    pub fn generate() -> Result<Self> {
        Self::from_seed(*ed25519_compact::Seed::generate())
    }

    /// The private JWK, `kid` = thumbprint.
    pub fn private_jwk(&self) -> Result<String> {
        #[derive(Serialize)]
        struct PrivateJwk<'a> {
            kty: &'a str,
            crv: &'a str,
            kid: &'a str,
            x: &'a str,
            d: &'a str,
        }
        let d = URL_SAFE_NO_PAD.encode(self.seed);
        let jwk = PrivateJwk { kty: "OKP", crv: "Ed25519", kid: &self.thumbprint, x: &self.x, d: &d };
        Ok(serde_json::to_string_pretty(&jwk)?)
    }

    fn public_jwk(&self) -> PublicJwk<'_> {
        PublicJwk { kty: "OKP", crv: "Ed25519", kid: &self.thumbprint, x: &self.x }
    }
}

#[derive(Serialize)]
struct PublicJwk<'a> {
    kty: &'a str,
    crv: &'a str,
    kid: &'a str,
    x: &'a str,
}

/// The public JWK Set of `keys` (RFC 7517 §5), `kid` = thumbprint.
pub fn public_jwks(keys: &[SigningKey]) -> Result<String> {
    #[derive(Serialize)]
    struct Set<'a> {
        keys: Vec<PublicJwk<'a>>,
    }
    Ok(serde_json::to_string_pretty(&Set { keys: keys.iter().map(SigningKey::public_jwk).collect() })?)
}

/// Read a private Ed25519 JWK (or a JWK Set holding exactly one) from `path`.
pub fn load_private(path: &str) -> Result<SigningKey> {
    let bytes = read_input(path).with_context(|| format!("cannot read private key {path}"))?;
    private_from_json(&bytes).with_context(|| format!("bad private key {path}"))
}

fn private_from_json(bytes: &[u8]) -> Result<SigningKey> {
    let value: serde_json::Value = serde_json::from_slice(bytes).context("not JSON")?;
    let jwk = match value.get("keys").and_then(|k| k.as_array()) {
        Some(keys) if keys.len() == 1 => keys.first().cloned().unwrap_or_default(),
        Some(keys) => bail!("a JWK Set with {} keys; pass a file with exactly one private key", keys.len()),
        None => value,
    };
    let member = |name: &str| jwk.get(name).and_then(|v| v.as_str());
    if member("kty") != Some("OKP") || member("crv") != Some("Ed25519") {
        bail!("not an Ed25519 JWK: expected \"kty\":\"OKP\" and \"crv\":\"Ed25519\" (RFC 8037 section 2)");
    }
    let d = member("d").context("no private key: the JWK has no \"d\" member (is this the public key?)")?;
    let seed: [u8; 32] = URL_SAFE_NO_PAD
        .decode(d)
        .ok()
        .and_then(|d| d.try_into().ok())
        .context("\"d\" is not 32 bytes of unpadded base64url")?;
    let key = SigningKey::from_seed(seed).context("\"d\" is not a usable Ed25519 private key")?;
    if let Some(x) = member("x") {
        if x != key.x {
            bail!("\"x\" is not the public key of \"d\" (expected {})", key.x);
        }
    }
    Ok(key)
}

/// Thumbprints of every key in a JWK or JWK Set (private or public): `Ok` per OKP key,
/// `Err(message)` for keys core cannot thumbprint.
pub fn thumbprints(bytes: &[u8]) -> Result<Vec<std::result::Result<String, String>>> {
    let value: serde_json::Value = serde_json::from_slice(bytes).context("not JSON")?;
    let keys = match value.get("keys") {
        Some(serde_json::Value::Array(keys)) => keys.clone(),
        Some(_) => bail!("\"keys\" is not an array (RFC 7517 section 5)"),
        None if value.is_object() => vec![value],
        None => bail!("expected a JWK or a JWK Set (a JSON object)"),
    };
    Ok(keys
        .iter()
        .enumerate()
        .map(|(i, jwk)| {
            let member = |name: &str| jwk.get(name).and_then(|v| v.as_str());
            match (member("kty"), member("crv"), member("x")) {
                (Some("OKP"), Some(crv), Some(x)) => Ok(thumbprint_okp(crv, x)),
                (Some("OKP"), _, _) => Err(format!("key #{} is missing \"crv\" or \"x\"", i + 1)),
                (kty, _, _) => Err(format!(
                    "key #{}: kty {} is not supported (only OKP keys)",
                    i + 1,
                    kty.map_or_else(|| "(missing)".to_owned(), |k| format!("{k:?}"))
                )),
            }
        })
        .collect())
}

/// One trusted key as loaded, for `explain`.
#[derive(Clone, Debug)]
pub struct Trusted {
    /// The agent it is trusted for (`*` = any).
    pub agent: String,
    /// The file it came from.
    pub file: String,
    /// The key.
    pub key: PublicKey,
}

/// Split `[AGENT=]FILE`: a whole argument naming an existing file is a file; otherwise
/// everything before the first `=` is the agent.
pub fn split_trust_arg(arg: &str) -> (String, String) {
    if std::path::Path::new(arg).exists() {
        return (ANY_AGENT.to_owned(), arg.to_owned());
    }
    match arg.split_once('=') {
        Some((agent, file)) if !agent.is_empty() => (agent.to_owned(), file.to_owned()),
        _ => (ANY_AGENT.to_owned(), arg.to_owned()),
    }
}

/// Load every `--jwks [AGENT=]FILE` into a keyring; skipped keys are warned about on stderr.
/// A single JWK (not a set) is accepted as a set of one.
pub fn load_keyring(args: &[String]) -> Result<(Keyring, Vec<Trusted>)> {
    let mut ring = Keyring::new();
    let mut trusted = Vec::new();
    for arg in args {
        let (agent, file) = split_trust_arg(arg);
        let bytes = read_input(&file).with_context(|| format!("cannot read JWKS {file}"))?;
        let bytes = as_jwks(&bytes).with_context(|| format!("bad JWKS {file}"))?;
        let (keys, skipped) = parse_jwks(&bytes).map_err(|e| anyhow::anyhow!("bad JWKS {file}: {e}"))?;
        for s in &skipped {
            let kid = s.kid.as_deref().map(|k| format!(" (kid {k})")).unwrap_or_default();
            eprintln!("botauth: warning: {file}: key #{}{kid} skipped: {}", s.index + 1, s.reason.code());
        }
        if keys.is_empty() {
            eprintln!("botauth: warning: {file}: no usable Ed25519 key");
        }
        for key in keys {
            ring.add_key(&agent, key.clone());
            trusted.push(Trusted { agent: agent.clone(), file: file.clone(), key });
        }
    }
    Ok((ring, trusted))
}

/// Wrap a lone JWK object as `{"keys":[…]}`; other JSON is passed through for core to
/// judge. JSON syntax errors are reported with their line and column.
pub fn as_jwks(bytes: &[u8]) -> Result<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(bytes).context("not JSON")?;
    Ok(match value {
        v @ serde_json::Value::Object(_) if v.get("keys").is_none() && v.get("kty").is_some() => {
            serde_json::json!({ "keys": [v] }).to_string().into_bytes()
        }
        _ => bytes.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
    const RFC_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";

    #[test]
    fn rfc9421_test_key_round_trips() {
        let json = format!(r#"{{"kty":"OKP","crv":"Ed25519","d":"{RFC_D}","x":"{RFC_X}"}}"#);
        let key = private_from_json(json.as_bytes()).unwrap();
        assert_eq!(key.x, RFC_X);
        assert_eq!(key.thumbprint, "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U");
        let again = private_from_json(key.private_jwk().unwrap().as_bytes()).unwrap();
        assert_eq!(again.seed, key.seed);
        let set = format!(r#"{{"keys":[{json}]}}"#);
        assert_eq!(private_from_json(set.as_bytes()).unwrap().x, RFC_X);
    }

    #[test]
    fn bad_private_keys_say_why() {
        let msg = |j: &str| format!("{:#}", private_from_json(j.as_bytes()).unwrap_err());
        assert!(msg("nope").contains("not JSON"));
        assert!(msg(r#"{"kty":"RSA"}"#).contains("not an Ed25519 JWK"));
        assert!(msg(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{RFC_X}"}}"#)).contains("no \"d\""));
        assert!(msg(r#"{"kty":"OKP","crv":"Ed25519","d":"AAAA"}"#).contains("32 bytes"));
        let wrong_x = format!(r#"{{"kty":"OKP","crv":"Ed25519","d":"{RFC_D}","x":"{}"}}"#, "A".repeat(43));
        assert!(msg(&wrong_x).contains("not the public key"));
        assert!(msg(r#"{"keys":[]}"#).contains("0 keys"));
    }

    #[test]
    fn trust_args() {
        assert_eq!(split_trust_arg("https://a.test=k.json"), ("https://a.test".into(), "k.json".into()));
        assert_eq!(split_trust_arg("k.json"), ("*".into(), "k.json".into()));
        assert_eq!(split_trust_arg("=k.json"), ("*".into(), "=k.json".into()));
        assert_eq!(split_trust_arg("Cargo.toml"), ("*".into(), "Cargo.toml".into()));
    }

    #[test]
    fn thumbprints_per_key() {
        let set = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{RFC_X}"}},{{"kty":"RSA"}}]}}"#);
        let t = thumbprints(set.as_bytes()).unwrap();
        assert_eq!(t[0].as_deref(), Ok("poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"));
        assert!(t[1].as_ref().unwrap_err().contains("key #2"));
        assert!(thumbprints(b"[]").is_err());
    }
}
