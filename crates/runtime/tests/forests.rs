//! Random small forests, written as ONNX graphs, answered by tract (warden's tree evaluator)
//! and by ONNX Runtime on random rows: labels equal, scores within 1e-5 (1e-4 after PROBIT,
//! whose slope carries rounding further). The generator varies what the zoo's exporters happen
//! not to: tree count and depth, features, every comparison mode (`BRANCH_LEQ`, `LT`, `GTE`,
//! `GT`, `EQ`, `NEQ`), missing-value routing (`nodes_missing_value_tracks_true`), NaN inputs and
//! inputs exactly on thresholds; for classifiers two to five classes, integer and string labels,
//! two-class models whose leaves vote for one class (XGBoost's and LightGBM's layout) or for
//! both, negative weights, zero, one or one-per-class base values, and every post-transform; for
//! regressors one to three targets, every aggregate (`SUM`, `AVERAGE`, `MIN`, `MAX`), base
//! values and every post-transform. Seeded, so a failure names a case that repeats.

#![cfg(feature = "tract")]
#![allow(clippy::unwrap_used)]

mod common;

use common::graphs::{
    Attributes, Rng, answer, assert_same_answers, float_matrix, model, tensor_value,
};
use tract_onnx::pb::NodeProto;
use warden_runtime::tract::Tract;
use warden_runtime::{NamedTensor, Tensor, TensorData};

/// One random forest: the node attributes, the leaves (tree, node) and the thresholds used.
struct Forest {
    attributes: Attributes,
    leaves: Vec<(i64, i64)>,
    thresholds: Vec<f32>,
}

fn forest(rng: &mut Rng, features: usize) -> Forest {
    let trees = 1 + rng.below(6);
    // As scikit-learn exports: every split `BRANCH_LEQ`, no missing-value tracking (the
    // evaluator's fast path).
    let uniform = rng.chance(0.3);
    let modes = [
        "BRANCH_LEQ",
        "BRANCH_LT",
        "BRANCH_GTE",
        "BRANCH_GT",
        "BRANCH_EQ",
        "BRANCH_NEQ",
    ];
    let (mut tree_ids, mut node_ids, mut feature_ids, mut values) =
        (vec![], vec![], vec![], vec![]);
    let (mut node_modes, mut true_ids, mut false_ids, mut tracks) =
        (vec![], vec![], vec![], vec![]);
    let mut leaves = Vec::new();
    let mut thresholds = Vec::new();
    for tree in 0..trees as i64 {
        let depth = 1 + rng.below(4);
        // Nodes in breadth-first order; a node splits while below its depth, and sometimes not.
        let mut next = 1i64;
        let mut queue = vec![(0i64, 0usize)];
        while let Some((id, level)) = queue.first().copied() {
            queue.remove(0);
            tree_ids.push(tree);
            node_ids.push(id);
            if level < depth && (level == 0 || rng.chance(0.8)) {
                let threshold = (rng.range(-2.0, 2.0) * 8.0).round() / 8.0;
                thresholds.push(threshold);
                feature_ids.push(rng.below(features) as i64);
                values.push(threshold);
                node_modes.push(if uniform {
                    "BRANCH_LEQ"
                } else {
                    modes[rng.below(modes.len())]
                });
                true_ids.push(next);
                false_ids.push(next + 1);
                tracks.push(i64::from(!uniform && rng.chance(0.5)));
                queue.push((next, level + 1));
                queue.push((next + 1, level + 1));
                next += 2;
            } else {
                feature_ids.push(0);
                values.push(0.0);
                node_modes.push("LEAF");
                true_ids.push(0);
                false_ids.push(0);
                tracks.push(0);
                leaves.push((tree, id));
            }
        }
    }
    let mut attributes = Attributes::default();
    attributes.ints("nodes_treeids", tree_ids);
    attributes.ints("nodes_nodeids", node_ids);
    attributes.ints("nodes_featureids", feature_ids);
    attributes.floats("nodes_values", values);
    attributes.strings("nodes_modes", node_modes);
    attributes.ints("nodes_truenodeids", true_ids);
    attributes.ints("nodes_falsenodeids", false_ids);
    attributes.ints("nodes_missing_value_tracks_true", tracks);
    Forest {
        attributes,
        leaves,
        thresholds,
    }
}

const TRANSFORMS: [&str; 5] = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"];

/// A random classifier or regressor graph, its feature count and thresholds.
fn random_graph(rng: &mut Rng) -> (Vec<u8>, usize, Vec<f32>, String) {
    let features = 1 + rng.below(5);
    let Forest {
        mut attributes,
        leaves,
        thresholds,
    } = forest(rng, features);
    let (op, outputs, describe) = if rng.chance(0.6) {
        let classes = if rng.chance(0.5) { 2 } else { 3 + rng.below(3) };
        // Two classes: votes for one class only (binary), or for both at every leaf.
        let voting: Vec<i64> = if classes == 2 && rng.chance(0.5) {
            vec![rng.below(2) as i64]
        } else {
            (0..classes as i64).collect()
        };
        let negative = rng.chance(0.5);
        let low = if negative { -1.0 } else { 0.0 };
        let (mut trees, mut nodes, mut ids, mut weights) = (vec![], vec![], vec![], vec![]);
        for &(tree, node) in &leaves {
            for &class in &voting {
                trees.push(tree);
                nodes.push(node);
                ids.push(class);
                weights.push(rng.range(low, 1.0));
            }
        }
        attributes.ints("class_treeids", trees);
        attributes.ints("class_nodeids", nodes);
        attributes.ints("class_ids", ids);
        attributes.floats("class_weights", weights);
        let strings = rng.chance(0.3);
        if strings {
            attributes.strings(
                "classlabels_strings",
                ["no", "yes", "maybe", "x", "y"][..classes].to_vec(),
            );
        } else {
            attributes.ints(
                "classlabels_int64s",
                (0..classes as i64).map(|c| c * 2 + 3).collect(),
            );
        }
        let binary = voting.len() == 1;
        let bases = match rng.below(3) {
            0 => 0,
            1 if classes == 2 => 1,
            _ => classes,
        };
        // ONNX Runtime leaves the second score column unwritten for one score without a rule
        // to fill it: PROBIT of a binary model, and one base value with votes for both classes.
        let transforms = if binary && bases < 2 {
            &TRANSFORMS[..4]
        } else {
            &TRANSFORMS[..]
        };
        let transform = transforms[rng.below(transforms.len())];
        attributes.string("post_transform", transform);
        if bases > 0 {
            attributes.floats(
                "base_values",
                (0..bases).map(|_| rng.range(-0.5, 0.5)).collect(),
            );
        }
        (
            "TreeEnsembleClassifier",
            vec![
                tensor_value("label", if strings { 8 } else { 7 }, None),
                float_matrix("probabilities", Some(classes as i64)),
            ],
            format!(
                "classifier, {classes} classes voting {voting:?}{}, {bases} base values, {transform}",
                if negative { ", negative weights" } else { "" }
            ),
        )
    } else {
        let targets = 1 + rng.below(3);
        let (mut trees, mut nodes, mut ids, mut weights) = (vec![], vec![], vec![], vec![]);
        for &(tree, node) in &leaves {
            for target in 0..targets as i64 {
                trees.push(tree);
                nodes.push(node);
                ids.push(target);
                weights.push(rng.range(-3.0, 3.0));
            }
        }
        attributes.ints("target_treeids", trees);
        attributes.ints("target_nodeids", nodes);
        attributes.ints("target_ids", ids);
        attributes.floats("target_weights", weights);
        attributes.int("n_targets", targets as i64);
        let aggregate = ["SUM", "AVERAGE", "MIN", "MAX"][rng.below(4)];
        attributes.string("aggregate_function", aggregate);
        let transform = TRANSFORMS[rng.below(TRANSFORMS.len())];
        attributes.string("post_transform", transform);
        if rng.chance(0.5) {
            attributes.floats(
                "base_values",
                (0..targets).map(|_| rng.range(-1.0, 1.0)).collect(),
            );
        }
        (
            "TreeEnsembleRegressor",
            vec![float_matrix("variable", Some(targets as i64))],
            format!("regressor, {targets} targets, {aggregate}, {transform}"),
        )
    };
    let node = NodeProto {
        op_type: op.into(),
        domain: "ai.onnx.ml".into(),
        name: "forest".into(),
        input: vec!["x".into()],
        output: outputs.iter().map(|o| o.name.clone()).collect(),
        attribute: attributes.list,
        ..Default::default()
    };
    let graph = model(
        node,
        vec![float_matrix("x", Some(features as i64))],
        outputs,
    );
    (graph, features, thresholds, describe)
}

fn rows(rng: &mut Rng, features: usize, thresholds: &[f32], count: usize) -> Vec<f32> {
    (0..count * features)
        .map(|_| match rng.below(10) {
            0 => f32::NAN,
            1..=3 if !thresholds.is_empty() => thresholds[rng.below(thresholds.len())],
            _ => rng.range(-2.5, 2.5),
        })
        .collect()
}

#[test]
fn random_forests_answer_as_onnxruntime_does() {
    let onnxruntime = common::onnxruntime();
    let mut rng = Rng(0x5eed_f0e5_7000_0001);
    let cases = std::env::var("FOREST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150);
    for case in 0..cases {
        let (graph, features, thresholds, describe) = random_graph(&mut rng);
        let count = 1 + rng.below(16);
        let input = NamedTensor {
            name: "x".into(),
            tensor: Tensor::new(
                vec![count, features],
                TensorData::F32(rows(&mut rng, features, &thresholds, count)),
            )
            .unwrap(),
        };
        let expected = answer(onnxruntime, &graph, &input);
        let got = answer(&Tract, &graph, &input);
        let context = format!("case {case} ({describe}), input {:?}", input.tensor.data);
        let tolerance = if describe.ends_with("PROBIT") {
            1e-4
        } else {
            1e-5
        };
        assert_same_answers(&expected, &got, tolerance, &context);
    }
}

/// warden's TreeSHAP against the definition: on random forests whose raw score can be read
/// from their answer (no link: probabilities of forests of class shares, regressors' values;
/// a logistic link inverted), each row's attributions equal the exact Shapley values computed
/// by enumerating every coalition of features, each coalition's value the mean of tract's
/// answers on the hybrid rows against the background; the base value and the output too.
#[test]
fn treeshap_equals_coalition_enumeration_on_random_forests() {
    use warden_runtime::attribution::{
        InputFeatures, Scale, Structural, coalition_rows, shapley_values,
    };
    let mut rng = Rng(0x5eed_5a4b_0000_0001);
    let tensor = |rows: usize, features: usize, data: Vec<f32>| NamedTensor {
        name: "x".into(),
        tensor: Tensor::new(vec![rows, features], TensorData::F32(data)).unwrap(),
    };
    let mut checked = 0;
    for case in 0..600 {
        let (graph, features, thresholds, describe) = random_graph(&mut rng);
        let background_rows = 1 + rng.below(6);
        let background = rows(&mut rng, features, &thresholds, background_rows);
        let row = rows(&mut rng, features, &thresholds, 1);
        let Some(explainer) = Structural::of(&graph, "x", features, background.clone()) else {
            continue;
        };
        // A margin is read back through the logistic link; a softmax's cannot be.
        let logistic = describe.ends_with("LOGISTIC");
        if explainer.scale() == Scale::Margin && !logistic {
            continue;
        }
        let raw = |p: f32| {
            let p = f64::from(p);
            if explainer.scale() == Scale::Margin {
                (p / (1.0 - p)).ln()
            } else {
                p
            }
        };
        let tolerance = if logistic { 1e-3 } else { 1e-4 };
        let masks: Vec<u64> = (0..1u64 << features).collect();
        let inputs = [InputFeatures {
            name: "x".into(),
            features: (0..features).collect(),
        }];
        let hybrid = coalition_rows(
            &inputs,
            &[tensor(1, features, row.clone())],
            &[tensor(background_rows, features, background.clone())],
            &masks,
        )
        .unwrap();
        let outputs = answer(&Tract, &graph, &hybrid[0]);
        let TensorData::F32(scores) = &outputs.last().unwrap().tensor.data else {
            panic!("case {case}: scores are not f32");
        };
        let width = scores.len() / (masks.len() * background_rows);
        for class in 0..width {
            let values: Vec<f64> = masks
                .iter()
                .enumerate()
                .map(|(k, _)| {
                    (0..background_rows)
                        .map(|b| raw(scores[(k * background_rows + b) * width + class]))
                        .sum::<f64>()
                        / background_rows as f64
                })
                .collect();
            // A logistic saturated in f32 (p of 0 or 1) has no margin to read back.
            if values.iter().any(|v| !v.is_finite()) {
                continue;
            }
            let expected = shapley_values(&values, features);
            let got = explainer.explain(&row, class);
            let context = format!("case {case} ({describe}), class {class}, row {row:?}");
            for (g, e) in got.values.iter().zip(&expected) {
                assert!(
                    (g - e).abs() < tolerance,
                    "{context}: {:?} vs {expected:?}",
                    got.values
                );
            }
            assert!((got.base - values[0]).abs() < tolerance, "{context}: base");
            let output = values[values.len() - 1];
            assert!((got.output - output).abs() < tolerance, "{context}: output");
            assert!(got.additivity_error() < 1e-9, "{context}: additivity");
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} forests were checked");
}
