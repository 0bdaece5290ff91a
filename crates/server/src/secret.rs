//! Random ids and secrets, their SHA-256 digests, and constant-time comparison.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of API tokens, so a leaked one is recognisable (as GitHub's `ghp_`).
pub const API_PREFIX: &str = "ecp_";
/// Prefix of agent tokens.
pub const AGENT_PREFIX: &str = "eca_";

/// A new 32-hex-digit id (16 random bytes), the API's id format.
pub fn new_id() -> String {
    random_hex(16)
}

/// A new secret: `prefix` and 32 random bytes in hex.
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", random_hex(32))
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the database keeps instead of a secret.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equal without an early exit, so the time taken says nothing about where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets_have_their_shapes() {
        assert!(edgecap_model::ids::is_id(&new_id()));
        let s = new_secret(API_PREFIX);
        assert_eq!(s.len(), 4 + 64);
        assert_ne!(new_secret(API_PREFIX), s);
        assert_eq!(digest("abc").len(), 64);
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
