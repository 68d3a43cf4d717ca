//! Who is connecting: user tokens (JWT), the web app's session cookie, and
//! the server API key.
//!
//! The user id comes only from verified credentials, never from a frame the
//! client sends (the original design trusted the client's `userId`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::{header, HeaderMap, HeaderName};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Set by the browser, never by a page (`check_origin`).
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
use crate::settings::AuthSettings;

/// Claims of a Herald user token (`nbf`, `aud` and `iss` are checked
/// from the token itself when present or configured).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// One audience or a list of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
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

/// A verification key and the one algorithm it verifies.
struct VerifyingKey {
    key: DecodingKey,
    alg: Algorithm,
}

pub struct Authenticator {
    /// Keys for tokens without a `kid`.
    keys: Vec<VerifyingKey>,
    /// Keys by `kid`.
    by_kid: HashMap<String, VerifyingKey>,
    /// The key `mint` signs with, and its kid.
    encoding: Option<(EncodingKey, Option<String>)>,
    audience: String,
    issuer: String,
    leeway: u64,
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
            keys.push(VerifyingKey {
                key: DecodingKey::from_secret(secret),
                alg: Algorithm::HS256,
            });
            encoding = Some((EncodingKey::from_secret(secret), None));
        }
        if !settings.jwt_public_key_pem.is_empty() {
            let key = DecodingKey::from_rsa_pem(settings.jwt_public_key_pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("auth.jwt_public_key_pem: {e}"))?;
            keys.push(VerifyingKey {
                key,
                alg: Algorithm::RS256,
            });
        }
        let mut by_kid = HashMap::new();
        for (i, k) in settings.keys.iter().enumerate() {
            let what = format!("auth.keys[{i}] (kid {:?})", k.kid);
            anyhow::ensure!(!k.kid.is_empty(), "{what}: empty kid");
            let key = match k.alg.as_str() {
                "HS256" => {
                    anyhow::ensure!(!k.secret.is_empty(), "{what}: HS256 needs a secret");
                    if encoding.is_none() {
                        let signing = EncodingKey::from_secret(k.secret.as_bytes());
                        encoding = Some((signing, Some(k.kid.clone())));
                    }
                    VerifyingKey {
                        key: DecodingKey::from_secret(k.secret.as_bytes()),
                        alg: Algorithm::HS256,
                    }
                }
                "RS256" => VerifyingKey {
                    key: DecodingKey::from_rsa_pem(k.public_key_pem.as_bytes())
                        .map_err(|e| anyhow::anyhow!("{what}: public_key_pem: {e}"))?,
                    alg: Algorithm::RS256,
                },
                other => anyhow::bail!("{what}: alg {other:?}: use HS256 or RS256"),
            };
            anyhow::ensure!(
                by_kid.insert(k.kid.clone(), key).is_none(),
                "{what}: the kid is listed twice"
            );
        }
        let session_cookie = settings.session.cookie.clone();
        anyhow::ensure!(
            !keys.is_empty()
                || !by_kid.is_empty()
                || (!session_cookie.is_empty() && sessions.is_some()),
            "no way to authenticate users: set auth.jwt_secret (HERALD__AUTH__JWT_SECRET), \
             auth.jwt_public_key_pem, or auth.session.cookie with the redis backend"
        );
        Ok(Authenticator {
            keys,
            by_kid,
            encoding,
            audience: settings.audience.clone(),
            issuer: settings.issuer.clone(),
            leeway: settings.leeway_secs,
            cookie_name: settings.cookie_name.clone(),
            allowed_origins: settings.allowed_origins.clone(),
            session_cookie,
            sessions,
        })
    }

    /// Mints an HS256 token for `user` (the `herald token` subcommand, dev
    /// mode, tests), with the configured audience and issuer.
    pub fn mint(&self, user: &str, ttl_secs: u64) -> anyhow::Result<String> {
        let (key, kid) = self
            .encoding
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("minting needs an HS256 key (auth.jwt_secret)"))?;
        let claims = Claims {
            sub: user.to_owned(),
            exp: now_secs() + ttl_secs,
            aud: (!self.audience.is_empty()).then(|| self.audience.clone().into()),
            iss: (!self.issuer.is_empty()).then(|| self.issuer.clone()),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.clone();
        Ok(jsonwebtoken::encode(&header, &claims, key)?)
    }

    /// Verifies a token and returns its user id. The token's header picks
    /// the key: its `kid` (that key only), else the kid-less keys; and the
    /// algorithm must be that key's — so an HS256 token can never be
    /// checked against an RSA public key used as a secret, and `none` is
    /// no algorithm at all. `exp` is required; `nbf`, and the configured
    /// `aud` and `iss`, are enforced.
    pub fn verify(&self, token: &str) -> Result<String, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        let candidates: Vec<&VerifyingKey> = match &header.kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(key) => vec![key],
                None => {
                    return Err(ApiError::unauthorized(format!(
                        "invalid token: unknown kid {kid:?}"
                    )))
                }
            },
            None => self.keys.iter().collect(),
        };
        let mut last_err = None;
        for key in candidates.into_iter().filter(|k| k.alg == header.alg) {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation(key.alg)) {
                Ok(data) => {
                    herald_core::validate_user_id(&data.claims.sub)
                        .map_err(|e| ApiError::unauthorized(format!("token subject: {e}")))?;
                    return Ok(data.claims.sub);
                }
                Err(e) => last_err = Some(e.to_string()),
            }
        }
        Err(ApiError::unauthorized(format!(
            "invalid token: {}",
            last_err.unwrap_or_else(|| format!("no key accepts algorithm {:?}", header.alg))
        )))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.validate_aud = !self.audience.is_empty();
        let mut required = vec!["exp"];
        if !self.audience.is_empty() {
            validation.set_audience(&[&self.audience]);
            required.push("aud");
        }
        if !self.issuer.is_empty() {
            validation.set_issuer(&[&self.issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// The request headers [`Self::handshake`] reads: a Socket.IO session
    /// keeps only these of its handshake request (`socketio.rs`), so a
    /// header `handshake` comes to read must be listed here.
    pub const HANDSHAKE_HEADERS: [HeaderName; 4] = [
        header::AUTHORIZATION,
        header::COOKIE,
        header::ORIGIN,
        SEC_FETCH_SITE,
    ];

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

    /// Cookie credentials come from an allowed `Origin`, or from a request
    /// with none that the browser marks `Sec-Fetch-Site: same-origin`: a
    /// same-origin GET carries no `Origin` (the Socket.IO long-polling
    /// handshake of a page served beside it), and no page can set that
    /// header, so a cross-site request never passes as one.
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let same_origin = headers
            .get(SEC_FETCH_SITE)
            .is_some_and(|v| v.as_bytes() == b"same-origin");
        if (origin.is_empty() && same_origin) || self.allowed_origins.iter().any(|o| o == origin) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "origin {origin:?} may not use cookie credentials (auth.allowed_origins)"
            )))
        }
    }
}

/// The device a client named (`?device=`), checked like a user id, or the
/// default one.
pub fn device(named: Option<String>) -> Result<String, ApiError> {
    let device = named.unwrap_or_else(|| herald_core::DEFAULT_DEVICE.to_owned());
    herald_core::validate_user_id(&device)
        .map_err(|e| ApiError::invalid(format!("device: {e}")))?;
    Ok(device)
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
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
mod tests;
