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

/// The links as a tool reads them: `operationId` naming an operation of
/// the document, each parameter one the target takes, in the place the
/// link says; send → history → mark among them.
#[test]
fn the_links_chain_real_operations() {
    let doc: serde_json::Value = serde_json::from_str(&herald_gateway::openapi::json()).unwrap();
    let operations: Vec<&serde_json::Value> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .collect();
    let by_id = |id: &str| {
        operations
            .iter()
            .find(|op| op["operationId"] == id)
            .unwrap_or_else(|| panic!("no operation {id}"))
    };
    let mut chains = Vec::new();
    for op in &operations {
        for (status, response) in op["responses"].as_object().unwrap() {
            let Some(links) = response.get("links") else {
                continue;
            };
            for (name, link) in links.as_object().unwrap() {
                let keys: Vec<&String> = link.as_object().unwrap().keys().collect();
                for key in &keys {
                    assert!(
                        ["operationId", "parameters", "requestBody", "description"]
                            .contains(&key.as_str())
                            || key.starts_with("x-"),
                        "link {name}: field {key} is not a Link Object's"
                    );
                }
                let target_id = link["operationId"].as_str().unwrap();
                let target = by_id(target_id);
                for parameter in link["parameters"].as_object().unwrap().keys() {
                    let (place, param) = parameter.split_once('.').unwrap();
                    let declared = target["parameters"].as_array().is_some_and(|params| {
                        params
                            .iter()
                            .any(|p| p["in"] == place && p["name"] == param)
                    });
                    assert!(declared, "link {name}: {target_id} takes no {parameter}");
                }
                chains.push(format!(
                    "{} {status} -> {target_id}",
                    op["operationId"].as_str().unwrap()
                ));
            }
        }
    }
    for chain in [
        "post_messages 202 -> history",
        "post_messages 202 -> mark",
        "mark 200 -> counts",
        "publish 202 -> job",
    ] {
        assert!(
            chains.iter().any(|c| c == chain),
            "no link {chain}: {chains:?}"
        );
    }
}
