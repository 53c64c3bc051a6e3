//! The scheduler under concurrency: batches form under load and every request gets its own
//! rows back; an expired deadline answers 504 and never reaches the model; a request whose
//! client went away is not run.

use std::time::Duration;

use std::sync::atomic::Ordering;

use crate::common::{
    Script, ScriptedBackend, TestServer, eventually, examples, fixtures, occupy_worker, onnxruntime,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use warden_server::serving::Backends;

/// Sends `count` one-row requests to the echo model at `url` at once, checks that each is
/// answered 200 with its own row's probability, and returns the batch size each rode in.
async fn echo_rows_at_once(url: &str, count: u32, context: &str) -> Vec<usize> {
    let requests: Vec<_> = (0..count)
        .map(|i| {
            let url = url.to_owned();
            let yes = f64::from(i) / f64::from(count);
            tokio::spawn(async move {
                let response = reqwest::Client::new()
                    .post(url)
                    .json(&json!({"instances": [[yes, 1.0 - yes]]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let batch: usize = response.headers()["x-batch-rows"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let body: Value = response.json().await.unwrap();
                (yes, batch, body)
            })
        })
        .collect();
    let mut batches = Vec::new();
    for request in requests {
        let (yes, batch, body) = request.await.unwrap();
        let got = body["predictions"][0]["probabilities"]["yes"]
            .as_f64()
            .unwrap();
        assert!(
            (got - yes).abs() < 1e-6,
            "{context}: a request got another request's row: sent {yes}, got {got}"
        );
        batches.push(batch);
    }
    batches
}

#[tokio::test]
async fn concurrent_requests_share_batches_and_each_gets_its_own_rows() {
    let repository = crate::common::repository_with(&fixtures(), "echo", |m| {
        format!("{m}\n[batching]\nmax_batch_size = 64\nmax_queue_delay_ms = 25\n")
    });
    let server = TestServer::start(repository.path()).await;
    let url = server.url("/v1/models/echo:predict");
    let batches = echo_rows_at_once(&url, 48, "one worker").await;
    assert!(
        batches.iter().any(|&rows| rows > 1),
        "48 concurrent requests never shared a batch"
    );
    server.stop().await;
}

/// Four workers on ONNX Runtime, sharing one session (the default) or each with their own, and
/// batches of one row so the workers run at once: every request still gets its own row back.
#[tokio::test]
async fn workers_sharing_one_onnxruntime_session_each_answer_their_own_rows() {
    let repository = crate::common::repository_with(&fixtures(), "echo", |m| {
        format!("{m}\n[batching]\nmax_batch_size = 1\n")
    });
    for sessions in ["shared", "per-worker"] {
        let server = TestServer::start_with(
            repository.path(),
            &[
                ("WARDEN_WORKERS", "4"),
                ("WARDEN_ONNXRUNTIME_SESSIONS", sessions),
            ],
            Backends::only(onnxruntime()),
        )
        .await;
        let url = server.url("/v1/models/echo:predict");
        let batches = echo_rows_at_once(&url, 64, sessions).await;
        assert!(batches.iter().all(|&rows| rows == 1), "{batches:?}");
        server.stop().await;
    }
}

#[tokio::test]
async fn an_expired_deadline_answers_504_and_never_reaches_the_model() {
    let (backend, entered, release) = ScriptedBackend::new();
    let server = TestServer::start_on(&examples(), &backend).await;
    let warmed_up = backend.runs();
    backend.arm(Script::Block);
    let url = server.url("/v1/models/iris:predict");
    let body = json!({"instances": [[5.1, 3.5, 1.4, 0.2]]});
    let blocking = occupy_worker(&url, &body, entered).await;
    let late = reqwest::Client::new()
        .post(&url)
        .header("x-timeout-ms", "100")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::GATEWAY_TIMEOUT);
    let answer: Value = late.json().await.unwrap();
    assert_eq!(answer["code"], "deadline_exceeded", "{answer}");
    let skipped = Skipped {
        backend: &backend,
        warmed_up,
        url: &url,
        body: &body,
    };
    skipped
        .prove(release, blocking, "the expired request reached the model")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn a_request_whose_client_went_away_is_not_run() {
    let (backend, entered, release) = ScriptedBackend::new();
    let server = TestServer::start_on(&examples(), &backend).await;
    let warmed_up = backend.runs();
    backend.arm(Script::Block);
    let url = server.url("/v1/models/iris:predict");
    let body = json!({"instances": [[5.1, 3.5, 1.4, 0.2]]});
    let blocking = occupy_worker(&url, &body, entered).await;
    let abandoned = {
        let (url, body) = (url.clone(), body.clone());
        tokio::spawn(async move { reqwest::Client::new().post(url).json(&body).send().await })
    };
    let iris = server.state.registry.get("iris", None).unwrap();
    let counters = || iris.counters();
    eventually("the request to be queued", Duration::from_secs(10), || {
        counters().queued.load(Ordering::Relaxed) == 1
    })
    .await;
    abandoned.abort();
    let _ = abandoned.await;
    eventually(
        "the server to see the client go",
        Duration::from_secs(10),
        || counters().abandoned.load(Ordering::Relaxed) == 1,
    )
    .await;
    let skipped = Skipped {
        backend: &backend,
        warmed_up,
        url: &url,
        body: &body,
    };
    skipped
        .prove(release, blocking, "the abandoned request reached the model")
        .await;
    server.stop().await;
}

/// What the two "never reaches the model" tests share once the request in question is dealt
/// with: release the request holding the worker, send one more, and check that the model ran
/// exactly those two since warm-up, so the one in between never reached it.
struct Skipped<'a> {
    backend: &'a ScriptedBackend,
    warmed_up: usize,
    url: &'a str,
    body: &'a Value,
}

impl Skipped<'_> {
    async fn prove(
        &self,
        release: std::sync::mpsc::Sender<()>,
        blocking: tokio::task::JoinHandle<StatusCode>,
        failure: &str,
    ) {
        self.backend.arm(Script::Run);
        release.send(()).unwrap();
        assert_eq!(blocking.await.unwrap(), StatusCode::OK);
        // A request after the skipped one proves the queue moved past it.
        let after = reqwest::Client::new()
            .post(self.url)
            .json(self.body)
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), StatusCode::OK);
        assert_eq!(self.backend.runs(), self.warmed_up + 2, "{failure}");
    }
}
