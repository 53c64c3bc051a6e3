//! `loadgen MODE ADDRESS MODEL ROWS WIDTH CONCURRENCY SECONDS`: keeps CONCURRENCY requests of
//! ROWS rows × WIDTH FP32 features in flight against MODEL for SECONDS, and prints one JSON line:
//! `{"requests", "ok", "rps", "rows_per_s", "p50_ms", "p99_ms"}`. MODE is `grpc` (ModelInfer with
//! `raw_input_contents`, as tritonclient.grpc sends), `rest-json` (V2 JSON `data`) or
//! `rest-binary` (Triton's binary tensor extension). Every answer's status is checked; only
//! successes count toward the rates.

use std::time::{Duration, Instant};

#[path = "../../../crates/server/src/protocol/v2/generated/inference.rs"]
#[allow(clippy::all, dead_code)]
mod inference;

use inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use inference::model_infer_request::InferInputTensor;

#[derive(Clone)]
enum Call {
    Grpc(GrpcInferenceServiceClient<tonic::transport::Channel>, inference::ModelInferRequest),
    Rest {
        client: reqwest::Client,
        url: String,
        body: Vec<u8>,
        header_length: Option<usize>,
    },
}

impl Call {
    async fn send(&mut self) -> bool {
        match self {
            Call::Grpc(client, request) => client.model_infer(request.clone()).await.is_ok(),
            Call::Rest {
                client,
                url,
                body,
                header_length,
            } => {
                let mut request = client.post(url.as_str()).body(body.clone());
                request = match header_length {
                    Some(length) => request
                        .header("content-type", "application/octet-stream")
                        .header("inference-header-content-length", length.to_string()),
                    None => request.header("content-type", "application/json"),
                };
                match request.send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, address, model, rows, width, concurrency, seconds] = args.as_slice() else {
        eprintln!("usage: loadgen grpc|rest-json|rest-binary ADDRESS MODEL ROWS WIDTH CONCURRENCY SECONDS");
        std::process::exit(64);
    };
    let rows: usize = rows.parse().expect("ROWS");
    let width: usize = width.parse().expect("WIDTH");
    let concurrency: usize = concurrency.parse().expect("CONCURRENCY");
    let seconds: f64 = seconds.parse().expect("SECONDS");
    let values: Vec<f32> = (0..rows * width)
        .map(|i| ((i * 7919) % 400) as f32 / 100.0 - 2.0)
        .collect();
    let call = match mode.as_str() {
        "grpc" => {
            let client = GrpcInferenceServiceClient::connect(format!("http://{address}"))
                .await
                .expect("connect");
            let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let request = inference::ModelInferRequest {
                model_name: model.clone(),
                inputs: vec![InferInputTensor {
                    name: "float_input".into(),
                    datatype: "FP32".into(),
                    shape: vec![rows as i64, width as i64],
                    ..Default::default()
                }],
                raw_input_contents: vec![raw.into()],
                ..Default::default()
            };
            Call::Grpc(client, request)
        }
        "rest-json" | "rest-binary" => {
            let binary = mode == "rest-binary";
            let mut input = serde_json::json!({"name": "float_input", "shape": [rows, width], "datatype": "FP32"});
            let tail: Vec<u8> = if binary {
                input["parameters"] = serde_json::json!({"binary_data_size": rows * width * 4});
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            } else {
                input["data"] = serde_json::json!(values);
                Vec::new()
            };
            let mut header = serde_json::json!({"inputs": [input]});
            if binary {
                header["parameters"] = serde_json::json!({"binary_data_output": true});
            }
            let mut body = serde_json::to_vec(&header).unwrap();
            let header_length = binary.then_some(body.len());
            body.extend(tail);
            Call::Rest {
                client: reqwest::Client::new(),
                url: format!("http://{address}/v2/models/{model}/infer"),
                body,
                header_length,
            }
        }
        other => panic!("unknown mode {other}"),
    };
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut call = call.clone();
            tokio::spawn(async move {
                let (mut ok, mut requests, mut latencies) = (0u64, 0u64, Vec::new());
                while Instant::now() < until {
                    let sent = Instant::now();
                    let answered = call.send().await;
                    requests += 1;
                    if answered {
                        ok += 1;
                        latencies.push(sent.elapsed());
                    }
                }
                (ok, requests, latencies)
            })
        })
        .collect();
    let (mut ok, mut requests, mut latencies) = (0u64, 0u64, Vec::new());
    for task in tasks {
        let (o, r, l) = task.await.unwrap();
        ok += o;
        requests += r;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": requests,
            "ok": ok,
            "rps": ok as f64 / elapsed,
            "rows_per_s": (ok as usize * rows) as f64 / elapsed,
            "p50_ms": quantile(0.5),
            "p99_ms": quantile(0.99),
        })
    );
}
