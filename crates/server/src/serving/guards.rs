//! Output guards: a model that answers garbage must not answer 200.
//!
//! After every inference the outputs are checked: no NaN or infinity anywhere, probabilities
//! within [0, 1] and each row summing to 1, labels among the declared labels. A failed guard
//! turns the answer into `invalid_output`; the values never reach the client.

use warden_contract::{Output, OutputKind, RelaxableGuard};
use warden_runtime::{NamedTensor, TensorData};

/// How far a probability row may sum from 1.
const PROBABILITY_SUM_TOLERANCE: f64 = 1e-3;

/// Every guard violation in `outputs`, described for the log (never for the client).
pub(super) fn check_outputs(
    outputs: &[NamedTensor],
    declared: &[Output],
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for output in outputs {
        let values = float_values(&output.tensor.data);
        if let Some(position) = values.iter().position(|x| !x.is_finite()) {
            problems.push(format!(
                "output `{}` holds a non-finite value ({}) at flat index {position}",
                output.name, values[position]
            ));
            continue;
        }
        let Some(spec) = declared.iter().find(|d| d.name == output.name) else {
            continue;
        };
        let labels = spec.labels.as_deref().unwrap_or_default();
        let on = |guard| !spec.relax.contains(&guard);
        match spec.kind {
            OutputKind::Probability => check_probabilities(
                output,
                &values,
                on(RelaxableGuard::ProbabilityRange),
                on(RelaxableGuard::ProbabilitySum),
                &mut problems,
            ),
            OutputKind::Label if on(RelaxableGuard::KnownLabels) => {
                check_labels(output, labels, &mut problems)
            }
            OutputKind::Label | OutputKind::Score | OutputKind::Value => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn float_values(data: &TensorData) -> Vec<f64> {
    match data {
        TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::F64(v) => v.clone(),
        _ => Vec::new(),
    }
}

fn check_probabilities(
    output: &NamedTensor,
    values: &[f64],
    range: bool,
    sum: bool,
    problems: &mut Vec<String>,
) {
    if range && let Some(bad) = values.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        problems.push(format!(
            "output `{}` holds a probability outside [0, 1]: {bad}",
            output.name
        ));
        return;
    }
    if !sum {
        return;
    }
    let width = output.tensor.shape.last().copied().unwrap_or(1).max(1);
    for (row, chunk) in values.chunks(width).enumerate() {
        let sum: f64 = chunk.iter().sum();
        if (sum - 1.0).abs() > PROBABILITY_SUM_TOLERANCE {
            problems.push(format!(
                "output `{}` row {row} sums to {sum}, not 1",
                output.name
            ));
            return;
        }
    }
}

fn check_labels(output: &NamedTensor, labels: &[String], problems: &mut Vec<String>) {
    let unknown = match &output.tensor.data {
        TensorData::String(values) => values
            .iter()
            .find(|v| !labels.contains(v))
            .map(|v| format!("{v:?}")),
        TensorData::I64(values) => values
            .iter()
            .find(|&&v| usize::try_from(v).map_or(true, |i| i >= labels.len()))
            .map(i64::to_string),
        _ => None,
    };
    if let Some(label) = unknown {
        problems.push(format!(
            "output `{}` answered label {label}, which is not among the declared labels {labels:?}",
            output.name
        ));
    }
}

#[cfg(test)]
mod tests {
    use warden_runtime::Tensor;

    use super::*;

    fn tensor(name: &str, shape: Vec<usize>, data: TensorData) -> NamedTensor {
        NamedTensor {
            name: name.into(),
            tensor: Tensor::new(shape, data).unwrap(),
        }
    }

    fn declared() -> Vec<Output> {
        let labels = Some(vec!["approve".to_owned(), "reject".to_owned()]);
        vec![
            Output {
                name: "label".into(),
                kind: OutputKind::Label,
                labels: labels.clone(),
                relax: vec![],
            },
            Output {
                name: "probabilities".into(),
                kind: OutputKind::Probability,
                labels,
                relax: vec![],
            },
        ]
    }

    #[test]
    fn a_relaxed_guard_lets_its_check_pass_but_never_nan() {
        let mut relaxed = declared();
        relaxed[1].relax = vec![
            RelaxableGuard::ProbabilitySum,
            RelaxableGuard::ProbabilityRange,
        ];
        let sums_to_half = tensor("probabilities", vec![1, 2], TensorData::F32(vec![0.3, 0.2]));
        assert_eq!(
            check_outputs(std::slice::from_ref(&sums_to_half), &relaxed),
            Ok(())
        );
        let nan = tensor(
            "probabilities",
            vec![1, 2],
            TensorData::F32(vec![f32::NAN, 0.2]),
        );
        assert!(check_outputs(&[nan], &relaxed).is_err());
    }

    #[test]
    fn sound_outputs_pass() {
        let outputs = [
            tensor(
                "label",
                vec![2],
                TensorData::String(vec!["approve".into(), "reject".into()]),
            ),
            tensor(
                "probabilities",
                vec![2, 2],
                TensorData::F32(vec![0.9, 0.1, 0.2, 0.8]),
            ),
        ];
        assert_eq!(check_outputs(&outputs, &declared()), Ok(()));
    }

    #[test]
    fn nan_broken_probabilities_and_unknown_labels_are_caught() {
        let cases = [
            tensor("anything", vec![1], TensorData::F64(vec![f64::NAN])),
            tensor(
                "probabilities",
                vec![1, 2],
                TensorData::F32(vec![1.7, -0.7]),
            ),
            tensor("probabilities", vec![1, 2], TensorData::F32(vec![0.5, 0.2])),
            tensor("label", vec![1], TensorData::String(vec!["maybe".into()])),
        ];
        for case in cases {
            let problems = check_outputs(std::slice::from_ref(&case), &declared()).unwrap_err();
            assert_eq!(problems.len(), 1, "{case:?}: {problems:?}");
        }
    }
}
