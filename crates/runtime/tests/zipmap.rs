//! scikit-learn classifiers that end in a `ZipMap` load on ONNX Runtime and answer their
//! probabilities as a float `[N, classes]` tensor, with or without the `tract` feature (the
//! ZipMap cut must not depend on tract's protobuf types): `cargo test -p warden-runtime` and
//! `cargo test -p warden-runtime --no-default-features` both run this.

#![allow(clippy::unwrap_used)]

mod common;

use common::{onnxruntime, root, tensor};
use serde_json::Value;
use warden_runtime::{Backend, DataType, LoadOptions, NamedTensor, Tensor, TensorData};

/// The first row of a zoo tensor, `[1, ...]` (`[1]` for a vector).
fn first_row(all: &NamedTensor) -> NamedTensor {
    let width: usize = all.tensor.shape[1..].iter().product();
    let data = match &all.tensor.data {
        TensorData::F32(v) => TensorData::F32(v[..width].to_vec()),
        TensorData::I64(v) => TensorData::I64(v[..width].to_vec()),
        TensorData::String(v) => TensorData::String(v[..width].to_vec()),
        other => panic!("unexpected zoo data {other:?}"),
    };
    let mut shape = all.tensor.shape.clone();
    shape[0] = 1;
    NamedTensor {
        name: all.name.clone(),
        tensor: Tensor::new(shape, data).unwrap(),
    }
}

#[test]
fn zipmap_classifiers_answer_a_row_on_onnxruntime() {
    // Integer labels (`classlabels_int64s`) and string labels (`classlabels_strings`).
    for (name, classes) in [
        ("logistic_regression_zipmap", 3),
        ("pipeline_impute_scale_onehot_zipmap", 2),
    ] {
        let graph = root().join(format!("tests/zoo/{name}.onnx"));
        let case: Value =
            serde_json::from_str(&std::fs::read_to_string(graph.with_extension("json")).unwrap())
                .unwrap();
        let bytes = std::fs::read(&graph).unwrap();
        let mut model = onnxruntime()
            .load(&bytes, &graph, &LoadOptions::default())
            .unwrap_or_else(|err| panic!("{name} does not load: {err}"));

        let probabilities = model.signature().output("output_probability").unwrap();
        assert_eq!(probabilities.data_type, DataType::F32, "{name}");
        assert_eq!(probabilities.shape, vec![-1, classes], "{name}");

        let rows = |key: &str| -> Vec<NamedTensor> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| first_row(&tensor(t)))
                .collect()
        };
        let got = model.run(rows("inputs"), &[]).unwrap();
        for want in rows("outputs") {
            let have = got.iter().find(|t| t.name == want.name).unwrap();
            assert_eq!(
                have.tensor.shape, want.tensor.shape,
                "{name}: {}",
                want.name
            );
            match (&want.tensor.data, &have.tensor.data) {
                (TensorData::F32(a), TensorData::F32(b)) => {
                    assert!(
                        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5),
                        "{name}: {}: expected {a:?}, got {b:?}",
                        want.name
                    );
                }
                (a, b) => assert_eq!(a, b, "{name}: {}", want.name),
            }
        }
    }
}
