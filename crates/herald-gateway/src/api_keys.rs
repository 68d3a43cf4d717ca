//! Server API keys, each with the scopes it grants. Several keys may be
//! valid at once, which is how a key is rotated without a restart: add the
//! new one, reload (SIGHUP), move the backends over, remove the old one,
//! reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::auth::bearer;
use crate::error::ApiError;
use crate::settings::ApiSettings;

mod scope;

pub use scope::Scope;

struct ApiKey {
    name: String,
    key: Vec<u8>,
    scopes: Vec<Scope>,
}

/// The configured keys.
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

/// The keys in force: a reload (SIGHUP) swaps the whole set, so a request
/// is checked against one set.
pub type CurrentKeys = ArcSwap<ApiKeys>;

/// Who called, by the name of their key.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl ApiKeys {
    pub fn new(settings: &ApiSettings) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        if !settings.key.is_empty() {
            keys.push(ApiKey {
                name: "api.key".into(),
                key: settings.key.as_bytes().to_vec(),
                scopes: vec![Scope::Admin],
            });
        }
        for (i, k) in settings.keys.iter().enumerate() {
            anyhow::ensure!(!k.key.is_empty(), "api.keys[{i}] ({}): empty key", k.name);
            anyhow::ensure!(
                !k.scopes.is_empty(),
                "api.keys[{i}] ({}): no scopes (send, users, admin)",
                k.name
            );
            anyhow::ensure!(
                k.key.len() >= 16,
                "api.keys[{i}] ({}): a key must be at least 16 bytes",
                k.name
            );
            keys.push(ApiKey {
                name: k.name.clone(),
                key: k.key.as_bytes().to_vec(),
                scopes: k.scopes.clone(),
            });
        }
        Ok(ApiKeys { keys })
    }

    /// The key the request's bearer token is, compared in constant time
    /// with every configured key.
    fn find(&self, headers: &HeaderMap) -> Option<&ApiKey> {
        let got = bearer(headers)?;
        let mut found = None;
        for key in &self.keys {
            if bool::from(got.as_bytes().ct_eq(&key.key)) {
                found = Some(key);
            }
        }
        found
    }

    /// Checks that the request carries a key granting `scope`.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<Caller, ApiError> {
        let Some(key) = self.find(headers) else {
            return Err(ApiError::unauthorized(
                "missing or wrong API key (Authorization: Bearer <key>)",
            ));
        };
        if key.scopes.contains(&scope) || key.scopes.contains(&Scope::Admin) {
            Ok(Caller(key.name.clone()))
        } else {
            Err(ApiError::forbidden(format!(
                "the API key {:?} lacks the scope {scope:?} this route needs",
                key.name
            )))
        }
    }
}

/// Middleware: refuses a `/v1` request without a key granting `scope`.
pub async fn require(
    State((keys, scope)): State<(Arc<CurrentKeys>, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    // Bound first, so the loaded set is let go before the request runs.
    let authorized = keys.load().authorize(request.headers(), scope);
    match authorized {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ApiKeySettings;
    use axum::http::{header, HeaderValue};

    fn with_bearer(key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = format!("Bearer {key}");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        h
    }

    #[test]
    fn scopes_are_enforced_per_key() {
        let keys = ApiKeys::new(&ApiSettings {
            key: "admin-key".into(),
            keys: vec![
                ApiKeySettings {
                    name: "sender".into(),
                    key: "sender-key-0123456789".into(),
                    scopes: vec![Scope::Send],
                },
                ApiKeySettings {
                    name: "reader".into(),
                    key: "reader-key-0123456789".into(),
                    scopes: vec![Scope::Users],
                },
            ],
        })
        .unwrap();
        let send = with_bearer("sender-key-0123456789");
        assert!(keys.authorize(&send, Scope::Send).is_ok());
        assert_eq!(keys.authorize(&send, Scope::Users).unwrap_err().status, 403);
        let read = with_bearer("reader-key-0123456789");
        assert!(keys.authorize(&read, Scope::Users).is_ok());
        assert_eq!(keys.authorize(&read, Scope::Send).unwrap_err().status, 403);
        let admin = with_bearer("admin-key");
        for scope in [Scope::Send, Scope::Users, Scope::Admin] {
            assert!(keys.authorize(&admin, scope).is_ok());
        }
        for bad in ["", "sender-key", "admin-key2", "ADMIN-KEY"] {
            let err = keys.authorize(&with_bearer(bad), Scope::Send).unwrap_err();
            assert_eq!(err.status, 401, "{bad:?}");
        }
        let none = ApiKeys::new(&ApiSettings::default()).unwrap();
        assert_eq!(none.authorize(&admin, Scope::Send).unwrap_err().status, 401);
    }

    #[test]
    fn bad_key_settings_are_refused() {
        for (key, scopes) in [
            ("", vec![Scope::Send]),
            ("short", vec![Scope::Send]),
            ("long-enough-0123456", vec![]),
        ] {
            let settings = ApiSettings {
                key: String::new(),
                keys: vec![ApiKeySettings {
                    name: "k".into(),
                    key: key.into(),
                    scopes,
                }],
            };
            assert!(ApiKeys::new(&settings).is_err(), "{key:?}");
        }
    }
}
