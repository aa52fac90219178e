//! Ed25519 verification (RFC 8032 §5.1.7) behind one seam; the backend is a cargo feature.
//!
//! `ed25519-dalek` wins when both features are on (it is the faster one on wasm32,
//! ARCHITECTURE §3); each backend exports the same two names.

#[cfg(feature = "ed25519-compact")]
pub mod compact;
#[cfg(feature = "ed25519-dalek")]
pub mod dalek;

#[cfg(all(feature = "ed25519-compact", not(feature = "ed25519-dalek")))]
use compact as backend;
#[cfg(feature = "ed25519-dalek")]
use dalek as backend;

/// Ed25519 public key length (RFC 8032 §5.1.5).
pub const PUBLIC_KEY_LEN: usize = 32;
/// Ed25519 signature length (RFC 8032 §5.1.6).
pub const SIGNATURE_LEN: usize = 64;

/// Name of the compiled-in backend crate.
pub const BACKEND: &str = backend::NAME;

/// Verify `signature` over `message` with `public_key`; strict RFC 8032 §5.1.7 checks
/// (canonical `S`, valid point encodings) as the backend provides them.
pub fn verify(public_key: &[u8; PUBLIC_KEY_LEN], message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
    backend::verify(public_key, message, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With both backends compiled in, they agree on valid and invalid signatures.
    #[cfg(all(feature = "ed25519-compact", feature = "ed25519-dalek"))]
    #[test]
    fn backends_agree() {
        let pk: [u8; 32] = hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
        let sig: [u8; 64] = hex(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        );
        for msg in [&[0x72][..], &[0x73][..]] {
            assert_eq!(compact::verify(&pk, msg, &sig), dalek::verify(&pk, msg, &sig));
        }
    }

    /// RFC 8032 §7.1 TEST 2 (one-byte message).
    #[test]
    fn rfc8032_test_2() {
        let pk: [u8; 32] = hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
        let sig: [u8; 64] = hex(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        );
        assert!(verify(&pk, &[0x72], &sig));
        assert!(!verify(&pk, &[0x73], &sig));
        let mut bad = sig;
        bad[63] ^= 0x10;
        assert!(!verify(&pk, &[0x72], &bad));
    }

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
