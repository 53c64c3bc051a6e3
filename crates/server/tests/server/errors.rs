//! The error paths a healthy model never takes, driven through a scripted backend: the $50k
//! incident never reaching the model, an engine failure (`internal`), a full queue
//! (`overloaded`), and models that are not ready (`model_not_ready`) — each with its exact JSON.

use crate::common::post_json as post;

use std::collections::BTreeMap;

use crate::common::{InProcess, Script, ScriptedBackend, TestServer, examples};
use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_server::serving::{ModelEntry, ModelRegistry};
use warden_server::state::{AppState, StateOptions};

fn credit_row() -> Value {
    json!({"age": 42.0, "income": 52000.0, "debt_ratio": 0.3, "country": "US", "employment": "salaried"})
}

#[tokio::test]
async fn the_incident_category_as_an_integer_never_reaches_the_model() {
    let (backend, _, _) = ScriptedBackend::new();
    let server = TestServer::start_on(&examples(), &backend).await;
    let warmed_up = backend.runs();

    let mut row = credit_row();
    row["country"] = json!(3);
    let (status, body) = post(
        &server,
        "/v1/models/credit:predict",
        &json!({"instances": [row]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_input", "error": "1 problem in the request", "details": [
            {"loc": ["instances", 0, "country"], "msg": "expected one of DE, FR, GB, IN, US; got integer 3", "type": "type_error"}
        ]})
    );

    let v2 = json!({"inputs": [
        {"name": "age", "shape": [1, 1], "datatype": "FP32", "data": [42]},
        {"name": "income", "shape": [1, 1], "datatype": "FP32", "data": [52000]},
        {"name": "debt_ratio", "shape": [1, 1], "datatype": "FP32", "data": [0.3]},
        {"name": "country", "shape": [1, 1], "datatype": "INT64", "data": [3]},
        {"name": "employment", "shape": [1, 1], "datatype": "BYTES", "data": ["salaried"]}
    ]});
    let (status, body) = post(&server, "/v2/models/credit/infer", &v2).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": "invalid_input", "error": "1 problem in the request", "details": [
            {"loc": ["inputs", 3, "datatype"], "msg": "input `country` is BYTES in the model; got INT64", "type": "datatype_mismatch"}
        ]})
    );
    assert_eq!(
        backend.runs(),
        warmed_up,
        "a rejected request reached the model"
    );

    let (status, _) = post(
        &server,
        "/v1/models/credit:predict",
        &json!({"instances": [credit_row()]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        backend.runs(),
        warmed_up + 1,
        "the counter sees requests that do reach it"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_engine_failure_is_internal_and_leaks_nothing() {
    let (backend, _, _) = ScriptedBackend::new();
    let server = TestServer::start_on(&examples(), &backend).await;
    backend.arm(Script::Fail);
    let (status, body) = post(
        &server,
        "/v1/models/credit:predict",
        &json!({"instances": [credit_row()]}),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"code": "internal", "error": "internal error; the server log has the details under this request's x-request-id"})
    );
    server.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_overloaded_at_once_with_retry_after() {
    let repository = crate::common::repository_with(&examples(), "credit", |m| {
        m.replace("queue_capacity = 256", "queue_capacity = 1")
    });
    let (backend, entered, release) = ScriptedBackend::new();
    let server = TestServer::start_on(repository.path(), &backend).await;
    backend.arm(Script::Block);
    let body = json!({"instances": [credit_row()]});
    let url = server.url("/v1/models/credit:predict");
    // Once the first request is inside the model, of three more exactly one fits the queue of
    // one; the other two are refused at once, without waiting for the model.
    let running = crate::common::occupy_worker(&url, &body, entered).await;
    let client = reqwest::Client::new();
    let mut more: Vec<_> = (0..3)
        .map(|_| Box::pin(client.post(&url).json(&body).send()))
        .collect();
    let (first, _, rest) = futures_select_all(&mut more).await;
    let refused = first.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        json!({"code": "overloaded", "error": "model `credit` is at capacity: its queue (`queue_capacity` under [batching] in its warden.toml) is full; retry after the Retry-After delay"})
    );
    backend.arm(Script::Run);
    release.send(()).unwrap();
    assert_eq!(running.await.unwrap(), StatusCode::OK);
    let mut statuses = Vec::new();
    for response in rest {
        statuses.push(response.await.unwrap().status());
    }
    statuses.sort();
    assert_eq!(
        statuses,
        vec![StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE]
    );
    server.stop().await;
}

/// The first of several futures to finish, its index, and the others still pending.
async fn futures_select_all<F: Future + Unpin>(futures: &mut Vec<F>) -> (F::Output, usize, Vec<F>) {
    let (output, index) = std::future::poll_fn(|cx| {
        for (index, future) in futures.iter_mut().enumerate() {
            if let std::task::Poll::Ready(output) = std::pin::Pin::new(future).poll(cx) {
                return std::task::Poll::Ready((output, index));
            }
        }
        std::task::Poll::Pending
    })
    .await;
    let mut rest = std::mem::take(futures);
    rest.remove(index);
    (output, index, rest)
}

#[tokio::test]
async fn models_that_are_not_ready_answer_model_not_ready() {
    let models = BTreeMap::from([(
        "credit".to_owned(),
        ModelEntry::Unavailable {
            reason: "loading".into(),
        },
    )]);
    let router = InProcess::new(AppState::new(
        ModelRegistry::new(models, false),
        StateOptions::default(),
    ));
    let (status, _) = router.get("/v2/health/live").await;
    assert_eq!(status, StatusCode::OK, "liveness does not depend on models");
    assert_eq!(
        router.get("/v2/health/ready").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"code": "model_not_ready", "error": "not every model is ready: credit (loading)"})
        )
    );
    assert_eq!(
        router.get("/v2/models/credit/ready").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"code": "model_not_ready", "error": "model `credit` is not ready: loading"})
        )
    );
    let (status, body) = router
        .post(
            "/v1/models/credit:predict",
            &json!({"instances": [credit_row()]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("model_not_ready"))
    );
}
