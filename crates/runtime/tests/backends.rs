//! Both backends on the bundled models: tract, after its load-time rewrites, answers what
//! ONNX Runtime answers.

#![cfg(feature = "tract")]
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{onnxruntime, root};
use warden_runtime::tract::Tract;
use warden_runtime::{Backend, LoadOptions, NamedTensor, Tensor, TensorData};

fn run(backend: &dyn Backend, model: &Path, inputs: Vec<NamedTensor>) -> Vec<NamedTensor> {
    let bytes = std::fs::read(model).unwrap();
    let mut loaded = backend
        .load(&bytes, model, &LoadOptions::default())
        .unwrap();
    loaded.run(inputs, &[]).unwrap()
}

pub fn assert_same(reference: &[NamedTensor], candidate: &[NamedTensor]) {
    assert_eq!(reference.len(), candidate.len());
    for (r, c) in reference.iter().zip(candidate) {
        assert_eq!(r.name, c.name);
        assert_eq!(r.tensor.shape, c.tensor.shape, "{}", r.name);
        match (&r.tensor.data, &c.tensor.data) {
            (TensorData::F32(a), TensorData::F32(b)) => {
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() <= 1e-5, "{}: {a:?} vs {b:?}", r.name);
                }
            }
            (a, b) => assert_eq!(a, b, "{}", r.name),
        }
    }
}

#[test]
fn tract_answers_what_onnxruntime_answers_on_the_bundled_models() {
    let iris = root().join("examples/models/iris/1/model.onnx");
    let rows = || {
        vec![NamedTensor {
            name: "float_input".into(),
            tensor: Tensor::new(
                vec![2, 4],
                TensorData::F32(vec![5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]),
            )
            .unwrap(),
        }]
    };
    assert_same(
        &run(onnxruntime(), &iris, rows()),
        &run(&Tract, &iris, rows()),
    );

    let credit = root().join("examples/models/credit/1/model.onnx");
    let column = |name: &str, data: TensorData| NamedTensor {
        name: name.into(),
        tensor: Tensor::new(vec![3, 1], data).unwrap(),
    };
    let rows = || {
        vec![
            column("age", TensorData::F32(vec![42.0, 23.0, 61.0])),
            column("income", TensorData::F32(vec![52000.0, 9000.0, 120000.0])),
            column("debt_ratio", TensorData::F32(vec![0.3, 1.2, 0.05])),
            column(
                "country",
                TensorData::String(vec!["US".into(), "IN".into(), "XX".into()]),
            ),
            column(
                "employment",
                TensorData::String(vec![
                    "salaried".into(),
                    "unemployed".into(),
                    "self_employed".into(),
                ]),
            ),
        ]
    };
    assert_same(
        &run(onnxruntime(), &credit, rows()),
        &run(&Tract, &credit, rows()),
    );
}
