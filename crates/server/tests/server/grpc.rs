//! The gRPC listener's server-side rules, shown with a model held busy (the scripted backend)
//! and tonic's generated client: gRPC's own deadline is the request's deadline; a full queue is
//! RESOURCE_EXHAUSTED at once; a call in flight at shutdown is answered before the listener
//! closes. Protocol-level behaviour seen by real clients is in python/tests/test_grpc.py.

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;
use warden_server::grpc::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use warden_server::grpc::inference::model_infer_request::InferInputTensor;
use warden_server::grpc::inference::{InferTensorContents, ModelInferRequest};
use warden_server::serving::Backends;

use std::sync::atomic::Ordering;

use crate::common::{Script, ScriptedBackend, TestServer, eventually, examples, repository_with};

type Client = GrpcInferenceServiceClient<tonic::transport::Channel>;

async fn start(path: &std::path::Path, backend: &ScriptedBackend) -> (TestServer, Client) {
    let backends = Backends::only(Arc::new(backend.clone()));
    let server = TestServer::start_with(path, &[("WARDEN_GRPC_PORT", "0")], backends).await;
    let address = server.grpc.clone().expect("a gRPC listener");
    let client = GrpcInferenceServiceClient::connect(address).await.unwrap();
    (server, client)
}

fn iris_request() -> ModelInferRequest {
    ModelInferRequest {
        model_name: "iris".into(),
        inputs: vec![InferInputTensor {
            name: "float_input".into(),
            datatype: "FP32".into(),
            shape: vec![1, 4],
            parameters: Default::default(),
            contents: Some(InferTensorContents {
                fp32_contents: vec![5.1, 3.5, 1.4, 0.2],
                ..Default::default()
            }),
        }],
        ..Default::default()
    }
}

/// Sends one call in the background and waits until it is inside the (blocked) model.
async fn occupy(
    client: &Client,
    entered: &std::sync::mpsc::Receiver<()>,
) -> tokio::task::JoinHandle<Result<tonic::Response<impl Sized>, tonic::Status>> {
    let mut busy = client.clone();
    let running = tokio::spawn(async move { busy.model_infer(iris_request()).await });
    tokio::task::block_in_place(|| entered.recv_timeout(Duration::from_secs(30)).unwrap());
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_deadline_is_the_request_deadline() {
    let (backend, entered, release) = ScriptedBackend::new();
    let (server, client) = start(&examples(), &backend).await;
    backend.arm(Script::Block);
    let running = occupy(&client, &entered).await;
    // The model is held: a call with a 100 ms gRPC deadline waits in the queue past it. Sent
    // as raw HTTP/2 so that the server's answer is seen, not the client's own timer (tonic's
    // and grpcio's clients give up locally at the same moment).
    let mut body = vec![0u8];
    let message = prost::Message::encode_to_vec(&iris_request());
    body.extend((message.len() as u32).to_be_bytes());
    body.extend(message);
    let answer = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .post(format!(
            "{}/inference.GRPCInferenceService/ModelInfer",
            server.grpc.as_ref().unwrap()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "100m")
        .header("x-request-id", "late-1")
        .body(body)
        .send()
        .await
        .unwrap();
    let headers = answer.headers();
    assert_eq!(
        headers["grpc-status"], "4",
        "DEADLINE_EXCEEDED: {headers:?}"
    );
    let message = headers["grpc-message"].to_str().unwrap();
    assert!(
        message.starts_with(
            "deadline_exceeded:%20model%20%60iris%60%20did%20not%20answer%20within%20the%20request's%20deadline"
        ),
        "{message}"
    );
    assert_eq!(headers["warden-code"], "deadline_exceeded");
    assert_eq!(headers["x-request-id"], "late-1");
    backend.arm(Script::Run);
    release.send(()).unwrap();
    assert!(running.await.unwrap().is_ok());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_resource_exhausted_at_once() {
    let repository = repository_with(&examples(), "iris", |m| {
        m.replace("queue_capacity = 256", "queue_capacity = 1")
    });
    let (backend, entered, release) = ScriptedBackend::new();
    let (server, client) = start(repository.path(), &backend).await;
    backend.arm(Script::Block);
    let running = occupy(&client, &entered).await;
    // One call fits the queue of one; the next is refused without waiting for the model.
    let mut queued_client = client.clone();
    let queued = tokio::spawn(async move { queued_client.model_infer(iris_request()).await });
    let model = server.state.registry.get("iris", None).unwrap();
    eventually("the second call to queue", Duration::from_secs(10), || {
        model.counters().queued.load(Ordering::Relaxed) == 1
    })
    .await;
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        client.clone().model_infer(iris_request()),
    )
    .await
    .expect("a full queue answers at once")
    .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(
        refused.message(),
        "overloaded: model `iris` is at capacity: its queue (`queue_capacity` under [batching] in its warden.toml) is full; retry after the Retry-After delay"
    );
    backend.arm(Script::Run);
    release.send(()).unwrap();
    assert!(running.await.unwrap().is_ok());
    assert!(queued.await.unwrap().is_ok());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_at_shutdown_is_answered() {
    let (backend, entered, release) = ScriptedBackend::new();
    let (server, client) = start(&examples(), &backend).await;
    backend.arm(Script::Block);
    let running = occupy(&client, &entered).await;
    let http = server.base.trim_start_matches("http://").to_owned();
    let stopping = tokio::spawn(server.stop());
    // Shutdown has begun once the listeners are closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&http).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener never closed"
        );
        tokio::task::yield_now().await;
    }
    backend.arm(Script::Run);
    release.send(()).unwrap();
    let answer = running
        .await
        .unwrap()
        .expect("the call in flight is answered");
    drop(answer);
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("shutdown finishes once the call is answered")
        .unwrap();
}
