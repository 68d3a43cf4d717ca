//! The settings of credentials: user tokens and session cookies (`auth`),
//! server API keys (`api`). These are what SIGHUP reloads.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret for user tokens without a `kid`. Empty disables it.
    pub jwt_secret: String,
    /// PEM of an RSA public key for RS256 tokens without a `kid`.
    pub jwt_public_key_pem: String,
    /// Verification keys by `kid` (a token naming a kid is checked with
    /// that key only, and only with its algorithm): list the old and the
    /// new key while rotating, then drop the old one (SIGHUP reloads).
    pub keys: Vec<JwtKey>,
    /// When set, a token's `aud` must contain it.
    pub audience: String,
    /// When set, a token's `iss` must equal it.
    pub issuer: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Cookie that may carry the JWT (browsers cannot set headers on a
    /// WebSocket).
    pub cookie_name: String,
    /// Origins allowed to open a WebSocket with cookie credentials. Cookie
    /// auth from any other origin is refused (cross-site WebSocket hijacking).
    pub allowed_origins: Vec<String>,
    /// Session-cookie auth against the web app's sessions in Redis.
    pub session: SessionSettings,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            jwt_secret: String::new(),
            jwt_public_key_pem: String::new(),
            keys: Vec::new(),
            audience: String::new(),
            issuer: String::new(),
            leeway_secs: 5,
            cookie_name: "herald_token".into(),
            allowed_origins: Vec::new(),
            session: SessionSettings::default(),
        }
    }
}

/// One token verification key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    pub kid: String,
    /// `HS256` or `RS256`.
    pub alg: String,
    /// The HS256 secret.
    #[serde(default)]
    pub secret: String,
    /// The RS256 public key (PEM).
    #[serde(default)]
    pub public_key_pem: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Name of the web app's session cookie; empty disables session auth.
    pub cookie: String,
    /// Redis key of a session, `{id}` replaced by the cookie's session id.
    pub key_pattern: String,
    /// Where the user id sits in the session JSON (JSON pointer or dotted).
    pub user_field: String,
    /// Secrets of express-style signed cookies (`s:<id>.<signature>`); when
    /// set, the signature must match one of them.
    pub secrets: Vec<String>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            cookie: String::new(),
            key_pattern: "sess:{id}".into(),
            user_field: "user.id".into(),
            secrets: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// A bearer key of the server API with every scope (`admin`). Empty
    /// means none; with no key at all the API refuses everything.
    pub key: String,
    /// More keys, each with its scopes: list the old and the new one while
    /// rotating, then drop the old one (SIGHUP reloads).
    pub keys: Vec<ApiKeySettings>,
}

/// One server API key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// Shown in logs (never the key).
    pub name: String,
    pub key: String,
    /// `send` (messages, publishes, jobs), `users` (read and act on behalf
    /// of users: inboxes, marks, counts, history, conversations, topics,
    /// blocks, presence), `admin` (everything).
    pub scopes: Vec<crate::api_keys::Scope>,
}
