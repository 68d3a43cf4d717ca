//! Standard Webhooks signatures: `webhook-signature` is
//! `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per secret,
//! space-separated, so a receiver verifies with any secret it holds while
//! the operator rotates them (<https://www.standardwebhooks.com/>).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{CoreError, Result};

/// The prefix of a secret in the Standard Webhooks form.
const PREFIX: &str = "whsec_";

/// The signing keys, decoded once.
#[derive(Clone)]
pub struct Signer {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} keys)", self.keys.len())
    }
}

impl Signer {
    /// Checks each secret (`whsec_` and base64 of 24 to 64 bytes); errors
    /// name the setting and the secret's position, never its value.
    pub fn new(secrets: &[String]) -> Result<Signer> {
        if secrets.is_empty() {
            return Err(CoreError::Invalid(
                "webhooks.secret: at least one secret (whsec_<base64>) is needed to sign".into(),
            ));
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, secret)| {
                decode(secret)
                    .map_err(|why| CoreError::Invalid(format!("webhooks.secret[{i}]: {why}")))
            })
            .collect::<Result<_>>()?;
        Ok(Signer { keys })
    }

    /// The `webhook-signature` header of `body` sent as event `id` at
    /// `timestamp` (unix seconds).
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let signed = format!("{id}.{timestamp}.{body}");
        self.keys
            .iter()
            .map(|key| {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(signed.as_bytes());
                format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn decode(secret: &str) -> std::result::Result<Vec<u8>, String> {
    let encoded = secret
        .strip_prefix(PREFIX)
        .ok_or_else(|| format!("must start with {PREFIX}"))?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| format!("is not {PREFIX} followed by base64"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!("must hold 24 to 64 bytes, not {}", key.len()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_specification_example() {
        // The example of the Standard Webhooks specification.
        let signer = Signer::new(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()]).unwrap();
        let sig = signer.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_secret_signs_and_bad_ones_are_named() {
        let a = format!("whsec_{}", STANDARD.encode([1u8; 32]));
        let b = format!("whsec_{}", STANDARD.encode([2u8; 32]));
        let sig = Signer::new(&[a.clone(), b]).unwrap().sign("id", 1, "{}");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(sig.split(' ').all(|s| s.starts_with("v1,")));
        for (bad, why) in [
            ("nope", "must start with whsec_"),
            ("whsec_!!", "base64"),
            ("whsec_AAAA", "24 to 64 bytes"),
        ] {
            let err = Signer::new(&[a.clone(), bad.into()])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("webhooks.secret[1]") && err.contains(why),
                "{err}"
            );
            assert!(!err.contains(bad), "a secret's value is never shown: {err}");
        }
        assert!(Signer::new(&[]).is_err());
    }
}
