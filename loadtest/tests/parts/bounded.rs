//! The overall time limit of a run.

use std::time::Duration;

use herald_loadtest::bounded::within;

#[tokio::test]
async fn a_run_past_its_limit_is_an_error() {
    let slow = within(Duration::from_millis(10), async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(())
    });
    let err = slow.await.unwrap_err().to_string();
    assert!(err.contains("--timeout"), "{err}");
    assert_eq!(
        within(Duration::from_secs(5), async { Ok(7) })
            .await
            .unwrap(),
        7
    );
}
