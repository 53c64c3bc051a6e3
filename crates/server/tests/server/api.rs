//! The HTTP API driven over a real socket: every route, every error with its exact JSON,
//! and answers checked against ONNX Runtime run in-process on the same model file.

use crate::common::{get_json as get, post_json as post};

use crate::common::{TestServer, examples, onnxruntime, repository_with};
use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_runtime::{Backend, LoadOptions, NamedTensor, Tensor, TensorData};

/// Runs a bundled model directly on ONNX Runtime, outside the server.
fn reference(model: &str, inputs: Vec<NamedTensor>) -> Vec<NamedTensor> {
    let path = examples().join(model).join("1/model.onnx");
    let bytes = std::fs::read(&path).unwrap();
    let mut loaded = onnxruntime()
        .load(&bytes, &path, &LoadOptions::default())
        .unwrap();
    loaded.run(inputs, &[]).unwrap()
}

fn f32s(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn assert_close(served: &[f32], expected: &[f32]) {
    assert_eq!(served.len(), expected.len());
    for (s, e) in served.iter().zip(expected) {
        assert!(
            (s - e).abs() <= 1e-6,
            "served {served:?}, expected {expected:?}"
        );
    }
}

const IRIS_ROWS: [[f32; 4]; 3] = [
    [5.1, 3.5, 1.4, 0.2],
    [6.2, 2.9, 4.3, 1.3],
    [7.7, 3.0, 6.1, 2.3],
];

fn iris_reference() -> (Vec<String>, Vec<f32>) {
    let flat: Vec<f32> = IRIS_ROWS.iter().flatten().copied().collect();
    let outputs = reference(
        "iris",
        vec![NamedTensor {
            name: "float_input".into(),
            tensor: Tensor::new(vec![3, 4], TensorData::F32(flat)).unwrap(),
        }],
    );
    let TensorData::String(labels) = &outputs[0].tensor.data else {
        panic!("iris labels are strings")
    };
    let TensorData::F32(probabilities) = &outputs[1].tensor.data else {
        panic!("iris probabilities are FP32")
    };
    (labels.clone(), probabilities.clone())
}

#[tokio::test]
async fn health_and_server_metadata() {
    let server = TestServer::start(&examples()).await;
    assert_eq!(
        get(&server, "/v2/health/live").await,
        (StatusCode::OK, json!({"live": true}))
    );
    assert_eq!(
        get(&server, "/v2/health/ready").await,
        (StatusCode::OK, json!({"ready": true}))
    );
    let (status, metadata) = get(&server, "/v2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metadata["name"], "warden");
    assert_eq!(metadata["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        metadata["extensions"],
        json!(["binary_tensor_data", "model_repository"])
    );
    server.stop().await;
}

#[tokio::test]
async fn model_metadata_describes_the_graph_on_versioned_and_unversioned_paths() {
    let server = TestServer::start(&examples()).await;
    for path in ["/v2/models/iris", "/v2/models/iris/versions/1"] {
        let (status, metadata) = get(&server, path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(metadata["name"], "iris");
        assert_eq!(metadata["versions"], json!(["1"]));
        assert_eq!(metadata["platform"], "onnxruntime_onnx");
        assert_eq!(
            metadata["inputs"],
            json!([{"name": "float_input", "datatype": "FP32", "shape": [-1, 4]}])
        );
        assert_eq!(metadata["outputs"][0]["name"], "label");
        assert_eq!(metadata["outputs"][0]["datatype"], "BYTES");
        assert_eq!(metadata["outputs"][1]["name"], "probabilities");
        assert_eq!(metadata["outputs"][1]["datatype"], "FP32");
        assert_eq!(metadata["sha256"].as_str().unwrap().len(), 64);
    }
    let (_, credit) = get(&server, "/v2/models/credit").await;
    let inputs: Vec<(String, String)> = credit["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().into(),
                i["datatype"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (name, datatype) in [
        ("age", "FP32"),
        ("income", "FP32"),
        ("debt_ratio", "FP32"),
        ("country", "BYTES"),
        ("employment", "BYTES"),
    ] {
        assert!(
            inputs.contains(&(name.into(), datatype.into())),
            "{inputs:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn model_readiness_and_unknown_models_and_versions() {
    let server = TestServer::start(&examples()).await;
    for path in [
        "/v2/models/iris/ready",
        "/v2/models/credit/versions/1/ready",
    ] {
        let (status, body) = get(&server, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body["ready"], true);
    }
    assert_eq!(
        get(&server, "/v2/models/nope/ready").await,
        (
            StatusCode::NOT_FOUND,
            json!({"code": "model_not_found", "error": "unknown model `nope`"})
        )
    );
    assert_eq!(
        get(&server, "/v2/models/iris/versions/7").await,
        (
            StatusCode::NOT_FOUND,
            json!({"code": "model_not_found", "error": "model `iris` has no version 7; it serves version 1"})
        )
    );
    let (status, body) = post(&server, "/v2/models/nope/infer", &json!({"inputs": []})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "model_not_found");
    server.stop().await;
}

#[tokio::test]
async fn v2_infer_on_iris_matches_onnxruntime_and_echoes_the_id() {
    let server = TestServer::start(&examples()).await;
    let (labels, probabilities) = iris_reference();
    let request = json!({
        "id": "req-42",
        "parameters": {"anything": true},
        "inputs": [{"name": "float_input", "shape": [3, 4], "datatype": "FP32", "data": IRIS_ROWS}]
    });
    for path in ["/v2/models/iris/infer", "/v2/models/iris/versions/1/infer"] {
        let (status, body) = post(&server, path, &request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], "req-42");
        assert_eq!(body["model_name"], "iris");
        assert_eq!(body["model_version"], "1");
        let outputs = body["outputs"].as_array().unwrap();
        assert_eq!(outputs[0]["name"], "label");
        assert_eq!(outputs[0]["datatype"], "BYTES");
        assert_eq!(outputs[0]["shape"], json!([3]));
        assert_eq!(outputs[0]["data"], json!(labels));
        assert_eq!(outputs[1]["name"], "probabilities");
        assert_eq!(outputs[1]["shape"], json!([3, 3]));
        assert_close(&f32s(&outputs[1]["data"]), &probabilities);
    }
    // Requested outputs are honoured, in the order asked.
    let mut only = request.clone();
    only["outputs"] = json!([{"name": "probabilities", "parameters": {"binary_data": false}}]);
    let (status, body) = post(&server, "/v2/models/iris/infer", &only).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(body["outputs"][0]["name"], "probabilities");
    server.stop().await;
}

#[tokio::test]
async fn v2_infer_on_credit_takes_bytes_inputs_and_matches_onnxruntime() {
    let server = TestServer::start(&examples()).await;
    let column = |name: &str, data: TensorData| NamedTensor {
        name: name.into(),
        tensor: Tensor::new(vec![2, 1], data).unwrap(),
    };
    let expected = reference(
        "credit",
        vec![
            column("age", TensorData::F32(vec![42.0, 23.0])),
            column("income", TensorData::F32(vec![52000.0, 9000.0])),
            column("debt_ratio", TensorData::F32(vec![0.3, 1.2])),
            column(
                "country",
                TensorData::String(vec!["US".into(), "IN".into()]),
            ),
            column(
                "employment",
                TensorData::String(vec!["salaried".into(), "unemployed".into()]),
            ),
        ],
    );
    let request = json!({"inputs": [
        {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [42, 23]},
        {"name": "income", "shape": [2, 1], "datatype": "FP32", "data": [[52000], [9000]]},
        {"name": "debt_ratio", "shape": [2, 1], "datatype": "FP32", "data": [0.3, 1.2]},
        {"name": "country", "shape": [2, 1], "datatype": "BYTES", "data": ["US", "IN"]},
        {"name": "employment", "shape": [2, 1], "datatype": "BYTES", "data": ["salaried", "unemployed"]}
    ]});
    let (status, body) = post(&server, "/v2/models/credit/infer", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("id").is_none());
    let TensorData::String(labels) = &expected[0].tensor.data else {
        panic!()
    };
    let TensorData::F32(probabilities) = &expected[1].tensor.data else {
        panic!()
    };
    assert_eq!(body["outputs"][0]["data"], json!(labels));
    assert_close(&f32s(&body["outputs"][1]["data"]), probabilities);
    server.stop().await;
}

#[tokio::test]
async fn v2_protocol_errors_have_exact_json() {
    let server = TestServer::start(&examples()).await;
    let cases = [
        (
            json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}),
            json!({"code": "invalid_input", "error": "1 problem in the request", "details": [
                {"loc": ["inputs", 0, "datatype"], "msg": "input `float_input` is FP32 in the model; got FP64", "type": "datatype_mismatch"}
            ]}),
        ),
        (
            json!({"inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
            json!({"code": "invalid_input", "error": "1 problem in the request", "details": [
                {"loc": ["inputs", 0, "shape"], "msg": "shape [2, 4] holds 8 elements but `data` has 4", "type": "shape_mismatch"}
            ]}),
        ),
        (
            json!({"inputs": [{"name": "float_input", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
            json!({"code": "invalid_input", "error": "1 problem in the request", "details": [
                {"loc": ["inputs", 0, "shape"], "msg": "input `float_input` has shape [-1, 4] in the model (-1 = any); got [4]", "type": "shape_mismatch"}
            ]}),
        ),
        (
            json!({"inputs": [{"name": "float_input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
            json!({"code": "invalid_input", "error": "1 problem in the request", "details": [
                {"loc": ["inputs", 0, "shape"], "msg": "input `float_input` takes 4 values per row; got 3", "type": "width_mismatch"}
            ]}),
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}),
            json!({"code": "invalid_input", "error": "2 problems in the request", "details": [
                {"loc": ["inputs", 0, "name"], "msg": "unknown input `x`; the model's inputs are: float_input", "type": "extra_forbidden"},
                {"loc": ["inputs"], "msg": "input `float_input` is required (FP32 [-1, 4])", "type": "missing"}
            ]}),
        ),
        (
            json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, "2", 3, null]}]}),
            // null is a float tensor's missing value: the contract gate, not the decoder, refuses it
            // for a feature that is not nullable.
            json!({"code": "invalid_input", "error": "1 problem in the request", "details": [
                {"loc": ["inputs", 0, "data", 1], "msg": "expected a number for FP32, got \"2\"", "type": "type_error"}
            ]}),
        ),
        (
            json!({"input": []}),
            json!({"code": "invalid_input", "error": "1 problem in the request", "details": [
                {"loc": [], "msg": "the body does not follow the inference protocol: missing field `inputs`", "type": "type_error"}
            ]}),
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = post(&server, "/v2/models/iris/infer", &request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}");
        assert_eq!(body, expected, "{request}");
    }
    server.stop().await;
}

#[tokio::test]
async fn row_api_answers_both_models_with_labels_probabilities_and_the_model() {
    let server = TestServer::start(&examples()).await;
    let (labels, probabilities) = iris_reference();
    let instances: Vec<Value> = IRIS_ROWS
        .iter()
        .map(|r| {
            json!({"sepal_length": r[0], "sepal_width": r[1], "petal_length": r[2], "petal_width": r[3]})
        })
        .collect();
    let (status, body) = post(
        &server,
        "/v1/models/iris:predict",
        &json!({"instances": instances}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sha256 = get(&server, "/v2/models/iris").await.1["sha256"].clone();
    assert_eq!(
        body["model"],
        json!({"name": "iris", "version": "1", "sha256": sha256})
    );
    let names = ["setosa", "versicolor", "virginica"];
    for (row, prediction) in body["predictions"].as_array().unwrap().iter().enumerate() {
        assert_eq!(prediction["label"], labels[row].as_str());
        let served: Vec<f32> = names
            .iter()
            .map(|n| prediction["probabilities"][*n].as_f64().unwrap() as f32)
            .collect();
        assert_close(&served, &probabilities[row * 3..row * 3 + 3]);
    }
    // TF Serving's positional rows work too, on the versioned path.
    let (status, positional) = post(
        &server,
        "/v1/models/iris/versions/1:predict",
        &json!({"instances": IRIS_ROWS}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(positional["predictions"], body["predictions"]);

    let row = json!({"age": 42.0, "income": 52000.0, "debt_ratio": 0.3, "country": "US", "employment": "salaried"});
    let (status, body) = post(
        &server,
        "/v1/models/credit:predict",
        &json!({"instances": [row]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let prediction = &body["predictions"][0];
    assert!(["approve", "reject"].contains(&prediction["label"].as_str().unwrap()));
    let p = &prediction["probabilities"];
    let sum = p["approve"].as_f64().unwrap() + p["reject"].as_f64().unwrap();
    assert!((sum - 1.0).abs() < 1e-5, "{p}");
    server.stop().await;
}

/// The incident itself (a category sent as an integer) is `errors.rs`'s, with proof that it never
/// reaches the model; this is the row body's own shape.
#[tokio::test]
async fn a_row_body_without_instances_is_refused() {
    let server = TestServer::start(&examples()).await;
    let (status, body) = post(&server, "/v1/models/credit:predict", &json!({"rows": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_input", "error": "1 problem in the request", "details": [
            {"loc": ["instances"], "msg": "the body must be {\"instances\": [row, ...]}", "type": "missing"}
        ]})
    );
    server.stop().await;
}

#[tokio::test]
async fn request_level_errors_have_exact_json() {
    let server = TestServer::start_with_limit(&examples(), 4096).await;
    let client = reqwest::Client::new();
    let send = |path: &str, content_type: &str, body: Vec<u8>| {
        client
            .post(server.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let check = |status: StatusCode, body: Value, expected_status: StatusCode, expected: Value| {
        assert_eq!((status, body), (expected_status, expected));
    };

    let response = send(
        "/v1/models/iris:predict",
        "application/json",
        b"{\"instances\": [1,}".to_vec(),
    )
    .await
    .unwrap();
    check(
        response.status(),
        response.json().await.unwrap(),
        StatusCode::BAD_REQUEST,
        json!({"code": "malformed_json", "error": "the body is not valid JSON: expected value at line 1 column 18"}),
    );

    let response = send("/v2/models/iris/infer", "text/plain", b"{}".to_vec())
        .await
        .unwrap();
    check(
        response.status(),
        response.json().await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        json!({"code": "unsupported_media_type", "error": "expected Content-Type: application/json, got \"text/plain\""}),
    );

    let response = send(
        "/v2/models/iris/infer",
        "application/json",
        vec![b' '; 5000],
    )
    .await
    .unwrap();
    check(
        response.status(),
        response.json().await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"code": "payload_too_large", "error": "the request body is over the server's limit of 4096 bytes (--max-body-bytes)"}),
    );

    let (status, body) = get(&server, "/v3/nothing").await;
    check(
        status,
        body,
        StatusCode::NOT_FOUND,
        json!({"code": "not_found", "error": "no such route; see the README for the API"}),
    );
    let (status, body) = post(&server, "/v1/models/iris:classify", &json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let response = reqwest::get(server.url("/v2/models/iris/infer"))
        .await
        .unwrap();
    check(
        response.status(),
        response.json().await.unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"code": "method_not_allowed", "error": "this route does not accept that HTTP method"}),
    );
    server.stop().await;
}

#[tokio::test]
async fn request_ids_are_returned_whether_given_or_generated() {
    let server = TestServer::start(&examples()).await;
    let client = reqwest::Client::new();
    let given = client
        .get(server.url("/v2/health/live"))
        .header("x-request-id", "trace-me-7")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-7");
    let generated = client
        .get(server.url("/v2/models/nope"))
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    server.stop().await;
}

#[test]
fn the_readme_shows_the_error_table_of_the_code() {
    let readme = std::fs::read_to_string(crate::common::repo_root().join("README.md")).unwrap();
    let table = warden_server::outcome::error::ErrorCode::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md must contain the error table exactly as the code renders it:\n{table}"
    );
}

#[tokio::test]
async fn binary_tensor_extension_in_and_out() {
    let server = TestServer::start(&examples()).await;
    let (labels, probabilities) = iris_reference();
    let binary: Vec<u8> = IRIS_ROWS
        .iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let header = serde_json::to_vec(&json!({
        "inputs": [{"name": "float_input", "shape": [3, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": binary.len()}}],
        "outputs": [{"name": "label", "parameters": {"binary_data": false}},
                    {"name": "probabilities", "parameters": {"binary_data": true}}]
    }))
    .unwrap();
    let mut body = header.clone();
    body.extend_from_slice(&binary);
    let response = reqwest::Client::new()
        .post(server.url("/v2/models/iris/infer"))
        .header("inference-header-content-length", header.len().to_string())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let json_length: usize = response.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().await.unwrap();
    let (json_part, binary_part) = bytes.split_at(json_length);
    let answer: Value = serde_json::from_slice(json_part).unwrap();
    assert_eq!(answer["outputs"][0]["data"], json!(labels));
    assert_eq!(
        answer["outputs"][1]["parameters"],
        json!({"binary_data_size": 9 * 4})
    );
    assert!(answer["outputs"][1].get("data").is_none());
    let served: Vec<f32> = binary_part
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(
        served, probabilities,
        "binary output is the model's exact f32s"
    );
    server.stop().await;
}

#[tokio::test]
async fn every_answer_names_the_model_version_that_produced_it() {
    let server = TestServer::start(&examples()).await;
    let sha256 = get(&server, "/v2/models/iris").await.1["sha256"].clone();
    let response = reqwest::Client::new()
        .post(server.url("/v1/models/iris:predict"))
        .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["x-model-name"], "iris");
    assert_eq!(headers["x-model-version"], "1");
    assert_eq!(headers["x-model-sha256"], sha256.as_str().unwrap());
    server.stop().await;
}

#[tokio::test]
async fn hostile_requests_get_a_4xx_with_a_code_and_the_server_keeps_serving() {
    let server = TestServer::start(&examples()).await;
    let client = reqwest::Client::new();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge_shape = json!({"inputs": [{"name": "float_input", "shape": [u64::MAX, u64::MAX], "datatype": "FP32", "data": [1]}]});
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("/v2/models/iris/infer", vec![0xff, 0xfe, 0x00, 0x01]),
        ("/v2/models/iris/infer", b"".to_vec()),
        ("/v2/models/iris/infer", deep.clone().into_bytes()),
        ("/v2/models/iris/infer", huge_shape.to_string().into_bytes()),
        ("/v2/models/iris/infer", br#"{"inputs": [{"name": "float_input", "shape": [-1, 4], "datatype": "FP32", "data": []}]}"#.to_vec()),
        ("/v2/models/iris/infer", br#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1e999, 1, 1, 1]}]}"#.to_vec()),
        ("/v2/models/iris/infer", br#"{"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [[1, [2]], {"a": 3}, 4]}]}"#.to_vec()),
        ("/v2/models/iris/infer", br#"{"inputs": "float_input"}"#.to_vec()),
        ("/v2/models/iris/infer", br#"{"id": 7, "inputs": []}"#.to_vec()),
        ("/v2/models/credit/infer", br#"{"inputs": [{"name": "country", "shape": [1, 1], "datatype": "BYTES", "data": [3]}]}"#.to_vec()),
        ("/v1/models/iris:predict", deep.into_bytes()),
        ("/v1/models/iris:predict", br#"{"instances": []}"#.to_vec()),
        ("/v1/models/iris:predict", br#"{"instances": [null, 3, "x", {}]}"#.to_vec()),
        ("/v1/models/iris:predict", br#"{"instances": [{"sepal_length": -1, "sepal_width": 1e308, "petal_length": NaN, "petal_width": 1}]}"#.to_vec()),
        ("/v1/models/iris:predict", br#"[]"#.to_vec()),
        ("/v1/models/credit:predict", br#"{"instances": [{"age": "42", "income": true, "debt_ratio": null, "country": "us", "employment": ["salaried"]}]}"#.to_vec()),
        ("/v1/models/%00:predict", br#"{"instances": [[1, 2, 3, 4]]}"#.to_vec()),
    ];
    for (path, body) in bodies {
        let response = client
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_client_error(),
            "{path} {:?} answered {status}: {text}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert!(answer["code"].is_string(), "{text}");
        assert!(
            !text.contains("/work") && !text.contains(".rs"),
            "internals leaked: {text}"
        );
    }
    assert_eq!(get(&server, "/v2/health/ready").await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_bare_onnx_file_is_served_with_the_contract_its_graph_declares() {
    let file = examples().join("iris/1/model.onnx");
    let server = TestServer::start(&file).await;
    let (status, metadata) = get(&server, "/v2/models/model").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metadata["inputs"][0]["name"], "float_input");
    let row = json!({"float_input_0": 5.1, "float_input_1": 3.5, "float_input_2": 1.4, "float_input_3": 0.2});
    let (status, body) = post(
        &server,
        "/v1/models/model:predict",
        &json!({"instances": [row]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Without a manifest, outputs appear under their graph names.
    assert_eq!(body["predictions"][0]["label"], "setosa");
    assert_eq!(
        body["predictions"][0]["probabilities"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (status, body) = post(
        &server,
        "/v1/models/model:predict",
        &json!({"instances": [{"x": 1}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["details"].as_array().unwrap().len(), 5, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_bare_onnx_regressor_answers_a_value_as_under_a_manifest() {
    // skl2onnx names a regressor's one output `variable`; a client should not need to know.
    let file = crate::common::repo_root().join("tests/zoo/random_forest_regressor.onnx");
    let server = TestServer::start(&file).await;
    let row = json!([0.39, -0.21, -1.02, 0.88, -1.7, -2.26]);
    let (status, body) = post(
        &server,
        "/v1/models/random_forest_regressor:predict",
        &json!({"instances": [row]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let prediction = body["predictions"][0].as_object().unwrap();
    assert_eq!(
        prediction.keys().collect::<Vec<_>>(),
        vec!["value"],
        "{body}"
    );
    assert!(prediction["value"].is_f64(), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_large_request_holds_no_more_of_the_queue_than_the_workers_take() {
    // A queue of 2 and one worker: a 2,000-row request is 32 engine batches of 64, queued one
    // at a time, so it is answered whole; were its parts queued at once it would be refused.
    let repository = repository_with(&examples(), "iris", |manifest| {
        manifest.replace("queue_capacity = 256", "queue_capacity = 2")
    });
    let server = TestServer::start(repository.path()).await;
    let rows = 2_000;
    let request = json!({"inputs": [{"name": "float_input", "shape": [rows, 4], "datatype": "FP32",
        "data": (0..rows * 4).map(|i| [5.1, 3.5, 1.4, 0.2][i % 4]).collect::<Vec<f32>>()}]});
    let (status, body) = post(&server, "/v2/models/iris/infer", &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"][0]["shape"], json!([rows]));
    let labels = body["outputs"][0]["data"].as_array().unwrap();
    assert!(labels.iter().all(|label| label == "setosa"), "{labels:?}");
    server.stop().await;
}

#[tokio::test]
async fn v2_inputs_are_held_to_the_manifest_contract_too() {
    let server = TestServer::start(&examples()).await;
    let request = json!({"inputs": [
        {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [42, 150]},
        {"name": "income", "shape": [2, 1], "datatype": "FP32", "data": [52000, 9000]},
        {"name": "debt_ratio", "shape": [2, 1], "datatype": "FP32", "data": [0.3, 0.1]},
        {"name": "country", "shape": [2, 1], "datatype": "BYTES", "data": ["US", "3"]},
        {"name": "employment", "shape": [2, 1], "datatype": "BYTES", "data": ["salaried", "retired"]}
    ]});
    let (status, body) = post(&server, "/v2/models/credit/infer", &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_input", "error": "3 problems in the request", "details": [
            {"loc": ["inputs", 0, "data", 1], "msg": "expected a value between 0 and 142; got 150 (the feature's `min`/`max` in warden.toml)", "type": "range_error"},
            {"loc": ["inputs", 3, "data", 1], "msg": "expected one of DE, FR, GB, IN, US; got string \"3\" (if the model handles values it was not trained on, set `handle_unknown = \"pass\"` on the feature in warden.toml)", "type": "category_error"},
            {"loc": ["inputs", 4, "data", 1], "msg": "expected one of salaried, self_employed, unemployed; got string \"retired\" (if the model handles values it was not trained on, set `handle_unknown = \"pass\"` on the feature in warden.toml)", "type": "category_error"}
        ]})
    );
    // A packed input is checked column by column: row 1's petal_width is out of range.
    let request = json!({"inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32",
                                      "data": [5.1, 3.5, 1.4, 0.2, 5.1, 3.5, 1.4, -0.2]}]});
    let (status, body) = post(&server, "/v2/models/iris/infer", &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["details"],
        json!([{"loc": ["inputs", 0, "data", 7], "msg": "expected a value between 0 and 4.9; got -0.2 (the feature's `min`/`max` in warden.toml)", "type": "range_error"}])
    );
    // A missing value (null in JSON, NaN in a tensor) reaches the gate, which takes it only for
    // a nullable feature: iris declares none, so each is refused where it was sent.
    let request = json!({"inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32",
                                      "data": [5.1, null, 1.4, 0.2, 5.1, 3.5, 1.4, null]}]});
    let (status, body) = post(&server, "/v2/models/iris/infer", &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let not_nullable = |name: &str| {
        format!(
            "feature `{name}` is not nullable; got NaN (a missing \
        value: set `nullable = true` on the feature in warden.toml if the model handles one)"
        )
    };
    assert_eq!(
        body["details"],
        json!([
            {"loc": ["inputs", 0, "data", 1], "msg": not_nullable("sepal_width"), "type": "value_error"},
            {"loc": ["inputs", 0, "data", 7], "msg": not_nullable("petal_width"), "type": "value_error"}
        ])
    );
    // Without a manifest nothing declares a feature nullable: every missing value is refused.
    let bare = TestServer::start(&examples().join("iris/1/model.onnx")).await;
    let (status, body) = post(&bare, "/v2/models/model/infer", &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let refused = "got a missing value (null or NaN), which only a feature declared `nullable = \
        true` in the model's manifest (warden.toml) accepts";
    assert_eq!(
        body["details"],
        json!([
            {"loc": ["inputs", 0, "data", 1], "msg": refused, "type": "value_error"},
            {"loc": ["inputs", 0, "data", 7], "msg": refused, "type": "value_error"}
        ])
    );
    bare.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn nan_and_infinity_as_python_sends_them_are_value_errors() {
    let server = TestServer::start(&examples()).await;
    let client = reqwest::Client::new();
    let send = |path: &'static str, body: &'static str| {
        client
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // json.dumps({"instances": [{"sepal_length": float("nan"), ...}]}) writes a bare NaN.
    let response = send(
        "/v1/models/iris:predict",
        r#"{"instances": [{"sepal_length": NaN, "sepal_width": "Infinity", "petal_length": 1.4, "petal_width": -Infinity}]}"#,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"code": "invalid_input", "error": "3 problems in the request", "details": [
            {"loc": ["instances", 0, "sepal_length"], "msg": "expected a finite number, got NaN; NaN and infinity are refused", "type": "value_error"},
            {"loc": ["instances", 0, "sepal_width"], "msg": "expected a finite number, got Infinity; NaN and infinity are refused", "type": "value_error"},
            {"loc": ["instances", 0, "petal_width"], "msg": "expected a finite number, got -Infinity; NaN and infinity are refused", "type": "value_error"}
        ]})
    );
    let response = send(
        "/v2/models/credit/infer",
        r#"{"inputs": [
            {"name": "age", "shape": [1, 1], "datatype": "FP32", "data": [NaN]},
            {"name": "income", "shape": [1, 1], "datatype": "FP32", "data": ["inf"]},
            {"name": "debt_ratio", "shape": [1, 1], "datatype": "FP32", "data": [0.3]},
            {"name": "country", "shape": [1, 1], "datatype": "BYTES", "data": [NaN]},
            {"name": "employment", "shape": [1, 1], "datatype": "BYTES", "data": ["salaried"]}]}"#,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["details"],
        json!([
            {"loc": ["inputs", 0, "data", 0], "msg": "expected a finite number for FP32, got NaN; a missing value is sent as null", "type": "value_error"},
            {"loc": ["inputs", 1, "data", 0], "msg": "expected a finite number for FP32, got inf; a missing value is sent as null", "type": "value_error"},
            {"loc": ["inputs", 3, "data", 0], "msg": "expected a string for BYTES, got NaN", "type": "type_error"}
        ])
    );
    // A body that is broken in other ways is still malformed.
    let response = send("/v1/models/iris:predict", r#"{"instances": [NaN,}"#)
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "malformed_json"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scrapes_each_see_every_model_gauge() {
    // Each scrape used to reset the shared model gauges and refill them, so a scrape running
    // alongside another could read them empty.
    let server = TestServer::start(&examples()).await;
    let scrapers: Vec<_> = (0..4)
        .map(|_| {
            let metrics = std::sync::Arc::clone(&server.state.metrics);
            let registry = std::sync::Arc::clone(&server.state.registry);
            std::thread::spawn(move || {
                (0..300)
                    .filter(|_| {
                        let text = metrics.render(&registry.states(), None);
                        ["credit", "iris"].iter().any(|model| {
                            !text.contains(&format!("warden_model_ready{{model=\"{model}\"}} 1"))
                                || !text.contains(&format!(
                                    "warden_model_loaded_version{{model=\"{model}\"}} 1"
                                ))
                        })
                    })
                    .count()
            })
        })
        .collect();
    let incomplete: usize = scrapers.into_iter().map(|s| s.join().unwrap()).sum();
    assert_eq!(incomplete, 0, "scrapes missing a model gauge");
}

#[tokio::test]
async fn a_model_without_manifest_takes_the_manifest_default_batch_limit() {
    // One default for the contract's request limit (there were two definitions), far above the
    // engine's batch: a request at the limit is cut into batches and answered whole.
    let server = TestServer::start(&examples().join("iris/1/model.onnx")).await;
    let limit = warden_contract::Batching::default().max_request_rows;
    assert!(limit > 100 * warden_contract::Batching::default().max_batch_size);
    let over = limit + 1;
    let body = json!({"inputs": [{"name": "float_input", "shape": [over, 4], "datatype": "FP32",
        "data": vec![5.0; over * 4]}]});
    let (status, answer) = post(&server, "/v2/models/model/infer", &body).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            json!({"code": "batch_too_large", "error": format!("the request has {over} rows; model \
                `model` accepts at most {limit} per request: send fewer, or raise `max_request_rows` \
                under [batching] in its warden.toml")})
        )
    );
    let at_limit = json!({"inputs": [{"name": "float_input", "shape": [limit, 4], "datatype": "FP32",
        "data": (0..limit * 4).map(|i| (i % 70) as f32 / 10.0).collect::<Vec<_>>()}]});
    let (status, answer) = post(&server, "/v2/models/model/infer", &at_limit).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Each row's answer is the one it gets alone, in order, across the engine batches.
    let labels = answer["outputs"][0]["data"].as_array().unwrap().clone();
    assert_eq!(labels.len(), limit);
    for row in [0, 63, 64, 65, 4_999, limit - 1] {
        let alone = json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32",
            "data": (row * 4..row * 4 + 4).map(|i| (i % 70) as f32 / 10.0).collect::<Vec<_>>()}]});
        let (status, one) = post(&server, "/v2/models/model/infer", &alone).await;
        assert_eq!(status, StatusCode::OK, "{one}");
        assert_eq!(one["outputs"][0]["data"][0], labels[row], "row {row}");
    }
}
