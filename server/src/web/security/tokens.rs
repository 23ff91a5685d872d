//! Secrets: random tokens (CSRF tokens, session ids), their digests and their constant-time comparison.

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a secret: what is kept of session ids and the admin token, and what is compared.
pub fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Compares two secrets in constant time (over their SHA-256 digests, so lengths do not leak either).
pub fn secrets_match(a: &str, b: &str) -> bool {
    bool::from(digest(a).ct_eq(&digest(b)))
}

/// 256 random bits from the operating system, as 64 lowercase hex digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True for a value [`random_token`] could have made (64 hex digits): anything else in a cookie is ignored.
pub fn is_token_shaped(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_shaped() {
        let token = random_token();
        assert!(is_token_shaped(&token));
        assert_ne!(token, random_token());
        assert!(!is_token_shaped("short"));
        assert!(!is_token_shaped(&"g".repeat(64)));
        assert!(secrets_match(&token, &token.clone()));
        assert!(!secrets_match(&token, &random_token()));
        assert!(!secrets_match(&token, ""));
    }
}
