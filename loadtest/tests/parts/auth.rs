//! Tokens the gateway accepts, and only with the same secret.

use herald_loadtest::auth::TokenMinter;
use jsonwebtoken::{decode, DecodingKey, Validation};

#[derive(serde::Deserialize)]
struct Back {
    sub: String,
    exp: u64,
}

#[test]
fn tokens_verify_with_the_same_secret_only() {
    let t = TokenMinter::new("s3cret").token("lt-0-1").unwrap();
    let back = decode::<Back>(
        &t,
        &DecodingKey::from_secret(b"s3cret"),
        &Validation::default(),
    )
    .unwrap()
    .claims;
    assert_eq!(back.sub, "lt-0-1");
    assert!(back.exp > herald_harness::clock::unix_micros() / 1_000_000);
    assert!(decode::<Back>(
        &t,
        &DecodingKey::from_secret(b"other"),
        &Validation::default()
    )
    .is_err());
}
