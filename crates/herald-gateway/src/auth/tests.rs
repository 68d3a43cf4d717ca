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

const PUBLIC_PEM: &str = include_str!("../../tests/fixtures/rs256-test-public.pem");
const PRIVATE_PEM: &[u8] = include_bytes!("../../tests/fixtures/rs256-test-private.pem");

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
    let many = claims(serde_json::json!({"aud": ["x", "herald"], "iss": "https://login.example"}));
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
