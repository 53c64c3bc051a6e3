//! Explanations over the real router on port 0: the refusals and their exact JSON (no
//! background set, too many rows, too costly, a bad option, a method that does not apply), the
//! bounds of the explanation queue (full: `overloaded`; late: `deadline_exceeded`) with
//! predictions answered meanwhile, V2's `contributions` output, and the metrics. The values
//! themselves are checked against shap in python/tests/test_explain.py.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, examples, post_json as post, repository_with};

fn credit_row() -> Value {
    json!({"age": 42.0, "income": 52000.0, "debt_ratio": 0.3, "country": "US", "employment": "salaried"})
}

/// The example credit model with `extra` added to its `[explain]` table.
fn credit_with(extra: &str) -> tempfile::TempDir {
    let extra = extra.to_owned();
    repository_with(&examples(), "credit", move |manifest| {
        manifest.replace("[explain]\n", &format!("[explain]\n{extra}\n"))
    })
}

#[tokio::test]
async fn a_model_without_a_background_set_names_the_fix_on_both_protocols() {
    let repository = repository_with(&examples(), "credit", |manifest| {
        manifest.split_once("\n[explain]").unwrap().0.to_owned() + "\n"
    });
    let server = TestServer::start(repository.path()).await;
    let (status, body) = post(
        &server,
        "/v1/models/credit:explain",
        &json!({"instances": [credit_row()]}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let expected = json!({"code": "explain_unavailable", "error": "model `credit` version 1 has no background set to explain against; store one with `warden init MODEL.onnx --name credit --repository DIR --data TRAIN.csv` (it writes background.jsonl and `[explain]` in warden.toml) and reload"});
    assert_eq!(body, expected);
    // The prediction itself is served as ever.
    let (status, _) = post(
        &server,
        "/v1/models/credit:predict",
        &json!({"instances": [credit_row()]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v2 = json!({"inputs": [
        {"name": "age", "shape": [1, 1], "datatype": "FP32", "data": [42]},
        {"name": "income", "shape": [1, 1], "datatype": "FP32", "data": [52000]},
        {"name": "debt_ratio", "shape": [1, 1], "datatype": "FP32", "data": [0.3]},
        {"name": "country", "shape": [1, 1], "datatype": "BYTES", "data": ["US"]},
        {"name": "employment", "shape": [1, 1], "datatype": "BYTES", "data": ["salaried"]}],
        "outputs": [{"name": "contributions"}]});
    let (status, body) = post(&server, "/v2/models/credit/infer", &v2).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "explain_unavailable");
    server.stop().await;
}

#[tokio::test]
async fn requests_over_the_limits_or_with_bad_options_are_refused_before_anything_runs() {
    let repository = credit_with("max_rows = 2\nmax_evaluations = 10000");
    let server = TestServer::start(repository.path()).await;
    let explain = |body: Value| {
        let server = &server;
        async move { post(server, "/v1/models/credit:explain", &body).await }
    };

    let (status, body) =
        explain(json!({"instances": [credit_row(), credit_row(), credit_row()]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "batch_too_large", "error": "3 rows to explain; at most 2 per request (`max_rows` under [explain])"})
    );

    let (status, body) = explain(json!({"instances": [credit_row(), credit_row()]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({"code": "explain_too_costly", "error": "explaining 2 rows costs 12800 engine rows (2 × 2^5 coalitions × 200 background rows); the limit is 10000 (`max_evaluations` under [explain]): send fewer rows per request"})
    );

    let (status, body) = explain(json!({"instances": [credit_row()], "top_k": "three", "method": "kernel", "class": ["reject"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_input", "error": "3 problems in the request", "details": [
            {"loc": ["top_k"], "msg": "expected an integer from 0 to 1000; got \"three\"", "type": "type_error"},
            {"loc": ["class"], "msg": "expected a class label; got [\"reject\"]", "type": "type_error"},
            {"loc": ["method"], "msg": "expected one of auto, tree, linear, exact; got \"kernel\"", "type": "type_error"}
        ]})
    );

    let (status, body) = explain(json!({"instances": [credit_row()], "class": "maybe"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_input", "error": "`class` must be one of approve, reject; got \"maybe\""})
    );

    let (status, body) = explain(json!({"instances": [credit_row()], "method": "tree"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_input", "error": "method `tree` does not apply to this model: it is not one tree ensemble or linear model reading its inputs directly; ask for `exact` or leave `method` out"})
    );

    // A row that breaks the contract is refused as a prediction is.
    let mut row = credit_row();
    row["country"] = json!(3);
    let (status, body) = explain(json!({"instances": [row]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["details"][0]["loc"],
        json!(["instances", 0, "country"])
    );
    server.stop().await;
}

#[tokio::test]
async fn an_explanation_answers_with_its_reasons_and_adds_up() {
    let server = TestServer::start(&examples()).await;
    let (status, body) = post(
        &server,
        "/v1/models/credit:explain",
        &json!({"instances": [credit_row()], "top_k": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["method"], "exact_shapley");
    assert_eq!(body["scale"], "probability");
    assert_eq!(body["background_rows"], 200);
    assert_eq!(
        body["features"],
        json!(["age", "income", "debt_ratio", "country", "employment"])
    );
    let row = &body["explanations"][0];
    assert_eq!(row["class"], "reject");
    let attributions = row["attributions"].as_object().unwrap();
    let sum: f64 = attributions.values().map(|v| v.as_f64().unwrap()).sum();
    let (base, output) = (
        row["base_value"].as_f64().unwrap(),
        row["output"].as_f64().unwrap(),
    );
    assert!((base + sum - output).abs() < 1e-9, "{row}");
    // The output explained is the probability the prediction answered.
    let answered = row["prediction"]["probabilities"]["reject"]
        .as_f64()
        .unwrap();
    assert!((output - answered).abs() < 1e-6, "{output} vs {answered}");
    assert!(body["additivity_max_error"].as_f64().unwrap() < 1e-6);
    // The two strongest reasons, by magnitude, with the row's values and their direction.
    let top = row["top"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    let mut by_size: Vec<(&String, f64)> = attributions
        .iter()
        .map(|(k, v)| (k, v.as_f64().unwrap()))
        .collect();
    by_size.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    for (reason, (feature, value)) in top.iter().zip(by_size) {
        assert_eq!(reason["feature"], json!(feature));
        assert_eq!(reason["attribution"].as_f64().unwrap(), value);
        assert_eq!(
            reason["effect"],
            if value < 0.0 { "lowers" } else { "raises" }
        );
        assert_eq!(reason["value"], credit_row()[feature.as_str()]);
    }
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "warden_explain_requests_total{model=\"credit\",version=\"1\"} 1",
        "warden_explain_rows_total{model=\"credit\",version=\"1\"} 1",
        "warden_explain_evaluations_total{model=\"credit\",version=\"1\"} 6400",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_and_a_late_explanation_are_refused_while_predictions_answer() {
    // One explanation of 100 rows costs 640,000 engine rows: the queue of one fills at once.
    let repository = credit_with("queue_capacity = 1");
    let server = TestServer::start(repository.path()).await;
    let rows: Vec<Value> = (0..100).map(|_| credit_row()).collect();
    let body = json!({"instances": rows});
    let floods: Vec<_> = (0..6)
        .map(|_| {
            let url = server.url("/v1/models/credit:explain");
            let body = body.clone();
            tokio::spawn(async move {
                let response = reqwest::Client::new()
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    // Predictions are answered while the explanations run.
    let (status, _) = post(
        &server,
        "/v1/models/credit:predict",
        &json!({"instances": [credit_row()]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut overloaded = 0;
    for flood in floods {
        let (status, body) = flood.await.unwrap();
        match status {
            StatusCode::OK => assert_eq!(body["explanations"].as_array().unwrap().len(), 100),
            StatusCode::SERVICE_UNAVAILABLE => {
                overloaded += 1;
                assert_eq!(
                    body,
                    json!({"code": "overloaded", "error": "model `credit`'s explanation queue (`queue_capacity` under [explain] in its warden.toml) is full; retry after the Retry-After delay"})
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        overloaded >= 1,
        "a queue of one refuses some of six at once"
    );
    server.stop().await;

    // An explanation that cannot finish in time is a 504, and the thread goes on to the next.
    let repository = credit_with("timeout_ms = 1");
    let server = TestServer::start(repository.path()).await;
    let (status, body) = post(&server, "/v1/models/credit:explain", &body).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        body,
        json!({"code": "deadline_exceeded", "error": "the explanation of model `credit` did not finish within its deadline (the request's, or `timeout_ms` under [explain]); send fewer rows"})
    );
    let metrics = || async {
        reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refused =
        "warden_explain_refused_total{model=\"credit\",reason=\"deadline\",version=\"1\"} 1";
    while !metrics().await.contains(refused) {
        assert!(std::time::Instant::now() < deadline, "{refused}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn v2_answers_contributions_beside_the_outputs_asked_for() {
    let server = TestServer::start(&examples()).await;
    let (status, body) = post(
        &server,
        "/v2/models/iris/infer",
        &json!({"inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32",
                             "data": [5.1, 3.5, 1.4, 0.2, 6.5, 3.0, 5.5, 1.8]}],
                "outputs": [{"name": "label"}, {"name": "contributions"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let outputs = body["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2, "only what was asked: {body}");
    assert_eq!(outputs[0]["data"], json!(["setosa", "virginica"]));
    let contributions = &outputs[1];
    assert_eq!(contributions["name"], "contributions");
    assert_eq!(contributions["datatype"], "FP64");
    assert_eq!(contributions["shape"], json!([2, 5]));
    let parameters = &contributions["parameters"];
    assert_eq!(
        parameters["feature_names"],
        json!([
            "sepal_length",
            "sepal_width",
            "petal_length",
            "petal_width",
            "bias"
        ])
    );
    assert_eq!(parameters["method"], "linear");
    assert_eq!(parameters["scale"], "margin");
    assert_eq!(parameters["classes"], json!(["setosa", "virginica"]));
    // The same numbers as the V1 verb gives for the same rows.
    let (_, v1) = post(
        &server,
        "/v1/models/iris:explain",
        &json!({"instances": [[5.1, 3.5, 1.4, 0.2], [6.5, 3.0, 5.5, 1.8]]}),
    )
    .await;
    let data = contributions["data"].as_array().unwrap();
    for (r, row) in v1["explanations"].as_array().unwrap().iter().enumerate() {
        let mut expected: Vec<Value> = row["attributions"]
            .as_object()
            .unwrap()
            .values()
            .cloned()
            .collect();
        expected.push(row["base_value"].clone());
        assert_eq!(&data[r * 5..(r + 1) * 5], expected.as_slice());
    }
    server.stop().await;
}

#[tokio::test]
async fn v2_contributions_take_a_class_and_a_method_as_the_output_parameters() {
    let server = TestServer::start(&examples()).await;
    let input = json!([{"name": "float_input", "shape": [1, 4], "datatype": "FP32",
                        "data": [5.1, 3.5, 1.4, 0.2]}]);
    let (status, body) = post(
        &server,
        "/v2/models/iris/infer",
        &json!({"inputs": input, "outputs": [{"name": "contributions",
                "parameters": {"class": "virginica", "method": "exact"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let parameters = &body["outputs"][0]["parameters"];
    assert_eq!(parameters["classes"], json!(["virginica"]));
    assert_eq!(parameters["method"], "exact_shapley");
    assert_eq!(parameters["scale"], "probability");
    let (_, v1) = post(
        &server,
        "/v1/models/iris:explain",
        &json!({"instances": [[5.1, 3.5, 1.4, 0.2]], "class": "virginica", "method": "exact"}),
    )
    .await;
    let row = &v1["explanations"][0];
    let mut expected: Vec<Value> = row["attributions"]
        .as_object()
        .unwrap()
        .values()
        .cloned()
        .collect();
    expected.push(row["base_value"].clone());
    assert_eq!(body["outputs"][0]["data"], json!(expected));

    let (status, body) = post(
        &server,
        "/v2/models/iris/infer",
        &json!({"inputs": input, "outputs": [{"name": "label"}, {"name": "contributions",
                "parameters": {"class": 2, "method": "kernel"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_input", "error": "2 problems in the request", "details": [
            {"loc": ["outputs", 1, "parameters", "class"], "msg": "expected a class label as a string", "type": "type_error"},
            {"loc": ["outputs", 1, "parameters", "method"], "msg": "expected one of auto, tree, linear, exact (a string)", "type": "type_error"}
        ]})
    );
    server.stop().await;
}

/// The explain threads run below the request workers: Linux's SCHED_BATCH at nice 10.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_explain_thread_runs_below_the_request_workers() {
    let server = TestServer::start(&examples()).await;
    // Its first job has certainly run on it: the priority is set before the thread takes one.
    let (status, _) = post(
        &server,
        "/v1/models/credit:explain",
        &json!({"instances": [credit_row()]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut seen = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if comm.trim() != "explain-credit" {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        // The fields after the command's closing parenthesis: state is the first, nice the
        // 17th, the scheduling policy the 39th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        assert_eq!(fields[16], "10", "nice of {task:?}: {stat}");
        assert_eq!(fields[38], "3", "SCHED_BATCH for {task:?}: {stat}");
        seen += 1;
    }
    assert!(seen >= 1, "no explain-credit thread");
    server.stop().await;
}
