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
mod tests {
    use super::*;
    use crate::settings::JwtKey;
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
            aud: None,
            iss: None,
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

    #[tokio::test]
    async fn a_same_origin_request_without_origin_may_use_cookies() {
        let a = auth(&["https://app.example"]);
        let token = a.mint("bob", 60).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("herald_token={token}")).unwrap(),
        );
        for site in ["cross-site", "same-site", "none"] {
            headers.insert("sec-fetch-site", HeaderValue::from_static(site));
            assert!(a.handshake(&headers, None).await.is_err(), "{site}");
        }
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert_eq!(a.handshake(&headers, None).await.unwrap(), "bob");
        // An Origin present must be an allowed one, whatever else is said.
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(a.handshake(&headers, None).await.is_err());
    }

    const PUBLIC_PEM: &str = include_str!("../tests/fixtures/rs256-test-public.pem");
    const PRIVATE_PEM: &[u8] = include_bytes!("../tests/fixtures/rs256-test-private.pem");

    fn sign(header: Header, claims: &serde_json::Value, key: &EncodingKey) -> String {
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn claims(extra: serde_json::Value) -> serde_json::Value {
        let mut c = serde_json::json!({"sub": "alice", "exp": now_secs() + 60});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    }

    fn hs(secret: &str) -> EncodingKey {
        EncodingKey::from_secret(secret.as_bytes())
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let a = auth(&[]);
        let later = claims(serde_json::json!({"nbf": now_secs() + 3600}));
        let token = sign(Header::default(), &later, &hs("s3cret"));
        let err = a.verify(&token).unwrap_err();
        assert!(err.message.contains("ImmatureSignature"), "{}", err.message);
        let now = claims(serde_json::json!({"nbf": now_secs() - 1}));
        assert_eq!(
            a.verify(&sign(Header::default(), &now, &hs("s3cret")))
                .unwrap(),
            "alice"
        );
    }

    #[test]
    fn alg_none_and_unsigned_tokens_are_refused() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let a = auth(&[]);
        for alg in ["none", "None", "NONE"] {
            let head = b64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let body = b64.encode(claims(serde_json::json!({})).to_string());
            for token in [format!("{head}.{body}."), format!("{head}.{body}")] {
                assert!(a.verify(&token).is_err(), "{alg}: {token}");
            }
        }
    }

    /// An HS256 token whose "secret" is the server's RSA public key (which
    /// is public) must not pass as RS256.
    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let a = Authenticator::new(
            &AuthSettings {
                jwt_public_key_pem: PUBLIC_PEM.into(),
                ..AuthSettings::default()
            },
            None,
        )
        .unwrap();
        let forged = sign(
            Header::new(Algorithm::HS256),
            &claims(serde_json::json!({})),
            &EncodingKey::from_secret(PUBLIC_PEM.as_bytes()),
        );
        assert!(a.verify(&forged).is_err());
        let genuine = sign(
            Header::new(Algorithm::RS256),
            &claims(serde_json::json!({})),
            &EncodingKey::from_rsa_pem(PRIVATE_PEM).unwrap(),
        );
        assert_eq!(a.verify(&genuine).unwrap(), "alice");
    }

    fn keyed() -> Authenticator {
        Authenticator::new(
            &AuthSettings {
                keys: vec![
                    JwtKey {
                        kid: "old".into(),
                        alg: "HS256".into(),
                        secret: "old-secret".into(),
                        public_key_pem: String::new(),
                    },
                    JwtKey {
                        kid: "new".into(),
                        alg: "HS256".into(),
                        secret: "new-secret".into(),
                        public_key_pem: String::new(),
                    },
                    JwtKey {
                        kid: "rsa".into(),
                        alg: "RS256".into(),
                        secret: String::new(),
                        public_key_pem: PUBLIC_PEM.into(),
                    },
                ],
                audience: "herald".into(),
                issuer: "https://login.example".into(),
                ..AuthSettings::default()
            },
            None,
        )
        .unwrap()
    }

    fn with_kid(alg: Algorithm, kid: &str) -> Header {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        h
    }

    #[test]
    fn keys_rotate_by_kid_and_each_kid_takes_its_algorithm_only() {
        let a = keyed();
        let good = claims(serde_json::json!({"aud": "herald", "iss": "https://login.example"}));
        for (kid, secret) in [("old", "old-secret"), ("new", "new-secret")] {
            let token = sign(with_kid(Algorithm::HS256, kid), &good, &hs(secret));
            assert_eq!(a.verify(&token).unwrap(), "alice", "{kid}");
        }
        let rsa = EncodingKey::from_rsa_pem(PRIVATE_PEM).unwrap();
        let token = sign(with_kid(Algorithm::RS256, "rsa"), &good, &rsa);
        assert_eq!(a.verify(&token).unwrap(), "alice");
        // A kid with another key's secret, an unknown kid, no kid at all
        // (no kid-less key configured), an algorithm the kid does not have.
        for token in [
            sign(with_kid(Algorithm::HS256, "new"), &good, &hs("old-secret")),
            sign(with_kid(Algorithm::HS256, "gone"), &good, &hs("old-secret")),
            sign(Header::new(Algorithm::HS256), &good, &hs("new-secret")),
            sign(
                with_kid(Algorithm::HS256, "rsa"),
                &good,
                &EncodingKey::from_secret(PUBLIC_PEM.as_bytes()),
            ),
        ] {
            assert!(a.verify(&token).is_err(), "{token}");
        }
        // Minted tokens carry the first HS256 kid, audience and issuer.
        assert_eq!(a.verify(&a.mint("bob", 60).unwrap()).unwrap(), "bob");
    }

    #[test]
    fn audience_and_issuer_are_enforced_when_configured() {
        let a = keyed();
        let key = hs("new-secret");
        for bad in [
            serde_json::json!({"iss": "https://login.example"}),
            serde_json::json!({"aud": "other", "iss": "https://login.example"}),
            serde_json::json!({"aud": "herald"}),
            serde_json::json!({"aud": "herald", "iss": "https://evil.example"}),
        ] {
            let token = sign(
                with_kid(Algorithm::HS256, "new"),
                &claims(bad.clone()),
                &key,
            );
            assert!(a.verify(&token).is_err(), "{bad}");
        }
        let many =
            claims(serde_json::json!({"aud": ["x", "herald"], "iss": "https://login.example"}));
        let token = sign(with_kid(Algorithm::HS256, "new"), &many, &key);
        assert_eq!(a.verify(&token).unwrap(), "alice");
    }

    #[test]
    fn bad_key_settings_are_refused() {
        let key = |kid: &str, alg: &str, secret: &str, pem: &str| JwtKey {
            kid: kid.into(),
            alg: alg.into(),
            secret: secret.into(),
            public_key_pem: pem.into(),
        };
        for keys in [
            vec![key("", "HS256", "s", "")],
            vec![key("a", "HS512", "s", "")],
            vec![key("a", "none", "", "")],
            vec![key("a", "HS256", "", "")],
            vec![key("a", "RS256", "", "not a pem")],
            vec![key("a", "HS256", "s", ""), key("a", "HS256", "t", "")],
        ] {
            let settings = AuthSettings {
                keys: keys.clone(),
                ..AuthSettings::default()
            };
            assert!(Authenticator::new(&settings, None).is_err(), "{keys:?}");
        }
    }
}
