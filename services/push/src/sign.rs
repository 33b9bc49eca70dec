//! Standard Webhooks signing (<https://www.standardwebhooks.com>, the
//! format Svix's libraries verify): a secret `whsec_` + base64 of the key
//! bytes; headers `webhook-id` (stable across retries), `webhook-timestamp`
//! (Unix seconds, fresh each attempt) and `webhook-signature`: `v1,` +
//! base64 of HMAC-SHA256 over `id.timestamp.body`, space-separated when
//! two secrets sign (a rotation).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The secret prefix.
pub const PREFIX: &str = "whsec_";

/// A fresh secret: `whsec_` + base64 of 24 random bytes (Svix's size).
pub fn new_secret() -> String {
    let mut key = [0u8; 24];
    rand::rng().fill_bytes(&mut key);
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// The key bytes of a secret (`whsec_` optional, as the reference
/// libraries accept it); `None`: not base64.
pub fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(PREFIX).unwrap_or(secret))
        .ok()
        .filter(|k| !k.is_empty())
}

/// One `v1,<base64>` signature of `id.timestamp.body` under `key`.
pub fn sign_with(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per key, space-separated.
pub fn header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign_with(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `header` holds a valid signature under `key` (what a receiver
/// does; used by tests and the address test's self-check).
pub fn verifies(key: &[u8], header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
    let want = sign_with(key, id, timestamp, body);
    header.split(' ').any(|s| {
        // Constant time: compare every byte whatever the first difference.
        s.len() == want.len()
            && s.bytes()
                .zip(want.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's published test vector (also in Svix's libraries'
    /// tests, e.g. id 36039016517): a receiver's off-the-shelf library
    /// accepts what we send only if this holds to the byte.
    #[test]
    fn the_standard_webhooks_test_vector() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign_with(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // The prefix is optional, as in the reference libraries.
        assert_eq!(key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Some(key));
    }

    #[test]
    fn two_secrets_sign_twice_and_either_verifies() {
        let (a, b) = (
            key_of(&new_secret()).unwrap(),
            key_of(&new_secret()).unwrap(),
        );
        assert_eq!(a.len(), 24);
        let h = header(&[a.clone(), b.clone()], "msg_1", 5, b"{}");
        assert_eq!(h.split(' ').count(), 2);
        assert!(verifies(&a, &h, "msg_1", 5, b"{}"));
        assert!(verifies(&b, &h, "msg_1", 5, b"{}"));
        assert!(!verifies(&a, &h, "msg_1", 6, b"{}"), "another timestamp");
        assert!(!verifies(&a, &h, "msg_1", 5, b"{ }"), "another body");
        assert_eq!(key_of("whsec_!!"), None);
    }
}
