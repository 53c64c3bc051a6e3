//! The model zoo served end to end: every model in tests/zoo on each backend, through the
//! KServe V2 API over a real socket, answering what ONNX Runtime's Python API answered.

use std::path::PathBuf;
use std::sync::Arc;

use crate::common::{TestServer, onnxruntime, repo_root};
use serde_json::{Value, json};
use warden_runtime::Backend;
use warden_runtime::tract::Tract;
use warden_server::serving::Backends;
use warden_server::startup::config::Flags;
use warden_server::startup::{self, Engines, Mode};

fn zoo() -> Vec<(String, PathBuf, Value)> {
    crate::cases::cases(&repo_root().join("tests/zoo"))
        .into_iter()
        .map(|case| (case.name, case.graph, case.json))
        .collect()
}

fn close(expected: &Value, got: &Value) -> bool {
    match (expected.as_f64(), got.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-5 * x.abs().max(1.0),
        _ => expected == got,
    }
}

/// Why `warden check` of `graph` on `backends` fails, if it does.
fn refused_at_start(graph: &std::path::Path, backends: &Backends) -> Option<String> {
    let flags = Flags {
        models: Some(graph.to_path_buf()),
        port: Some(0),
        ..Flags::default()
    };
    let env = std::collections::BTreeMap::new();
    startup::assemble(flags, &env, Mode::Check, Engines::Given(backends.clone()))
        .result
        .err()
        .map(|err| err.details().join("; "))
}

async fn serve_zoo(platform: &str, backend: Arc<dyn Backend>) -> Vec<String> {
    let backends = Backends::only(backend);
    let mut failures = Vec::new();
    for (name, graph, case) in zoo() {
        let server = TestServer::start_on_backends(&graph, backends.clone()).await;
        let metadata: Value = reqwest::get(server.url(&format!("/v2/models/{name}")))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(metadata["platform"], platform, "{name}");
        let response = reqwest::Client::new()
            .post(server.url(&format!("/v2/models/{name}/infer")))
            .json(&json!({"inputs": case["inputs"]}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if !status.is_success() {
            failures.push(format!("{name} on {platform}: {status} {body}"));
            server.stop().await;
            continue;
        }
        for expected in case["outputs"].as_array().unwrap() {
            let got = body["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == expected["name"]);
            let same = got.is_some_and(|got| {
                got["shape"] == expected["shape"]
                    && got["data"].as_array().unwrap().len()
                        == expected["data"].as_array().unwrap().len()
                    && got["data"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .zip(expected["data"].as_array().unwrap())
                        .all(|(g, e)| close(e, g))
            });
            if !same {
                failures.push(format!(
                    "{name} on {platform}: `{}` expected {expected}, got {got:?}",
                    expected["name"]
                ));
            }
        }
        server.stop().await;
    }
    failures
}

#[tokio::test]
async fn every_zoo_model_is_served_end_to_end_on_onnxruntime() {
    let failures = serve_zoo("onnxruntime_onnx", onnxruntime()).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn every_zoo_model_is_served_end_to_end_on_tract() {
    let failures = serve_zoo("tract_onnx", Arc::new(Tract)).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_operator_tract_lacks_is_named_not_described_in_tract_words() {
    let graph = repo_root().join("crates/server/tests/fixtures/unsupported.onnx");
    let refusal = refused_at_start(&graph, &Backends::only(Arc::new(Tract)));
    // tract's own words are "Unimplemented(Frobnicate)" or a count of outputs.
    assert!(
        refusal.as_deref().is_some_and(|why| why
            .contains("operator `Frobnicate` (domain `ai.example`) of node `frobnicate_1`")
            && why.contains("is not supported by the engine")),
        "{refusal:?}"
    );
}
