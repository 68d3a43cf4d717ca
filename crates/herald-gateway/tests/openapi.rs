//! `docs/openapi.json` is the document the code generates (`herald
//! openapi`), and a node serves that same document at `GET /openapi.json`.
//! The document itself is checked by tools nobody here wrote
//! (`scripts/test-openapi.sh`: openapi-spec-validator, then schemathesis
//! against live nodes).

mod common;

use std::path::PathBuf;

const REGENERATE: &str = "cargo run -p herald-gateway -- openapi > docs/openapi.json";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = herald_gateway::openapi::json();
    let path = committed_path();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || committed.lines().count().min(generated.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{} differs from the document the code generates (first at line {line}); regenerate it: {REGENERATE}",
            path.display()
        );
    }
}

#[test]
fn the_document_describes_every_group_of_routes() {
    let doc: serde_json::Value = serde_json::from_str(&herald_gateway::openapi::json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/messages",
        "/v1/messages/batch",
        "/v1/topics/{topic}/messages",
        "/v1/users/{id}/inbox",
        "/v1/users/{id}/preferences",
        "/v1/webhooks/dead",
        "/v1/users/{id}",
        "/v1/me/requests",
        "/readyz",
    ] {
        assert!(paths.contains_key(path), "{path} is not in the document");
    }
    // Every operation of the server API names the scope of API key it
    // needs, or the user's own credentials.
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let security = op["security"].as_array();
            let security = security.unwrap_or_else(|| panic!("{method} {path}: no security"));
            assert!(!security.is_empty(), "{method} {path}: no security");
            for requirement in security {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{method} {path}: {name}?");
                }
            }
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path}: no 401"
            );
        }
    }
}

#[tokio::test]
async fn a_node_serves_the_document_and_dev_mode_a_reference_page() {
    let mut settings = common::settings();
    settings.dev.enabled = true;
    let node = common::TestNode::with(settings).await;
    let resp = reqwest::get(format!("http://{}/openapi.json", node.addr))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), herald_gateway::openapi::json());
    let page = reqwest::get(format!("http://{}/dev/api", node.addr))
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains(r#"fetch("/openapi.json")"#), "{page}");
    // Nothing from elsewhere: no absolute URL of another host.
    assert!(!page.contains("http://") && !page.contains("https://"));
}
