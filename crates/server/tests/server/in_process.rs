//! The router driven in-process over a fake engine (no ONNX Runtime, no socket): what reaches
//! the engine is exactly what the contract gate admitted, in the graph's types and shapes, and
//! nothing else does, whichever protocol the request came by.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use warden_runtime::{DataType, NamedTensor, Signature, Tensor, TensorData, TensorSpec};
use warden_server::serving::PredictError;
use warden_server::serving::TensorRequest;
use warden_server::serving::{Backends, load_to_serve};

use crate::common::{FakeEngine, InProcess, examples};

fn spec(name: &str, data_type: DataType, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        data_type,
        shape: shape.to_vec(),
    }
}

/// An engine with the iris graph's signature that answers `probabilities` for every row.
fn iris_engine(probabilities: [f32; 3]) -> FakeEngine {
    FakeEngine {
        signature: Signature {
            inputs: vec![spec("float_input", DataType::F32, &[-1, 4])],
            outputs: vec![
                spec("label", DataType::String, &[-1]),
                spec("probabilities", DataType::F32, &[-1, 3]),
            ],
        },
        answer: Arc::new(move |inputs: &[NamedTensor]| {
            let rows = inputs[0].tensor.shape[0];
            vec![
                NamedTensor {
                    name: "label".into(),
                    tensor: Tensor::new(
                        vec![rows],
                        TensorData::String(vec!["setosa".into(); rows]),
                    )
                    .unwrap(),
                },
                NamedTensor {
                    name: "probabilities".into(),
                    tensor: Tensor::new(vec![rows, 3], TensorData::F32(probabilities.repeat(rows)))
                        .unwrap(),
                },
            ]
        }),
        seen: Arc::new(Mutex::new(Vec::new())),
    }
}

/// A repository holding only the example iris model.
fn iris_repository() -> tempfile::TempDir {
    let repository = tempfile::tempdir().unwrap();
    let dir = repository.path().join("iris");
    std::fs::create_dir_all(dir.join("1")).unwrap();
    let source = examples().join("iris");
    std::fs::copy(source.join("1/model.onnx"), dir.join("1/model.onnx")).unwrap();
    std::fs::copy(source.join("warden.toml"), dir.join("warden.toml")).unwrap();
    std::fs::copy(
        source.join("background.jsonl"),
        dir.join("background.jsonl"),
    )
    .unwrap();
    repository
}

fn serve(repository: &Path, engine: &FakeEngine) -> InProcess {
    InProcess::assemble(repository, Backends::only(Arc::new(engine.clone())))
}

#[tokio::test]
async fn rows_reach_the_engine_as_the_graph_declares_them_and_bad_rows_never_do() {
    let engine = iris_engine([0.8, 0.15, 0.05]);
    let repository = iris_repository();
    let router = serve(repository.path(), &engine);
    let warmed_up = engine.seen.lock().unwrap().len();
    assert_eq!(warmed_up, 1, "one warm-up run at load");

    let (status, body) = router
        .post(
            "/v1/models/iris:predict",
            &json!({"instances": [[5.1, 3.5, 1.4, 0.2], {"sepal_length": 6.0, "sepal_width": 3.0, "petal_length": 4.5, "petal_width": 1.5}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["predictions"][1]["label"], "setosa");
    assert_eq!(body["model"]["version"], "1");
    let seen = engine.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].name, "float_input");
    assert_eq!(seen[0].tensor.shape, vec![2, 4]);
    assert_eq!(
        seen[0].tensor.data,
        TensorData::F32(vec![5.1, 3.5, 1.4, 0.2, 6.0, 3.0, 4.5, 1.5])
    );

    // Out of the training range, by row and by tensor: refused, and the engine never runs.
    let (status, body) = router
        .post(
            "/v1/models/iris:predict",
            &json!({"instances": [[50.0, 3.5, 1.4, 0.2]]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (status, body) = router
        .post(
            "/v2/models/iris/infer",
            &json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 99.0]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["details"][0]["loc"],
        json!(["inputs", 0, "data", 3]),
        "located at the value's flat index: {body}"
    );
    assert_eq!(engine.seen.lock().unwrap().len(), warmed_up + 1);
}

#[tokio::test]
async fn an_answer_that_fails_its_guards_is_withheld() {
    let repository = iris_repository();
    // The warm-up runs through the guards too: a model answering NaN never loads.
    let sources = warden_server::serving::scan_repository(repository.path()).unwrap();
    let broken = Backends::only(Arc::new(iris_engine([f32::NAN, 0.5, 0.5])));
    assert!(load_to_serve(&sources[0], &broken).is_err());

    // One that turns bad after its warm-up is withheld request by request.
    let poisoned = Arc::new(AtomicBool::new(false));
    let mut engine = iris_engine([0.8, 0.15, 0.05]);
    let healthy = Arc::clone(&engine.answer);
    let switch = Arc::clone(&poisoned);
    engine.answer = Arc::new(move |inputs: &[NamedTensor]| {
        let mut outputs = healthy(inputs);
        if switch.load(Ordering::SeqCst) {
            outputs[1].tensor.data = TensorData::F32(vec![f32::NAN, 0.5, 0.5]);
        }
        outputs
    });
    let router = serve(repository.path(), &engine);
    let infer = json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]});
    let (status, body) = router.post("/v2/models/iris/infer", &infer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    poisoned.store(true, Ordering::SeqCst);
    let (status, body) = router.post("/v2/models/iris/infer", &infer).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"code": "invalid_output", "error": "model `iris` version 1 produced an invalid output; the values are withheld"})
    );
}

/// The gate is the gate's own guarantee, not the codec's: tensors a codec did not check (wrong
/// element type, wrong width, rows that disagree, an unknown output) are refused before any run.
#[tokio::test]
async fn the_gate_refuses_tensors_no_codec_checked() {
    let engine = iris_engine([0.8, 0.15, 0.05]);
    let repository = iris_repository();
    let sources = warden_server::serving::scan_repository(repository.path()).unwrap();
    let model = load_to_serve(&sources[0], &Backends::only(Arc::new(engine.clone()))).unwrap();
    let request =
        |data: TensorData, shape: Vec<usize>, rows: usize, outputs: Vec<String>| TensorRequest {
            inputs: vec![NamedTensor {
                name: "float_input".into(),
                tensor: Tensor { shape, data },
            }],
            outputs,
            rows,
        };
    let refused = |result: Result<_, PredictError>| match result {
        Err(PredictError::Invalid(violations)) => violations
            .listed()
            .iter()
            .map(|v| v.msg.to_string())
            .collect::<Vec<_>>(),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused(model.admit_tensors(request(
            TensorData::F64(vec![1.0; 4]),
            vec![1, 4],
            1,
            vec![]
        ))),
        [format!("expected {}, got {}", DataType::F32, DataType::F64)]
    );
    assert_eq!(
        refused(model.admit_tensors(request(
            TensorData::F32(vec![1.0; 3]),
            vec![1, 3],
            1,
            vec![]
        ))),
        ["shape [1, 3] does not fit [-1, 4]"]
    );
    assert_eq!(
        refused(model.admit_tensors(request(
            TensorData::F32(vec![5.0; 8]),
            vec![2, 4],
            1,
            vec![]
        ))),
        ["2 rows where the request has 1"]
    );
    assert_eq!(
        refused(model.admit_tensors(request(
            TensorData::F32(vec![5.0, 3.0, 1.5, 0.2]),
            vec![1, 4],
            1,
            vec!["logits".into()]
        ))),
        ["not an output of the model"]
    );
    let runs = engine.seen.lock().unwrap().len();
    let admitted = model
        .admit_tensors(request(
            TensorData::F32(vec![5.0, 3.0, 1.5, 0.2]),
            vec![1, 4],
            1,
            vec![],
        ))
        .unwrap();
    let answer = model
        .infer(admitted, Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(answer.outputs.len(), 2);
    assert_eq!(engine.seen.lock().unwrap().len(), runs + 1);
}

#[tokio::test]
async fn inputs_admitted_by_one_version_do_not_run_on_another() {
    let repository = iris_repository();
    let sources = warden_server::serving::scan_repository(repository.path()).unwrap();
    let engine = iris_engine([0.8, 0.15, 0.05]);
    let backends = Backends::only(Arc::new(engine.clone()));
    let first = load_to_serve(&sources[0], &backends).unwrap();
    let second = load_to_serve(&sources[0], &backends).unwrap();
    let admitted = first
        .admit_rows(&vec![json!([5.1, 3.5, 1.4, 0.2])])
        .unwrap();
    let runs = engine.seen.lock().unwrap().len();
    let refused = second
        .infer(admitted, Instant::now() + Duration::from_secs(10))
        .await;
    assert!(
        matches!(refused, Err(PredictError::Encode(_))),
        "{refused:?}"
    );
    assert_eq!(engine.seen.lock().unwrap().len(), runs);
}
