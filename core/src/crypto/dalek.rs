//! Ed25519 with `ed25519-dalek` (strict verification: rejects small-order keys and
//! non-canonical encodings, RFC 8032 §5.1.7).

/// The backend crate.
pub const NAME: &str = "ed25519-dalek";

/// Verify `signature` over `message` with this backend.
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(pk) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    pk.verify_strict(message, &sig).is_ok()
}
