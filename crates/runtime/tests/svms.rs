//! Random support vector machines, written as ONNX graphs, answered by tract (warden's
//! `SVMClassifier` and `SVMRegressor`) and by ONNX Runtime on random rows: labels equal, scores
//! within 1e-5 (1e-4 after PROBIT). The generator covers what the zoo's one SVC (RBF, three
//! classes, probabilities) does not: every kernel (linear, polynomial of degree 1 to 3, RBF,
//! sigmoid), two to five classes, with and without Platt probabilities, integer and string
//! labels, the liblinear mode (no support vectors), every post-transform, and regressors with
//! and without support vectors, one-class included. Seeded, so a failure names a case that
//! repeats.

#![cfg(feature = "tract")]
#![allow(clippy::unwrap_used)]

mod common;

use common::graphs::{
    Attributes, Rng, answer, assert_same_answers, float_matrix, model, tensor_value,
};
use tract_onnx::pb::NodeProto;
use warden_runtime::tract::Tract;
use warden_runtime::{NamedTensor, Tensor, TensorData};

const KERNELS: [&str; 4] = ["LINEAR", "POLY", "RBF", "SIGMOID"];

fn kernel(rng: &mut Rng, attributes: &mut Attributes) -> String {
    let kernel = KERNELS[rng.below(KERNELS.len())];
    // Degree 4 of a dot product near 10 makes terms of 10^4 that cancel to a decision near 1:
    // two f32 engines then differ in the fifth digit by rounding alone, so degrees stay at
    // scikit-learn's default (3) or below.
    let degree = 1 + rng.below(3);
    attributes.string("kernel_type", kernel);
    attributes.floats(
        "kernel_params",
        vec![rng.range(0.05, 0.5), rng.range(-0.5, 0.5), degree as f32],
    );
    if kernel == "POLY" {
        format!("POLY^{degree}")
    } else {
        kernel.to_owned()
    }
}

fn floats(rng: &mut Rng, count: usize, low: f32, high: f32) -> Vec<f32> {
    (0..count).map(|_| rng.range(low, high)).collect()
}

/// A random classifier: the graph, its feature count and what it is.
fn classifier(rng: &mut Rng) -> (Vec<u8>, usize, String) {
    let features = 1 + rng.below(5);
    let classes = 2 + rng.below(4);
    let pairs = classes * (classes - 1) / 2;
    let mut attributes = Attributes::default();
    let strings = rng.chance(0.3);
    let names: Vec<String> = (0..classes).map(|c| format!("class_{c}")).collect();
    if strings {
        attributes.strings(
            "classlabels_strings",
            names.iter().map(String::as_str).collect(),
        );
    } else {
        attributes.ints(
            "classlabels_ints",
            (0..classes as i64).map(|c| c * 3 - 1).collect(),
        );
    }
    let linear = rng.chance(0.2);
    let mut probabilities = false;
    let describe = if linear {
        // The kernel is ignored (liblinear is linear), as ONNX Runtime ignores it.
        kernel(rng, &mut attributes);
        attributes.floats("coefficients", floats(rng, classes * features, -1.5, 1.5));
        attributes.floats("rho", vec![rng.range(-0.5, 0.5)]);
        "liblinear".to_owned()
    } else {
        let per_class: Vec<usize> = (0..classes).map(|_| 1 + rng.below(4)).collect();
        let vectors: usize = per_class.iter().sum();
        let kernel = kernel(rng, &mut attributes);
        attributes.ints(
            "vectors_per_class",
            per_class.iter().map(|&n| n as i64).collect(),
        );
        attributes.floats(
            "support_vectors",
            floats(rng, vectors * features, -2.0, 2.0),
        );
        attributes.floats(
            "coefficients",
            floats(rng, (classes - 1) * vectors, -1.0, 1.0),
        );
        attributes.floats("rho", floats(rng, pairs, -0.5, 0.5));
        probabilities = rng.chance(0.5);
        if probabilities {
            attributes.floats("prob_a", floats(rng, pairs, -3.0, -0.5));
            attributes.floats("prob_b", floats(rng, pairs, -0.5, 0.5));
        }
        format!("{kernel}, {vectors} vectors")
    };
    // PROBIT of a binary libsvm model without probabilities leaves ONNX Runtime's second score
    // column unwritten, so that pairing is not compared; nor PROBIT after a sigmoid kernel, where
    // ONNX Runtime's approximate tanh (MLAS) differs from the exact one in the seventh digit and
    // PROBIT's slope (2.5 and more) carries that past 1e-5.
    let transforms: &[&str] =
        if !linear && (!probabilities && classes == 2 || describe.starts_with("SIGMOID")) {
            &["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]
        } else {
            &["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]
        };
    let transform = if rng.chance(0.5) {
        "NONE"
    } else {
        transforms[rng.below(transforms.len())]
    };
    attributes.string("post_transform", transform);
    let columns = if !linear && !probabilities {
        pairs.max(2)
    } else {
        classes
    };
    let outputs = vec![
        tensor_value("label", if strings { 8 } else { 7 }, None),
        float_matrix("scores", Some(columns as i64)),
    ];
    let graph = graph("SVMClassifier", attributes, features, outputs);
    let describe = format!(
        "classifier, {classes} classes, {describe}{}, {transform}{}",
        if probabilities { ", probabilities" } else { "" },
        if strings { ", string labels" } else { "" }
    );
    (graph, features, describe)
}

/// A random regressor: the graph, its feature count and what it is.
fn regressor(rng: &mut Rng) -> (Vec<u8>, usize, String) {
    let features = 1 + rng.below(5);
    let mut attributes = Attributes::default();
    let one_class = rng.chance(0.25);
    let describe = if rng.chance(0.2) {
        kernel(rng, &mut attributes);
        attributes.floats("coefficients", floats(rng, features, -1.5, 1.5));
        "linear".to_owned()
    } else {
        let supports = 1 + rng.below(8);
        let kernel = kernel(rng, &mut attributes);
        attributes.int("n_supports", supports as i64);
        attributes.floats(
            "support_vectors",
            floats(rng, supports * features, -2.0, 2.0),
        );
        attributes.floats("coefficients", floats(rng, supports, -1.0, 1.0));
        format!("{kernel}, {supports} vectors")
    };
    attributes.floats("rho", vec![rng.range(-0.5, 0.5)]);
    if one_class {
        attributes.int("one_class", 1);
    }
    let outputs = vec![float_matrix("variable", Some(1))];
    let graph = graph("SVMRegressor", attributes, features, outputs);
    let describe = format!(
        "regressor, {describe}{}",
        if one_class { ", one class" } else { "" }
    );
    (graph, features, describe)
}

fn graph(
    op: &str,
    attributes: Attributes,
    features: usize,
    outputs: Vec<tract_onnx::pb::ValueInfoProto>,
) -> Vec<u8> {
    let node = NodeProto {
        op_type: op.into(),
        domain: "ai.onnx.ml".into(),
        name: "svm".into(),
        input: vec!["x".into()],
        output: outputs.iter().map(|o| o.name.clone()).collect(),
        attribute: attributes.list,
        ..Default::default()
    };
    model(
        node,
        vec![float_matrix("x", Some(features as i64))],
        outputs,
    )
}

#[test]
fn random_support_vector_machines_answer_as_onnxruntime_does() {
    let onnxruntime = common::onnxruntime();
    let mut rng = Rng(0x5eed_5f3a_0000_0016);
    let cases = std::env::var("SVM_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    for case in 0..cases {
        let (graph, features, describe) = if rng.chance(0.7) {
            classifier(&mut rng)
        } else {
            regressor(&mut rng)
        };
        let count = 1 + rng.below(12);
        let values = (0..count * features)
            .map(|_| rng.range(-2.5, 2.5))
            .collect();
        let input = NamedTensor {
            name: "x".into(),
            tensor: Tensor::new(vec![count, features], TensorData::F32(values)).unwrap(),
        };
        let expected = answer(onnxruntime, &graph, &input);
        let got = answer(&Tract, &graph, &input);
        let context = format!("case {case} ({describe}), input {:?}", input.tensor.data);
        // PROBIT's slope (2.5 at 0.5, more away from it) carries rounding differences that are
        // 1e-6 before it (ONNX Runtime's approximate tanh, the coupling's f32 iteration) past
        // 1e-5 after it.
        let tolerance = if describe.ends_with("PROBIT") || describe.contains("PROBIT,") {
            1e-4
        } else {
            1e-5
        };
        assert_same_answers(&expected, &got, tolerance, &context);
    }
}
