//! Output guards end to end: models that really answer NaN or a broken probability are served,
//! and those answers never reach a client; a guard the manifest relaxes is announced at start.

use crate::common::post_json as post;

use crate::common::{TestServer, WardenProcess, fixtures};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_model_that_answers_nan_answers_invalid_output_on_both_apis() {
    let server = TestServer::start(&fixtures()).await;
    let (status, body) = post(
        &server,
        "/v1/models/sqrt:predict",
        &json!({"instances": [{"x": 9.0}]}),
    )
    .await;
    assert_eq!(
        (status, body["predictions"][0].clone()),
        (StatusCode::OK, json!({"value": 3.0}))
    );

    let expected = json!({"code": "invalid_output", "error": "model `sqrt` version 1 produced an invalid output; the values are withheld"});
    let (status, body) = post(
        &server,
        "/v1/models/sqrt:predict",
        &json!({"instances": [{"x": 9.0}, {"x": -1.0}]}),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::INTERNAL_SERVER_ERROR, expected.clone())
    );
    let v2 = json!({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [-1]}]});
    let (status, body) = post(&server, "/v2/models/sqrt/infer", &v2).await;
    assert_eq!(
        (status, body),
        (StatusCode::INTERNAL_SERVER_ERROR, expected)
    );
    server.stop().await;
}

#[tokio::test]
async fn broken_probabilities_answer_invalid_output() {
    let server = TestServer::start(&fixtures()).await;
    let (status, body) = post(
        &server,
        "/v1/models/echo:predict",
        &json!({"instances": [[0.4, 0.6]]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["predictions"][0],
        json!({"probabilities": {"yes": 0.4, "no": 0.6}})
    );
    for row in [json!([1.7, -0.7]), json!([0.3, 0.2])] {
        let (status, body) = post(
            &server,
            "/v1/models/echo:predict",
            &json!({"instances": [row]}),
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{row}");
        assert_eq!(body["code"], "invalid_output");
        assert!(body.get("predictions").is_none());
    }
    server.stop().await;
}

#[tokio::test]
async fn a_relaxed_guard_is_announced_at_start_and_lets_its_check_pass() {
    let repository = tempfile::tempdir().unwrap();
    let echo = repository.path().join("echo");
    std::fs::create_dir_all(echo.join("1")).unwrap();
    std::fs::copy(
        fixtures().join("echo/1/model.onnx"),
        echo.join("1/model.onnx"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(fixtures().join("echo/warden.toml"))
        .unwrap()
        .replace(
            "labels = [\"yes\", \"no\"]",
            "labels = [\"yes\", \"no\"]\nrelax = [\"probability_sum\"]",
        );
    std::fs::write(echo.join("warden.toml"), manifest).unwrap();

    let mut warden = WardenProcess::serve(repository.path());
    let announced = warden.startup_log.iter().any(|line| {
        let event: Value = serde_json::from_str(line).unwrap_or_default();
        event["level"] == "WARN"
            && event["guard"] == "ProbabilitySum"
            && event["output"] == "probabilities"
            && event["message"]
                .as_str()
                .unwrap_or_default()
                .contains("guard relaxed")
    });
    assert!(announced, "{:#?}", warden.startup_log);

    let url = format!("http://{}/v1/models/echo:predict", warden.address);
    let answer = |row: Value| {
        let request = reqwest::Client::new()
            .post(&url)
            .json(&json!({"instances": [row]}));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let relaxed = answer(json!([0.3, 0.2])).await;
    assert_eq!(relaxed, 200, "the relaxed sum check no longer refuses");
    let still_guarded = answer(json!([1.7, -0.7])).await;
    assert_eq!(still_guarded, 500, "the range check still runs");
    warden.terminate();
    assert_eq!(
        warden.wait_exit(std::time::Duration::from_secs(10)),
        Some(0)
    );
}
