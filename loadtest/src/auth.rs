//! Mints the JWTs the gateway accepts on `GET /ws?token=…`.
//!
//! The load generator is handed the gateway's HS256 secret and signs its own
//! tokens, so a run needs no identity provider and every connection is a real,
//! authenticated user.

use jsonwebtoken::{encode, EncodingKey, Header};
use serde::Serialize;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
}

/// Signs tokens for any user with one secret.
#[derive(Clone)]
pub struct TokenMinter {
    key: EncodingKey,
    /// Tokens expire this long after minting: long enough for any run.
    ttl_secs: u64,
}

impl TokenMinter {
    pub fn new(secret: &str) -> Self {
        TokenMinter {
            key: EncodingKey::from_secret(secret.as_bytes()),
            ttl_secs: 24 * 3600,
        }
    }

    pub fn token(&self, user: &str) -> anyhow::Result<String> {
        let exp = herald_harness::clock::unix_micros() / 1_000_000 + self.ttl_secs;
        Ok(encode(
            &Header::default(),
            &Claims { sub: user, exp },
            &self.key,
        )?)
    }
}
