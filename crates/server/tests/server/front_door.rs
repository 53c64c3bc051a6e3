//! The front door every protocol goes through: an observer sees every answered inference of
//! every protocol exactly once, with its outcome; a request's own deadline bounds its wait for
//! a decode permit; gRPC answers name the model's hash; dropping a version whose worker is busy
//! never blocks the async runtime.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_runtime::NamedTensor;
use warden_server::front_door::{Call, Codec, FrontDoor, Inputs, Observed, Observer, Protocol};
use warden_server::grpc::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use warden_server::grpc::inference::model_infer_request::InferInputTensor;
use warden_server::grpc::inference::{InferTensorContents, ModelInferRequest};
use warden_server::outcome::error::{ApiError, ErrorCode};
use warden_server::serving::{Backends, ModelRegistry, ModelVersion, PredictError};
use warden_server::transport::deadline::Deadline;

use crate::common::{Script, ScriptedBackend, TestServer, examples, onnxruntime, repository_with};

/// What the observer saw of one request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    protocol: Protocol,
    model: Option<String>,
    rows: usize,
    /// `ok`, or the error code.
    outcome: String,
    inputs: bool,
}

#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<(String, Seen)>>,
}

impl Observer for Recorder {
    fn wants_inputs(&self, _request_id: &str, _model: &ModelVersion) -> bool {
        true
    }

    fn observe(&self, request: &Observed<'_>) {
        let outcome = match request.outcome {
            Ok(outputs) => {
                assert!(!outputs.is_empty(), "an answer without outputs");
                "ok".to_owned()
            }
            Err(error) => error.code.as_str().to_owned(),
        };
        self.seen.lock().unwrap().push((
            request.request_id.to_owned(),
            Seen {
                protocol: request.protocol,
                model: request.model.map(|m| m.name.clone()),
                rows: request.rows,
                outcome,
                inputs: request.inputs.is_some_and(|inputs| !inputs.is_empty()),
            },
        ));
    }
}

fn grpc_request(id: &str, value: f32) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "iris".into(),
        id: id.into(),
        inputs: vec![InferInputTensor {
            name: "float_input".into(),
            datatype: "FP32".into(),
            shape: vec![1, 4],
            parameters: Default::default(),
            contents: Some(InferTensorContents {
                fp32_contents: vec![value, 3.5, 1.4, 0.2],
                ..Default::default()
            }),
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_sees_every_answered_inference_of_every_protocol_once() {
    let recorder = Arc::new(Recorder::default());
    let server = TestServer::start_observed(
        &examples(),
        &[("WARDEN_GRPC_PORT", "0")],
        Backends::only(onnxruntime()),
        vec![recorder.clone() as Arc<dyn Observer>],
    )
    .await;
    let client = reqwest::Client::new();
    let post = |path: &str, id: &str, body: Vec<u8>, binary: Option<usize>| {
        let mut request = client
            .post(server.url(path))
            .header("x-request-id", id)
            .body(body);
        if let Some(length) = binary {
            request = request.header("inference-header-content-length", length.to_string());
        }
        request.send()
    };
    let v2 = |data: Value, datatype: &str| {
        json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": datatype, "data": data}]})
            .to_string()
            .into_bytes()
    };
    let row =
        json!({"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2});
    // KServe V2 over REST: JSON, the binary extension, a contract refusal.
    let answers = [
        post(
            "/v2/models/iris/infer",
            "rest-json",
            v2(json!([5.1, 3.5, 1.4, 0.2]), "FP32"),
            None,
        )
        .await
        .unwrap()
        .status(),
        {
            let header =
                json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32",
                                             "parameters": {"binary_data_size": 16}}]})
                .to_string()
                .into_bytes();
            let length = header.len();
            let mut body = header;
            for value in [5.1f32, 3.5, 1.4, 0.2] {
                body.extend(value.to_le_bytes());
            }
            post("/v2/models/iris/infer", "rest-binary", body, Some(length))
                .await
                .unwrap()
                .status()
        },
        post(
            "/v2/models/iris/infer",
            "rest-refused",
            v2(json!([5, 3, 1, 0]), "INT64"),
            None,
        )
        .await
        .unwrap()
        .status(),
        // The row API: two rows, a refused row, a malformed body, an unknown model.
        post(
            "/v1/models/iris:predict",
            "rows-two",
            json!({"instances": [row, row]}).to_string().into_bytes(),
            None,
        )
        .await
        .unwrap()
        .status(),
        post(
            "/v1/models/iris:predict",
            "rows-refused",
            json!({"instances": [{"sepal_length": "long"}]})
                .to_string()
                .into_bytes(),
            None,
        )
        .await
        .unwrap()
        .status(),
        post(
            "/v1/models/iris:predict",
            "rows-malformed",
            b"{\"instances\": [".to_vec(),
            None,
        )
        .await
        .unwrap()
        .status(),
        post(
            "/v1/models/nothing:predict",
            "rows-unknown",
            json!({"instances": [row]}).to_string().into_bytes(),
            None,
        )
        .await
        .unwrap()
        .status(),
    ];
    assert_eq!(
        answers.map(|s| s.as_u16()),
        [200, 200, 400, 200, 400, 400, 404]
    );
    // Metadata is not an inference: not observed.
    let metadata = client
        .get(server.url("/v2/models/iris"))
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.status(), 200);
    // gRPC: an answer and a refusal.
    let mut grpc = GrpcInferenceServiceClient::connect(server.grpc.clone().unwrap())
        .await
        .unwrap();
    let mut call = tonic::Request::new(grpc_request("grpc-ok", 5.1));
    call.metadata_mut()
        .insert("x-request-id", "grpc-ok".parse().unwrap());
    grpc.model_infer(call).await.unwrap();
    let mut refused = grpc_request("grpc-refused", f32::NAN);
    refused.model_name = "iris".into();
    let mut call = tonic::Request::new(refused);
    call.metadata_mut()
        .insert("x-request-id", "grpc-refused".parse().unwrap());
    let status = grpc.model_infer(call).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    let seen: BTreeMap<String, Seen> = {
        let seen = recorder.seen.lock().unwrap();
        let mut by_id = BTreeMap::new();
        for (id, what) in seen.iter() {
            assert!(
                by_id.insert(id.clone(), what.clone()).is_none(),
                "{id} was observed twice"
            );
        }
        by_id
    };
    let iris = Some("iris".to_owned());
    let expect = |protocol, model: &Option<String>, rows, outcome: &str, inputs| Seen {
        protocol,
        model: model.clone(),
        rows,
        outcome: outcome.to_owned(),
        inputs,
    };
    let expected: BTreeMap<String, Seen> = [
        ("rest-json", expect(Protocol::RestV2, &iris, 1, "ok", true)),
        (
            "rest-binary",
            expect(Protocol::RestV2, &iris, 1, "ok", true),
        ),
        (
            "rest-refused",
            expect(Protocol::RestV2, &iris, 0, "invalid_input", false),
        ),
        ("rows-two", expect(Protocol::Rows, &iris, 2, "ok", true)),
        (
            "rows-refused",
            expect(Protocol::Rows, &iris, 0, "invalid_input", false),
        ),
        (
            "rows-malformed",
            expect(Protocol::Rows, &None, 0, "malformed_json", false),
        ),
        (
            "rows-unknown",
            expect(Protocol::Rows, &None, 0, "model_not_found", false),
        ),
        ("grpc-ok", expect(Protocol::Grpc, &iris, 1, "ok", true)),
        (
            "grpc-refused",
            expect(Protocol::Grpc, &iris, 0, "invalid_input", false),
        ),
    ]
    .into_iter()
    .map(|(id, seen)| (id.to_owned(), seen))
    .collect();
    assert_eq!(seen, expected);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_answers_name_the_model_version_and_its_hash() {
    let server = TestServer::start_with(
        &examples(),
        &[("WARDEN_GRPC_PORT", "0")],
        Backends::only(onnxruntime()),
    )
    .await;
    let mut grpc = GrpcInferenceServiceClient::connect(server.grpc.clone().unwrap())
        .await
        .unwrap();
    let answer = grpc.model_infer(grpc_request("hash-1", 5.1)).await.unwrap();
    let model = server.state.registry.get("iris", None).unwrap();
    let metadata = answer.metadata();
    assert_eq!(metadata.get("x-model-name").unwrap(), "iris");
    assert_eq!(
        metadata.get("x-model-version").unwrap().to_str().unwrap(),
        model.version.to_string()
    );
    assert_eq!(
        metadata.get("x-model-sha256").unwrap().to_str().unwrap(),
        model.sha256
    );
    server.stop().await;
}

/// A codec that claims a large body and holds its decode permit until told to go on.
#[derive(Debug)]
struct HeldCodec {
    entered: std::sync::mpsc::Sender<()>,
    release: Arc<Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl Codec for HeldCodec {
    type Answer = ();

    fn check(&mut self) -> Result<(), ApiError> {
        self.entered.send(()).unwrap();
        let release = self.release.lock().unwrap();
        let _ = release.recv_timeout(Duration::from_secs(30));
        Err(ApiError::new(ErrorCode::InvalidInput, "held, then refused"))
    }

    fn decode(&mut self, _model: &ModelVersion) -> Result<Inputs<'_>, PredictError> {
        unreachable!("check refuses")
    }

    fn release(&mut self) {}

    fn encode(
        self,
        _model: &ModelVersion,
        _outputs: Vec<NamedTensor>,
        _rows: usize,
    ) -> Result<(), ApiError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_own_deadline_bounds_its_wait_for_a_decode_permit() {
    // One decode permit, held by a large body whose decoding does not finish.
    let door = FrontDoor::new(
        Arc::new(ModelRegistry::new(BTreeMap::new(), false)),
        1,
        Vec::new(),
    );
    let (entered, entered_rx) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let server_timeout = Duration::from_secs(30);
    let call = |id: &str, asked: Option<Duration>| Call {
        protocol: Protocol::RestV2,
        sticky: &(),
        request_id: id.to_owned(),
        model: "iris".into(),
        version: None,
        deadline: Deadline::new(Instant::now(), asked, server_timeout),
        size: 1 << 20,
        codec: HeldCodec {
            entered: entered.clone(),
            release: Arc::clone(&release_rx),
        },
    };
    let holder = {
        let door = door.clone();
        let call = call("holder", None);
        tokio::spawn(async move { door.infer(call).await.map(|_| ()) })
    };
    tokio::task::block_in_place(|| entered_rx.recv_timeout(Duration::from_secs(10)).unwrap());
    // A request that allows 100 ms is answered when they pass, not after the server's 30 s.
    let started = Instant::now();
    let waited = door
        .infer(call("hurried", Some(Duration::from_millis(100))))
        .await;
    let elapsed = started.elapsed();
    let error = waited.map(|_| ()).unwrap_err();
    assert_eq!(error.code, ErrorCode::DeadlineExceeded, "{error:?}");
    assert!(
        elapsed >= Duration::from_millis(90) && elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );
    release.send(()).unwrap();
    let held = holder.await.unwrap().unwrap_err();
    assert_eq!(held.code, ErrorCode::InvalidInput);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_version_whose_worker_is_busy_does_not_block_the_runtime() {
    let (backend, entered, release) = ScriptedBackend::new();
    let repository = repository_with(&examples(), "iris", |m| m.to_owned());
    let server = TestServer::start_on(repository.path(), &backend).await;
    backend.arm(Script::Block);
    let client = reqwest::Client::new();
    // A request that gives up after 300 ms while the model holds its batch: its handler, and
    // with it its reference to the version, is gone; the worker is still running the batch.
    let row = json!({"instances": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]});
    let late = {
        let (client, url, row) = (
            client.clone(),
            server.url("/v1/models/iris:predict"),
            row.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .header("x-timeout-ms", "300")
                .json(&row)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::task::block_in_place(|| entered.recv_timeout(Duration::from_secs(30)).unwrap());
    assert_eq!(late.await.unwrap(), 504);
    // Unloading drops the registry's reference, the last one, on a runtime thread: it answers
    // at once instead of waiting for the held batch.
    let unload = tokio::time::timeout(
        Duration::from_secs(10),
        client
            .post(server.url("/v2/repository/models/iris/unload"))
            .send(),
    )
    .await;
    let status = unload
        .expect("the unload waited for the worker's batch")
        .unwrap()
        .status();
    assert_eq!(status, 200);
    backend.arm(Script::Run);
    release.send(()).unwrap();
    server.stop().await;
}
