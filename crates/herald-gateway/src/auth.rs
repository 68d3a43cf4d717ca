//! Who is connecting: user tokens (JWT), the web app's session cookie, and
//! the server API key.
//!
//! The user id comes only from verified credentials, never from a frame the
//! client sends (the original design trusted the client's `userId`).

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::{header, HeaderMap};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::settings::AuthSettings;

/// Claims of a Herald user token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, unix seconds.
    pub exp: u64,
}

/// Resolves the web app's session cookie to a user id (Redis backend only).
#[async_trait]
pub trait SessionResolver: Send + Sync {
    async fn user_for(&self, session_id: &str) -> herald_core::Result<Option<String>>;
}

/// How a handshake proved who it is; cookie-borne credentials need an
/// allowed Origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Header,
    Query,
    Cookie,
}

pub struct Authenticator {
    keys: Vec<(DecodingKey, Algorithm)>,
    encoding: Option<EncodingKey>,
    cookie_name: String,
    allowed_origins: Vec<String>,
    session_cookie: String,
    sessions: Option<Arc<dyn SessionResolver>>,
}

impl Authenticator {
    pub fn new(
        settings: &AuthSettings,
        sessions: Option<Arc<dyn SessionResolver>>,
    ) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        let mut encoding = None;
        if !settings.jwt_secret.is_empty() {
            let secret = settings.jwt_secret.as_bytes();
            keys.push((DecodingKey::from_secret(secret), Algorithm::HS256));
            encoding = Some(EncodingKey::from_secret(secret));
        }
        if !settings.jwt_public_key_pem.is_empty() {
            let key = DecodingKey::from_rsa_pem(settings.jwt_public_key_pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("auth.jwt_public_key_pem: {e}"))?;
            keys.push((key, Algorithm::RS256));
        }
        let session_cookie = settings.session.cookie.clone();
        anyhow::ensure!(
            !keys.is_empty() || (!session_cookie.is_empty() && sessions.is_some()),
            "no way to authenticate users: set auth.jwt_secret (HERALD__AUTH__JWT_SECRET), \
             auth.jwt_public_key_pem, or auth.session.cookie with the redis backend"
        );
        Ok(Authenticator {
            keys,
            encoding,
            cookie_name: settings.cookie_name.clone(),
            allowed_origins: settings.allowed_origins.clone(),
            session_cookie,
            sessions,
        })
    }

    /// Mints an HS256 token for `user` (the `herald token` subcommand, tests).
    pub fn mint(&self, user: &str, ttl_secs: u64) -> anyhow::Result<String> {
        let key = self
            .encoding
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("minting needs auth.jwt_secret"))?;
        let claims = Claims {
            sub: user.to_owned(),
            exp: now_secs() + ttl_secs,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            key,
        )?)
    }

    /// Verifies a token and returns its user id.
    pub fn verify(&self, token: &str) -> Result<String, ApiError> {
        let mut last_err = None;
        for (key, alg) in &self.keys {
            let mut validation = Validation::new(*alg);
            validation.leeway = 5;
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    herald_core::validate_user_id(&data.claims.sub)
                        .map_err(|e| ApiError::unauthorized(format!("token subject: {e}")))?;
                    return Ok(data.claims.sub);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(ApiError::unauthorized(match last_err {
            Some(e) => format!("invalid token: {e}"),
            None => "token auth is not enabled".into(),
        }))
    }

    /// Authenticates a WebSocket handshake: a bearer header, `?token=`, the
    /// token cookie, or the web app's session cookie, in that order.
    pub async fn handshake(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<String, ApiError> {
        let (token, carrier) = if let Some(t) = bearer(headers) {
            (Some(t), Carrier::Header)
        } else if let Some(t) = query_token {
            (Some(t.to_owned()), Carrier::Query)
        } else if let Some(t) = cookie(headers, &self.cookie_name) {
            (Some(t), Carrier::Cookie)
        } else {
            (None, Carrier::Cookie)
        };
        if let Some(token) = token {
            if carrier == Carrier::Cookie {
                self.check_origin(headers)?;
            }
            return self.verify(&token);
        }
        self.session_user(headers).await
    }

    async fn session_user(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let (Some(sessions), false) = (&self.sessions, self.session_cookie.is_empty()) else {
            return Err(ApiError::unauthorized(
                "no credentials: send a token (Authorization: Bearer, ?token= or cookie)",
            ));
        };
        let Some(session_id) = cookie(headers, &self.session_cookie) else {
            return Err(ApiError::unauthorized("no credentials"));
        };
        self.check_origin(headers)?;
        match sessions.user_for(&session_id).await {
            Ok(Some(user)) => {
                herald_core::validate_user_id(&user)
                    .map_err(|e| ApiError::unauthorized(format!("session user: {e}")))?;
                Ok(user)
            }
            Ok(None) => Err(ApiError::unauthorized("unknown or expired session")),
            Err(e) => Err(ApiError::unavailable(e.to_string())),
        }
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if self.allowed_origins.iter().any(|o| o == origin) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "origin {origin:?} may not use cookie credentials (auth.allowed_origins)"
            )))
        }
    }
}

/// Checks the server API key in constant time.
pub fn api_key_matches(expected: &str, headers: &HeaderMap) -> bool {
    match bearer(headers) {
        Some(got) if !expected.is_empty() => got.as_bytes().ct_eq(expected.as_bytes()).into(),
        _ => false,
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(origins: &[&str]) -> Authenticator {
        let settings = AuthSettings {
            jwt_secret: "s3cret".into(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..AuthSettings::default()
        };
        Authenticator::new(&settings, None).unwrap()
    }

    #[test]
    fn minted_tokens_verify_and_others_do_not() {
        let a = auth(&[]);
        let token = a.mint("alice", 60).unwrap();
        assert_eq!(a.verify(&token).unwrap(), "alice");
        assert!(a.verify("garbage").is_err());
        let other = Authenticator::new(
            &AuthSettings {
                jwt_secret: "other".into(),
                ..AuthSettings::default()
            },
            None,
        )
        .unwrap();
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let a = auth(&[]);
        let claims = Claims {
            sub: "alice".into(),
            exp: now_secs() - 60,
        };
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(a.verify(&token).is_err());
    }

    #[tokio::test]
    async fn cookie_tokens_need_an_allowed_origin() {
        let a = auth(&["https://app.example"]);
        let token = a.mint("bob", 60).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; herald_token={token}")).unwrap(),
        );
        assert!(a.handshake(&headers, None).await.is_err());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(a.handshake(&headers, None).await.is_err());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example"),
        );
        assert_eq!(a.handshake(&headers, None).await.unwrap(), "bob");
    }

    #[test]
    fn api_key_needs_exact_bearer() {
        let mut headers = HeaderMap::new();
        assert!(!api_key_matches("k", &headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        assert!(api_key_matches("k", &headers));
        assert!(!api_key_matches("", &headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer kk"));
        assert!(!api_key_matches("k", &headers));
    }
}
