//! The API's contract: the OpenAPI document the server serves is the committed
//! `openapi.json`, every documented operation is a route, and what Schemathesis
//! found when fuzzing the API against the document (`scripts/api-fuzz.sh`)
//! stays fixed.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeSet;

use awc::http::{Method, StatusCode};
use common::Harness;
use serde_json::Value;

/// Where the committed document lives.
fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

#[actix_rt::test]
async fn the_served_document_is_the_committed_openapi_json() {
    let h = Harness::start().await;
    let r = h.get_as(None, "/openapi.json").await;
    r.ok();
    assert_eq!(r.header("content-type"), Some(chatgate::server::JSON));
    assert!(r.header("x-request-id").is_some());
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        r.body == committed.as_bytes(),
        "openapi.json is not the document the server serves: regenerate it with \
         `cargo run -- openapi > openapi.json` and commit it"
    );
    let head = h
        .request(Method::HEAD, "/openapi.json", None, &[], None)
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    let post = h
        .request(Method::POST, "/openapi.json", None, &[], None)
        .await;
    post.expect_error(405, "method_not_allowed");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    h.stop().await;
}

#[test]
fn the_document_is_openapi_3_1_with_every_route() {
    let doc = chatgate::server::openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/api/v1/bots",
            "/api/v1/conversations/{conversationId}",
            "/api/v1/get-conversations",
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/readyz",
        ])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["clientKey"]["scheme"],
        "bearer"
    );
}

/// A request for `op` at `path` with its parameters' examples.
fn example_request(path: &str, op: &Value) -> String {
    let mut path = path.to_owned();
    let mut query = Vec::new();
    for p in op["parameters"].as_array().unwrap() {
        let Some(example) = p["example"].as_str() else {
            continue;
        };
        let name = p["name"].as_str().unwrap();
        match p["in"].as_str() {
            Some("path") => path = path.replace(&format!("{{{name}}}"), example),
            Some("query") => query.push(format!("{name}={example}")),
            _ => {}
        }
    }
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

#[actix_rt::test]
async fn every_documented_operation_answers_one_of_its_documented_statuses() {
    let h = Harness::start().await;
    let doc = chatgate::server::openapi::document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = op.get("requestBody").map(|b| {
                let example = &b["content"]["application/json"]["schema"]["$ref"];
                assert!(example.is_string(), "{path}: body by reference");
                bytes::Bytes::from_static(br#"{"chatbotId":"sales","page":"1","size":2}"#)
            });
            let target = example_request(path, op);
            let key = op.get("security").map(|_| chatgate::demo::DEMO_KEY);
            let r = h.request(method.clone(), &target, key, &[], body).await;
            let status = r.status.as_u16().to_string();
            assert!(
                op["responses"].get(&status).is_some(),
                "{method} {target}: {status} is not documented: {}",
                String::from_utf8_lossy(&r.body)
            );
            assert!(r.status.is_success(), "{method} {target}: {status}");
        }
    }
    h.stop().await;
}

/// Found by a client generated from the document (openapi-python-client): it
/// sends a list query parameter repeated (`style: form, explode: true`, the
/// OpenAPI default), which the gateway refused as a parameter given twice.
#[actix_rt::test]
async fn a_source_filter_sent_repeated_is_the_same_list_as_comma_separated() {
    let h = Harness::start().await;
    let base = "/api/v1/get-conversations?chatbotId=support&size=5";
    let repeated = h
        .get(&format!(
            "{base}&filteredSources=whatsapp&filteredSources=API"
        ))
        .await
        .ok();
    let commas = h
        .get(&format!("{base}&filteredSources=whatsapp,API"))
        .await
        .ok();
    assert_eq!(repeated, commas);
    assert!(!common::ids(&repeated).is_empty());
    let sources: BTreeSet<&str> = repeated["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.is_subset(&BTreeSet::from(["whatsapp", "api"])),
        "{sources:?}"
    );
    h.get(&format!("{base}&filteredSources=api&filteredSources=fax"))
        .await
        .expect_error(400, "invalid_request");
    h.get(&format!("{base}&page=1&page=2"))
        .await
        .expect_error(400, "invalid_request");
    h.stop().await;
}
