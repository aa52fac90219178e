//! Ed25519 with `ed25519-compact`.

/// The backend crate.
pub const NAME: &str = "ed25519-compact";

/// Verify `signature` over `message` with this backend.
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let pk = ed25519_compact::PublicKey::new(*public_key);
    let sig = ed25519_compact::Signature::new(*signature);
    pk.verify(message, &sig).is_ok()
}
