//! Benchmarks target loopback only.

use herald_loadtest::loopback::{check_all_loopback, check_loopback, check_loopback_addr};

#[tokio::test]
async fn only_loopback_targets() {
    assert!(check_loopback("http://127.0.0.1:1").await.is_ok());
    assert!(check_loopback("http://localhost:1").await.is_ok());
    assert!(check_loopback("http://10.1.2.3:1").await.is_err());
    assert!(check_loopback("https://127.0.0.1:1").await.is_err());
    assert!(check_loopback_addr("127.0.0.1:6390").await.is_ok());
    assert!(
        check_all_loopback(&["http://127.0.0.1:1".into(), "http://10.0.0.1:1".into()])
            .await
            .is_err()
    );
}
