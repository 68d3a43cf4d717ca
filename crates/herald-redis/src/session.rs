//! Who the user is, from the web app's session: a browser already logged in
//! to the web app connects with the app's own session cookie, and the
//! WebSocket handshake reads the HTTP session it names, so the app need not
//! mint a token for Herald. express-session with connect-redis stores each
//! session as a JSON string under `sess:<id>`; the cookie (`connect.sid` by
//! default) carries `s:<id>.<signature>`.

use fred::clients::Pool;
use fred::interfaces::KeysInterface;
use herald_core::{CoreError, Result};
use hmac::{Hmac, Mac};
use percent_encoding::percent_decode_str;
use sha2::Sha256;

use crate::unavailable;

/// Looks up a session id in Redis and returns the user id stored in it.
#[derive(Clone)]
pub struct SessionLookup {
    pool: Pool,
    key_pattern: String,
    /// JSON pointer into the session document.
    pointer: String,
    secrets: Vec<String>,
}

impl SessionLookup {
    /// `key_pattern` names the session key with `{id}` where the session id
    /// goes (connect-redis: `sess:{id}`). `user_field` is a JSON pointer
    /// (`/user/id`) or a dotted path (`user.id`, `passport.user`).
    pub fn new(pool: Pool, key_pattern: &str, user_field: &str) -> Self {
        let pointer = if user_field.starts_with('/') || user_field.is_empty() {
            user_field.to_owned()
        } else {
            format!(
                "/{}",
                user_field
                    .split('.')
                    .map(|p| p.replace('~', "~0").replace('/', "~1"))
                    .collect::<Vec<_>>()
                    .join("/")
            )
        };
        SessionLookup {
            pool,
            key_pattern: key_pattern.to_owned(),
            pointer,
            secrets: Vec::new(),
        }
    }

    /// Requires signed cookies (`s:<id>.<sig>`) to carry a valid signature
    /// made with one of `secrets` (express-session's `secret` option, which
    /// may be a list for rotation). Without secrets, the signature is not
    /// checked: the session id itself is the unguessable credential, and
    /// the signature only proves the app issued the id.
    pub fn with_secrets(mut self, secrets: Vec<String>) -> Self {
        self.secrets = secrets;
        self
    }

    /// The session id in a cookie value: percent-decoded, and for signed
    /// cookies the part between `s:` and the last `.` (checked against the
    /// secrets if any were given). None if the cookie is malformed or its
    /// signature is wrong.
    pub fn session_id(&self, cookie_value: &str) -> Option<String> {
        let value = percent_decode(cookie_value)?;
        let Some(signed) = value.strip_prefix("s:") else {
            return (self.secrets.is_empty() && !value.is_empty()).then_some(value);
        };
        let (id, signature) = signed.rsplit_once('.')?;
        if id.is_empty() {
            return None;
        }
        if !self.secrets.is_empty() && !self.secrets.iter().any(|s| verify(s, id, signature)) {
            return None;
        }
        Some(id.to_owned())
    }

    /// The user id of the session named by `cookie_value` (a raw session id
    /// or a signed cookie value), or None if there is no such session or it
    /// has no user. A string or number at the field is the user id.
    pub async fn user_for(&self, cookie_value: &str) -> Result<Option<String>> {
        let Some(id) = self.session_id(cookie_value) else {
            return Ok(None);
        };
        let key = self.key_pattern.replace("{id}", &id);
        let raw: Option<String> = self.pool.get(key).await.map_err(unavailable)?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let doc: serde_json::Value = serde_json::from_str(&raw)
            .map_err(|e| CoreError::Unavailable(format!("unreadable session: {e}")))?;
        Ok(match doc.pointer(&self.pointer) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    }
}

/// cookie-signature: base64 of HMAC-SHA256(secret, value), padding removed.
fn verify(secret: &str, value: &str, signature: &str) -> bool {
    use base64::Engine;
    let Ok(sig) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(value.as_bytes());
    mac.verify_slice(&sig).is_ok()
}

/// Signs `value` as express / cookie-signature does (for tests and tools).
pub fn sign(secret: &str, value: &str) -> String {
    use base64::Engine;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(value.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD_NO_PAD.encode(mac.finalize().into_bytes());
    format!("s:{value}.{sig}")
}

/// `s` percent-decoded; None when an escape is not `%` and two hex digits
/// (a malformed cookie names no session, rather than being read literally)
/// or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let well_formed = s.split('%').skip(1).all(|after| {
        after
            .get(..2)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !well_formed {
        return None;
    }
    let decoded = percent_decode_str(s).decode_utf8().ok()?;
    Some(decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(secrets: &[&str]) -> SessionLookup {
        let pool = fred::prelude::Builder::default_centralized()
            .build_pool(1)
            .unwrap();
        SessionLookup::new(pool, "sess:{id}", "user.id")
            .with_secrets(secrets.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn cookie_forms() {
        let open = lookup(&[]);
        assert_eq!(open.pointer, "/user/id");
        assert_eq!(open.session_id("abc").as_deref(), Some("abc"));
        assert_eq!(open.session_id("s%3Aabc.sig").as_deref(), Some("abc"));
        assert_eq!(open.session_id("s:a.b.sig").as_deref(), Some("a.b"));
        assert_eq!(open.session_id("s:.sig"), None);
        let strict = lookup(&["old", "keyboard cat"]);
        let cookie = sign("keyboard cat", "abc");
        assert_eq!(strict.session_id(&cookie).as_deref(), Some("abc"));
        assert_eq!(strict.session_id("s:abc.AAAA"), None);
        assert_eq!(strict.session_id("abc"), None);
    }

    #[test]
    fn malformed_escapes_and_non_utf8_name_no_session() {
        let open = lookup(&[]);
        assert_eq!(open.session_id("a%41%c3%a9").as_deref(), Some("aAé"));
        for bad in ["a%", "a%4", "a%zz", "a%%41", "a%é1", "a%ff"] {
            assert_eq!(open.session_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn signature_matches_cookie_signature() {
        // From the cookie-signature package: sign('hello', 'tobiiscool').
        assert_eq!(
            sign("tobiiscool", "hello"),
            "s:hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI"
        );
    }
}
